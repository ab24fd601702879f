//! `N` requests through an axum router via `oneshot`, bare or behind `GrayLayer` (around
//! the router, the example rules): the workload `benches/load/instructions.sh` counts
//! instructions of, where the clock is too noisy to resolve tens of nanoseconds.
//! `gray-internal` is an internal service instead (`inherit: always`), the request
//! carrying its label. The yardsticks: `floor`, [`benches::Floor`] (the four parts of
//! GrayLayer's contract and nothing else), and `tower-http`, tower-http's
//! `SetRequestHeader` and `AddExtension` around the router (two of the four parts).
//!
//! `cargo run --release -p benches --example layer_requests -- bare|gray|gray-metrics|gray-internal|floor|tower-http N`

use std::hint::black_box;

use axum::body::Body;
use benches::{Floor, bare_router, design, request, tower_http_pair};
use gray_core::{Config, Gray};
use gray_tower::GrayLayer;
use tower::{Service, ServiceExt};
use tower_layer::Layer;

const USAGE: &str = "usage: bare|gray|gray-metrics|gray-internal|floor|tower-http N";

/// `n` requests, each made by `request`, through a clone of `app`.
fn run<S>(
    rt: &tokio::runtime::Runtime,
    app: &S,
    n: u64,
    request: impl Fn() -> http::Request<Body>,
) -> Result<(), S::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone,
{
    for _ in 0..n {
        black_box(rt.block_on(app.clone().oneshot(request()))?.status());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let n: u64 = args.next().ok_or(USAGE)?.parse()?;
    let gray = design();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let bare = bare_router();
    match variant.as_str() {
        "bare" => run(&rt, &bare, n, request)?,
        "gray" | "gray-metrics" => {
            let layer = GrayLayer::new(gray).metrics(variant == "gray-metrics");
            run(&rt, &layer.layer(bare), n, request)?;
        }
        "floor" => run(&rt, &Floor::new(bare, gray), n, request)?,
        "tower-http" => run(&rt, &tower_http_pair(&gray, bare), n, request)?,
        "gray-internal" => {
            let internal = Gray::new(Config::from_yaml(
                "label: { inherit: always }\nversions: [stable, canary]\n",
            )?)?;
            let app = GrayLayer::new(internal).layer(bare);
            let labelled = || {
                let mut req = request();
                req.headers_mut()
                    .insert("x-gray-version", http::HeaderValue::from_static("canary"));
                req
            };
            run(&rt, &app, n, labelled)?;
        }
        other => return Err(format!("unknown variant {other:?}: {USAGE}").into()),
    }
    Ok(())
}
