//! What `GrayLayer` adds to a request through an axum router, timed against the bare router
//! in the same moments: each round times a batch through the bare router and a batch through
//! the app (which goes first turns from round to round) and takes the difference — so the
//! machine's drift, larger than the bar on a shared VM, falls on both sides of each
//! difference. With GrayLayer, the two yardsticks of `--bench layer`: [`benches::Floor`]
//! (the four parts of GrayLayer's contract and nothing else) and tower-http's
//! `SetRequestHeader` + `AddExtension` (two of the four), each paired with the bare router
//! in a pass of its own.
//!
//! Printed for each: the median of the rounds' per-request differences, and its quartiles.
//!
//! `cargo run --release -p benches --example layer_overhead -- [ROUNDS] [BATCH]`
//! (defaults 500 rounds of 2,000 requests: about 6 s here)

use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use benches::{Floor, bare_router, design, request, tower_http_pair};
use gray_tower::GrayLayer;
use tower::{Service, ServiceExt};
use tower_layer::Layer;

/// Nanoseconds per request over `batch` requests through clones of `app`.
fn per_request<S>(rt: &tokio::runtime::Runtime, app: &S, batch: u32) -> f64
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone,
{
    let start = Instant::now();
    for _ in 0..batch {
        black_box(rt.block_on(app.clone().oneshot(request())).is_ok());
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(batch)
}

/// The quartiles of `app`'s per-request time minus the bare router's, over `rounds`
/// paired rounds.
fn overhead<S>(
    rt: &tokio::runtime::Runtime,
    bare: &Router,
    app: &S,
    rounds: usize,
    batch: u32,
) -> [f64; 3]
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone,
{
    // Warm both paths up before timing them.
    per_request(rt, app, batch);
    per_request(rt, bare, batch);
    let mut differences: Vec<f64> = (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let bare = per_request(rt, bare, batch);
                per_request(rt, app, batch) - bare
            } else {
                let app = per_request(rt, app, batch);
                app - per_request(rt, bare, batch)
            }
        })
        .collect();
    differences.sort_by(f64::total_cmp);
    let at = |q: usize| differences[(differences.len() - 1) * q / 4];
    [at(1), at(2), at(3)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let batch: u32 = args.next().map_or(Ok(2_000), |a| a.parse())?;
    if rounds == 0 || batch == 0 {
        return Err("ROUNDS and BATCH must be at least 1".into());
    }
    let gray = design();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let bare = bare_router();
    let report = |name: &str, [p25, median, p75]: [f64; 3]| {
        println!("{name:<30} {median:+7.1} ns median (quartiles {p25:+7.1} … {p75:+7.1})");
    };
    println!("over the bare router, {rounds} rounds of {batch} requests each side:");
    let outer = GrayLayer::new(gray.clone()).layer(bare.clone());
    report(
        "GrayLayer around the router",
        overhead(&rt, &bare, &outer, rounds, batch),
    );
    let floor = Floor::new(bare.clone(), gray.clone());
    report(
        "floor (the four parts)",
        overhead(&rt, &bare, &floor, rounds, batch),
    );
    let pair = tower_http_pair(&gray, bare.clone());
    report(
        "tower-http header + extension",
        overhead(&rt, &bare, &pair, rounds, batch),
    );
    Ok(())
}
