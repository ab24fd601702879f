//! `split.set_cookie`: a key drawn at random for a client that came without the split's
//! cookie, and the `Set-Cookie` value that gives it to the client.

use std::num::NonZeroU64;

use http::HeaderValue;

use crate::rules::{Problem, SetCookieConfig};

/// The most seconds a cookie may last: 400 days, the cap browsers apply (RFC 6265bis).
const MAX_AGE: u32 = 400 * 86_400;

/// Longest `path` or `domain` attribute accepted.
const MAX_ATTRIBUTE: usize = 256;

/// A split's compiled `set_cookie`: the cookie's text around the key.
#[derive(Debug)]
pub(super) struct AssignCookie {
    /// `name=`
    name: Box<str>,
    /// `; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax`, then `Domain` and `Secure` if set.
    attributes: Box<str>,
}

impl AssignCookie {
    /// Checks `config` for the cookie `name` (the split's `by: { cookie }`); an error names
    /// the field under `split.` at fault.
    pub(super) fn compile(config: &SetCookieConfig, name: &str) -> Result<Self, (String, Problem)> {
        // A cookie name is an HTTP token (RFC 6265): stricter than what a split may read.
        if !name.bytes().all(is_token) {
            return Err(("split.by.cookie".into(), Problem::BadName(name.to_owned())));
        }
        if !(1..=MAX_AGE).contains(&config.max_age) {
            return Err((
                "split.set_cookie.max_age".into(),
                Problem::CookieMaxAge(config.max_age),
            ));
        }
        let path = &config.path;
        let path_ok = path.starts_with('/')
            && path.len() <= MAX_ATTRIBUTE
            && path.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        if !path_ok {
            return Err((
                "split.set_cookie.path".into(),
                Problem::BadCookieAttribute(path.clone()),
            ));
        }
        let mut attributes = format!(
            "; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax",
            config.max_age
        );
        if let Some(domain) = &config.domain {
            let ok = !domain.is_empty()
                && domain.len() <= MAX_ATTRIBUTE
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err((
                    "split.set_cookie.domain".into(),
                    Problem::BadCookieAttribute(domain.clone()),
                ));
            }
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        if config.secure {
            attributes.push_str("; Secure");
        }
        Ok(Self {
            name: format!("{name}=").into(),
            attributes: attributes.into(),
        })
    }

    /// The `Set-Cookie` value giving the client `key`.
    pub(super) fn header_value(&self, key: u64) -> Option<HeaderValue> {
        let text = key_text(key);
        let mut value = Vec::with_capacity(self.name.len() + text.len() + self.attributes.len());
        value.extend_from_slice(self.name.as_bytes());
        value.extend_from_slice(&text);
        value.extend_from_slice(self.attributes.as_bytes());
        // Checked when compiled: a token, 16 hex digits and visible ASCII.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
    }
}

/// A new client's key: random, so clients' keys are spread over the buckets like any
/// others, and two clients almost never share one. Never 0, so that an `Option` of it
/// takes no more room in a decision than the key (0 is drawn as 1).
#[inline]
pub(super) fn new_key() -> NonZeroU64 {
    NonZeroU64::new(rand::random()).unwrap_or(NonZeroU64::MIN)
}

/// A key as the cookie carries it, and as it is hashed: 16 lowercase hex digits.
#[inline]
pub(super) fn key_text(key: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        // Four bits per digit, the most significant first; the index is below 16.
        *digit = HEX[((key >> (60 - 4 * i)) & 0xf) as usize];
    }
    text
}

/// An HTTP token character (RFC 9110 `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_sixteen_hex_digits_most_significant_first() {
        assert_eq!(&key_text(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&key_text(0), b"0000000000000000");
        assert_eq!(&key_text(u64::MAX), b"ffffffffffffffff");
    }

    #[test]
    fn the_cookie_carries_the_key_and_the_attributes_in_order() {
        let config = SetCookieConfig {
            domain: Some("example.com".into()),
            secure: true,
            ..SetCookieConfig::default()
        };
        let cookie = AssignCookie::compile(&config, "gray-uid").expect("valid");
        let value = cookie.header_value(0xabc).expect("a header value");
        assert_eq!(
            value,
            "gray-uid=0000000000000abc; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax; \
             Domain=example.com; Secure"
        );
    }
}
