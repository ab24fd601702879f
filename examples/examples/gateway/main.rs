//! `gateway`: the nginx role in a gray release — header rules, a sticky user split and one
//! upstream per version — as a small reverse proxy on gray, hot-reloading its rules file.
//!
//! ```text
//! cargo run --release -p examples --example gateway -- \
//!     [--config FILE] [--listen ADDR] [--upstream VERSION=URL]... [--threads N] [--timeout SECS]
//!     [--admin ADDR] [--rollout ROUTE:CANARY:STAGES] [--rollout-every SECS]
//!     [--rollout-min-stage SECS] [--rollout-failure-limit N] [--rollout-min-requests N]
//!     [--rollout-max-latency MS]
//!     [--eject-after N] [--eject-for SECS]
//! ```
//!
//! Each request is sent on to its version's upstream with the label in the label header
//! and in W3C `baggage` (merged with the members there), as `GrayPropagation` writes it on
//! a client's calls; a spoofed label in either is overwritten at this edge. A WebSocket
//! (any request switching protocols with `Connection: upgrade`) is routed by its
//! handshake and tunnelled to that version's upstream on a connection of its own, for as
//! long as both sides keep it open; tunnels close when the gateway stops. The client's
//! address is appended to `X-Forwarded-For` (as nginx's `$proxy_add_x_forwarded_for`):
//! an upstream should trust only the last entry, the one this gateway wrote. Rules on the
//! client's address (`match.client_ip`, `split.by: client_ip`) see the connection's peer;
//! behind a load balancer, the rules' `real_ip: { trusted: [<its network>] }` has them see
//! the client the balancer names in its `X-Forwarded-For`.
//!
//! A route with `mirror:` also has a copy of each request it draws sent to the mirror
//! version's upstream, marked `x-gray-shadow: true`, its answer dropped (see `mirror`):
//! bodies of known length up to 64 KiB are copied; longer or chunked ones are not, nor
//! requests that come while 256 copies await their answers.
//!
//! - No flags: the demo. the example rules (`examples/rules.yaml`, embedded) and a built-in
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
//!   a canary worse than the default version is rolled back to 0%. With
//!   `--rollout-min-stage SECS` each stage serves that long at least before it passes
//!   (Argo's `pause: { duration }`), while a worse canary is still rolled back at the
//!   next judgement: judge often, let the stage time set the pace. With
//!   `--rollout-failure-limit N` a stage tolerates N failing judgements (each holds it)
//!   and fails at the next (Argo's `failureLimit`). A stage is judged once the canary has
//!   served `--rollout-min-requests N` (default 100) since it began; with
//!   `--rollout-max-latency MS` its p95 must stay under that too, whatever the default
//!   version's (Flagger's `request-duration`). Its state is in
//!   `/gray/status`, with how long its stage has served (`stage_seconds`). The rollout holds the canary's weight until the gateway stops: an
//!   edit of `--config` meanwhile applies everything but that weight (see
//!   `gray_core::rollout::Rollout`), so write the outcome into the file for the next start.
//!
//! `GET /gray/status` answers JSON: versions, routes (weights and keys, cookies,
//! mirrors), upstreams, requests per version since start (copies a mirror sent it
//! included), incoming labels refused, requests waiting for an upstream's response, the
//! mirrored copies sent, failed and skipped, and the rules file's reloads (applied,
//! refused, the last refusal's error, when the rules were loaded, their fingerprint);
//! `GET /gray/metrics` the per-version metrics (requests by status class, latency
//! histogram), the reloads' record, the split weights and the versions' availability in
//! the Prometheus text format. Neither is counted as traffic.
//! They are answered on the proxy's own port unless `--admin ADDR` gives them a listener of
//! their own (then every path on the proxy's port, `/gray/…` too, goes to the upstreams):
//! the status shows the rules, testers' headers included, so keep it off a public port. The
//! admin listener also takes an operator's orders to the `--rollout`, as Argo Rollouts'
//! `kubectl` plugin gives them: `POST /gray/rollout/roll-back` — the canary to 0% at once
//! (`abort`), held there until the gateway stops; `POST /gray/rollout/promote` — the next
//! stage at once, unjudged (`promote`); `POST /gray/rollout/pause` — the stage and its
//! weight held, unjudged, until `POST /gray/rollout/resume`, when it is judged afresh
//! (`pause`, `resume`). They change state, so they are never answered on the proxy's port.
//! An upstream that refuses or times out gives `502` naming the version; after
//! `--eject-after N` such failures in a row (default 5; 0: never) the version is taken out
//! for `--eject-for SECS` (default 10): its requests go to the default version, then it
//! is let back in and one more failure takes it out again (see `eject`; the default
//! version is never taken out). `/gray/status` lists it under `unavailable` meanwhile, and
//! counts `ejections` per version. Ctrl-C / SIGTERM: stop accepting, finish in-flight
//! requests.
//!
//! Modules: `cli` the command line, `proxy` a request to its upstream, `mirror` its copy,
//! `admin` the endpoints above, `rollout` the `--rollout` (spawned, ordered about),
//! `server` the listeners and the graceful stop; `pool`, `hop`, `deadline` and `eject`
//! the upstream connections, hop-by-hop headers, the response-head timeout and the
//! passive health checks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::response::{IntoResponse, Response as AxumResponse};
use gray_core::reload::Watcher;
use gray_core::{Config, Gray};
use http::{Method, Uri};

