//! The gateway on 127.0.0.1:0 in front of real upstream servers.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

#[allow(dead_code)]
#[path = "../examples/gateway/main.rs"]
mod gateway;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gateway::{Proxy, responder, serve};
use gray_core::reload::Watcher;
use gray_core::rollout::RolloutStatus;
use gray_core::{Config, Gray};
use http::Uri;

fn design() -> Gray {
    Gray::from_path(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules.yaml")).unwrap()
}

/// Serves `app` on an ephemeral loopback port.
async fn serve_app(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn uri(addr: SocketAddr) -> Uri {
    format!("http://{addr}").parse().unwrap()
}

/// A gateway in front of `upstreams`, on an ephemeral port.
async fn gateway(
    gray: Gray,
    upstreams: Vec<(&str, Uri)>,
    timeout: Duration,
) -> (SocketAddr, Arc<Proxy>) {
    let upstreams = upstreams
        .into_iter()
        .map(|(v, u)| (v.to_owned(), u))
        .collect();
    serve_proxy(Proxy::new(gray, upstreams, timeout)).await
}

/// A loopback address nothing listens on: a port the system handed out, then closed.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `proxy` served on an ephemeral port.
async fn serve_proxy(proxy: Proxy) -> (SocketAddr, Arc<Proxy>) {
    let proxy = Arc::new(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        None,
        Arc::clone(&proxy),
        std::future::pending(),
    ));
    (addr, proxy)
}

/// The demo: the example rules, a built-in responder per version.
async fn demo() -> (SocketAddr, Arc<Proxy>) {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    gateway(
        design(),
        vec![("stable", uri(stable)), ("canary", uri(canary))],
        Duration::from_secs(10),
    )
    .await
}

/// The body of `GET http://{gw}{path}`.
async fn get_text(client: &reqwest::Client, gw: SocketAddr, path: &str) -> String {
    let res = client
        .get(format!("http://{gw}{path}"))
        .send()
        .await
        .unwrap();
    res.text().await.unwrap()
}

async fn version_of(client: &reqwest::Client, gw: SocketAddr, headers: &[(&str, &str)]) -> String {
    let mut req = client.get(format!("http://{gw}/hello"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["path"], "/hello");
    body["version"].as_str().unwrap().to_owned()
}

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
    assert_eq!(proxy.gray.rejected_labels(), 1);
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

/// `GET /gray/status` as JSON.
async fn status(client: &reqwest::Client, gw: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get_text(client, gw, "/gray/status").await).unwrap()
}

/// Waits (bounded, 10 ms steps) until the gateway lets every version back in: its own
/// timer, which nothing outside can await.
async fn until_all_available(client: &reqwest::Client, gw: SocketAddr) {
    for _ in 0..1_000 {
        if status(client, gw).await["unavailable"] == serde_json::json!([]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a version was never let back in");
}

/// A version whose upstream stops answering is taken out after `after` failures in a
/// row, its requests served by the default version; let back in after `duration`, it is
/// taken out again by its next failure, and serves again once its upstream answers. The
/// default version is never taken out.
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
    let ejection = gateway::eject::Ejection {
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
        assert_eq!(beta(&client).await.unwrap().status(), 502);
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
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    assert!(
        metrics.contains("\ngray_version_available{version=\"canary\"} 0\n"),
        "{metrics}"
    );

    // Let back in while its upstream is still down: one failure takes it out again.
    until_all_available(&client, gw).await;
    assert_eq!(beta(&client).await.unwrap().status(), 502);
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

    // The default version has nowhere to go: never taken out.
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
    assert_eq!(now["ejections"], serde_json::json!({ "stable": 0 }));
}

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
async fn a_body_streams_both_ways() {
    let (gw, _) = demo().await;
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let res = reqwest::Client::new()
        .post(format!("http://{gw}/upload"))
        .header("x-app-version", "beta")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap() == body, "8 MiB round trip");
}

#[tokio::test]
async fn a_dead_or_silent_upstream_gives_502_naming_the_version() {
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
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("canary"));
    let res = client
        .get(format!("http://{gw}/"))
        .header("x-to", "v3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body = res.text().await.unwrap();
    assert!(body.contains("v3") && body.contains("timed out"), "{body}");
    // The gateway is fine afterwards.
    assert_eq!(version_of(&client, gw, &[]).await, "stable");
    // Each failed version shows in its metrics as 5xx, and the 300 ms timeout in its
    // latency (nothing at or under 250 ms).
    let metrics = get_text(&client, gw, "/gray/metrics").await;
    for version in ["canary", "v3"] {
        let line = format!("gray_requests_total{{version=\"{version}\",class=\"5xx\"}} 1\n");
        assert!(metrics.contains(&line), "{metrics}");
    }
    assert!(
        metrics.contains("gray_request_duration_seconds_bucket{version=\"v3\",le=\"0.25\"} 0\n")
    );
    assert!(metrics.contains("gray_request_duration_seconds_count{version=\"v3\"} 1\n"));
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_gateway_and_the_label_goes_on() {
    let echo = axum::Router::new().fallback(|headers: http::HeaderMap| async move {
        let mut names: Vec<String> = headers.keys().map(|k| k.to_string()).collect();
        names.sort();
        let value = |name: &str| {
            headers
                .get(name)
                .map_or("none", |v| v.to_str().unwrap_or("?"))
                .to_owned()
        };
        format!(
            "{}|{}|{}|{}",
            names.join(","),
            value("x-gray-version"),
            value("baggage"),
            value("x-forwarded-for")
        )
    });
    let upstream = serve_app(echo).await;
    let (gw, _) = gateway(
        design(),
        vec![("stable", uri(upstream))],
        Duration::from_secs(5),
    )
    .await;

    let body = reqwest::Client::new()
        .get(format!("http://{gw}/"))
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("upgrade", "websocket") // not named in `Connection`: no switch asked
        .header("x-app-version", "beta")
        .header("x-gray-version", "stable")
        .header("baggage", "gray=stable,a=1")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-for", "10.0.0.2")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let [names, label, baggage, forwarded] = body.splitn(4, '|').collect::<Vec<_>>()[..] else {
        panic!("{body}")
    };
    for gone in ["x-secret", "keep-alive", "te", "connection", "upgrade"] {
        assert!(
            !names.split(',').any(|n| n == gone),
            "{gone} forwarded: {names}"
        );
    }
    assert!(names.contains("x-app-version"));
    // Canary has no upstream here: the default's serves it, labelled canary — in the
    // label header and in baggage, whatever the client said in either.
    assert_eq!(label, "canary");
    assert_eq!(baggage, "a=1,gray=canary");
    // The client's address joins the list the client sent.
    assert_eq!(forwarded, "10.0.0.1, 10.0.0.2, 127.0.0.1");

    // The label is the gateway's own header: a client naming it in `Connection` does not
    // strip it from the request the gateway sends on.
    let res = reqwest::Client::new()
        .get(format!("http://{gw}/"))
        .header("connection", "x-gray-version")
        .header("x-app-version", "beta")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert_eq!(body.split('|').nth(1), Some("canary"), "{body}");
    assert_eq!(body.split('|').nth(3), Some("127.0.0.1"), "{body}");
}

/// A WebSocket upstream: says who it is and the label it got, then echoes each text
/// message with its name; a plain `GET /plain` refuses to switch.
fn websocket_upstream(name: &'static str) -> axum::Router {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    axum::Router::new()
        .route(
            "/chat",
            axum::routing::get(
                move |ws: WebSocketUpgrade, headers: http::HeaderMap| async move {
                    let label = headers
                        .get("x-gray-version")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    ws.on_upgrade(move |mut socket| async move {
                        let hello = Message::text(format!("{name} {label}"));
                        if socket.send(hello).await.is_err() {
                            return;
                        }
                        while let Some(Ok(Message::Text(text))) = socket.recv().await {
                            let echo = Message::text(format!("{name}: {}", text.as_str()));
                            if socket.send(echo).await.is_err() {
                                return;
                            }
                        }
                    })
                },
            ),
        )
        .route(
            "/plain",
            axum::routing::get(|| async { "no switching here" }),
        )
}

/// A WebSocket through the gateway: the handshake is routed like any request and goes
/// to its version's upstream, labelled, and then messages flow both ways through the
/// tunnel — several sockets at once, each on its own version.
#[tokio::test]
async fn a_websocket_goes_to_its_version_and_messages_flow_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let stable = serve_app(websocket_upstream("stable")).await;
    let canary = serve_app(websocket_upstream("canary")).await;
    let gray = design();
    let (gw, _) = gateway(
        gray.clone(),
        vec![("stable", uri(stable)), ("canary", uri(canary))],
        Duration::from_secs(5),
    )
    .await;

    let mut sockets = Vec::new();
    for (name, value, want) in [
        ("x-app-version", "beta", "canary"),
        ("x-user-id", "7", "stable"),
        ("x-user-id", "3", "canary"),
    ] {
        let mut request = format!("ws://{gw}/chat").into_client_request().unwrap();
        request
            .headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
        let (mut socket, res) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(res.status(), 101);
        let hello = socket.next().await.unwrap().unwrap();
        assert_eq!(hello.to_text().unwrap(), format!("{want} {want}"));
        sockets.push((socket, want));
    }
    // The three tunnels are open together; each talks to its own upstream.
    for round in 0..3 {
        for (socket, want) in &mut sockets {
            socket
                .send(Message::text(format!("hello {round}")))
                .await
                .unwrap();
            let echo = socket.next().await.unwrap().unwrap();
            assert_eq!(echo.to_text().unwrap(), format!("{want}: hello {round}"));
        }
    }
    for (mut socket, _) in sockets {
        socket.close(None).await.unwrap();
    }
    // Each handshake is a request served by its version (101 counts as 1xx).
    let metrics = gray.metrics();
    let served = |v: &str| metrics.version(v).map(|m| m.total());
    assert_eq!((served("stable"), served("canary")), (Some(1), Some(2)));

    // An upstream that does not switch: its answer reaches the client as it is.
    let refused = tokio_tungstenite::connect_async(format!("ws://{gw}/plain")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 200);
            assert_eq!(res.body().as_deref(), Some(&b"no switching here"[..]));
        }
        other => panic!("expected the upstream's 200, got {other:?}"),
    }
    // The gateway goes on serving plain requests.
    let client = reqwest::Client::new();
    assert_eq!(get_text(&client, gw, "/plain").await, "no switching here");
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

