//! Several endpoints per version: balancing, no failed request when an endpoint or a
//! whole version goes away, no request sent twice, active health checks.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::*;

use gray_gateway::Proxy;
use gray_gateway::upstream::{Ejection, HealthCheck};

const TESTER: [(&str, &str); 1] = [("x-app-version", "beta")];

/// Three canary endpoints share a tester's traffic; one stopped while requests run costs
/// none of them; all three stopped, stable serves it all, and none fails; back, they
/// serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_on_three_endpoints_loses_no_request_when_they_go() {
    let (stable, _stable_stop, _) = stoppable("stable", None).await;
    let mut canaries = Vec::new();
    for _ in 0..3 {
        canaries.push(stoppable("canary", None).await);
    }
    let mut upstreams = vec![("stable".to_owned(), uri(stable))];
    for (addr, _, _) in &canaries {
        upstreams.push(("canary".to_owned(), uri(*addr)));
    }
    let ejection = Ejection {
        after: 2,
        duration: Duration::from_millis(300),
    };
    let (gw, _) = serve_proxy(
        Proxy::new(design(), upstreams, Duration::from_secs(10)).with_ejection(ejection),
    )
    .await;
    let client = reqwest::Client::new();

    // Balanced: each of the three serves a sane share of 600 requests (a third is 200).
    let mut served: HashMap<u64, usize> = HashMap::new();
    for _ in 0..600 {
        let (status, version, at) = who(&client, gw, &TESTER).await;
        assert_eq!((status, version.as_str()), (200, "canary"));
        *served.entry(at).or_default() += 1;
    }
    assert_eq!(served.len(), 3, "{served:?}");
    assert!(served.values().all(|&n| n > 100), "{served:?}");

    // A bounded load (4 clients at once) while the first endpoint stops: none fails.
    let failed = Arc::new(AtomicUsize::new(0));
    let load = |n: usize| {
        let (client, failed) = (client.clone(), Arc::clone(&failed));
        tokio::spawn(async move {
            let mut versions = Vec::new();
            for _ in 0..n {
                let (status, version, at) = who(&client, gw, &TESTER).await;
                if status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                versions.push((version, at));
            }
            versions
        })
    };
    let (first, stop, task) = canaries.remove(0);
    let running: Vec<_> = (0..4).map(|_| load(200)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    for run in running {
        run.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    // Stopped, it serves nothing more; the other two do.
    for _ in 0..50 {
        let (status, version, at) = who(&client, gw, &TESTER).await;
        assert_eq!((status, version.as_str()), (200, "canary"));
        assert_ne!(at, u64::from(first.port()));
    }

    // The other two stop too: the version's traffic goes to stable, none failing.
    let mut stopped = vec![first];
    let running: Vec<_> = (0..4).map(|_| load(200)).collect();
    for (addr, stop, task) in canaries.drain(..) {
        stop.send(()).unwrap();
        task.await.unwrap();
        stopped.push(addr);
    }
    let mut last = Vec::new();
    for run in running {
        last = run.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(
        last.iter().rev().take(10).all(|(v, _)| v == "stable"),
        "{last:?}"
    );
    for _ in 0..20 {
        assert_eq!(who(&client, gw, &TESTER).await.1, "stable");
    }
    let now = status(&client, gw).await;
    assert_eq!(now["unavailable"], serde_json::json!(["canary"]), "{now}");

    // Back on their ports: let in again, they serve the testers again.
    let mut back = Vec::new();
    for addr in &stopped {
        back.push(stoppable("canary", Some(*addr)).await);
    }
    for _ in 0..1_000 {
        if who(&client, gw, &TESTER).await.1 == "canary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until_all_available(&client, gw).await;
    assert_eq!(who(&client, gw, &TESTER).await.1, "canary");
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    for addr in &stopped {
        let up =
            format!("gray_gateway_endpoint_up{{version=\"canary\",endpoint=\"http://{addr}/\"}}");
        assert!(metrics.contains(&up), "{metrics}");
    }
    assert!(!metrics.contains("gray_gateway_retries_total{version=\"canary\"} 0\n"));
}

/// An upstream that read a request and then died may have acted on it: a `POST` is not
/// sent again, anywhere, and the client gets 502 naming the version. Each connection of
/// these upstreams answers its first request and dies on its second, so the second
/// `POST` on a kept-alive connection is read and never answered.
#[tokio::test]
async fn a_request_an_upstream_accepted_is_never_sent_twice() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen = Arc::new(AtomicUsize::new(0));
    let mut dying = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        dying.push(listener.local_addr().unwrap());
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    for answered in [true, false] {
                        // A request: its head, and its 5-byte body.
                        let mut read = Vec::new();
                        while !read.windows(9).any(|w| w == b"\r\n\r\nhello") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => read.extend_from_slice(&buf[..n]),
                            }
                        }
                        seen.fetch_add(1, Ordering::SeqCst);
                        if answered {
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    } // read, then gone without a word
                });
            }
        });
    }
    let (stable, _stop, _) = stoppable("stable", None).await;
    let upstreams = vec![
        ("stable".to_owned(), uri(stable)),
        ("canary".to_owned(), uri(dying[0])),
        ("canary".to_owned(), uri(dying[1])),
    ];
    let ejection = Ejection {
        after: 0,
        duration: Duration::from_secs(1),
    };
    let (gw, _) = serve_proxy(
        Proxy::new(design(), upstreams, Duration::from_secs(10)).with_ejection(ejection),
    )
    .await;
    let client = reqwest::Client::new();
    let (mut answered, mut failed) = (0, 0);
    for i in 1..=20 {
        let res = client
            .post(format!("http://{gw}/order"))
            .header("x-app-version", "beta")
            .body("hello")
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => answered += 1,
            502 => {
                assert!(res.text().await.unwrap().contains("canary"));
                failed += 1;
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            seen.load(Ordering::SeqCst),
            i,
            "request {i} sent more than once"
        );
    }
    assert!(
        answered > 0 && failed > 0,
        "{answered} answered, {failed} failed"
    );
}

