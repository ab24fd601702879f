//! One request through an axum `Router` via `oneshot`, bare and behind `GrayLayer`.
//! Target: the layer adds ≤ 100 ns median. `noop-layer` is the same router behind a
//! pass-through layer: what axum's `Router::layer` costs by itself, whatever the layer.
//! Two yardsticks around the router: `floor-around-router`, [`benches::Floor`] — the four
//! parts of GrayLayer's contract and nothing else, what any implementation pays; and
//! `tower-http-header-and-extension-around-router`, tower-http's `SetRequestHeader` and
//! `AddExtension` — two of the four parts, done the usual way.
//! `router-N-threads`: bare and `GrayLayer` on every core at once.
//!
//! Each variant is timed minutes after the one before it, on a machine whose speed drifts
//! by more than the bar: for the overhead itself, `examples/layer_overhead.rs` times them
//! in alternating batches against the bare router.
//!
//! `cargo bench -p benches --bench layer`

use std::hint::black_box;

use axum::body::Body;
use benches::{Floor, bare_router, design, request, tower_http_pair};
use criterion::{Criterion, criterion_group, criterion_main};
use gray_tower::GrayLayer;
use tower::ServiceExt;
use tower_layer::Layer;

fn layer(c: &mut Criterion) {
    let gray = design();
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let bare = bare_router();
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
    let floor = Floor::new(bare.clone(), gray.clone());
    let yardstick = tower_http_pair(&gray, bare.clone());

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
    group.bench_function("floor-around-router", |b| {
        b.iter(|| {
            let res = rt.block_on(floor.clone().oneshot(request()));
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
    let bare = bare_router();
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
