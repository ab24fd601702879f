//! One request through an axum `Router` via `oneshot`, bare and behind `GrayLayer`.
//! Bar: the layer adds ≤ 100 ns median.
//!
//! `cargo bench -p benches --bench layer`

use std::hint::black_box;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gray_core::Gray;
use gray_tower::GrayLayer;
use tower::ServiceExt;
use tower_layer::Layer;

fn request() -> http::Request<Body> {
    let req = http::Request::get("/ping")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("x-user-id", "user-48213")
        .body(Body::empty());
    match req {
        Ok(req) => req,
        Err(e) => panic!("bench request: {e}"),
    }
}

fn layer(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    let gray = match Gray::from_path(&path) {
        Ok(gray) => gray,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let bare: Router = Router::new().route("/ping", get(|| async { "pong" }));
    let layered = bare.clone().layer(GrayLayer::new(gray.clone()));
    // The layer around the whole router: one GrayService per app, not one per route.
    let outer = Router::new().fallback_service(GrayLayer::new(gray).layer(bare.clone()));

    let mut group = c.benchmark_group("router");
    for (name, app) in [("bare", bare), ("router.layer", layered), ("outer", outer)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| {
                    let res = rt.block_on(app.clone().oneshot(req));
                    black_box(res.map(|r| r.status()))
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