/// With `--health-check`, an endpoint whose check fails is out of balancing until it
/// passes, and requests go to the one that passes.
#[tokio::test]
async fn an_endpoint_failing_its_health_check_is_taken_out_until_it_passes() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let sick = serve_app(
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let healthy = flag.load(Ordering::SeqCst);
            async move {
                if req.uri().path() == "/healthz" && !healthy {
                    return (http::StatusCode::SERVICE_UNAVAILABLE, "sick").into_response();
                }
                axum::Json(serde_json::json!({ "version": "canary", "at": 1 })).into_response()
            }
        }),
    )
    .await;
    let (fine, _stop, _) = stoppable("canary", None).await;
    let (stable, _stop_stable, _) = stoppable("stable", None).await;
    let upstreams = vec![
        ("stable".to_owned(), uri(stable)),
        ("canary".to_owned(), uri(sick)),
        ("canary".to_owned(), uri(fine)),
    ];
    let check = HealthCheck {
        path: "/healthz".to_owned(),
        every: Duration::from_millis(50),
    };
    let (gw, _) = serve_proxy(
        Proxy::new(design(), upstreams, Duration::from_secs(10)).health_check(Some(check)),
    )
    .await;
    let client = reqwest::Client::new();
    let out_of = |now: &serde_json::Value, i: usize| now["upstreams"]["canary"][i]["out"] == true;
    let mut now = status(&client, gw).await;
    for _ in 0..500 {
        if out_of(&now, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        now = status(&client, gw).await;
    }
    assert!(out_of(&now, 0) && !out_of(&now, 1), "{now}");
    for _ in 0..50 {
        assert_eq!(who(&client, gw, &TESTER).await.2, u64::from(fine.port()));
    }
    healthy.store(true, Ordering::SeqCst);
    for _ in 0..500 {
        if !out_of(&status(&client, gw).await, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ats = std::collections::HashSet::new();
    for _ in 0..100 {
        ats.insert(who(&client, gw, &TESTER).await.2);
    }
    assert!(
        ats.contains(&1),
        "the healed endpoint serves again: {ats:?}"
    );
    assert_eq!(status(&client, gw).await["ejections"]["canary"], 1);
}

use axum::response::IntoResponse as _;
