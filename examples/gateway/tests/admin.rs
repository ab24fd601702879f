//! The gateway's own endpoints and the --rollout: status, metrics, the admin listener, an operator's orders.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::*;

use gray_core::rollout::RolloutStatus;
use gray_core::{Config, Gray};
use gray_gateway::{Proxy, responder, serve};

#[tokio::test]
async fn status_reports_rules_and_requests_served() {
    let (gw, _) = demo().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        version_of(&client, gw, &[("x-app-version", "beta")]).await;
    }
    let status = get_text(&client, gw, "/gray/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["versions"], serde_json::json!(["stable", "canary"]));
    assert_eq!(status["routes"][0]["name"], "testers");
    assert_eq!(status["routes"][2]["weights"]["canary"], 10.0);
    assert_eq!(
        status["routes"][2]["by"],
        serde_json::json!({ "header": "x-user-id" })
    );
    assert_eq!(status["served"]["canary"], 3);
    assert_eq!(status["rejected_labels"], 0);
    assert_eq!(status["waiting_for_upstreams"], 0);

    // The same counts, with status classes and latency, for Prometheus; the gateway's own
    // endpoints are not counted.
    let metrics = client
        .get(format!("http://{gw}/gray/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("gray_requests_total{version=\"canary\",class=\"2xx\"} 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("gray_requests_total{version=\"stable\",class=\"2xx\"} 0\n"));
    assert!(metrics.contains("gray_request_duration_seconds_count{version=\"canary\"} 3\n"));
    assert!(metrics.contains("\ngray_rejected_labels_total 0\n"));

    // A client trying to pick its version at this edge: overwritten, and counted.
    let spoofed = [("x-app-version", "beta"), ("x-gray-version", "stable")];
    assert_eq!(version_of(&client, gw, &spoofed).await, "canary");
    let status = get_text(&client, gw, "/gray/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["rejected_labels"], 1);
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    assert!(
        metrics.contains("\ngray_rejected_labels_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_an_admin_listener_the_proxy_port_forwards_every_path() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let proxy = Arc::new(Proxy::new(
        design(),
        vec![("stable".to_owned(), uri(stable))],
        Duration::from_secs(5),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (gw, admin_at) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
    tokio::spawn(serve(listener, Some(admin), proxy, std::future::pending()));
    let client = reqwest::Client::new();

    // On the proxy's port, `/gray/status` is just a path: the upstream answers it.
    let proxied = get_text(&client, gw, "/gray/status").await;
    assert_eq!(
        proxied, r#"{"path":"/gray/status","version":"stable"}"#,
        "{proxied}"
    );
    // The admin port answers the gateway's own endpoints, and nothing else.
    let status: serde_json::Value =
        serde_json::from_str(&get_text(&client, admin_at, "/gray/status").await).unwrap();
    assert_eq!(status["routes"][0]["name"], "testers");
    assert_eq!(status["served"]["stable"], 1);
    let metrics = get_text(&client, admin_at, "/gray/metrics").await;
    assert!(metrics.contains("gray_requests_total{version=\"stable\",class=\"2xx\"} 1\n"));
    let other = client
        .get(format!("http://{admin_at}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn a_rollout_judges_real_traffic_and_rolls_a_failing_canary_back() {
    let stable = responder("stable".to_owned()).await.unwrap();
    // A canary that fails every request.
    let broken = axum::Router::new()
        .fallback(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "canary broke") });
    let canary = serve_app(broken).await;
    let rules = "versions: [stable, canary]\nroutes:\n  - { name: users, split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } } }\n";
    let gray = Gray::new(Config::from_yaml(rules).unwrap()).unwrap();
    let (gw, proxy) = gateway(
        gray.clone(),
        vec![("stable", uri(stable)), ("canary", uri(canary))],
        Duration::from_secs(5),
    )
    .await;
    let mut analysis = gray_core::rollout::Analysis::default();
    analysis.min_requests = 10;
    // Judged hourly: not before the test ends, unless a step is ordered.
    let rollout = gray_core::rollout::Rollout::new(gray.clone(), "users", "canary", [20.0, 100.0])
        .unwrap()
        .analysis(analysis);
    gray_gateway::start_rollout(&proxy, rollout, Duration::from_secs(3600)).unwrap();
    let handle = proxy.rollout().unwrap().clone();

    let client = reqwest::Client::new();
    let status_of = |user: u32| {
        let req = client
            .get(format!("http://{gw}/"))
            .header("x-user-id", user.to_string());
        async move { req.send().await.unwrap().status() }
    };
    // How many of users 0..200 the broken canary answered.
    let failures = || async {
        let mut failed = 0;
        for user in 0..200 {
            failed += usize::from(status_of(user).await == 500);
        }
        failed
    };
    let failed = failures().await;
    assert!(
        (20..=60).contains(&failed),
        "{failed} of 200 on the 20% canary"
    );

    // One step of the rollout, as its timer would: the canary is judged and rolled back.
    let stepped = handle.step().await.unwrap();
    assert!(
        matches!(stepped, RolloutStatus::RolledBack { .. }),
        "{stepped:?}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&get_text(&client, gw, "/gray/status").await).unwrap();
    assert_eq!(status["rollout"]["state"], "rolled back", "{status}");
    assert!(
        status["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("5xx")
    );
    assert_eq!(status["routes"][0]["weights"]["canary"], 0.0);
    for user in 0..50 {
        assert_eq!(status_of(user).await, 200, "user {user} after the rollback");
    }

    // The rules file edited afterwards, its split still at 90/10: the rolled-back canary
    // stays out while the rollout holds it.
    let edited = rules.replace("stable: 100, canary: 0", "stable: 90, canary: 10");
    gray.reload(Config::from_yaml(&edited).unwrap()).unwrap();
    for user in 0..50 {
        assert_eq!(status_of(user).await, 200, "user {user} after the edit");
    }
    handle.release().await.unwrap();
    gray.reload(Config::from_yaml(&edited).unwrap()).unwrap();
    let failed = failures().await;
    assert!(
        (5..=40).contains(&failed),
        "{failed} of 200 once the rollout let go"
    );
}

/// An operator orders a running `--rollout` about on the admin listener: `POST
/// /gray/rollout/pause` holds its stage until `POST /gray/rollout/resume`, `POST
/// /gray/rollout/promote` moves it to its next stage at once, `POST
/// /gray/rollout/roll-back` puts the canary to 0% at once, and it stays there through an
/// edit of the rules. On the proxy's port those paths are the upstreams', like any other.
#[tokio::test]
async fn an_operator_pauses_promotes_and_rolls_back_a_rollout_on_the_admin_listener_only() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let rules = "versions: [stable, canary]\nroutes:\n  - { name: users, split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } } }\n";
    let gray = Gray::new(Config::from_yaml(rules).unwrap()).unwrap();
    let proxy = Arc::new(Proxy::new(
        gray.clone(),
        vec![
            ("stable".to_owned(), uri(stable)),
            ("canary".to_owned(), uri(canary)),
        ],
        Duration::from_secs(5),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (gw, admin_at) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        Some(admin),
        Arc::clone(&proxy),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let order = |at: SocketAddr, action: &str| {
        client
            .post(format!("http://{at}/gray/rollout/{action}"))
            .send()
    };
    let roll_back = |at: SocketAddr| order(at, "roll-back");

    // No rollout yet: nothing to order.
    assert_eq!(roll_back(admin_at).await.unwrap().status(), 409);
    for action in ["promote", "pause", "resume"] {
        assert_eq!(order(admin_at, action).await.unwrap().status(), 409);
    }

    // A rollout at its first stage (50%), judged hourly: not before the test ends.
    let rollout =
        gray_core::rollout::Rollout::new(gray.clone(), "users", "canary", [50.0, 100.0]).unwrap();
    gray_gateway::start_rollout(&proxy, rollout, Duration::from_secs(3600)).unwrap();
    // One rollout per gateway.
    let second = gray_core::rollout::Rollout::new(gray.clone(), "users", "canary", [10.0]).unwrap();
    assert!(gray_gateway::start_rollout(&proxy, second, Duration::from_secs(3600)).is_err());
    let on_canary = || async {
        let mut canary = 0;
        for user in 0..100 {
            let user = user.to_string();
            canary +=
                usize::from(version_of(&client, gw, &[("x-user-id", &user)]).await == "canary");
        }
        canary
    };
    let before = on_canary().await;
    assert!((25..=75).contains(&before), "{before} of 100 at 50%");

    // The proxy's port: the upstream answers the path (the responder echoes a POST).
    let proxied = roll_back(gw).await.unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(on_canary().await, before, "nothing rolled back");

    // Paused, then resumed: the stage and its weight stay.
    let state = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 200);
        let status: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        status
    };
    let status = state(order(admin_at, "pause").await.unwrap()).await;
    assert_eq!(status["state"], "paused", "{status}");
    assert_eq!(status["stage"], 0, "{status}");
    assert!(status["stage_seconds"].as_u64().is_some(), "{status}");
    assert!(
        status["reason"].as_str().unwrap().contains("operator"),
        "{status}"
    );
    assert_eq!(on_canary().await, before, "the stage's weight stays");
    let status = state(order(admin_at, "resume").await.unwrap()).await;
    assert_eq!(status["state"], "progressing", "{status}");
    assert_eq!(status["weight"], 50.0, "{status}");

    // Promoted: the next stage (100%) at once, with no traffic judged.
    let status = state(order(admin_at, "promote").await.unwrap()).await;
    assert_eq!(status["state"], "progressing", "{status}");
    assert_eq!(status["weight"], 100.0, "{status}");
    assert_eq!(on_canary().await, 100);

    // The admin listener: rolled back, at once.
    let status = state(roll_back(admin_at).await.unwrap()).await;
    assert_eq!(status["state"], "rolled back", "{status}");
    assert_eq!(status["stage_seconds"], serde_json::Value::Null, "{status}");
    assert!(
        status["reason"].as_str().unwrap().contains("operator"),
        "{status}"
    );
    assert_eq!(on_canary().await, 0);
    // Held: an edit of the rules that gives the canary 10% changes nothing.
    let edited = rules.replace("stable: 100, canary: 0", "stable: 90, canary: 10");
    gray.reload(Config::from_yaml(&edited).unwrap()).unwrap();
    assert_eq!(on_canary().await, 0);
}
