//! `GrayLayer::metrics`: a real axum server counts each request under its version, and
//! serves the counts as Prometheus text.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::{INTERNAL, gray, serve};
use gray_core::GrayContext;
use gray_tower::GrayLayer;

/// The canary is broken: it answers 500.
async fn ping() -> (StatusCode, &'static str) {
    match GrayContext::current().as_ref().map(GrayContext::version) {
        Some("canary") => (StatusCode::INTERNAL_SERVER_ERROR, "broken"),
        _ => (StatusCode::OK, "pong"),
    }
}

#[tokio::test]
async fn requests_are_counted_by_version_and_scraped_as_prometheus_text() {
    let rules = gray(INTERNAL);
    let scrape = rules.clone();
    let app = Router::new()
        .route("/ping", get(ping))
        .route(
            "/metrics",
            get(move || async move { scrape.metrics().prometheus() }),
        )
        .layer(GrayLayer::new(rules.clone()).metrics(true));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/ping");

    for i in 0..30 {
        let beta = i % 3 == 0;
        let mut req = client.get(&url);
        if beta {
            req = req.header("x-app-version", "beta");
        }
        let res = req.send().await.unwrap();
        let expected = if beta { 500 } else { 200 };
        assert_eq!(res.status().as_u16(), expected);
    }

    let metrics = rules.metrics();
    let of = |name: &str| metrics.version(name).unwrap();
    assert_eq!(of("stable").requests, [0, 20, 0, 0, 0]);
    assert_eq!(of("canary").requests, [0, 0, 0, 0, 10]);
    assert_eq!(of("canary").error_rate(), 1.0);
    assert_eq!(of("stable").latency.iter().sum::<u64>(), 20);

    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("gray_requests_total{version=\"canary\",class=\"5xx\"} 10\n"),
        "{text}"
    );
    assert!(text.contains("gray_requests_total{version=\"stable\",class=\"2xx\"} 20\n"));
    assert!(text.contains("gray_request_duration_seconds_count{version=\"stable\"} 20\n"));
}

#[tokio::test]
async fn without_the_option_nothing_is_counted() {
    let rules = gray("versions: [stable]\n");
    let app = Router::new()
        .route("/ping", get(ping))
        .layer(GrayLayer::new(rules.clone()));
    let addr = serve(app).await;
    let res = reqwest::get(format!("http://{addr}/ping")).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(rules.metrics().version("stable").unwrap().total(), 0);
}
