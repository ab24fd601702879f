//! [`RequestView`]: what the engine reads of a request, for any HTTP library.

use std::net::IpAddr;

use http::HeaderName;

use super::client_ip::PeerAddr;

/// Read-only view of a request: what the rules can look at.
///
/// Implemented here for `http` 1.x [`http::Request`] and [`http::request::Parts`]; an adapter
/// for another HTTP library (actix-web 4 is on `http` 0.2) implements it with a string lookup
/// of [`HeaderName::as_str`]. Cookie and query parsing are provided on top.
///
/// ```
/// use gray_core::RequestView;
///
/// let req = http::Request::get("/cart?uid=7")
///     .header("cookie", "theme=dark; uid=42")
///     .body(())?;
/// assert_eq!(req.path(), "/cart");
/// assert_eq!(req.query_param("uid"), Some(&b"7"[..]));
/// assert_eq!(req.cookie("uid"), Some(&b"42"[..]));
/// # Ok::<(), http::Error>(())
/// ```
pub trait RequestView {
    /// The first value of header `name`, as bytes (header values need not be UTF-8).
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;

    /// Every value of header `name`, in order (used for `cookie`, which HTTP/2 may split).
    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]>;

    /// The path, without the query string.
    fn path(&self) -> &str;

    /// The raw query string (after `?`), if any.
    fn query(&self) -> Option<&str>;

    /// The method, e.g. `GET`.
    fn method(&self) -> &str;

    /// The authority of the request's URI (`host[:port]`), if it has one: where HTTP/2
    /// carries the host (its `:authority` pseudo-header), which then sends no `Host`
    /// header. The engine reads a rule's `host` header from here when the request has no
    /// `Host` header. The provided default has none.
    fn authority(&self) -> Option<&str> {
        None
    }

    /// The address of the connection the request came on (its peer), if the server tells
    /// it: what `match.client_ip` and `split.by: client_ip` read, unless `real_ip:` finds
    /// the client in a trusted proxy's header. Asked only when a rule needs it. The `http`
    /// types read a [`PeerAddr`](crate::PeerAddr) extension; the provided default has none.
    fn peer_ip(&self) -> Option<IpAddr> {
        None
    }

    /// Calls `f` with each header's (lowercase) name and value, in order, and returns
    /// `true`; a view that cannot list its headers returns `false` without calling `f`
    /// (the provided default), and the engine then looks headers up one by one.
    ///
    /// The engine reads every header the rules need in this one pass: a few length
    /// compares per header instead of hashing each name the rules mention.
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, f: F) -> bool {
        let _ = f;
        false
    }

    /// The raw (not percent-decoded) value of the first query parameter `name`; a parameter
    /// given without `=` has the empty value.
    fn query_param(&self, name: &str) -> Option<&[u8]> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v.as_bytes())
        })
    }

    /// The value of cookie `name` from the `cookie` header(s), with surrounding double
    /// quotes removed.
    fn cookie(&self, name: &str) -> Option<&[u8]> {
        self.header_all(&http::header::COOKIE)
            .find_map(|line| cookie_in(line, name))
    }
}

/// The value of cookie `name` in one `cookie` header value, with surrounding double
/// quotes removed: the first `;`-separated pair whose name (before its first `=`, spaces
/// around it trimmed) is `name`. A browser's header is often a kilobyte of other cookies,
/// so each pair is only compared with `name` from its start, never searched for its `=`.
#[inline]
pub(super) fn cookie_in<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    // Pair names hold no `=` or `;` and are trimmed: such a name matches no pair.
    let unmatchable = name.iter().any(|&b| b == b'=' || b == b';')
        || name.first().is_some_and(u8::is_ascii_whitespace)
        || name.last().is_some_and(u8::is_ascii_whitespace);
    if unmatchable {
        return None;
    }
    let mut rest = line;
    loop {
        let (pair, next) = match memchr::memchr(b';', rest) {
            Some(i) => (&rest[..i], rest.get(i + 1..)),
            None => (rest, None),
        };
        let value = pair
            .trim_ascii()
            .strip_prefix(name)
            .map(<[u8]>::trim_ascii_start)
            .and_then(|after| after.strip_prefix(b"="));
        if let Some(value) = value {
            return Some(unquote(value.trim_ascii_start()));
        }
        rest = next?;
    }
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