#[path = "admin.rs"]
mod admin;
#[path = "cli.rs"]
pub(crate) mod cli;
#[path = "deadline.rs"]
pub(crate) mod deadline;
#[path = "eject.rs"]
pub(crate) mod eject;
#[path = "hop.rs"]
mod hop;
#[path = "mirror.rs"]
pub(crate) mod mirror;
#[path = "pool.rs"]
mod pool;
#[path = "proxy.rs"]
mod proxy;
#[path = "rollout.rs"]
mod rollout;
#[path = "server.rs"]
mod server;

pub(crate) use cli::{Options, parse};
pub(crate) use proxy::Proxy;
pub(crate) use rollout::start_rollout;
pub(crate) use server::serve;

/// A proxy allocates per request (headers, buffers, futures); mimalloc keeps that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEMO_RULES: &str = include_str!("../../rules.yaml");

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

/// Checks `--upstream`s against the rules before serving: an error when the default
/// version (the first) has none, since it also serves every version without one;
/// otherwise the warnings worth printing — an upstream for a version the rules do not
/// declare (a typo, or a version still to come), a version that borrows the default's
/// (and gets none of the copies a route mirrors to it).
pub(crate) fn check_upstreams(
    config: &Config,
    upstreams: &[(String, Uri)],
) -> Result<Vec<String>, String> {
    let versions = &config.versions;
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
        .filter(|(v, _)| !versions.contains(v))
        .map(|(v, _)| {
            format!("--upstream {v}: the rules declare no version `{v}`; it gets no traffic until they do")
        })
        .collect();
    for version in versions.iter().filter(|v| !has(v)) {
        let mut warning =
            format!("version `{version}` has no --upstream: its requests go to `{default}`'s");
        let mirrors: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| r.mirror.as_ref().is_some_and(|m| m.to == *version))
            .map(|r| r.name.as_str())
            .collect();
        if !mirrors.is_empty() {
            let routes = mirrors.join(", ");
            warning += &format!(", and the copies mirrored to it (routes: {routes}) are not sent");
        }
        warnings.push(warning);
    }
    Ok(warnings)
}

async fn run(mut options: Options) -> Result<(), Box<dyn std::error::Error>> {
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
    let mut upstreams = std::mem::take(&mut options.upstreams);
    if upstreams.is_empty() {
        for version in gray.versions() {
            let addr = responder(version.to_string()).await?;
            upstreams.push((version.to_string(), format!("http://{addr}").parse()?));
        }
    }
    for warning in check_upstreams(&gray.config(), &upstreams)? {
        tracing::warn!("{warning}");
    }
    let proxy =
        Arc::new(Proxy::new(gray, upstreams, options.timeout).with_ejection(options.ejection));
    if let Some(rollout) = options.rollout(&proxy.gray) {
        start_rollout(&proxy, rollout?, options.rollout_every)?;
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

/// The gateway's log: `RUST_LOG`'s filter (default `info`) written to `writer`, coloured
/// only when `ansi` — on a terminal, not in a pipe or a pod's log, where escape codes
/// would be noise in every line.
pub(crate) fn logs<W>(writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    let on_terminal = std::io::stdout().is_terminal();
    if let Err(e) = tracing::subscriber::set_global_default(logs(std::io::stdout, on_terminal)) {
        eprintln!("gateway: no log: {e}");
    }
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
