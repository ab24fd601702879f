//! `N` requests through an axum router via `oneshot`, bare or behind `GrayLayer` (around
//! the router, DESIGN.md's rules): the workload `benches/load/instructions.sh` counts
//! instructions of, where the clock is too noisy to resolve tens of nanoseconds.
//! `gray-internal` is an internal service instead (`inherit: always`), the request
//! carrying its label. `tower-http` is the yardstick: tower-http's `SetRequestHeader` and
//! `AddExtension` around the router, two of GrayLayer's four parts.
//!
//! `cargo run --release -p benches --example layer_requests -- bare|gray|gray-metrics|gray-internal|tower-http N`

use std::hint::black_box;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use gray_core::{Config, Gray};
use gray_tower::GrayLayer;
use tower::ServiceExt;
use tower_layer::Layer;

fn request() -> Result<http::Request<Body>, http::Error> {
    http::Request::get("/ping")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("x-user-id", "user-48213")
        .body(Body::empty())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let n: u64 = args
        .next()
        .ok_or("usage: bare|gray|gray-metrics|gray-internal|tower-http N")?
        .parse()?;
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    let gray = Gray::from_path(rules)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let bare: Router = Router::new().route("/ping", get(|| async { "pong" }));
    match variant.as_str() {
        "bare" => {
            for _ in 0..n {
                black_box(rt.block_on(bare.clone().oneshot(request()?))?.status());
            }
        }
        "gray" | "gray-metrics" => {
            let layer = GrayLayer::new(gray).metrics(variant == "gray-metrics");
            let app = layer.layer(bare);
            for _ in 0..n {
                black_box(rt.block_on(app.clone().oneshot(request()?))?.status());
            }
        }
        "tower-http" => {
            // The yardstick: tower-http setting the label header and adding a context.
            let ctx = gray.decide(&request()?).context();
            let app = tower::ServiceBuilder::new()
                .layer(tower_http::set_header::SetRequestHeaderLayer::overriding(
                    http::HeaderName::from_static("x-gray-version"),
                    http::HeaderValue::from_static("stable"),
                ))
                .layer(tower_http::add_extension::AddExtensionLayer::new(ctx))
                .service(bare);
            for _ in 0..n {
                black_box(rt.block_on(app.clone().oneshot(request()?))?.status());
            }
        }
        "gray-internal" => {
            let internal = Gray::new(Config::from_yaml(
                "label: { inherit: always }\nversions: [stable, canary]\n",
            )?)?;
            let app = GrayLayer::new(internal).layer(bare);
            for _ in 0..n {
                let mut req = request()?;
                req.headers_mut()
                    .insert("x-gray-version", http::HeaderValue::from_static("canary"));
                black_box(rt.block_on(app.clone().oneshot(req))?.status());
            }
        }
        other => {
            let usage = "bare|gray|gray-metrics|gray-internal|tower-http";
            return Err(format!("unknown variant {other:?}: {usage}").into());
        }
    }
    Ok(())
}
