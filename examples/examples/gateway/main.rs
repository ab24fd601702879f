//! `gateway`: the nginx role in a gray release — header rules, a sticky user split and one
//! upstream per version — as a small reverse proxy on gray, hot-reloading its rules file.
//!
//! ```text
//! cargo run --release -p examples --example gateway -- \
//!     [--config FILE] [--listen ADDR] [--upstream VERSION=URL]... [--threads N] [--timeout SECS]
//!     [--admin ADDR] [--rollout ROUTE:CANARY:STAGES] [--rollout-every SECS]
//! ```
//!
//! Each request is sent on to its version's upstream with the label in the label header
//! and in W3C `baggage` (merged with the members there), as `GrayPropagation` writes it on
//! a client's calls; a spoofed label in either is overwritten at this edge. A WebSocket
//! (any request switching protocols with `Connection: upgrade`) is routed by its
//! handshake and tunnelled to that version's upstream on a connection of its own, for as
//! long as both sides keep it open; tunnels close when the gateway stops. The client's
//! address is appended to `X-Forwarded-For` (as nginx's `$proxy_add_x_forwarded_for`):
//! an upstream should trust only the last entry, the one this gateway wrote.
//!
//! - No flags: the demo. DESIGN.md's rules (`examples/rules.yaml`, embedded) and a built-in
//!   responder per version on an ephemeral port that says who answered; prints curl lines.
//! - `--config FILE`: rules from a file, watched and hot-reloaded; a bad edit is logged and
//!   the rules in force stay. Without `--upstream`, each version gets a built-in responder.
//! - `--upstream VERSION=URL`: where each version's traffic goes (repeatable). A version
//!   without one goes to the default version's upstream, which must be given; an upstream
//!   for a version the rules do not declare, or a version without one, is warned about at
//!   start.
//! - `--listen ADDR` (default `127.0.0.1:8080`), `--threads N` (worker threads; default:
//!   one per core), `--timeout SECS` (how long to wait for an upstream's response head,
//!   default 30; checked every 100 ms).
//! - `--rollout ROUTE:CANARY:5,30,100`: a staged rollout of `CANARY` in split route
//!   `ROUTE`, judged on the per-version metrics every `--rollout-every SECS` (default 60);
//!   a canary worse than the default version is rolled back to 0%. Its state is in
//!   `/gray/status`. The rollout holds the canary's weight until the gateway stops: an
//!   edit of `--config` meanwhile applies everything but that weight (see
//!   `gray_core::Rollout`), so write the outcome into the file for the next start.
//!
//! `GET /gray/status` answers JSON: versions, routes with their weights, upstreams,
//! requests served per version since start, incoming labels refused and requests waiting
//! for an upstream's response; `GET
//! /gray/metrics` the per-version metrics (requests by status class, latency histogram)
//! in the Prometheus text format. Neither is counted as traffic. They are answered on the
//! proxy's own port unless `--admin ADDR` gives them a listener of their own (then every
//! path on the proxy's port, `/gray/…` too, goes to the upstreams): the status shows the
//! rules, testers' headers included, so keep it off a public port. The admin listener
//! also takes `POST /gray/rollout/roll-back` — the `--rollout`'s canary to 0% at once
//! (Argo's `abort`), held there until the gateway stops — and `POST
//! /gray/rollout/promote` — its next stage at once, unjudged (Argo's `promote`); they
//! change state, so they are never answered on the proxy's port. An upstream that
//! refuses or times out gives `502` naming the version. Ctrl-C / SIGTERM: stop
//! accepting, finish in-flight requests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::response::{IntoResponse, Response as AxumResponse};
use bytes::Bytes;
use gray_core::{Config, Gray, GrayContext, Propagation, Rollout, RolloutStatus, Watcher};
use gray_tower::GrayLayer;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, oneshot};
use tower_layer::Layer as _;

#[path = "deadline.rs"]
pub(crate) mod deadline;
#[path = "hop.rs"]
mod hop;
#[path = "pool.rs"]
mod pool;

use deadline::Deadlines;
use pool::{Pool, PooledBody};

