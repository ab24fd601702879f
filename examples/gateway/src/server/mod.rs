//! Serving: the proxy's listener and the admin one, HTTP/1.1 and HTTP/2 on each, each
//! connection on a task of its own, within [`Limits`], and a graceful stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use gray_core::PeerAddr;
use gray_tower::GrayLayer;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer as _;

mod activity;
mod limits;
mod tls;

use activity::{Activity, Busy, Tracked};

pub use limits::Limits;
pub use tls::{Tls, TlsError};

use crate::admin;
use crate::proxy::hop;
use crate::proxy::{Proxy, ProxyBody, ProxyService};

/// Serves HTTP/1.1 and HTTP/2 (h2c, with prior knowledge) on `listener` — and the
/// gateway's own endpoints on `admin` when given, instead of on `listener` — within the
/// proxy's [`Limits`], until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) {
    proxy.deadlines.start();
    if let Some(check) = &proxy.health_check {
        for upstream in proxy.upstreams.iter() {
            check.start(upstream, &proxy.gray);
        }
    }
    let limits = proxy.limits;
    let http = http_builder(&limits);
    let service = Front {
        gray: GrayLayer::new(proxy.gray.clone())
            .metrics(true)
            .layer(ProxyService(Arc::clone(&proxy))),
        proxy: Arc::clone(&proxy),
        admin: admin.is_none(),
        client: None,
        peer: None,
        tls: false,
        activity: None,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = proxy.tls.as_ref().map(|tls| tls.acceptor());
    let tls_watch = proxy.tls.as_ref().map(|tls| tls.watch(Tls::RELOAD_EVERY));
    // Every connection holds a receiver: a stop is one send, and once all are dropped
    // every connection has ended.
    let (stop, connections) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (accepted, slot) = tokio::select! {
            (accepted, slot) = accept_within(&listener, &slots) => (accepted, Some(slot)),
            accepted = accept(admin.as_ref()) => (accepted, None),
            () = &mut shutdown => break,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: back off a little, keep serving.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let started = Arc::new(Activity::default());
        let Some(slot) = slot else {
            let proxy = Arc::clone(&proxy);
            let seen = Arc::clone(&started);
            let answer = hyper::service::service_fn(move |req: Request<Incoming>| {
                let busy = seen.begin();
                let proxy = Arc::clone(&proxy);
                async move {
                    let res = admin::answer(&proxy, req).await;
                    drop(busy);
                    Ok::<_, Infallible>(res)
                }
            });
            let conn = http.serve_connection(io, answer).into_owned();
            let first = (
                started,
                Instant::now() + limits.header_timeout,
                limits.idle_timeout,
            );
            spawn_connection(conn, connections.clone(), first, None, |c| {
                c.graceful_shutdown()
            });
            continue;
        };
        let mut front = service.clone();
        front.client = HeaderValue::try_from(client.ip().to_string()).ok();
        front.peer = Some(PeerAddr(client));
        front.activity = Some(Arc::clone(&started));
        let first = (
            started,
            Instant::now() + limits.header_timeout,
            limits.idle_timeout,
        );
        let Some(acceptor) = &acceptor else {
            // With upgrades: a request that switches protocols gets the connection.
            let conn = http
                .serve_connection_with_upgrades(io, TowerToHyperService::new(front))
                .into_owned();
            spawn_connection(conn, connections.clone(), first, Some(slot), |c| {
                c.graceful_shutdown();
            });
            continue;
        };
        // The handshake counts against the header timeout, on the connection's own task.
        front.tls = true;
        let (acceptor, http, stop) = (acceptor.clone(), http.clone(), connections.clone());
        tokio::spawn(async move {
            let handshake = acceptor.accept(io.into_inner());
            let stream = match tokio::time::timeout_at(first.1, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!("TLS handshake with {client}: {e}"),
                Err(_) => return tracing::debug!("TLS handshake with {client}: timed out"),
            };
            let conn = http.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(front),
            );
            connection(conn, stop, first, Some(slot), |c| c.graceful_shutdown()).await;
        });
    }
    if let Some(watch) = tls_watch {
        watch.abort();
    }
    drop(listener);
    drop(admin);
    let _ = stop.send(());
    drop(connections);
    stop.closed().await;
}

/// How connections are served: HTTP/1.1, or HTTP/2 when a client opens with its preface,
/// within `limits`.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(Limits::MIN_HEADER_BYTES))
        .max_headers(limits.max_headers);
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A client gone without a word (its machine off, a NAT that forgot it) is found
        // out by a ping unanswered.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    http
}

/// The next connection on `listener` once fewer than the limit are open, with its place.
async fn accept_within(
    listener: &tokio::net::TcpListener,
    slots: &Arc<Semaphore>,
) -> (
    std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
    OwnedSemaphorePermit,
) {
    let Ok(slot) = Arc::clone(slots).acquire_owned().await else {
        // Never closed: the semaphore lives as long as the loop.
        return std::future::pending().await;
    };
    (listener.accept().await, slot)
}

