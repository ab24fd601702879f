//! The label in a W3C `baggage` header: read one member, merge one member in, rewrite a
//! member that contradicts the decision.
//!
//! [W3C Baggage](https://www.w3.org/TR/baggage/) is a comma-separated list of
//! `key=value;properties` members. gray carries its label as the member
//! [`BAGGAGE_KEY`]` = version`, beside whatever else the header holds, so that services
//! instrumented with OpenTelemetry pass it on unchanged.

use super::headers::Headers;

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
/// use gray_core::label::baggage_member;
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
/// use gray_core::label::baggage_with;
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

/// What the values of a request's `baggage` headers say about the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Label {
    /// No `gray` member.
    Absent,
    /// Exactly one `gray` member, naming the version asked about.
    Exactly,
    /// Another version, or more than one `gray` member.
    Other,
}

/// What `values` (the values of a request's `baggage` headers) say about `version`: no
/// `gray` member, exactly one naming it, or anything else. Reads every byte (no length
/// limit).
pub(crate) fn label_in<'a>(values: impl IntoIterator<Item = &'a [u8]>, version: &str) -> Label {
    let mut seen = false;
    for value in values {
        for item in value.split(|&b| b == b',') {
            let item = item.split(|&b| b == b';').next().unwrap_or_default();
            let Some(eq) = item.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim(&item[..eq]) != BAGGAGE_KEY.as_bytes() {
                continue;
            }
            if seen || trim(&item[eq + 1..]) != version.as_bytes() {
                return Label::Other;
            }
            seen = true;
        }
    }
    if seen { Label::Exactly } else { Label::Absent }
}

/// The `baggage` to send on in place of a request's own when its `gray` member
/// contradicts the decided `version` — a label refused at an edge, or one that lost to
/// the label header or to a fallback: the same members, the `gray` one set to `version`
/// (as [`baggage_with`] does, in one header). `None` when nothing needs to change: no
/// `gray` member, or exactly one, naming `version`.
///
/// Why: a proxy forwards the request's headers. The server middleware overwrites the
/// label header with the decision, but a spoofed `gray=canary` left in `baggage` would
/// travel on through services that pass baggage and not the label header (OpenTelemetry
/// does), to a service that trusts baggage labels. The adapters call this when
/// [`Decision::baggage_stale`](crate::Decision::baggage_stale) says so. Values that are
/// not UTF-8 (not valid baggage) are kept with their odd bytes replaced.
///
/// ```
/// use gray_core::label::baggage_relabeled;
///
/// let spoofed: [&[u8]; 1] = [b"userId=alice,gray=canary"];
/// assert_eq!(baggage_relabeled(spoofed, "stable").as_deref(), Some("userId=alice,gray=stable"));
/// assert_eq!(baggage_relabeled([&b"userId=alice,gray=stable"[..]], "stable"), None);
/// assert_eq!(baggage_relabeled([&b"userId=alice"[..]], "stable"), None);
/// // Two headers, or two members, are one list: made one, with one `gray` member.
/// let two: [&[u8]; 2] = [b"gray=stable", b"a=1,gray=canary"];
/// assert_eq!(baggage_relabeled(two, "stable").as_deref(), Some("a=1,gray=stable"));
/// ```
pub fn baggage_relabeled<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    version: &str,
) -> Option<String> {
    let values: Vec<&[u8]> = values.into_iter().collect();
    if label_in(values.iter().copied(), version) != Label::Other {
        return None;
    }
    let joined = values
        .iter()
        .map(|v| String::from_utf8_lossy(v))
        .collect::<Vec<_>>()
        .join(",");
    Some(baggage_with(Some(&joined), BAGGAGE_KEY, version))
}

/// Rewrites the `baggage` of a request's `headers` as [`baggage_relabeled`] says, into one
/// header; a result that is not a valid header value drops the `baggage` headers rather
/// than forward a contradicting label. Call it when
/// [`Decision::baggage_stale`](crate::Decision::baggage_stale) is `true`. Any
/// [`Headers`]: `http`'s [`HeaderMap`](http::HeaderMap), or another library's.
///
/// ```
/// use gray_core::label::{BAGGAGE_HEADER, relabel_baggage};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert(BAGGAGE_HEADER, "gray=canary, userId=alice".parse()?);
/// relabel_baggage(&mut headers, "stable");
/// assert_eq!(headers[BAGGAGE_HEADER], "userId=alice,gray=stable");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn relabel_baggage<H: Headers + ?Sized>(headers: &mut H, version: &str) {
    let Some(relabeled) = baggage_relabeled(headers.get_all(&BAGGAGE_HEADER), version) else {
        return;
    };
    match http::HeaderValue::from_str(&relabeled) {
        Ok(value) => headers.insert(BAGGAGE_HEADER, value),
        Err(_) => headers.remove(&BAGGAGE_HEADER),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t');
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}