/// A proxy allocates per request (headers, buffers, futures); mimalloc keeps that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEMO_RULES: &str = include_str!("../../rules.yaml");

/// The command line.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) config: Option<PathBuf>,
    pub(crate) listen: SocketAddr,
    pub(crate) upstreams: Vec<(String, Uri)>,
    pub(crate) threads: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) rollout: Option<RolloutSpec>,
    pub(crate) rollout_every: Duration,
    /// Where `/gray/status` and `/gray/metrics` are served instead of the proxy's port.
    pub(crate) admin: Option<SocketAddr>,
}

/// `--rollout ROUTE:CANARY:STAGE,STAGE…`: a staged rollout of `CANARY` in split route
/// `ROUTE`, stages in percent.
#[derive(Debug, PartialEq)]
pub(crate) struct RolloutSpec {
    pub(crate) route: String,
    pub(crate) canary: String,
    pub(crate) stages: Vec<f64>,
}

fn rollout_spec(raw: &str) -> Result<RolloutSpec, String> {
    let bad = || {
        format!("--rollout {raw:?} is not ROUTE:CANARY:STAGE,STAGE… (e.g. users:canary:5,30,100)")
    };
    let mut parts = raw.splitn(3, ':');
    let (Some(route), Some(canary), Some(stages)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let stages = stages
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    if route.is_empty() || canary.is_empty() {
        return Err(bad());
    }
    Ok(RolloutSpec {
        route: route.to_owned(),
        canary: canary.to_owned(),
        stages,
    })
}

pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut options = Options {
        config: None,
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        upstreams: Vec::new(),
        threads: None,
        timeout: Duration::from_secs(30),
        rollout: None,
        rollout_every: Duration::from_secs(60),
        admin: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => options.config = Some(parser.value()?.into()),
            Long("listen") => options.listen = parser.value()?.parse()?,
            Long("admin") => options.admin = Some(parser.value()?.parse()?),
            Long("upstream") => {
                let raw = parser.value()?.string()?;
                let (version, url) = raw.split_once('=').ok_or_else(|| {
                    lexopt::Error::Custom(format!("--upstream {raw:?} is not VERSION=URL").into())
                })?;
                let uri = upstream_uri(url).map_err(|e| {
                    lexopt::Error::Custom(format!("--upstream {version}: {e}").into())
                })?;
                options.upstreams.push((version.to_owned(), uri));
            }
            Long("threads") => {
                let threads: usize = parser.value()?.parse()?;
                if threads == 0 {
                    return Err(lexopt::Error::Custom("--threads must be at least 1".into()));
                }
                options.threads = Some(threads);
            }
            Long("timeout") => options.timeout = Duration::from_secs(parser.value()?.parse()?),
            Long("rollout") => {
                let raw = parser.value()?.string()?;
                options.rollout = Some(rollout_spec(&raw).map_err(lexopt::Error::from)?);
            }
            Long("rollout-every") => {
                let secs: f64 = parser.value()?.parse()?;
                options.rollout_every = Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| lexopt::Error::from("--rollout-every must be above 0"))?;
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(options)
}

/// An upstream base: `http://host:port[/prefix]`.
fn upstream_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("{url:?} is not an http://host:port URL"));
    }
    if uri.query().is_some() {
        return Err(format!("{url:?}: an upstream has no query"));
    }
    Ok(uri)
}

/// A response body: the upstream's, streamed, or one the gateway writes itself.
pub(crate) type ProxyBody = Either<PooledBody, Full<Bytes>>;

/// One version's upstream: its base URL, `Host` value, and keep-alive connections.
#[derive(Debug)]
struct Upstream {
    version: String,
    base: Uri,
    host: Option<HeaderValue>,
    pool: Arc<Pool>,
}

/// What every connection of the gateway shares.
#[derive(Debug)]
pub(crate) struct Proxy {
    gray: Gray,
    upstreams: Vec<Upstream>,
    timeout: Duration,
    /// Requests waiting for an upstream's response head, with their `timeout`.
    deadlines: Arc<Deadlines>,
    /// Where the `--rollout` stands, for `/gray/status`.
    rollout: Mutex<Option<RolloutStatus>>,
    /// An operator's `POST /gray/rollout/…`, to the task driving the rollout, with where
    /// to answer; that task takes the receiver.
    orders: mpsc::UnboundedSender<Order>,
    orders_in: Mutex<Option<mpsc::UnboundedReceiver<Order>>>,
    /// How the label goes into the `baggage` of a request sent on (the label header is
    /// GrayLayer's): the `gray` member, merged with the members already there.
    baggage: Propagation,
}

