//! One request through an axum `Router` via `oneshot`, bare and behind `GrayLayer`.
//! Bar: the layer adds ≤ 100 ns median. `noop-layer` is the same router behind a
//! pass-through layer: what axum's `Router::layer` costs by itself, whatever the layer.
//!
//! `cargo bench -p benches --bench layer`

use std::hint::black_box;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
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
    // What axum itself charges for any layer: a pass-through `MapRequestLayer`.
    let noop = bare.clone().layer(tower::util::MapRequestLayer::new(
        |req: http::Request<Body>| req,
    ));
    let gray_app = bare.clone().layer(GrayLayer::new(gray.clone()));
    // GrayLayer around the whole router (served with `axum::ServiceExt::into_make_service`):
    // no per-route layer boxing.
    let outer = GrayLayer::new(gray).layer(bare.clone());

    let mut group = c.benchmark_group("router");
    for (name, app) in [
        ("bare", bare),
        ("noop-layer", noop),
        ("gray-layer", gray_app),
    ] {
        // The request is built inside the timed loop, the same for every app.
        group.bench_function(name, |b| {
            b.iter(|| {
                let res = rt.block_on(app.clone().oneshot(request()));
                black_box(res.map(|r| r.status()))
            })
        });
    }
    group.bench_function("gray-around-router", |b| {
        b.iter(|| {
            let res = rt.block_on(outer.clone().oneshot(request()));
            black_box(res.map(|r| r.status()))
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
