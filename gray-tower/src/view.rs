//! [`TowerRequest`]: an `http` request as gray-core's `RequestView`, with the peer's
//! address found where tower and axum servers keep it.

use std::net::IpAddr;

use gray_core::RequestView;
use gray_core::http::HeaderName;
use http::Request;

/// An `http` request as the engine reads it: gray-core's own reading of `http` requests,
/// but for the connection's peer (`match.client_ip`, `split.by: client_ip`), which is
/// read from a [`PeerAddr`](gray_core::PeerAddr) extension or, with feature `axum`, from
/// axum's `ConnectInfo<SocketAddr>` — only when a rule asks for it.
pub(crate) struct TowerRequest<'a, B>(pub(crate) &'a Request<B>);

impl<B> RequestView for TowerRequest<'_, B> {
    #[inline]
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.0.header(name)
    }

    #[inline]
    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.0.header_all(name)
    }

    #[inline]
    fn for_each_header<'a, F: FnMut(&'a str, &'a [u8])>(&'a self, f: F) -> bool {
        self.0.for_each_header(f)
    }

    #[inline]
    fn path(&self) -> &str {
        RequestView::path(self.0)
    }

    #[inline]
    fn query(&self) -> Option<&str> {
        RequestView::query(self.0)
    }

    #[inline]
    fn method(&self) -> &str {
        RequestView::method(self.0)
    }

    #[inline]
    fn authority(&self) -> Option<&str> {
        RequestView::authority(self.0)
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        #[cfg(feature = "axum")]
        if let Some(info) = self
            .0
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            return Some(info.0.ip());
        }
        self.0.peer_ip()
    }
}
