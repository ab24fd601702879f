//! The label in a W3C `baggage` header: read one member, merge one member in.
//!
//! [W3C Baggage](https://www.w3.org/TR/baggage/) is a comma-separated list of
//! `key=value;properties` members. gray carries its label as the member
//! [`BAGGAGE_KEY`]` = version`, beside whatever else the header holds, so that services
//! instrumented with OpenTelemetry pass it on unchanged.

/// The W3C `baggage` header.
pub const BAGGAGE_HEADER: http::HeaderName = http::HeaderName::from_static("baggage");

/// The baggage member that carries the label: `gray=<version>`.
pub const BAGGAGE_KEY: &str = "gray";

/// Most bytes of a `baggage` header that are looked at (the W3C limit is 8192).
pub const MAX_BAGGAGE_LEN: usize = 8192;

/// The raw value of member `key` in a `baggage` header value, without its properties.
///
/// Whitespace around keys and values is ignored, as the W3C grammar allows. Values are
/// returned as they are on the wire (not percent-decoded); a version name never needs
/// encoding, so a declared version compares equal. A header longer than
/// [`MAX_BAGGAGE_LEN`] is not read. Allocates nothing.
///
/// ```
/// use gray_core::baggage_member;
///
/// let header = b"userId=alice, gray = canary ;ttl=3, other=1";
/// assert_eq!(baggage_member(header, "gray"), Some(&b"canary"[..]));
/// assert_eq!(baggage_member(header, "missing"), None);
/// ```
pub fn baggage_member<'a>(header: &'a [u8], key: &str) -> Option<&'a [u8]> {
    member(header, key)
}

pub(crate) fn member<'a>(header: &'a [u8], key: &str) -> Option<&'a [u8]> {
    if header.len() > MAX_BAGGAGE_LEN {
        return None;
    }
    header.split(|&b| b == b',').find_map(|item| {
        let item = item.split(|&b| b == b';').next().unwrap_or_default();
        let eq = item.iter().position(|&b| b == b'=')?;
        let (k, v) = (trim(&item[..eq]), trim(&item[eq + 1..]));
        (k == key.as_bytes()).then_some(v)
    })
}

/// `existing` baggage with the member `key=value` set: an old member of that key is
/// dropped (with its properties), every other member is kept as it was and in its order,
/// and `key=value` is appended (W3C baggage gives the order of members no meaning).
///
/// ```
/// use gray_core::baggage_with;
///
/// assert_eq!(baggage_with(None, "gray", "canary"), "gray=canary");
/// assert_eq!(
///     baggage_with(Some("userId=alice,gray=stable;p=1"), "gray", "canary"),
///     "userId=alice,gray=canary"
/// );
/// assert_eq!(baggage_with(Some("a=1"), "gray", "v2"), "a=1,gray=v2");
/// assert_eq!(baggage_with(Some("a=1,gray=v1,b=2"), "gray", "v2"), "a=1,b=2,gray=v2");
/// ```
pub fn baggage_with(existing: Option<&str>, key: &str, value: &str) -> String {
    let existing = existing.unwrap_or_default();
    let mut out = String::with_capacity(existing.len() + key.len() + value.len() + 2);
    for item in existing.split(',') {
        let name = item.split([';', '=']).next().unwrap_or_default().trim();
        if name.is_empty() || name == key {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(item.trim());
    }
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(key);
    out.push('=');
    out.push_str(value);
    out
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t');
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}
