//! The examples do what their doc comments (and the README's table) say: each one's own
//! service code, served on 127.0.0.1:0, asked what its doc comment asks.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::net::SocketAddr;

use gray_core::rollout::RolloutStatus;
use gray_core::{Config, Gray};

#[allow(dead_code)]
#[path = "../examples/hello.rs"]
mod hello;

#[allow(dead_code)]
#[path = "../examples/actix.rs"]
mod actix;

#[allow(dead_code)]
#[path = "../examples/propagation.rs"]
mod propagation;

#[allow(dead_code)]
#[path = "../examples/rollout.rs"]
mod rollout;

/// The rules the examples embed (`examples/rules.yaml`).
fn design() -> Gray {
    Gray::new(Config::from_yaml(include_str!("../rules.yaml")).unwrap()).unwrap()
}

/// The README's quickstart shows `rules.yaml` as "this is `examples/rules.yaml`": the same
/// rules (its comments are shorter).
#[test]
fn the_readme_quickstart_rules_are_examples_rules_yaml() {
    let readme = include_str!("../../README.md");
    let shown = readme
        .split_once("`rules.yaml` (this is [`examples/rules.yaml`]")
        .and_then(|(_, after)| after.split_once("```yaml\n"))
        .and_then(|(_, block)| block.split_once("```"))
        .map(|(yaml, _)| yaml)
        .expect("the quickstart's rules block");
    assert_eq!(
        Config::from_yaml(shown).unwrap(),
        Config::from_yaml(include_str!("../rules.yaml")).unwrap()
    );
}

/// `GET http://{addr}{path}` with one header: the version echoed, and the body.
async fn get(addr: SocketAddr, path: &str, header: (&str, &str)) -> (Option<String>, String) {
    let res = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    let echoed = res
        .headers()
        .get("x-gray-version")
        .map(|v| v.to_str().unwrap().to_owned());
    (echoed, res.text().await.unwrap())
}

/// The `/ping` answers both `hello` and `actix` document.
async fn pings_as_documented(addr: SocketAddr) {
    let (echoed, body) = get(addr, "/ping", ("x-app-version", "beta")).await;
    assert_eq!(body, r#"{"message":"pong","version":"canary"}"#);
    assert_eq!(echoed.as_deref(), Some("canary"));
    let (echoed, body) = get(addr, "/ping", ("x-user-id", "7")).await;
    assert_eq!(body, r#"{"message":"pong","version":"stable"}"#);
    assert_eq!(echoed.as_deref(), Some("stable"));
}

#[tokio::test]
async fn hello_pings_and_counts_per_version() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = hello::app(design()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    pings_as_documented(addr).await;
    let (_, metrics) = get(addr, "/metrics", ("accept", "text/plain")).await;
    for version in ["stable", "canary"] {
        let line = format!(r#"gray_requests_total{{version="{version}",class="2xx"}} 1"#);
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

#[actix_web::test]
async fn actix_pings_as_hello_does() {
    let (server, addrs) = actix::server(design(), "127.0.0.1:0").unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    pings_as_documented(addrs[0]).await;
    handle.stop(true).await;
}

#[tokio::test]
async fn propagation_keeps_every_callers_chain_on_one_version() {
    let lines = propagation::run().await.unwrap();
    assert_eq!(lines.len(), 21, "{lines:#?}");
    // The three lines its doc comment shows.
    for shown in [
        "user 1     edge: stable  -> orders: stable",
        "user 3     edge: canary  -> orders: canary",
        "tester     edge: canary  -> orders: canary",
    ] {
        assert!(lines.iter().any(|l| l == shown), "{shown:?} in {lines:#?}");
    }
    // Every caller: the orders service on the edge's version.
    for line in &lines {
        let (edge, orders) = line.split_once(" -> orders: ").unwrap();
        assert!(edge.ends_with(&format!("edge: {orders:<7}")), "{line:?}");
    }
}

#[tokio::test]
async fn rollout_completes_a_healthy_canary_and_rolls_back_a_failing_one() {
    // The healthy run, judged on errors only: on a shared CI machine one stalled request
    // among a stage's 20 canary requests can move its p95 past even the demo's 10×.
    let mut errors_only = rollout::demo_analysis();
    errors_only.max_latency_ratio = f64::INFINITY;
    let mut lines = Vec::new();
    let status = rollout::run(0, errors_only, |line| lines.push(line))
        .await
        .unwrap();
    assert_eq!(
        status,
        RolloutStatus::Completed { weight: 100.0 },
        "{lines:#?}"
    );
    // It went through every stage.
    for weight in ["5.0", "30.0", "100.0"] {
        let progressing = format!("weight: {weight} }}");
        assert!(
            lines.iter().any(|l| l.contains(&progressing)),
            "{progressing:?} in {lines:#?}"
        );
    }

    let mut lines = Vec::new();
    let status = rollout::run(10, rollout::demo_analysis(), |line| lines.push(line))
        .await
        .unwrap();
    match status {
        RolloutStatus::RolledBack { reason } => {
            assert!(reason.contains("5xx"), "{reason}");
        }
        other => panic!("{other:?}: {lines:#?}"),
    }
}
