//! The classic `/ping` behind `GrayLayer`: the answer says which version served it.
//!
//! ```text
//! cargo run -p examples --example hello
//! curl -H 'x-app-version: beta' localhost:3000/ping   # {"message":"pong","version":"canary"}
//! curl -H 'x-user-id: 7' localhost:3000/ping          # {"message":"pong","version":"stable"}
//! curl localhost:3000/metrics                         # per-version counts, for Prometheus
//! ```
//!
//! Options: `--config FILE` (default: the embedded `examples/rules.yaml`), `--listen ADDR`
//! (default `127.0.0.1:3000`). Served with axum's `ConnectInfo`, so that rules on the
//! client's address (`match.client_ip`, `split.by: client_ip`) see the connection's.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use gray_core::Config;
use gray_tower::{GrayLayer, GrayVersion};
use lexopt::prelude::*;

async fn ping(GrayVersion(ctx): GrayVersion) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "message": "pong", "version": ctx.version() }))
}

/// The service: `/ping` answers with the version that served it (also echoed in the
/// `x-gray-version` response header), `/metrics` the per-version counts for Prometheus.
pub(crate) fn app(gray: gray_core::Gray) -> Router {
    let scrape = gray.clone();
    Router::new()
        .route("/ping", get(ping))
        .route(
            "/metrics",
            get(move || async move { scrape.metrics().prometheus() }),
        )
        .layer(GrayLayer::new(gray).echo_version(true).metrics(true))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = None;
    let mut listen = "127.0.0.1:3000".to_owned();
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next()? {
        match arg {
            Long("config") => config = Some(args.value()?),
            Long("listen") => listen = args.value()?.string()?,
            _ => return Err(arg.unexpected().into()),
        }
    }
    let gray = match config {
        Some(path) => gray_core::Gray::from_path(path)?,
        None => gray_core::Gray::new(Config::from_yaml(include_str!("../rules.yaml"))?)?,
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}/ping");
    println!("  curl -H 'x-app-version: beta' http://{addr}/ping");
    println!("  curl -H 'x-user-id: 7' http://{addr}/ping");
    println!("  curl http://{addr}/metrics");
    axum::serve(
        listener,
        app(gray).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
