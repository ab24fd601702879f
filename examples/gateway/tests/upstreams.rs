//! Upstreams: keep-alive pools, base paths, deadlines, dead and silent endpoints, ejection.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

use gray_core::{Config, Gray};
use gray_gateway::upstream::Target;
use gray_gateway::{Proxy, responder};

/// A version whose upstream stops answering costs no request: each is sent to the
/// default version instead. After `after` failures in a row it is taken out, its requests
/// decided for the default version; let back in after `duration`, it is taken out again
/// by its next failure, and serves again once its upstream answers. The default version
/// is never marked unavailable.
#[tokio::test]
async fn a_version_that_stops_answering_is_taken_out_and_let_back_in() {
    let stable = responder("stable".to_owned()).await.unwrap();
    // Nothing listens there, for now.
    let canary = closed_port();
    let upstreams = vec![
        ("stable".to_owned(), uri(stable)),
        ("canary".to_owned(), uri(canary)),
    ];
    // Out for long enough that a slow machine checks it before it is let back in.
    let ejection = gray_gateway::upstream::Ejection {
        after: 3,
        duration: Duration::from_secs(1),
    };
    let (gw, _) = serve_proxy(
        Proxy::new(design(), upstreams, Duration::from_secs(10)).with_ejection(ejection),
    )
    .await;
    let client = reqwest::Client::new();
    let beta = |client: &reqwest::Client| {
        client
            .get(format!("http://{gw}/hello"))
            .header("x-app-version", "beta")
            .send()
    };
    for _ in 0..3 {
        let res = beta(&client).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("stable"));
    }
    // Taken out: a tester's request is the default version's.
    assert_eq!(
        version_of(&client, gw, &[("x-app-version", "beta")]).await,
        "stable"
    );
    let now = status(&client, gw).await;
    assert_eq!(now["unavailable"], serde_json::json!(["canary"]));
    assert_eq!(
        now["ejections"],
        serde_json::json!({ "canary": 1, "stable": 0 })
    );
    assert_eq!(
        now["retries"],
        serde_json::json!({ "canary": 3, "stable": 0 })
    );
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    assert!(
        metrics.contains("\ngray_version_available{version=\"canary\"} 0\n"),
        "{metrics}"
    );

    // Let back in while its upstream is still down: one failure takes it out again.
    until_all_available(&client, gw).await;
    assert_eq!(beta(&client).await.unwrap().status(), 200);
    assert_eq!(
        version_of(&client, gw, &[("x-app-version", "beta")]).await,
        "stable"
    );
    assert_eq!(status(&client, gw).await["ejections"]["canary"], 2);

    // Its upstream answers again: let back in, it serves, and stays in.
    let listener = tokio::net::TcpListener::bind(canary).await.unwrap();
    let app = axum::Router::new().fallback(|| async {
        axum::Json(serde_json::json!({ "version": "canary", "path": "/hello" }))
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    until_all_available(&client, gw).await;
    for _ in 0..5 {
        assert_eq!(
            version_of(&client, gw, &[("x-app-version", "beta")]).await,
            "canary"
        );
    }
    assert_eq!(status(&client, gw).await["ejections"]["canary"], 2);

    // The default version has nowhere to go: its endpoint is taken out of balancing, but
    // the version is never marked unavailable, and its endpoint is still tried.
    let dead = closed_port();
    let upstreams = vec![("stable".to_owned(), uri(dead))];
    let (gw, _) = serve_proxy(
        Proxy::new(design(), upstreams, Duration::from_secs(10)).with_ejection(ejection),
    )
    .await;
    for _ in 0..6 {
        let res = client
            .get(format!("http://{gw}/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
    }
    let now = status(&client, gw).await;
    assert_eq!(now["unavailable"], serde_json::json!([]));
    assert_eq!(now["ejections"], serde_json::json!({ "stable": 1 }));
}

#[tokio::test]
async fn a_dead_upstream_costs_no_request_and_a_silent_one_gives_504_naming_the_version() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let dead = closed_port();
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let rules = Config::from_yaml(
        "versions: [stable, canary, v3]\nroutes:\n  - { name: c, match: { headers: [{ name: x-to, exact: canary }] }, to: canary }\n  - { name: v, match: { headers: [{ name: x-to, exact: v3 }] }, to: v3 }\n",
    )
    .unwrap();
    let (gw, _) = gateway(
        Gray::new(rules).unwrap(),
        vec![
            ("stable", uri(stable)),
            ("canary", uri(dead)),
            ("v3", uri(silent_addr)),
        ],
        Duration::from_millis(300),
    )
    .await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{gw}/"))
        .header("x-to", "canary")
        .send()
        .await
        .unwrap();
    // Nothing of it reached the dead canary: the default version served it.
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("stable"));
    let res = client
        .get(format!("http://{gw}/"))
        .header("x-to", "v3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let body = res.text().await.unwrap();
    assert!(body.contains("v3") && body.contains("timed out"), "{body}");
    // The gateway is fine afterwards.
    assert_eq!(version_of(&client, gw, &[]).await, "stable");
    // The timed-out version shows in its metrics as 5xx, and the 300 ms timeout in its
    // latency (nothing at or under 250 ms); the dead one's request as a retry.
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    assert!(
        metrics.contains("gray_requests_total{version=\"v3\",class=\"5xx\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gray_gateway_retries_total{version=\"canary\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gray_request_duration_seconds_bucket{version=\"v3\",le=\"0.25\"} 0\n")
    );
    assert!(metrics.contains("gray_request_duration_seconds_count{version=\"v3\"} 1\n"));
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (upstream, connections) = raw_upstream("hi", false).await;
    let (gw, _) = gateway(
        design(),
        vec![("stable", uri(upstream))],
        Duration::from_secs(5),
    )
    .await;
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let res = client.get(format!("http://{gw}/")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), "hi");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one keep-alive connection for 100 sequential requests"
    );
}

