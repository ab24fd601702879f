//! An axum hello-world for `benches/load/layer.sh`: `/ping` → `pong`, on one thread, with
//! or without `GrayLayer` (the example rules, `examples/rules.yaml`).
//!
//! `cargo run --release -p benches --example hello_server -- ADDR [--gray]`

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use gray_core::Gray;
use gray_tower::GrayLayer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18200".to_owned());
    let with_gray = args.any(|a| a == "--gray");
    let mut app = Router::new().route("/ping", get(|| async { "pong" }));
    if with_gray {
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
        app = app.layer(GrayLayer::new(Gray::from_path(rules)?));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            axum::serve(listener, app).await
        })?;
    Ok(())
}
