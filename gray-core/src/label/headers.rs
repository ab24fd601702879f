//! [`Headers`]: a request's or response's headers as an HTTP library has them, for gray to
//! write its label on.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A request's or response's headers, as the HTTP library a server adapter is for keeps
/// them: what gray writes (the label header, a rewritten `baggage`, `Set-Cookie`) goes
/// through these four calls. Implemented for `http` 1.x's [`HeaderMap`]; an adapter for a
/// library on other types (actix-web 4 is on `http` 0.2) implements it on its own map,
/// converting the names and values.
///
/// ```
/// use gray_core::label::{Headers, relabel_baggage};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "gray=canary,userId=alice".parse()?);
/// relabel_baggage(&mut headers, "stable"); // any `Headers`
/// let baggage = http::HeaderName::from_static("baggage");
/// let values: Vec<&[u8]> = Headers::get_all(&headers, &baggage).collect();
/// assert_eq!(values, [&b"userId=alice,gray=stable"[..]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Headers {
    /// Every value of header `name`, in order, as bytes.
    fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]>;

    /// Sets header `name` to `value`, replacing every value it had.
    fn insert(&mut self, name: HeaderName, value: HeaderValue);

    /// Adds `value` to header `name`, keeping the values it had.
    fn append(&mut self, name: HeaderName, value: HeaderValue);

    /// Removes every value of header `name`.
    fn remove(&mut self, name: &HeaderName);
}

impl Headers for HeaderMap {
    #[inline]
    fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        HeaderMap::get_all(self, name)
            .iter()
            .map(HeaderValue::as_bytes)
    }

    #[inline]
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::insert(self, name, value);
    }

    #[inline]
    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::append(self, name, value);
    }

    #[inline]
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}