#[tokio::test]
async fn a_malformed_request_does_not_hurt_the_gateway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, _) = demo().await;
    for garbage in [
        &b"\x00\xff\xfe GET\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nx-user-id: \xff\xfe\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
        s.write_all(garbage).await.unwrap();
        let mut buf = vec![0; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    assert_eq!(
        version_of(&reqwest::Client::new(), gw, &[("x-app-version", "beta")]).await,
        "canary"
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

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_in_flight_requests() {
    // An upstream that says when a request reached it, and answers after a signal, so a
    // request is in flight at shutdown.
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel();
    let slow = axum::Router::new().fallback(move || {
        let mut release = release_rx.clone();
        let _ = arrived_tx.send(());
        async move {
            let _ = release.wait_for(|r| *r).await;
            "done"
        }
    });
    let upstream = serve_app(slow).await;

    let proxy = Arc::new(Proxy::new(
        design(),
        vec![("stable".to_owned(), uri(upstream))],
        Duration::from_secs(10),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, None, Arc::clone(&proxy), async {
        let _ = stop_rx.await;
    }));

    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("http://{gw}/slow"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    // Wait until the request has gone through the gateway to the upstream.
    arrived_rx.recv().await.unwrap();
    stop_tx.send(()).unwrap();
    // New connections are refused once the listener is gone...
    let mut refused = false;
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(gw).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "still accepting after shutdown");
    // ...and the request in flight still completes.
    release_tx.send(true).unwrap();
    assert_eq!(in_flight.await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .unwrap();
}

/// A raw upstream: answers each request with `body`, counting connections; with
/// `close_after_one`, it closes every connection after one response, without saying so.
async fn raw_upstream(body: &'static str, close_after_one: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let res = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(res.as_bytes()).await.is_err() {
                            return;
                        }
                        if close_after_one {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, connections)
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

#[test]
fn the_command_line_is_checked() {
    let parse = |args: &[&str]| gateway::parse(args.iter().map(std::ffi::OsString::from));
    let ok = parse(&[
        "--listen",
        "127.0.0.1:9000",
        "--upstream",
        "canary=http://10.0.0.9:8080/v2",
        "--threads",
        "1",
        "--rollout",
        "users:canary:5,30,100",
        "--rollout-every",
        "0.5",
        "--rollout-min-stage",
        "600",
        "--rollout-failure-limit",
        "2",
        "--rollout-min-requests",
        "500",
        "--rollout-max-latency",
        "250",
        "--eject-after",
        "3",
        "--eject-for",
        "2.5",
    ])
    .unwrap();
    assert_eq!(ok.listen.port(), 9000);
    assert_eq!(ok.upstreams[0].0, "canary");
    assert_eq!(ok.threads, Some(1));
    assert_eq!(
        ok.rollout,
        Some(gateway::cli::RolloutSpec {
            route: "users".into(),
            canary: "canary".into(),
            stages: vec![5.0, 30.0, 100.0]
        })
    );
    assert_eq!(ok.rollout_every, Duration::from_millis(500));
    assert_eq!(ok.rollout_min_stage, Duration::from_secs(600));
    assert_eq!(parse(&[]).unwrap().rollout_min_stage, Duration::ZERO);
    assert_eq!(ok.rollout_failure_limit, 2);
    assert_eq!(ok.rollout_analysis.min_requests, 500);
    assert_eq!(
        ok.rollout_analysis.max_latency,
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        parse(&[]).unwrap().rollout_analysis,
        gray_core::rollout::Analysis::default()
    );
    assert_eq!(parse(&[]).unwrap().rollout_failure_limit, 0);
    assert_eq!(
        ok.ejection,
        gateway::eject::Ejection {
            after: 3,
            duration: Duration::from_millis(2500)
        }
    );
    assert_eq!(ok.admin, None);
    assert_eq!(
        parse(&[]).unwrap().ejection,
        gateway::eject::Ejection {
            after: 5,
            duration: Duration::from_secs(10)
        }
    );
    assert_eq!(parse(&["--eject-after", "0"]).unwrap().ejection.after, 0);
    let admin = parse(&["--admin", "127.0.0.1:9901"]).unwrap();
    assert_eq!(admin.admin, Some("127.0.0.1:9901".parse().unwrap()));
    for bad in [
        &["--threads", "0"][..],
        &["--upstream", "canary"],
        &["--upstream", "canary=ftp://x"],
        &["--upstream", "canary=http://x/?q=1"],
        &["--listen", "nowhere"],
        &["--admin", "nowhere"],
        &["--timeout", "-1"],
        &["--rollout", "users:canary"],
        &["--rollout", "users:canary:5,x"],
        &["--rollout-every", "0"],
        &["--rollout-min-stage", "-1"],
        &["--rollout-min-stage", "soon"],
        &["--rollout-failure-limit", "-1"],
        &["--rollout-min-requests", "some"],
        &["--rollout-max-latency", "0"],
        &["--rollout-max-latency", "-5"],
        &["--eject-after", "-1"],
        &["--eject-for", "0"],
        &["--eject-for", "soon"],
        &["--bogus"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
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
    gateway::start_rollout(&proxy, rollout, Duration::from_secs(3600)).unwrap();
    let handle = proxy.rollout.get().unwrap().clone();

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

/// `--rollout-min-stage` holds each stage of the `--rollout` that long: a healthy canary's
/// first stage stays after a step that would widen it without the flag, and a failing
/// canary is rolled back at once all the same; `--rollout-failure-limit` tolerates
/// failing judgements, `--rollout-min-requests` waits for more traffic.
#[test]
fn the_rollout_flags_set_up_the_rollout() {
    let flags = |extra: &[&str]| {
        let mut args = vec!["--rollout", "users:canary:20,100"];
        args.extend_from_slice(extra);
        gateway::parse(args.iter().map(std::ffi::OsString::from)).unwrap()
    };
    let rules = "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { weights: { stable: 100, canary: 0 } }\n";
    // Every request answered `canary_status` on the canary: its stage after one step.
    let stage_after = |options: &gateway::Options, canary_status: u16| {
        let gray = Gray::new(Config::from_yaml(rules).unwrap()).unwrap();
        let mut rollout = options.rollout(&gray).unwrap().unwrap();
        rollout.start().unwrap();
        for _ in 0..2_000 {
            let d = gray.decide(&http::Request::get("/").body(()).unwrap());
            let status = if d.version() == "canary" {
                canary_status
            } else {
                200
            };
            d.measure().unwrap().finish(status);
        }
        rollout.step().unwrap().clone()
    };
    let progressing = |stage, weight| RolloutStatus::Progressing { stage, weight };
    assert_eq!(stage_after(&flags(&[]), 200), progressing(1, 100.0));
    let held = flags(&["--rollout-min-stage", "3600"]);
    assert_eq!(stage_after(&held, 200), progressing(0, 20.0));
    assert!(matches!(
        stage_after(&held, 500),
        RolloutStatus::RolledBack { .. }
    ));
    // One failing judgement tolerated: the stage holds.
    let tolerant = flags(&["--rollout-failure-limit", "1"]);
    assert_eq!(stage_after(&tolerant, 500), progressing(0, 20.0));
    // The canary's ≈ 400 requests are too few to judge when 1,000 are asked for.
    let patient = flags(&["--rollout-min-requests", "1000"]);
    assert_eq!(stage_after(&patient, 500), progressing(0, 20.0));
    // No `--rollout`, no rollout; a bad one is the rules' error.
    let gray = design();
    assert!(
        gateway::parse(Vec::<std::ffi::OsString>::new())
            .unwrap()
            .rollout(&gray)
            .is_none()
    );
    let unknown = gateway::parse(["--rollout", "nope:canary:5"].map(std::ffi::OsString::from));
    assert!(
        unknown.unwrap().rollout(&gray).unwrap().is_err(),
        "no route `nope`"
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
    gateway::start_rollout(&proxy, rollout, Duration::from_secs(3600)).unwrap();
    // One rollout per gateway.
    let second = gray_core::rollout::Rollout::new(gray.clone(), "users", "canary", [10.0]).unwrap();
    assert!(gateway::start_rollout(&proxy, second, Duration::from_secs(3600)).is_err());
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

#[tokio::test]
async fn the_upstream_gets_origin_form_under_its_base_path() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let base: Uri = format!("http://{canary}/base/").parse().unwrap();
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
    use gateway::deadline::{Deadlines, TICK};
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

#[test]
fn upstreams_are_checked_against_the_rules() {
    use gateway::check_upstreams;
    let versions = Config::from_yaml("versions: [stable, canary]\n").unwrap();
    let up = |v: &str| (v.to_owned(), "http://127.0.0.1:9/".parse::<Uri>().unwrap());

    assert_eq!(
        check_upstreams(&versions, &[up("stable"), up("canary")]),
        Ok(vec![])
    );
    // A typo: canary's traffic would silently go to stable's upstream. Both are said.
    let warnings = check_upstreams(&versions, &[up("stable"), up("canry")]).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("declare no version `canry`"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("`canary` has no --upstream"),
        "{warnings:?}"
    );
    // Nothing for the default version, which every version without one falls back to.
    let err = check_upstreams(&versions, &[up("canary")]).unwrap_err();
    assert!(err.contains("default version `stable`"), "{err}");
    // A version routes mirror to, without an upstream: its copies are not sent.
    let mirrored = Config::from_yaml(
        "versions: [stable, canary]\nroutes:\n  - { name: a, to: stable, mirror: { to: canary } }\n  - { name: b, to: stable, mirror: { to: canary } }\n",
    )
    .unwrap();
    let warnings = check_upstreams(&mirrored, &[up("stable")]).unwrap();
    assert_eq!(
        warnings,
        [
            "version `canary` has no --upstream: its requests go to `stable`'s, and the copies mirrored to it (routes: a, b) are not sent"
        ]
    );
}

/// What a recording upstream saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    label: String,
    baggage: String,
    shadow: bool,
    body: Vec<u8>,
}

/// An upstream that reports every request it gets on `tx`, then answers `version` — or
/// `500` on `/api/fail`.
async fn recorder(
    version: &'static str,
    tx: tokio::sync::mpsc::UnboundedSender<Seen>,
) -> SocketAddr {
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let tx = tx.clone();
        async move {
            let (parts, body) = req.into_parts();
            let header = |name: &str| {
                let value = parts.headers.get(name).and_then(|v| v.to_str().ok());
                value.unwrap_or("-").to_owned()
            };
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                label: header("x-gray-version"),
                baggage: header("baggage"),
                shadow: parts
                    .headers
                    .get("x-gray-shadow")
                    .is_some_and(|v| v == "true"),
                body: axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec(),
            };
            let fail = seen.path == "/api/fail";
            tx.send(seen).unwrap();
            let status = if fail { 500 } else { 200 };
            (http::StatusCode::from_u16(status).unwrap(), version)
        }
    });
    serve_app(app).await
}

/// The next request an upstream saw, failing the test after 10 s without one.
async fn next_seen(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the upstream saw no request")
        .unwrap()
}

/// A route's `mirror:` behind the gateway: the client gets its own version's answer, and a
/// copy — same method, path and body, the mirror version's label, `x-gray-shadow: true` —
/// reaches the mirror version's upstream. A body of unknown length (chunked) or over
/// 64 KiB goes to its own version only; so does a request whose mirror version has no
/// upstream (never a second time to the default's). `/gray/status` counts the copies, and
/// the per-version metrics count each under the mirror version with its status.
#[tokio::test]
async fn a_mirrored_request_is_copied_to_the_mirror_version_and_answered_by_its_own() {
    let (stable_tx, mut stable) = tokio::sync::mpsc::unbounded_channel();
    let (canary_tx, mut canary) = tokio::sync::mpsc::unbounded_channel();
    let stable_at = recorder("stable", stable_tx).await;
    let canary_at = recorder("canary", canary_tx).await;
    let rules = "versions: [stable, canary, next]\nroutes:\n  - { name: api, match: { path: { prefix: /api } }, to: stable, mirror: { to: canary } }\n  - { name: orphan, match: { path: { prefix: /orphan } }, to: stable, mirror: { to: next } }\n";
    let (gw, proxy) = gateway(
        Gray::new(Config::from_yaml(rules).unwrap()).unwrap(),
        vec![("stable", uri(stable_at)), ("canary", uri(canary_at))],
        Duration::from_secs(10),
    )
    .await;
    let client = reqwest::Client::new();

    let res = client
        .post(format!("http://{gw}/api/orders?id=7"))
        .body("order-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "stable");
    let original = next_seen(&mut stable).await;
    assert_eq!(
        (
            original.method.as_str(),
            original.label.as_str(),
            original.shadow
        ),
        ("POST", "stable", false)
    );
    assert_eq!(original.body, b"order-1");
    let copy = next_seen(&mut canary).await;
    assert_eq!(
        (
            copy.method.as_str(),
            copy.path.as_str(),
            copy.label.as_str()
        ),
        ("POST", "/api/orders", "canary")
    );
    assert!(copy.shadow, "{copy:?}");
    assert_eq!(copy.baggage, "gray=canary");
    assert_eq!(copy.body, b"order-1");

    // A body of unknown length: streamed to stable, not copied.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(gw).await.unwrap();
        raw.write_all(
            b"POST /api/chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(next_seen(&mut stable).await.body, b"hello");
    // Over 64 KiB: the same.
    let big = vec![b'x'; 70 * 1024];
    let res = client
        .post(format!("http://{gw}/api/big"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(next_seen(&mut stable).await.body, big);
    // A mirror version without an upstream: served once, by stable.
    assert_eq!(get_text(&client, gw, "/orphan").await, "stable");
    assert_eq!(next_seen(&mut stable).await.path, "/orphan");
    // A copy that fails (the canary answers 500) fails only itself.
    assert_eq!(get_text(&client, gw, "/api/fail").await, "stable");
    assert_eq!(next_seen(&mut stable).await.path, "/api/fail");
    let copy = next_seen(&mut canary).await;
    assert_eq!(
        copy.path, "/api/fail",
        "the next copy: none was made meanwhile"
    );
    assert!(copy.body.is_empty());
    // Outside any mirroring route: no copy; and a client cannot pass a request off as a
    // copy, the mark is the gateway's.
    let res = client
        .get(format!("http://{gw}/home"))
        .header("x-gray-shadow", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "stable");
    let home = next_seen(&mut stable).await;
    assert_eq!((home.path.as_str(), home.shadow), ("/home", false));

    // The copies' outcomes reach the status once their answers are in: the failed one is
    // read by the copy's own task, so wait for it (no signal to await from outside).
    let (mut mirror, mut served) = (serde_json::Value::Null, serde_json::Value::Null);
    for _ in 0..200 {
        let status: serde_json::Value =
            serde_json::from_str(&get_text(&client, gw, "/gray/status").await).unwrap();
        assert_eq!(
            status["routes"][0]["mirror"],
            serde_json::json!({ "to": "canary", "percent": 100.0 })
        );
        (mirror, served) = (status["mirror"].clone(), status["served"].clone());
        if mirror["failed"] == 1 && served["canary"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        mirror,
        serde_json::json!({ "sent": 2, "failed": 1, "skipped": 3 }),
        "two copies, one failed; chunked, big and orphan skipped"
    );
    // Each copy counted under canary, with its status: the per-version metrics.
    assert_eq!(served["canary"], 2, "{served}");
    let canary_metrics = proxy.gray.metrics();
    let canary_metrics = canary_metrics.version("canary").unwrap();
    assert_eq!(canary_metrics.error_rate(), 0.5);
    assert!(stable.try_recv().is_err() && canary.try_recv().is_err());
}

/// A mirror version that never answers holds at most `MAX_COPIES_IN_FLIGHT` copies (a task
/// and a connection each); past that, requests go uncopied, and every request is served
/// at once by its own version all along.
#[tokio::test]
async fn copies_to_a_mirror_version_that_never_answers_are_capped() {
    use gateway::mirror::MAX_COPIES_IN_FLIGHT;
    // Accepts connections and reads nothing, answers nothing; keeps them open.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_at = silent.local_addr().unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&held);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
            counted.store(open.len(), Ordering::SeqCst);
        }
    });
    let stable = responder("stable".to_owned()).await.unwrap();
    let rules = "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary } }\n";
    let (gw, _) = gateway(
        Gray::new(Config::from_yaml(rules).unwrap()).unwrap(),
        vec![("stable", uri(stable)), ("canary", uri(silent_at))],
        Duration::from_secs(60),
    )
    .await;
    let client = reqwest::Client::new();
    let extra = 20;
    for _ in 0..MAX_COPIES_IN_FLIGHT + extra {
        let answer = tokio::time::timeout(Duration::from_secs(5), get_text(&client, gw, "/"));
        assert!(answer.await.unwrap().contains("stable"));
    }
    let status: serde_json::Value =
        serde_json::from_str(&get_text(&client, gw, "/gray/status").await).unwrap();
    assert_eq!(
        status["mirror"],
        serde_json::json!({ "sent": MAX_COPIES_IN_FLIGHT, "failed": 0, "skipped": extra }),
    );
    assert!(held.load(Ordering::SeqCst) <= MAX_COPIES_IN_FLIGHT);
}

/// The gateway's log in a pipe or a pod's log (not a terminal) is plain text: no colour
/// escape codes around the level and the fields.
#[test]
fn the_log_is_coloured_only_when_asked() {
    fn logged(ansi: bool) -> String {
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&out);
        let writer = move || Sink(Arc::clone(&sink));
        tracing::subscriber::with_default(gateway::logs(writer, ansi), || {
            tracing::info!(route = "users", "rollout: {:?}", RolloutStatus::Pending);
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let plain = logged(false);
    assert!(
        plain.contains(" INFO gateway: rollout: Pending route=\"users\""),
        "{plain}"
    );
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(logged(true).contains('\x1b'));
}
