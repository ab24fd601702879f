//! One request through an axum `Router` via `oneshot`, bare and behind `GrayLayer`.
//! Bar: the layer adds ≤ 100 ns median. `noop-layer` is the same router behind a
//! pass-through layer: what axum's `Router::layer` costs by itself, whatever the layer.
//! `tower-http-header-and-extension-around-router`: tower-http's `SetRequestHeader` and
//! `AddExtension` around the router — two of GrayLayer's four parts, done the usual way.
//! `router-N-threads`: bare and `GrayLayer` on every core at once.
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

/// DESIGN.md's rules.
fn design() -> Gray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    match Gray::from_path(&path) {
        Ok(gray) => gray,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn layer(c: &mut Criterion) {
    let gray = design();
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
    let outer = GrayLayer::new(gray.clone()).layer(bare.clone());
    // The same, counting per-version metrics (two clock reads per request).
    let metered = GrayLayer::new(gray.clone())
        .metrics(true)
        .layer(bare.clone());
    // The yardstick: tower-http's own layers doing two of the things GrayLayer does — set
    // the label header and add a `GrayContext` extension (an engine's, cloned as cheaply
    // as GrayLayer's) — with no decision and no task-local scope.
    let ctx = gray.decide(&request()).context();
    let yardstick = tower::ServiceBuilder::new()
        .layer(tower_http::set_header::SetRequestHeaderLayer::overriding(
            http::HeaderName::from_static("x-gray-version"),
            http::HeaderValue::from_static("stable"),
        ))
        .layer(tower_http::add_extension::AddExtensionLayer::new(ctx))
        .service(bare.clone());

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
    group.bench_function("gray-metrics-around-router", |b| {
        b.iter(|| {
            let res = rt.block_on(metered.clone().oneshot(request()));
            black_box(res.map(|r| r.status()))
        })
    });
    group.bench_function("tower-http-header-and-extension-around-router", |b| {
        b.iter(|| {
            let res = rt.block_on(yardstick.clone().oneshot(request()));
            black_box(res.map(|r| r.status()))
        })
    });
    group.finish();
}

/// The same request on every core at once, each thread with its own current-thread
/// runtime and its own clone of the app: the per-request time per thread. What the
/// threads share — the `Gray` and its rules — must not slow them down.
fn threads(c: &mut Criterion) {
    let gray = design();
    let bare: Router = Router::new().route("/ping", get(|| async { "pong" }));
    let outer = GrayLayer::new(gray).layer(bare.clone());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut group = c.benchmark_group(format!("router-{threads}-threads"));
    fn run<S>(app: &S, threads: usize, iters: u64) -> std::time::Duration
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
            + Clone
            + Send
            + Sync,
        S::Future: Send,
        S::Error: std::fmt::Debug,
    {
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let rt = match tokio::runtime::Builder::new_current_thread().build() {
                        Ok(rt) => rt,
                        Err(e) => panic!("runtime: {e}"),
                    };
                    for _ in 0..iters {
                        let res = rt.block_on(app.clone().oneshot(request()));
                        black_box(res.map(|r| r.status()).ok());
                    }
                });
            }
        });
        start.elapsed()
    }
    group.bench_function("bare", |b| b.iter_custom(|n| run(&bare, threads, n)));
    group.bench_function("gray-around-router", |b| {
        b.iter_custom(|n| run(&outer, threads, n))
    });
    group.finish();
}

criterion_group!(benches, layer, threads);
criterion_main!(benches);