#[tokio::test]
async fn an_upstream_closing_idle_connections_costs_no_request() {
    let (upstream, connections) = raw_upstream("hi", true).await;
    let (gw, _) = gateway(
        design(),
        vec![("stable", uri(upstream))],
        Duration::from_secs(5),
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..50 {
        let res = client.get(format!("http://{gw}/")).send().await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(res.text().await.unwrap(), "hi");
    }
    assert!(connections.load(Ordering::SeqCst) >= 50);
}

#[tokio::test]
async fn the_upstream_gets_origin_form_under_its_base_path() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let base: Target = format!("http://{canary}/base/").parse().unwrap();
    let (gw, _) = gateway(
        design(),
        vec![("stable", uri(stable)), ("canary", base)],
        Duration::from_secs(10),
    )
    .await;
    // Under a base path: prefixed.
    let res = reqwest::Client::new()
        .get(format!("http://{gw}/hello?q=1"))
        .header("x-app-version", "beta")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["path"], "/base/hello");
    // A request in absolute-form (as sent to a forward proxy) goes out in origin-form.
    let mut stream = tokio::net::TcpStream::connect(gw).await.unwrap();
    let head = "GET http://shop.example/hello HTTP/1.1\r\nhost: shop.example\r\n\
                x-user-id: 7\r\nconnection: close\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with(r#"{"path":"/hello","version":"stable"}"#),
        "{response}"
    );
}

#[tokio::test]
async fn an_upstream_deadline_is_never_early_and_late_by_at_most_a_tick() {
    use gray_gateway::upstream::{Deadlines, TICK};
    let deadlines = Arc::new(Deadlines::default());
    deadlines.start();
    deadlines.start(); // a second start does not sweep twice as fast
    let timeout = Duration::from_millis(300);

    let start = std::time::Instant::now();
    let never = deadlines.within(timeout, std::future::pending::<()>());
    assert!(never.await.is_err(), "a request that never answers is cut");
    let waited = start.elapsed();
    assert!(waited >= timeout, "early: {waited:?}");
    // Due within a tick of the deadline; the rest is this machine's scheduling.
    assert!(
        waited < timeout + 2 * TICK + Duration::from_secs(1),
        "{waited:?}"
    );

    // In time: not cut, even by a sweep that falls while it waits (a wait longer than a
    // tick, well inside its deadline however slow a loaded machine's timers are).
    let wait = tokio::time::sleep(TICK + Duration::from_millis(50));
    let in_time = deadlines.within(Duration::from_secs(5), wait);
    assert!(in_time.await.is_ok());

    // Nothing stays in the table: answered, cut or dropped while waiting.
    let mut dropped = Box::pin(deadlines.within(timeout, std::future::pending::<()>()));
    assert!(futures_poll_once(dropped.as_mut()).await.is_none());
    assert_eq!(deadlines.waiting(), 1);
    drop(dropped);
    assert_eq!(deadlines.waiting(), 0);
}

/// Polls `future` once: its output if it was ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
