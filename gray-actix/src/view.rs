//! [`ActixRequest`]: gray-core's [`RequestView`] over actix-web's request (`http` 0.2).

use actix_web::HttpRequest;
use gray_core::RequestView;

/// An actix-web request as gray-core's [`RequestView`].
///
/// actix-web 4 is built on `http` 0.2 and gray-core on `http` 1, so headers are looked
/// up by their (lowercase) name string, as actix-web-opentelemetry's header carrier does.
///
/// ```
/// use gray_actix::ActixRequest;
/// use gray_core::RequestView;
///
/// let req = actix_web::test::TestRequest::get()
///     .uri("/cart?uid=7")
///     .insert_header(("x-user-id", "42"))
///     .to_http_request();
/// let view = ActixRequest(&req);
/// assert_eq!(view.path(), "/cart");
/// assert_eq!(view.query_param("uid"), Some(&b"7"[..]));
/// assert_eq!(view.header(&http::HeaderName::from_static("x-user-id")), Some(&b"42"[..]));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ActixRequest<'a>(pub &'a HttpRequest);

impl RequestView for ActixRequest<'_> {
    #[inline]
    fn header(&self, name: &gray_core::http::HeaderName) -> Option<&[u8]> {
        self.0.headers().get(name.as_str()).map(|v| v.as_bytes())
    }

    fn header_all<'a>(
        &'a self,
        name: &'a gray_core::http::HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .headers()
            .get_all(name.as_str())
            .map(|v| v.as_bytes())
    }

    #[inline]
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, mut f: F) -> bool {
        for (name, value) in self.0.headers() {
            f(name.as_str(), value.as_bytes());
        }
        true
    }

    #[inline]
    fn path(&self) -> &str {
        self.0.path()
    }

    #[inline]
    fn query(&self) -> Option<&str> {
        Some(self.0.query_string()).filter(|q| !q.is_empty())
    }

    #[inline]
    fn method(&self) -> &str {
        self.0.method().as_str()
    }

    #[inline]
    fn authority(&self) -> Option<&str> {
        self.0.uri().authority().map(|a| a.as_str())
    }

    /// The connection's peer ([`HttpRequest::peer_addr`]); behind proxies, `real_ip:` in
    /// the rules says whose forwarding header to believe (actix-web's own
    /// `realip_remote_addr` believes any client's).
    #[inline]
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.0.peer_addr().map(|addr| addr.ip())
    }
}
