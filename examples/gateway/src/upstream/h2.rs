//! One multiplexed HTTP/2 connection to an endpoint (`h2c://`, or `https://` when ALPN
//! agreed to HTTP/2), shared by every request sent to it: made on the first request, made
//! again when the endpoint closes it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version, header};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::connect::{Connected, Connector};
use super::pool::{PoolError, ReadBody};

/// The bodies one connection carries: streamed from the client, or read whole.
pub(crate) type H2Body = Either<Incoming, ReadBody>;

/// An endpoint's HTTP/2 connection.
#[derive(Debug)]
pub(crate) struct H2Conn {
    connector: Arc<Connector>,
    /// The endpoint's authority, for `:authority` when a request has no `Host`.
    authority: Authority,
    /// `:scheme`: `https` under TLS.
    scheme: Scheme,
    sender: Mutex<Option<SendRequest<H2Body>>>,
    /// Held while connecting, so that requests arriving together share one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl H2Conn {
    pub(crate) fn new(connector: Arc<Connector>, authority: Authority, tls: bool) -> Self {
        Self {
            connector,
            authority,
            scheme: if tls { Scheme::HTTPS } else { Scheme::HTTP },
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
        let sender = match self.connector.connect().await? {
            Connected::Plain(stream) => self.handshake(TokioIo::new(stream)).await?,
            Connected::Tls(stream, true) => self.handshake(TokioIo::new(stream)).await?,
            Connected::Tls(_, false) => {
                let refused = std::io::Error::other("the endpoint no longer agrees to HTTP/2");
                return Err(PoolError::Connect(refused));
            }
        };
        Ok((sender, true))
    }

    /// Whether the connection is open.
    pub(crate) fn is_open(&self) -> bool {
        self.current().is_some()
    }

    /// Makes `io`, a connection on which ALPN agreed to HTTP/2, the endpoint's connection.
    pub(crate) async fn install<I>(&self, io: I) -> Result<(), PoolError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let _connecting = self.connecting.lock().await;
        self.handshake(io).await.map(drop)
    }

    /// The HTTP/2 handshake on `io`, its connection driven on a task of its own, its
    /// sender the endpoint's from now on.
    async fn handshake<I>(&self, io: I) -> Result<SendRequest<H2Body>, PoolError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // An endpoint gone without a word is found out by a ping unanswered.
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(io)
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream connection (HTTP/2): {e}");
            }
        });
        *self.sender.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
        Ok(sender)
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
            .scheme(self.scheme.clone())
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
