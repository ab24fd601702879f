//! Keep-alive connections to one upstream: a stack of idle HTTP/1.1 connections.
//!
//! Leaner than a general-purpose pooled client for the one thing a gateway does: send
//! to a fixed address. A connection goes back on the stack when its response body has
//! been read to the end; one that the upstream closed meanwhile is dropped, and a
//! request that never left on it is retried on a fresh connection.
//!
//! A connection is typed by the request bodies it carries: a pool of `Incoming` ones for
//! bodies streamed from the client (every request but mirrored ones), and one of
//! `Full<Bytes>` for bodies read whole to be sent twice (a mirrored request and its copy),
//! so the common path sends its bodies as they come, with no wrapper to look through.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::connect::{Connected, Connector};
use super::h2::{FromH2, H2Conn};

/// A request body read whole, to be sent twice (a request mirrored to another version,
/// and its copy).
pub(crate) type ReadBody = Full<Bytes>;

/// A request body a pool's connections carry, and how their connection goes home.
pub(crate) trait PoolBody:
    Body<Data = Bytes> + FromH2 + Send + Unpin + Sized + 'static
where
    Self::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// `sender`, back to `pool` once the response has been read.
    fn home(sender: SendRequest<Self>, pool: Weak<Pool<Self>>) -> Home;

    /// The same body again, when it can be sent twice (read whole).
    fn again(&self) -> Option<Self>;
}

impl PoolBody for Incoming {
    fn home(sender: SendRequest<Self>, pool: Weak<Pool<Self>>) -> Home {
        Home::Streamed(sender, pool)
    }

    fn again(&self) -> Option<Self> {
        None
    }
}

impl PoolBody for ReadBody {
    fn home(sender: SendRequest<Self>, pool: Weak<Pool<Self>>) -> Home {
        Home::Read(sender, pool)
    }

    fn again(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// A copy of `req` to send again, when it is safe to: a method that asks for nothing
/// but what running it once does (RFC 9110 §9.2.2: `GET`, `HEAD`, `OPTIONS`, `TRACE`,
/// `PUT`, `DELETE`) and a body read whole.
fn replay<B: PoolBody>(req: &Request<B>) -> Option<Request<B>>
where
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http::Method;
    let m = req.method();
    let idempotent = *m == Method::GET
        || *m == Method::HEAD
        || *m == Method::OPTIONS
        || *m == Method::TRACE
        || *m == Method::PUT
        || *m == Method::DELETE;
    if !idempotent {
        return None;
    }
    let mut copy = Request::new(req.body().again()?);
    *copy.method_mut() = m.clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// A connection in use, and the pool it goes back to.
#[derive(Debug)]
pub(crate) enum Home {
    Streamed(SendRequest<Incoming>, Weak<Pool<Incoming>>),
    Read(SendRequest<ReadBody>, Weak<Pool<ReadBody>>),
}

impl Home {
    fn go(self) {
        fn back<B: PoolBody>(sender: SendRequest<B>, pool: &Weak<Pool<B>>)
        where
            B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        {
            if let Some(pool) = pool.upgrade()
                && !sender.is_closed()
            {
                pool.push(sender);
            }
        }
        match self {
            Self::Streamed(sender, pool) => back(sender, &pool),
            Self::Read(sender, pool) => back(sender, &pool),
        }
    }
}

/// What can go wrong on the way to an upstream.
#[derive(Debug)]
pub(crate) enum PoolError {
    Connect(std::io::Error),
    /// The TLS handshake failed (the endpoint's certificate not trusted, say).
    Tls(std::io::Error),
    Http(hyper::Error),
    /// The request's URI under the endpoint's path is not a URI.
    Address(http::uri::InvalidUri),
    /// The version has no endpoint.
    NoEndpoint,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Http(e) => write!(f, "http: {e}"),
            Self::Address(e) => write!(f, "the request's URI under the endpoint's path: {e}"),
            Self::NoEndpoint => f.write_str("no endpoint"),
        }
    }
}

/// A request that got no answer: why, and the request itself when none of it was sent
/// (so it can go to another endpoint without any risk of running twice).
#[derive(Debug)]
pub(crate) struct Failed<B> {
    pub(crate) error: PoolError,
    pub(crate) unsent: Option<Request<B>>,
}

impl<B> Failed<B> {
    fn unsent(error: PoolError, req: Request<B>) -> Self {
        Self {
            error,
            unsent: Some(req),
        }
    }
}

/// The idle connections to one upstream address (`host:port`), for requests with bodies
/// of type `B`.
#[derive(Debug)]
pub(crate) struct Pool<B = Incoming> {
    connector: Arc<Connector>,
    idle: Mutex<Vec<SendRequest<B>>>,
    /// The endpoint's one HTTP/2 connection (the endpoint's pools share it): for an
    /// `h2c://` endpoint, which every request takes; for an `https://` one, which every
    /// request takes once ALPN agreed to HTTP/2.
    h2: Option<Arc<H2Conn>>,
    /// Whether every request goes on `h2` (`h2c://`).
    h2_only: bool,
}