impl<B> RequestView for http::Request<B> {
    #[inline]
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers().get(name).map(http::HeaderValue::as_bytes)
    }

    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.headers()
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
    }

    #[inline]
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, mut f: F) -> bool {
        for (name, value) in self.headers() {
            f(name.as_str(), value.as_bytes());
        }
        true
    }

    #[inline]
    fn path(&self) -> &str {
        self.uri().path()
    }

    #[inline]
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }

    #[inline]
    fn method(&self) -> &str {
        self.method().as_str()
    }

    #[inline]
    fn authority(&self) -> Option<&str> {
        self.uri().authority().map(http::uri::Authority::as_str)
    }

    #[inline]
    fn peer_ip(&self) -> Option<IpAddr> {
        self.extensions().get::<PeerAddr>().map(|peer| peer.0.ip())
    }
}

impl RequestView for http::request::Parts {
    #[inline]
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers.get(name).map(http::HeaderValue::as_bytes)
    }

    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.headers
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
    }

    #[inline]
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, mut f: F) -> bool {
        for (name, value) in &self.headers {
            f(name.as_str(), value.as_bytes());
        }
        true
    }

    #[inline]
    fn path(&self) -> &str {
        self.uri.path()
    }

    #[inline]
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    #[inline]
    fn method(&self) -> &str {
        self.method.as_str()
    }

    #[inline]
    fn authority(&self) -> Option<&str> {
        self.uri.authority().map(http::uri::Authority::as_str)
    }

    #[inline]
    fn peer_ip(&self) -> Option<IpAddr> {
        self.extensions.get::<PeerAddr>().map(|peer| peer.0.ip())
    }
}

impl<T: RequestView + ?Sized> RequestView for &T {
    #[inline]
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        (**self).header(name)
    }

    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        (**self).header_all(name)
    }

    #[inline]
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, f: F) -> bool {
        (**self).for_each_header(f)
    }

    #[inline]
    fn path(&self) -> &str {
        (**self).path()
    }

    #[inline]
    fn query(&self) -> Option<&str> {
        (**self).query()
    }

    #[inline]
    fn method(&self) -> &str {
        (**self).method()
    }

    #[inline]
    fn authority(&self) -> Option<&str> {
        (**self).authority()
    }

    #[inline]
    fn peer_ip(&self) -> Option<IpAddr> {
        (**self).peer_ip()
    }

    fn query_param(&self, name: &str) -> Option<&[u8]> {
        (**self).query_param(name)
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        (**self).cookie(name)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::cookie_in;

    /// The plain reading `cookie_in` must agree with: split at `;`, trim each pair, its
    /// name before the first `=` trimmed, the value after it.
    fn reference<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
        line.split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = (
                pair[..eq].trim_ascii_end(),
                pair[eq + 1..].trim_ascii_start(),
            );
            (k == name.as_bytes()).then(|| super::unquote(v))
        })
    }

    #[test]
    fn a_cookie_among_others() {
        let line = b"theme=dark; uid = \"42\" ;x=uid=7; uid=8";
        assert_eq!(cookie_in(line, "uid"), Some(&b"42"[..]));
        assert_eq!(cookie_in(b"x=uid=7; uid=8", "uid"), Some(&b"8"[..]));
        assert_eq!(cookie_in(b"uid; uid=9", "uid"), Some(&b"9"[..]));
        assert_eq!(cookie_in(b"uidx=1", "uid"), None);
        assert_eq!(cookie_in(b"", "uid"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Any header value, any name: the same cookie as the plain reading.
        #[test]
        fn agrees_with_the_plain_reading(
            line in proptest::collection::vec(
                proptest::sample::select(b"ab=; \t\"\x0c".to_vec()), 0..24),
            name in proptest::sample::select(vec!["a", "b", "ab", "a b", "", " a", "a ", "a=", "a;", "\"a\""]),
        ) {
            prop_assert_eq!(cookie_in(&line, name), reference(&line, name));
        }
    }
}