impl Proxy {
    pub(crate) fn new(gray: Gray, upstreams: Vec<(String, Uri)>, timeout: Duration) -> Self {
        let (orders, orders_in) = mpsc::unbounded_channel();
        let upstreams = upstreams
            .into_iter()
            .map(|(version, base)| {
                let authority = base.authority().map_or("", |a| a.as_str());
                let addr = match base.port_u16() {
                    Some(_) => authority.to_owned(),
                    None => format!("{authority}:80"),
                };
                Upstream {
                    host: HeaderValue::from_str(authority).ok(),
                    pool: Pool::new(addr),
                    version,
                    base,
                }
            })
            .collect();
        Self {
            gray,
            upstreams,
            timeout,
            deadlines: Arc::default(),
            rollout: Mutex::new(None),
            orders,
            orders_in: Mutex::new(Some(orders_in)),
            baggage: Propagation::new().baggage_only(),
        }
    }

    /// Moves `rollout` on one step (see `gray_core::Rollout::step`), logs a change and
    /// keeps its status for `/gray/status`. Returns whether it is still going.
    pub(crate) fn step_rollout(&self, rollout: &mut Rollout) -> bool {
        let status = match rollout.step() {
            Ok(status) => status.clone(),
            Err(e) => {
                tracing::warn!("rollout: {e}");
                return true; // the rules may come right; try again next time
            }
        };
        let going = still_going(&status);
        self.set_rollout(status);
        going
    }