/// Most idle connections kept per upstream.
const MAX_IDLE: usize = 1024;

impl<B: PoolBody> Pool<B>
where
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(crate) fn new(
        connector: Arc<Connector>,
        h2: Option<Arc<H2Conn>>,
        h2_only: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            connector,
            idle: Mutex::new(Vec::new()),
            h2,
            h2_only,
        })
    }

    fn pop(&self) -> Option<SendRequest<B>> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn push(&self, sender: SendRequest<B>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// A new HTTP/1.1 connection to the endpoint, driven on a task of its own; `None`
    /// when ALPN agreed to HTTP/2 instead, and the connection became the endpoint's
    /// HTTP/2 one.
    async fn connect(&self) -> Result<Option<SendRequest<B>>, PoolError> {
        async fn h1<B: PoolBody, I>(io: I) -> Result<SendRequest<B>, PoolError>
        where
            B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
            I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        {
            let (sender, conn) = http1::handshake(io).await.map_err(PoolError::Http)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("upstream connection: {e}");
                }
            });
            Ok(sender)
        }
        match self.connector.connect().await? {
            Connected::Plain(stream) => h1(TokioIo::new(stream)).await.map(Some),
            Connected::Tls(stream, false) => h1(TokioIo::new(stream)).await.map(Some),
            Connected::Tls(stream, true) => match &self.h2 {
                Some(h2) => h2.install(TokioIo::new(stream)).await.map(|()| None),
                None => Err(PoolError::Connect(std::io::Error::other(
                    "ALPN agreed to HTTP/2 where the gateway did not offer it",
                ))),
            },
        }
    }

    /// Sends `req` on an idle connection (or a new one) and returns the response, whose
    /// body hands the connection back when it has been read to the end. A pooled
    /// connection found closed costs nothing: the request goes on a fresh one; and so does
    /// an idempotent request with a body read whole whose reused connection closed with
    /// no answer at all (the upstream closed it as idle while the request was on its
    /// way — what Go's `net/http` retries too). A failure
    /// before any of the request left gives it back ([`Failed::unsent`]), to be sent
    /// elsewhere.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<B>,
    ) -> Result<Response<PooledBody>, Failed<B>> {
        if let Some(h2) = &self.h2
            && (self.h2_only || h2.is_open())
        {
            return send_h2(h2, req).await;
        }
        loop {
            let (mut sender, fresh) = match self.pop() {
                Some(sender) => (sender, false),
                None => match self.connect().await {
                    Ok(Some(sender)) => (sender, true),
                    // ALPN agreed to HTTP/2: the connection is the endpoint's HTTP/2 one.
                    Ok(None) => {
                        let Some(h2) = &self.h2 else {
                            let lost = PoolError::Connect(std::io::Error::other("HTTP/2 lost"));
                            return Err(Failed::unsent(lost, req));
                        };
                        return send_h2(h2, req).await;
                    }
                    Err(error) => return Err(Failed::unsent(error, req)),
                },
            };
            if sender.ready().await.is_err() {
                if fresh {
                    let closed = PoolError::Connect(std::io::Error::other("closed at once"));
                    return Err(Failed::unsent(closed, req));
                }
                continue; // closed by the upstream while idle
            }
            // A keep-alive connection the upstream closes as idle can take a request with
            // it, unread: a request safe to send twice is kept to be sent again.
            let again = if fresh { None } else { replay(&req) };
            match sender.try_send_request(req).await {
                Ok(res) => {
                    let home = B::home(sender, Arc::downgrade(self));
                    return Ok(res.map(|body| PooledBody {
                        body,
                        home: Some(home),
                        load: None,
                        on_end: None,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the connection died first. Try another.
                    Some(unsent) if !fresh => req = unsent,
                    unsent => {
                        let error = e.into_error();
                        if let (None, Some(again)) = (&unsent, again)
                            && error.is_incomplete_message()
                        {
                            req = again; // closed before a byte of an answer came
                            continue;
                        }
                        return Err(Failed {
                            error: PoolError::Http(error),
                            unsent,
                        });
                    }
                },
            }
        }
    }
}

/// Sends `req` on the endpoint's HTTP/2 connection (made when there is none, made again
/// once when the one there closed before taking it).
async fn send_h2<B: PoolBody>(
    h2: &H2Conn,
    mut req: Request<B>,
) -> Result<Response<PooledBody>, Failed<B>>
where
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    h2.address(&mut req);
    let mut req = req.map(B::into_h2);
    // Whether a connection found closed may still be made again.
    let mut again = true;
    // The request as it was given, to go to another endpoint.
    let back = |req: Request<super::h2::H2Body>| {
        let (parts, body) = req.into_parts();
        B::from_h2(body).map(|body| Request::from_parts(parts, body))
    };
    loop {
        let (mut sender, fresh) = match h2.sender().await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(Failed {
                    error,
                    unsent: back(req),
                });
            }
        };
        if sender.ready().await.is_err() {
            if fresh || !std::mem::replace(&mut again, false) {
                let closed = PoolError::Connect(std::io::Error::other("closed at once"));
                return Err(Failed {
                    error: closed,
                    unsent: back(req),
                });
            }
            continue; // closed while idle: the next call makes another
        }
        match sender.try_send_request(req).await {
            Ok(res) => {
                return Ok(res.map(|body| PooledBody {
                    body,
                    home: None,
                    load: None,
                    on_end: None,
                }));
            }
            Err(mut e) => match e.take_message() {
                // Never sent: the connection died first (a `GOAWAY`). Once more.
                Some(unsent) if !fresh && std::mem::replace(&mut again, false) => req = unsent,
                unsent => {
                    return Err(Failed {
                        error: PoolError::Http(e.into_error()),
                        unsent: unsent.and_then(back),
                    });
                }
            },
        }
    }
}