/// The next connection on `listener`; never, without one.
async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one connection on a task of its own (see [`connection`]).
fn spawn_connection<C, E>(
    conn: C,
    stop: tokio::sync::watch::Receiver<()>,
    first: (Arc<Activity>, Instant, Duration),
    slot: Option<OwnedSemaphorePermit>,
    graceful: fn(Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(connection(conn, stop, first, slot, graceful));
}

/// Serves one connection until it ends, holding `slot`. A connection that has begun no
/// request by `first`'s deadline (it sent nothing, or a preface a byte at a time) is
/// closed; past its first request, hyper times each next request's headers. One with no
/// request in flight for its idle timeout (looked at every quarter of it) is asked to
/// close, as it is when `stop` changes (the gateway stops): it finishes what is in
/// flight and closes.
async fn connection<C, E>(
    conn: C,
    mut stop: tokio::sync::watch::Receiver<()>,
    (activity, deadline, idle): (Arc<Activity>, Instant, Duration),
    slot: Option<OwnedSemaphorePermit>,
    graceful: fn(Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let _slot = slot;
    let mut conn = pin!(conn);
    let every = (idle / 4).max(Duration::from_millis(1));
    let look = tokio::time::sleep_until(deadline.min(Instant::now() + every));
    let mut look = pin!(look);
    // Until the first request: `None`. Then the requests ended at the last look, and
    // the looks in a row that found none in flight and none ended.
    let mut quiet: Option<(u64, u32)> = None;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            () = &mut look => {
                let (in_flight, ended) = activity.now();
                let now = Instant::now();
                match &mut quiet {
                    None if !activity.started() && now >= deadline => {
                        tracing::debug!("connection: no request within the header timeout");
                        return;
                    }
                    None if !activity.started() => {
                        look.as_mut().reset(deadline.min(now + every));
                        continue;
                    }
                    None => quiet = Some((ended, 0)),
                    Some((seen, looks)) if in_flight == 0 && *seen == ended => {
                        *looks += 1;
                        if *looks >= 4 {
                            tracing::debug!("connection: idle for the idle timeout");
                            graceful(conn.as_mut());
                            break conn.await;
                        }
                    }
                    Some(state) => *state = (ended, 0),
                }
                look.as_mut().reset(now + every);
            }
            _ = stop.changed() => {
                graceful(conn.as_mut());
                break conn.await;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection: {e}");
    }
}

/// The gateway's front: its own endpoints (unless they have a listener of their own),
/// else the request through `GrayLayer` to the proxy.
#[derive(Clone, Debug)]
pub(crate) struct Front<S> {
    proxy: Arc<Proxy>,
    gray: S,
    /// Whether `/gray/status` and `/gray/metrics` are answered here.
    admin: bool,
    /// The connection's client address, for `X-Forwarded-For` (made once per connection).
    client: Option<HeaderValue>,
    /// The same, for rules on the client's address (`match.client_ip`).
    peer: Option<PeerAddr>,
    /// Whether the client's connection is TLS (`X-Forwarded-Proto: https`).
    tls: bool,
    /// The connection's requests, for its timeouts (see [`connection`]).
    activity: Option<Arc<Activity>>,
}

impl<S> tower_service::Service<Request<Incoming>> for Front<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<ProxyBody>>,
{
    type Response = Response<Tracked>;
    type Error = S::Error;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.gray.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let busy = self.activity.as_ref().map(Activity::begin);
        if self.admin
            && let Some(res) = self.proxy.admin(&req)
        {
            return FrontFuture::Admin {
                res: Some(res.map(|body| Tracked::new(body, busy))),
            };
        }
        // Hop-by-hop headers end here, on receipt: before the label header is set, so a
        // client naming it in `Connection` cannot strip it from the request sent on. A
        // switch of protocols (a WebSocket handshake) goes on: HTTP/1.1 has them.
        let upgrade = req.version() == http::Version::HTTP_11;
        hop::strip(req.headers_mut(), upgrade);
        if let Some(client) = &self.client {
            hop::forwarded_for(req.headers_mut(), client);
        }
        hop::forwarded_proto_host(&mut req, self.tls);
        // Only for rules that read it: an extension costs ≈ 250 instructions a request.
        if let Some(peer) = self.peer
            && (self.proxy.gray.reads_client_ip() || self.proxy.access_log.is_some())
        {
            req.extensions_mut().insert(peer);
        }
        FrontFuture::Gray {
            future: self.gray.call(req),
            busy,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Front`]'s response future.
    #[project = FrontProj]
    pub(crate) enum FrontFuture<F> {
        Admin { res: Option<Response<Tracked>> },
        Gray { #[pin] future: F, busy: Option<Busy> },
    }
}

impl<F, E> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
{
    type Output = Result<Response<Tracked>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontProj::Admin { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("`FrontFuture` polled after completion"),
            },
            FrontProj::Gray { future, busy } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => {
                    Poll::Ready(Ok(res.map(|body| Tracked::new(body, busy.take()))))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