    /// `POST /gray/rollout/roll-back` and `/gray/rollout/promote`, answered on the admin
    /// listener only: the `--rollout`'s canary to 0% now (Argo's `abort`), held there
    /// until the gateway stops, or its next stage now (Argo's `promote`); answers the
    /// rollout's status.
    async fn order_rollout(&self, action: Action) -> Response<ProxyBody> {
        let none = || text(StatusCode::CONFLICT, "gray: no rollout\n".to_owned());
        if self
            .rollout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return none();
        }
        let (reply, answer) = oneshot::channel();
        if self.orders.send(Order { action, reply }).is_err() {
            return none();
        }
        match answer.await {
            Ok(Ok(())) => json(self.rollout_json().to_string()),
            Ok(Err(e)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("gray: the rollout could not {}: {e}\n", action.verb()),
            ),
            Err(_) => none(), // no task drives a rollout
        }
    }

    fn set_rollout(&self, status: RolloutStatus) {
        let mut current = self.rollout.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref() != Some(&status) {
            tracing::info!("rollout: {status:?}");
        }
        *current = Some(status);
    }

    /// The upstream of `version`, else the default version's.
    fn upstream(&self, version: &str) -> Option<&Upstream> {
        let find = |v: &str| self.upstreams.iter().find(|u| u.version == v);
        find(version).or_else(|| find(self.gray.config().versions.first()?))
    }

    /// The gateway's own endpoints (`GET /gray/status`, `GET /gray/metrics`): answered
    /// before any rule, and not counted as traffic.
    fn admin(&self, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
        if req.method() != Method::GET {
            return None;
        }
        match req.uri().path() {
            "/gray/status" => Some(self.status()),
            "/gray/metrics" => {
                let mut res = text(StatusCode::OK, self.gray.metrics().prometheus());
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Some(res)
            }
            _ => None,
        }
    }

    /// Forwards a request to its version's upstream, bodies streamed both ways; a switch
    /// of protocols (WebSocket) on a connection of its own, then tunnelled.
    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let Some(ctx) = req.extensions().get::<GrayContext>().cloned() else {
            return text(
                StatusCode::BAD_GATEWAY,
                "gray: no version decided\n".to_owned(),
            );
        };
        let version = ctx.version();
        let Some(upstream) = self.upstream(version) else {
            return bad_gateway(format!("gray: no upstream for version {version}\n"));
        };
        // hyper hands over the connection of a request with `Upgrade`; Front kept that
        // header only if `Connection` asked for the switch.
        let client_upgrade = req
            .extensions_mut()
            .remove::<OnUpgrade>()
            .filter(|_| req.headers().contains_key(header::UPGRADE));
        let (mut parts, body) = req.into_parts();
        let base_path = upstream.base.path().trim_end_matches('/');
        // The request goes out in origin-form (the connection is already to the upstream).
        // It usually came in that form: then it is sent on as it is, nothing parsed again.
        let origin_form = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
        if !(base_path.is_empty() && origin_form) {
            let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let Ok(uri) = Uri::try_from(format!("{base_path}{path}")) else {
                return bad_gateway(format!("gray: cannot build the {version} upstream URL\n"));
            };
            parts.uri = uri;
        }
        if let Some(host) = &upstream.host {
            parts.headers.insert(header::HOST, host.clone());
        }
        // GrayLayer set the label header; the label goes in W3C baggage too, as the clients'
        // propagation writes it, so it crosses services that pass baggage on and drop
        // other headers (OpenTelemetry's).
        self.baggage.apply(&ctx, &mut parts.headers);
        parts.version = http::Version::HTTP_11;
        let req = Request::from_parts(parts, body);
        let sent = match client_upgrade {
            None => {
                self.deadlines
                    .within(self.timeout, upstream.pool.send(req))
                    .await
            }
            Some(client) => {
                // Boxed: the common path's future stays as small as it was.
                let call = Box::pin(upstream.pool.send_upgrade(req));
                let mut sent = self.deadlines.within(self.timeout, call).await;
                if let Ok(Ok(res)) = &mut sent
                    && res.status() == StatusCode::SWITCHING_PROTOCOLS
                {
                    hop::tunnel(client, hyper::upgrade::on(res), version.to_owned());
                }
                sent
            }
        };
        match sent {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                // A switch of protocols keeps its `Upgrade` and `Connection: upgrade`.
                let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
                hop::strip(&mut parts.headers, switched);
                Response::from_parts(parts, Either::Left(body))
            }
            Ok(Err(e)) => {
                tracing::warn!(version, "upstream error: {e}");
                bad_gateway(format!("gray: upstream {version} unavailable\n"))
            }
            Err(_) => bad_gateway(format!("gray: upstream {version} timed out\n")),
        }
    }

    /// The `--rollout`'s status as JSON; `null` without one.
    fn rollout_json(&self) -> serde_json::Value {
        let status = self.rollout.lock().unwrap_or_else(PoisonError::into_inner);
        match &*status {
            None => serde_json::Value::Null,
            Some(RolloutStatus::Pending) => serde_json::json!({ "state": "pending" }),
            Some(RolloutStatus::Progressing { stage, weight }) => {
                serde_json::json!({ "state": "progressing", "stage": stage, "weight": weight })
            }
            Some(RolloutStatus::Paused {
                stage,
                weight,
                reason,
            }) => serde_json::json!({
                "state": "paused", "stage": stage, "weight": weight, "reason": reason
            }),
            Some(RolloutStatus::RolledBack { reason }) => {
                serde_json::json!({ "state": "rolled back", "reason": reason })
            }
            Some(RolloutStatus::Completed { weight }) => {
                serde_json::json!({ "state": "completed", "weight": weight })
            }
            Some(other) => serde_json::json!({ "state": format!("{other:?}") }),
        }
    }

    /// `GET /gray/status`.
    fn status(&self) -> Response<ProxyBody> {
        let config = self.gray.config();
        let metrics = self.gray.metrics();
        let served: BTreeMap<&str, u64> = metrics
            .versions()
            .iter()
            .map(|v| (v.version.as_str(), v.total()))
            .collect();
        let routes: Vec<serde_json::Value> = config
            .routes
            .iter()
            .map(|route| {
                let mut out = serde_json::json!({ "name": route.name });
                if let Some(to) = &route.to {
                    out["to"] = serde_json::json!(to);
                }
                if let Some(split) = &route.split {
                    out["weights"] = serde_json::json!(split.weights);
                }
                if route.matches.is_some() {
                    out["match"] = serde_json::json!(route.matches);
                }
                out
            })
            .collect();
        let upstreams: BTreeMap<&str, String> = self
            .upstreams
            .iter()
            .map(|u| (u.version.as_str(), u.base.to_string()))
            .collect();
        let status = serde_json::json!({
            "versions": config.versions,
            "routes": routes,
            "upstreams": upstreams,
            "served": served,
            "rejected_labels": self.gray.rejected_labels(),
            "waiting_for_upstreams": self.deadlines.waiting(),
            "unavailable": self.gray.unavailable_versions(),
            "rollout": self.rollout_json(),
        });
        json(status.to_string())
    }
}

