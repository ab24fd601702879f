//! Routing: header rules, sticky splits, client addresses, labels in and out, key cookies, reloads.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

use gray_core::reload::Watcher;
use gray_core::{Config, Gray};
use gray_gateway::responder;

#[tokio::test]
async fn header_rules_and_a_sticky_split() {
    let (gw, _) = demo().await;
    let client = reqwest::Client::new();
    assert_eq!(
        version_of(&client, gw, &[("x-app-version", "beta")]).await,
        "canary"
    );
    let premium = [("x-user-tier", "premium"), ("x-activity-level", "high")];
    assert_eq!(version_of(&client, gw, &premium).await, "canary");

    let mut canary = 0;
    for user in 0..1000 {
        let id = user.to_string();
        let v = version_of(&client, gw, &[("x-user-id", &id)]).await;
        if user < 50 {
            assert_eq!(
                version_of(&client, gw, &[("x-user-id", &id)]).await,
                v,
                "sticky"
            );
        }
        canary += usize::from(v == "canary");
    }
    // 10% of 1000 users: sigma 9.5, within 5 sigma.
    assert!((53..=147).contains(&canary), "{canary} of 1000 on canary");
}

/// Rules on the client's address: the connection's, or behind a trusted proxy the one
/// its `x-forwarded-for` names; a client that is no trusted proxy is not believed.
#[tokio::test]
async fn the_client_address_decides_and_only_trusted_proxies_name_it() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let rules = |trusted: &str| {
        Gray::new(
            Config::from_yaml(&format!(
                "real_ip: {{ trusted: [{trusted}] }}
versions: [stable, canary]
routes:
  - name: office
    match: {{ client_ip: {{ cidr: [198.51.100.0/24] }} }}
    to: canary
  - name: here
    match: {{ client_ip: {{ cidr: [127.0.0.0/8], invert: true }} }}
    to: canary
"
            ))
            .unwrap(),
        )
        .unwrap()
    };
    let upstreams = || vec![("stable", uri(stable)), ("canary", uri(canary))];
    let client = reqwest::Client::new();
    let xff = |v| [("x-forwarded-for", v)];

    // Proxies on this machine are trusted: the gateway's own entry (it appends the peer,
    // 127.0.0.1) and 127.0.0.9's are passed over.
    let (gw, _) = gateway(rules("127.0.0.0/8"), upstreams(), Duration::from_secs(10)).await;
    assert_eq!(version_of(&client, gw, &[]).await, "stable");
    assert_eq!(
        version_of(&client, gw, &xff("198.51.100.4")).await,
        "canary"
    );
    assert_eq!(
        version_of(&client, gw, &xff("198.51.100.4, 127.0.0.9")).await,
        "canary"
    );
    assert_eq!(version_of(&client, gw, &xff("203.0.113.9")).await, "canary");

    let (gw, _) = gateway(rules("10.0.0.0/8"), upstreams(), Duration::from_secs(10)).await;
    assert_eq!(
        version_of(&client, gw, &xff("198.51.100.4")).await,
        "stable"
    );
}

/// A gateway inside the system (`inherit: always`) honours a label only from the peers
/// `label.from` lists: it hands the engine the connection's peer for it.
#[tokio::test]
async fn an_inner_gateway_takes_labels_only_from_label_from() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let rules = |from: &str| {
        let yaml =
            format!("label: {{ inherit: always, from: [{from}] }}\nversions: [stable, canary]\n");
        Gray::new(Config::from_yaml(&yaml).unwrap()).unwrap()
    };
    let upstreams = || vec![("stable", uri(stable)), ("canary", uri(canary))];
    let client = reqwest::Client::new();
    let labelled = [("x-gray-version", "canary")];
    let (gw, _) = gateway(rules("127.0.0.0/8"), upstreams(), Duration::from_secs(10)).await;
    assert_eq!(version_of(&client, gw, &labelled).await, "canary");
    let (gw, proxy) = gateway(rules("10.0.0.0/8"), upstreams(), Duration::from_secs(10)).await;
    assert_eq!(version_of(&client, gw, &labelled).await, "stable");
    assert_eq!(proxy.gray().rejected_labels(), 1);
}

