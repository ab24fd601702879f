//! gray-gateway: the nginx role in a gray release — header rules, sticky splits by user,
//! several endpoints per version, staged rollouts — as a reverse proxy on gray's rules,
//! hot-reloading its rules file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // What `gray-gateway --listen 127.0.0.1:8080 --upstream stable=http://127.0.0.1:9001
//! // --upstream canary=http://127.0.0.1:9002 --config rules.yaml` runs.
//! let options = gray_gateway::cli::parse([
//!     "--listen", "127.0.0.1:8080",
//!     "--upstream", "stable=http://127.0.0.1:9001",
//!     "--upstream", "canary=http://127.0.0.1:9002",
//!     "--config", "rules.yaml",
//! ])?;
//! gray_gateway::run(options).await?;
//! # Ok(()) }
//! ```
//!
//! The binary's `--help` lists every flag; `examples/gateway/README.md` shows how to run
//! it. The library is what the binary is made of, for tests and for embedding:
//!
//! - [`cli`]: the command line and the environment, as [`cli::Options`];
//! - [`Proxy`]: a request decided by `GrayLayer`, sent to an endpoint of its version,
//!   tried on another when it failed before any of it was sent; mirrored copies; hop-by-hop
//!   headers and `X-Forwarded-*`;
//! - [`upstream`]: each version's endpoints, their connections, passive and active health
//!   checks, the power of two choices between them, and the response-head deadline;
//! - [`serve`]: the listeners, the gateway's own endpoints (`/gray/status`,
//!   `/gray/metrics`, `/metrics`, the rollout's orders) and a graceful stop;
//! - [`start_rollout`]: the `--rollout`, spawned, ordered about on the admin listener.
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::response::{IntoResponse, Response as AxumResponse};
use gray_core::reload::Watcher;
use gray_core::{Config, Gray};
use http::Method;

mod admin;
pub mod cli;
mod proxy;
mod rollout;
mod server;
pub mod upstream;

pub use proxy::Proxy;
pub use proxy::mirror::MAX_COPIES_IN_FLIGHT;
pub use rollout::start_rollout;
pub use server::{Limits, Tls, TlsError, serve};

use cli::Options;
use upstream::{MAX_ENDPOINTS, Target, UpstreamTls};

/// The rules of the demo (no `--config`, no `--upstream`).
pub const DEMO_RULES: &str = include_str!("../../rules.yaml");

/// A built-in upstream for `version` on an ephemeral loopback port: answers
/// `{"version":…,"path":…}`, and a `POST`'s body echoed.
pub async fn responder(version: String) -> std::io::Result<SocketAddr> {
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
pub async fn shutdown_signal() {
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
/// version (the first) has none, since it also serves every version without one, or when
/// a version has more than [`MAX_ENDPOINTS`]; otherwise the warnings worth printing — an
/// upstream for a version the rules do not declare (a typo, or a version still to come),
/// a version that borrows the default's (and gets none of the copies a route mirrors to
/// it).
pub fn check_upstreams(
    config: &Config,
    upstreams: &[(String, Target)],
) -> Result<Vec<String>, String> {
    let versions = &config.versions;
    let count = |v: &str| upstreams.iter().filter(|(u, _)| u == v).count();
    if let Some((version, _)) = upstreams.iter().find(|(v, _)| count(v) > MAX_ENDPOINTS) {
        return Err(format!(
            "--upstream {version}: {} endpoints, at most {MAX_ENDPOINTS} per version",
            count(version)
        ));
    }
    let Some(default) = versions.first() else {
        return Ok(Vec::new());
    };
    if count(default) == 0 {
        return Err(format!(
            "no --upstream for the default version `{default}`, which also serves every \
             version without an upstream of its own"
        ));
    }
    let mut warnings: Vec<String> = Vec::new();
    for (v, _) in upstreams.iter().filter(|(v, _)| !versions.contains(v)) {
        let warning = format!(
            "--upstream {v}: the rules declare no version `{v}`; it gets no traffic until they do"
        );
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    for version in versions.iter().filter(|v| count(v) == 0) {
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

/// Binds `addr` for `flag`, or says which address is taken and what to do.
async fn bind(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "{flag} {addr}: the address is in use by another process; stop it, or give \
             {flag} another address (port 0: any free one)"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "{flag} {addr}: permission denied; ports below 1024 need privileges, give {flag} \
             a port above 1023"
            ),
            _ => format!("{flag} {addr}: {e}"),
        })
}

/// Runs the gateway as `options` say until Ctrl-C or SIGTERM: loads the rules (the demo's
/// without `--config`, with a built-in responder per version without `--upstream`),
/// starts the `--rollout`, serves.
pub async fn run(mut options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let demo = options.config.is_none() && options.upstreams.is_empty();
    let gray = match &options.config {
        Some(path) => {
            Gray::from_path(path).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
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
    let tls = match &options.tls {
        Some((cert, key)) => {
            Some(Tls::load(cert, key).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let upstream_tls = match &options.upstream_ca {
        Some(path) => {
            Some(UpstreamTls::from_ca_file(path).map_err(|e| format!("--upstream-ca: {e}"))?)
        }
        None => None,
    };
    let listener = bind(options.listen, "--listen").await?;
    let admin = match options.admin {
        Some(at) => Some(bind(at, "--admin").await?),
        None => None,
    };
    let proxy = Proxy::new(gray, upstreams, options.timeout)
        .tls(tls)
        .limits(options.limits)
        .with_ejection(options.ejection)
        .preserve_host(options.preserve_host)
        .health_check(options.health_check.clone())
        .access_log(options.access_log.as_deref())
        .map_err(|e| {
            format!(
                "--access-log {}: {e}",
                options.access_log.as_deref().unwrap_or_default()
            )
        })?;
    let proxy = match &upstream_tls {
        Some(tls) => proxy.upstream_tls(tls),
        None => proxy,
    };
    let proxy = Arc::new(proxy);
    if let Some(rollout) = options.rollout(&proxy.gray) {
        start_rollout(&proxy, rollout?, options.rollout_every)?;
    }
    let addr = listener.local_addr()?;
    println!("gray gateway on {scheme}://{addr}");
    let admin_addr = match &admin {
        Some(admin) => admin.local_addr()?,
        None => addr,
    };
    if admin.is_some() {
        println!("  /gray/status, /gray/metrics and /metrics on http://{admin_addr}");
    }
    for upstream in proxy.upstreams.iter() {
        for endpoint in upstream.endpoints() {
            println!("  {:<8} -> {}", upstream.version(), endpoint.target());
        }
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
pub fn logs<W>(writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
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