/// The admin listener's answer to any other request.
fn not_found() -> Response<ProxyBody> {
    text(
        StatusCode::NOT_FOUND,
        "gray: GET /gray/status, GET /gray/metrics, POST /gray/rollout/roll-back, \
         POST /gray/rollout/promote\n"
            .to_owned(),
    )
}

/// A `200` with a JSON body.
fn json(body: String) -> Response<ProxyBody> {
    let mut res = text(StatusCode::OK, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    res
}

fn bad_gateway(body: String) -> Response<ProxyBody> {
    text(StatusCode::BAD_GATEWAY, body)
}

/// The gateway as a tower service (behind `GrayLayer`, which decides the version).
#[derive(Clone, Debug)]
pub(crate) struct ProxyService(pub(crate) Arc<Proxy>);

impl tower_service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.0);
        Box::pin(async move { Ok(proxy.forward(req).await) })
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
}

impl<S> tower_service::Service<Request<Incoming>> for Front<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<ProxyBody>>,
{
    type Response = Response<ProxyBody>;
    type Error = S::Error;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.gray.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        if self.admin
            && let Some(res) = self.proxy.admin(&req)
        {
            return FrontFuture::Admin { res: Some(res) };
        }
        // Hop-by-hop headers end here, on receipt: before the label header is set, so a
        // client naming it in `Connection` cannot strip it from the request sent on. A
        // switch of protocols (a WebSocket handshake) goes on: HTTP/1.1 has them.
        let upgrade = req.version() == http::Version::HTTP_11;
        hop::strip(req.headers_mut(), upgrade);
        if let Some(client) = &self.client {
            hop::forwarded_for(req.headers_mut(), client);
        }
        FrontFuture::Gray {
            future: self.gray.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Front`]'s response future.
    #[project = FrontProj]
    pub(crate) enum FrontFuture<F> {
        Admin { res: Option<Response<ProxyBody>> },
        Gray { #[pin] future: F },
    }
}

impl<F, E> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
{
    type Output = Result<Response<ProxyBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontProj::Admin { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("`FrontFuture` polled after completion"),
            },
            FrontProj::Gray { future } => future.poll(cx),
        }
    }
}

/// Starts `rollout` and drives it on a task of its own: a step every `every` until it
/// completes or rolls back, an operator's roll-back whenever one comes; then it keeps the
/// rollout — and its hold on the canary's weight — until the gateway stops.
pub(crate) fn start_rollout(
    proxy: &Arc<Proxy>,
    mut rollout: Rollout,
    every: Duration,
) -> Result<(), gray_core::RolloutError> {
    proxy.set_rollout(rollout.start()?.clone());
    let orders = proxy
        .orders_in
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    tokio::spawn(drive_rollout(rollout, every, Arc::clone(proxy), orders));
    Ok(())
}

/// [`start_rollout`]'s task.
async fn drive_rollout(
    mut rollout: Rollout,
    every: Duration,
    proxy: Arc<Proxy>,
    mut orders: Option<mpsc::UnboundedReceiver<Order>>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // the first tick is now: let a stage see traffic first
    let mut going = true;
    loop {
        tokio::select! {
            _ = ticks.tick(), if going => going = proxy.step_rollout(&mut rollout),
            Some(Order { action, reply }) = next(&mut orders) => {
                let result = match action {
                    Action::RollBack => rollout.roll_back("rolled back by an operator"),
                    Action::Promote => rollout.promote(),
                };
                let answer = match result.cloned() {
                    Ok(status) => {
                        going = still_going(&status);
                        proxy.set_rollout(status);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(answer);
            }
        }
    }
}

/// Whether a rollout in `status` still has steps to take (a paused one waits for them).
fn still_going(status: &RolloutStatus) -> bool {
    !matches!(
        status,
        RolloutStatus::Completed { .. } | RolloutStatus::RolledBack { .. }
    )
}

/// The next operator's order; never, without a channel.
async fn next(orders: &mut Option<mpsc::UnboundedReceiver<Order>>) -> Option<Order> {
    match orders {
        Some(orders) => orders.recv().await,
        None => std::future::pending().await,
    }
}

/// What an operator asks of a running rollout.
#[derive(Clone, Copy, Debug)]
enum Action {
    RollBack,
    Promote,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::RollBack => "roll back",
            Self::Promote => "promote",
        }
    }
}

/// An operator's order, and where the task driving the rollout answers it.
struct Order {
    action: Action,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Serves HTTP/1.1 on `listener` — and the gateway's own endpoints on `admin` when given,
/// instead of on `listener` — until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) {
    proxy.deadlines.start();
    let service = Front {
        gray: GrayLayer::new(proxy.gray.clone())
            .metrics(true)
            .layer(ProxyService(Arc::clone(&proxy))),
        proxy: Arc::clone(&proxy),
        admin: admin.is_none(),
        client: None,
    };
    // Every connection holds a receiver: a stop is one send, and once all are dropped
    // every connection has ended.
    let (stop, connections) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (accepted, to_admin) = tokio::select! {
            accepted = listener.accept() => (accepted, false),
            accepted = accept(admin.as_ref()) => (accepted, true),
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
        let http1 = hyper::server::conn::http1::Builder::new();
        if to_admin {
            let proxy = Arc::clone(&proxy);
            let admin = hyper::service::service_fn(move |req: Request<Incoming>| {
                let proxy = Arc::clone(&proxy);
                async move {
                    let res = match proxy.admin(&req) {
                        Some(res) => res,
                        // Changes state: on this listener only, never on the proxy's port.
                        None if req.method() == Method::POST => match req.uri().path() {
                            "/gray/rollout/roll-back" => {
                                proxy.order_rollout(Action::RollBack).await
                            }
                            "/gray/rollout/promote" => proxy.order_rollout(Action::Promote).await,
                            _ => not_found(),
                        },
                        None => not_found(),
                    };
                    Ok::<_, Infallible>(res)
                }
            });
            let conn = http1.serve_connection(io, admin);
            spawn_connection(conn, connections.clone(), |conn| conn.graceful_shutdown());
        } else {
            let mut front = service.clone();
            front.client = HeaderValue::try_from(client.ip().to_string()).ok();
            // With upgrades: a request that switches protocols gets the connection.
            let conn = http1
                .serve_connection(io, TowerToHyperService::new(front))
                .with_upgrades();
            spawn_connection(conn, connections.clone(), |conn| conn.graceful_shutdown());
        }
    }
    drop(listener);
    drop(admin);
    let _ = stop.send(());
    drop(connections);
    stop.closed().await;
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

/// Serves one connection on a task of its own until it ends. When `stop` changes (the
/// gateway stops), `graceful` asks it to finish the request in flight and close.
fn spawn_connection<C, E>(
    conn: C,
    mut stop: tokio::sync::watch::Receiver<()>,
    graceful: fn(Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send,
{
    tokio::spawn(async move {
        let mut conn = pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = stop.changed() => {
                graceful(conn.as_mut());
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!("connection: {e}");
        }
    });
}

/// A built-in upstream for `version`: answers `{"version":…,"path":…}` and echoes a body.
pub(crate) async fn responder(version: String) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(move |req: AxumRequest| {
        let version = version.clone();
        async move {
            if req.method() == Method::POST {
                return AxumResponse::new(req.into_body());
            }
            let path = req.uri().path().to_owned();
            axum::Json(serde_json::json!({ "version": version, "path": path })).into_response()
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("responder: {e}");
        }
    });
    Ok(addr)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Checks `--upstream`s against the rules' `versions` before serving: an error when the
/// default version (the first) has none, since it also serves every version without one;
/// otherwise the warnings worth printing — an upstream for a version the rules do not
/// declare (a typo, or a version still to come), a version that borrows the default's.
pub(crate) fn check_upstreams(
    versions: &[Arc<str>],
    upstreams: &[(String, Uri)],
) -> Result<Vec<String>, String> {
    let has = |v: &str| upstreams.iter().any(|(u, _)| u == v);
    let Some(default) = versions.first() else {
        return Ok(Vec::new());
    };
    if !has(default) {
        return Err(format!(
            "no --upstream for the default version `{default}`, which also serves every \
             version without an upstream of its own"
        ));
    }
    let mut warnings: Vec<String> = upstreams
        .iter()
        .filter(|(v, _)| !versions.iter().any(|d| **d == **v))
        .map(|(v, _)| {
            format!("--upstream {v}: the rules declare no version `{v}`; it gets no traffic until they do")
        })
        .collect();
    warnings.extend(
        versions
            .iter()
            .filter(|v| !has(v))
            .map(|v| format!("version `{v}` has no --upstream: its requests go to `{default}`'s")),
    );
    Ok(warnings)
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let demo = options.config.is_none() && options.upstreams.is_empty();
    let gray = match &options.config {
        Some(path) => Gray::from_path(path)?,
        None => Gray::new(Config::from_yaml(DEMO_RULES)?)?,
    };
    // A `--rollout` holds its canary's weight through reloads: say so, or an operator who
    // edits that weight wonders why it did not change.
    let held = options.rollout.as_ref().map_or(String::new(), |spec| {
        format!(
            " (the rollout keeps {}'s weight in route {:?})",
            spec.canary, spec.route
        )
    });
    let _watcher = match &options.config {
        Some(path) => Some(Watcher::new(gray.clone(), path, move |result| {
            if result.is_ok() {
                tracing::info!("rules reloaded{held}");
            } // errors are logged by the watcher; the rules in force stay
        })?),
        None => None,
    };
    let mut upstreams = options.upstreams;
    if upstreams.is_empty() {
        for version in gray.versions() {
            let addr = responder(version.to_string()).await?;
            upstreams.push((version.to_string(), format!("http://{addr}").parse()?));
        }
    }
    for warning in check_upstreams(&gray.versions(), &upstreams)? {
        tracing::warn!("{warning}");
    }
    let proxy = Arc::new(Proxy::new(gray, upstreams, options.timeout));
    if let Some(spec) = &options.rollout {
        let rollout = Rollout::new(
            proxy.gray.clone(),
            &spec.route,
            &spec.canary,
            spec.stages.iter().copied(),
        )?;
        start_rollout(&proxy, rollout, options.rollout_every)?;
    }
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    println!("gray gateway on http://{addr}");
    let admin = match options.admin {
        Some(at) => Some(tokio::net::TcpListener::bind(at).await?),
        None => None,
    };
    let admin_addr = match &admin {
        Some(admin) => admin.local_addr()?,
        None => addr,
    };
    if admin.is_some() {
        println!("  /gray/status and /gray/metrics on http://{admin_addr}");
    }
    for upstream in &proxy.upstreams {
        println!("  {:<8} -> {}", upstream.version, upstream.base);
    }
    if demo {
        println!("try:");
        println!("  curl -H 'x-app-version: beta' http://{addr}/hello   # a tester: canary");
        println!("  curl -H 'x-user-id: 7' http://{addr}/hello          # a user: stable");
        println!("  curl -H 'x-user-id: 3' http://{addr}/hello          # a user: canary");
        println!("  curl http://{admin_addr}/gray/status");
        println!("  curl http://{admin_addr}/gray/metrics");
    }
    serve(listener, admin, proxy, shutdown_signal()).await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let options = match parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("gateway: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match options.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let result = runtime
        .map_err(Box::<dyn std::error::Error>::from)
        .and_then(|rt| rt.block_on(run(options)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
