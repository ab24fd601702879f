//! A staged rollout, end to end: an axum service counts per-version metrics behind
//! `GrayLayer`, traffic flows, and a `Rollout` widens the canary 5% → 30% → 100% while it is
//! as good as stable — or rolls it back when it is not.
//!
//! ```text
//! cargo run -p examples --example rollout                       # a healthy canary: completed
//! cargo run -p examples --example rollout -- --canary-errors 10 # 10% 5xx: rolled back
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use gray_core::rollout::{Analysis, Rollout, RolloutStatus};
use gray_core::{Config, Gray};
use gray_tower::GrayLayer;
use lexopt::prelude::*;

const RULES: &str = r#"
versions: [stable, canary]
routes:
  - name: users
    split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
"#;

/// Requests between two steps of the rollout (in production: a timer, a minute or so).
const TICK: u64 = 400;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut canary_errors = 0u64;
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next()? {
        match arg {
            Long("canary-errors") => canary_errors = args.value()?.parse()?,
            _ => return Err(arg.unexpected().into()),
        }
    }
    if canary_errors > 100 {
        return Err("--canary-errors is a percentage, 0 to 100".into());
    }
    run(canary_errors, demo_analysis(), |line| println!("{line}")).await?;
    Ok(())
}

/// A demo's analysis: judge a stage on few requests, and on loopback, where a request
/// takes microseconds and one hiccup moves a tail quantile, only on a real slowdown.
pub(crate) fn demo_analysis() -> Analysis {
    let mut analysis = Analysis::default();
    analysis.min_requests = 20;
    analysis.max_latency_ratio = 10.0;
    analysis
}

/// Serves the app, starts the rollout and sends traffic, stepping the rollout every
/// [`TICK`] requests until it completes or rolls back; `report` gets each line to show.
/// The canary answers 500 to `canary_errors` of every 100 requests.
pub(crate) async fn run(
    canary_errors: u64,
    analysis: Analysis,
    mut report: impl FnMut(String),
) -> Result<RolloutStatus, Box<dyn std::error::Error>> {
    let gray = Gray::new(Config::from_yaml(RULES)?)?;
    let served = std::sync::Arc::new(AtomicU64::new(0));
    let handler = move |gray_tower::GrayVersion(ctx): gray_tower::GrayVersion| {
        let n = served.fetch_add(1, Ordering::Relaxed);
        async move {
            if ctx.version() == "canary" && n % 100 < canary_errors {
                (StatusCode::INTERNAL_SERVER_ERROR, "canary broke")
            } else {
                (StatusCode::OK, "ok")
            }
        }
    };
    let app = Router::new()
        .route("/", get(handler))
        .layer(GrayLayer::new(gray.clone()).metrics(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut rollout =
        Rollout::new(gray.clone(), "users", "canary", [5.0, 30.0, 100.0])?.analysis(analysis);
    rollout.start()?;
    report(format!(
        "canary answers 5xx to {canary_errors}% of its requests"
    ));
    report(format!("start: {:?}", rollout.status()));

    let client = reqwest::Client::new();
    let mut user = 0u64;
    loop {
        for _ in 0..TICK {
            user += 1;
            client
                .get(&url)
                .header("x-user-id", user.to_string())
                .send()
                .await?;
        }
        let status = rollout.step()?.clone();
        let metrics = gray.metrics();
        let canary = metrics.version("canary");
        report(format!(
            "after {user:>5} requests: {status:?}  (canary so far: {} requests, {:.1}% 5xx)",
            canary.map_or(0, |c| c.total()),
            canary.map_or(0.0, |c| c.error_rate() * 100.0),
        ));
        if matches!(
            status,
            RolloutStatus::Completed { .. } | RolloutStatus::RolledBack { .. }
        ) {
            report(format!("\n{}", metrics_summary(&gray)));
            return Ok(status);
        }
    }
}

fn metrics_summary(gray: &Gray) -> String {
    gray.metrics()
        .prometheus()
        .lines()
        .filter(|l| l.starts_with("gray_requests_total") && !l.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join("\n")
}