/// A split with `set_cookie:` gives a visitor without its cookie a key on the proxied
/// answer; sent back, the key keeps the visitor on the version its first request went to.
#[tokio::test]
async fn a_new_visitor_gets_a_key_cookie_that_keeps_it_on_its_version() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let rules = Config::from_yaml(
        "versions: [stable, canary]\nroutes:\n  - { name: visitors, split: { by: { cookie: gray-uid }, weights: { stable: 50, canary: 50 }, set_cookie: {} } }\n",
    )
    .unwrap();
    let (gw, _) = gateway(
        Gray::new(rules).unwrap(),
        vec![("stable", uri(stable)), ("canary", uri(canary))],
        Duration::from_secs(10),
    )
    .await;
    let client = reqwest::Client::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let res = client
            .get(format!("http://{gw}/hello"))
            .send()
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("a key for a new visitor");
        let key = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert!(key.starts_with("gray-uid="), "{key}");
        let first: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        let served = first["version"].as_str().unwrap().to_owned();
        seen.insert(served.clone());
        for _ in 0..2 {
            let res = client
                .get(format!("http://{gw}/hello"))
                .header("cookie", &key)
                .send()
                .await
                .unwrap();
            assert!(res.headers().get("set-cookie").is_none(), "{key}");
            let again: serde_json::Value =
                serde_json::from_str(&res.text().await.unwrap()).unwrap();
            assert_eq!(again["version"], served.as_str(), "{key}");
        }
    }
    // 20 new visitors at 50/50: both versions got some (all on one: p = 2⁻¹⁹).
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// client → the gateway (an edge) → `middle`, which passes `baggage` on and drops every
/// other header, as OpenTelemetry-instrumented services do → `inner`, behind GrayLayer
/// with `inherit: always`, answering the version it serves.
#[tokio::test]
async fn the_label_crosses_a_baggage_only_hop_and_a_spoofed_one_does_not() {
    let inner_rules = "label: { inherit: always }\nversions: [stable, canary]\n";
    let inner = axum::Router::new()
        .fallback(|| async {
            gray_core::GrayContext::current().map_or("none".to_owned(), |c| c.version().to_owned())
        })
        .layer(gray_tower::GrayLayer::new(
            Gray::new(Config::from_yaml(inner_rules).unwrap()).unwrap(),
        ));
    let inner = serve_app(inner).await;
    let hop = reqwest::Client::new();
    let middle = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let hop = hop.clone();
        async move {
            let mut call = hop.get(format!("http://{inner}/"));
            for value in headers.get_all("baggage") {
                call = call.header("baggage", value.clone());
            }
            call.send().await.unwrap().text().await.unwrap()
        }
    });
    let middle = serve_app(middle).await;
    let edge = design();
    let (gw, _) = gateway(
        edge.clone(),
        vec![("stable", uri(middle)), ("canary", uri(middle))],
        Duration::from_secs(5),
    )
    .await;
    let client = reqwest::Client::new();
    let inner_version = |headers: Vec<(&'static str, String)>| {
        let call = headers
            .into_iter()
            .fold(client.get(format!("http://{gw}/")), |call, (k, v)| {
                call.header(k, v)
            });
        async move { call.send().await.unwrap().text().await.unwrap() }
    };

    // A tester is on canary all the way in: the gateway wrote the label in baggage too.
    let tester = vec![("x-app-version", "beta".to_owned())];
    assert_eq!(inner_version(tester).await, "canary");
    let mut stable_users = 0;
    for user in 0..50 {
        let id = format!("hop-{user}");
        let want = edge
            .decide(
                &http::Request::get("/")
                    .header("x-user-id", &id)
                    .body(())
                    .unwrap(),
            )
            .version()
            .to_owned();
        stable_users += usize::from(want == "stable");
        // A user's own version reaches the inner service, whatever the baggage said.
        let spoofing = vec![
            ("x-user-id", id.clone()),
            ("baggage", "gray=canary,session=1".to_owned()),
        ];
        assert_eq!(inner_version(spoofing).await, want, "user {id}");
    }
    assert!(
        stable_users > 30,
        "the spoof would have moved these to canary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_rules_file_while_requests_flow_fails_none() {
    let dir = std::env::temp_dir().join(format!("gray-gateway-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.yaml");
    let rules = |canary: u32| {
        format!(
            "versions: [stable, canary]\nroutes:\n  - name: users\n    split: {{ by: {{ header: x-user-id }}, weights: {{ stable: {}, canary: {canary} }} }}\n",
            100 - canary
        )
    };
    std::fs::write(&path, rules(0)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = Watcher::new(gray.clone(), &path, move |r| {
        let _ = tx.send(r.is_ok());
    })
    .unwrap();
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let (gw, _) = gateway(
        gray,
        vec![("stable", uri(stable)), ("canary", uri(canary))],
        Duration::from_secs(10),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let res = client
                    .get(format!("http://{gw}/flow"))
                    .header("x-user-id", format!("{worker}-{i}"))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for round in 1..=20 {
        let tmp = dir.join("rules.yaml.tmp");
        std::fs::write(&tmp, rules(if round % 2 == 1 { 100 } else { 0 })).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let reloaded = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a reload report");
        assert!(reloaded, "round {round}");
        let client = reqwest::Client::new();
        let want = if round % 2 == 1 { "canary" } else { "stable" };
        assert_eq!(
            version_of(&client, gw, &[("x-user-id", "probe")]).await,
            want,
            "round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 20, "requests flowed");

    // A bad edit is refused, and says so in the status and the metrics.
    let tmp = dir.join("rules.yaml.tmp");
    std::fs::write(&tmp, rules(0).replace("stable: 100", "stable: 10")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let reloaded = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a reload report");
    assert!(!reloaded, "refused");
    let client = reqwest::Client::new();
    let reloads = status(&client, gw).await["reloads"].clone();
    assert_eq!(reloads["applied"], 20, "{reloads}");
    assert_eq!(reloads["refused"], 1, "{reloads}");
    let error = reloads["last_error"].as_str().unwrap();
    assert!(
        error.contains("rules.yaml") && error.contains("weights sum to 10"),
        "{error}"
    );
    assert_eq!(
        reloads["fingerprint"].as_str().map(str::len),
        Some(16),
        "{reloads}"
    );
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "gray_config_last_reload_successful 0"),
        "{metrics}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