impl Pool<Incoming> {
    /// Sends `req`, a request to switch protocols (`Upgrade`), on a connection of its
    /// own, never pooled: if the upstream switches, the connection becomes the tunnel
    /// (`hyper::upgrade::on` the response).
    pub(crate) async fn send_upgrade(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, Failed<Incoming>> {
        async fn on<I>(
            io: I,
            req: Request<Incoming>,
        ) -> Result<Response<Incoming>, Failed<Incoming>>
        where
            I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        {
            let (mut sender, conn) = match http1::handshake(io).await {
                Ok(handshake) => handshake,
                Err(error) => return Err(Failed::unsent(PoolError::Http(error), req)),
            };
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!("upstream connection: {e}");
                }
            });
            sender.send_request(req).await.map_err(|e| Failed {
                error: PoolError::Http(e),
                unsent: None,
            })
        }
        let res = match self.connector.connect().await {
            Ok(Connected::Plain(stream)) => on(TokioIo::new(stream), req).await?,
            Ok(Connected::Tls(stream, false)) => on(TokioIo::new(stream), req).await?,
            Ok(Connected::Tls(_, true)) => {
                let h2 = std::io::Error::other("a switch of protocols to an HTTP/2 endpoint");
                return Err(Failed::unsent(PoolError::Connect(h2), req));
            }
            Err(error) => return Err(Failed::unsent(error, req)),
        };
        Ok(res.map(|body| PooledBody {
            body,
            home: None,
            load: None,
            on_end: None,
        }))
    }
}

/// One request in flight on an endpoint, counted until dropped.
#[derive(Debug)]
pub(crate) struct Load(Arc<AtomicUsize>);

impl Load {
    pub(crate) fn new(in_flight: &Arc<AtomicUsize>) -> Self {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(in_flight))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What to do once a response body has ended, given its trailers if it had any; or,
/// with `None` too, once it is dropped unfinished (the client went away).
pub(crate) type OnEnd = Box<dyn FnOnce(Option<&http::HeaderMap>) + Send>;

/// An upstream response body that returns its connection to the pool once read.
pub(crate) struct PooledBody {
    body: Incoming,
    home: Option<Home>,
    /// The request's place in its endpoint's count of requests in flight.
    load: Option<Load>,
    on_end: Option<OnEnd>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("body", &self.body)
            .field("home", &self.home)
            .field("load", &self.load)
            .finish_non_exhaustive()
    }
}

impl PooledBody {
    pub(crate) fn with_load(mut self, load: Load) -> Self {
        self.load = Some(load);
        self
    }

    /// Calls `on_end` when the body ends (see [`OnEnd`]).
    pub(crate) fn on_end(&mut self, on_end: OnEnd) {
        self.on_end = Some(on_end);
    }

    fn go_home(&mut self) {
        if let Some(home) = self.home.take() {
            home.go();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.go_home();
                self.load = None;
                if let Some(on_end) = self.on_end.take() {
                    on_end(None);
                }
            }
            Poll::Ready(Some(Ok(frame))) if self.on_end.is_some() => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(on_end) = self.on_end.take()
                {
                    on_end(Some(trailers));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to the end (or empty): the connection is clean. Otherwise it is dropped
        // with its unread body, and hyper closes it.
        if self.body.is_end_stream() {
            self.go_home();
        }
        if let Some(on_end) = self.on_end.take() {
            on_end(None);
        }
    }
}
