//! One multiplexed HTTP/2 connection to an `h2c://` endpoint, shared by every request sent
//! to it: made on the first request, made again when the endpoint closes it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version, header};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::pool::{PoolError, ReadBody};

/// The bodies one connection carries: streamed from the client, or read whole.
pub(crate) type H2Body = Either<Incoming, ReadBody>;

/// An endpoint's HTTP/2 connection.
#[derive(Debug)]
pub(crate) struct H2Conn {
    addr: String,
    /// The endpoint's authority, for `:authority` when a request has no `Host`.
    authority: Authority,
    sender: Mutex<Option<SendRequest<H2Body>>>,
    /// Held while connecting, so that requests arriving together share one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl H2Conn {
    pub(crate) fn new(addr: String, authority: Authority) -> Self {
        Self {
            addr,
            authority,
            sender: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The connection's sender if it is open.
    fn current(&self) -> Option<SendRequest<H2Body>> {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        sender.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    /// A sender on the connection, and whether the connection was made for this request.
    pub(crate) async fn sender(&self) -> Result<(SendRequest<H2Body>, bool), PoolError> {
        if let Some(sender) = self.current() {
            return Ok((sender, false));
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.current() {
            return Ok((sender, false)); // made by the request that connected first
        }
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(PoolError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // An endpoint gone without a word is found out by a ping unanswered.
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream connection (HTTP/2): {e}");
            }
        });
        *self.sender.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
        Ok((sender, true))
    }

    /// `req` as HTTP/2 sends it: its URI in absolute form, whose authority is the request's
    /// `Host` (the endpoint's, or the client's under `--preserve-host`), so the two agree
    /// as RFC 9113 §8.3.1 asks.
    pub(crate) fn address<B>(&self, req: &mut Request<B>) {
        *req.version_mut() = Version::HTTP_2;
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok());
        let path = req.uri().path_and_query().cloned();
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(host.unwrap_or_else(|| self.authority.clone()))
            .path_and_query(path.unwrap_or_else(|| PathAndQuery::from_static("/")))
            .build();
        // Parts of URIs already: it cannot fail; if it did, the request would go without
        // an authority and fail as one the endpoint cannot read.
        if let Ok(uri) = uri {
            *req.uri_mut() = uri;
        }
    }
}

/// A body of one of the two kinds, back from [`H2Body`].
pub(crate) trait FromH2: Sized {
    fn into_h2(self) -> H2Body;
    fn from_h2(body: H2Body) -> Option<Self>;
}

impl FromH2 for Incoming {
    fn into_h2(self) -> H2Body {
        Either::Left(self)
    }

    fn from_h2(body: H2Body) -> Option<Self> {
        match body {
            Either::Left(body) => Some(body),
            Either::Right(_) => None,
        }
    }
}

impl FromH2 for ReadBody {
    fn into_h2(self) -> H2Body {
        Either::Right(self)
    }

    fn from_h2(body: H2Body) -> Option<Self> {
        match body {
            Either::Right(body) => Some(body),
            Either::Left(_) => None,
        }
    }
}

/// Keeps [`Bytes`] the data type both kinds share.
const _: fn() = || {
    fn data<B: hyper::body::Body<Data = Bytes>>() {}
    data::<H2Body>();
};
