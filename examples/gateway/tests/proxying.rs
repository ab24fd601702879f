//! Proxying: bodies, hop-by-hop headers, WebSockets, bad input, graceful stop, mirrored copies.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

use gray_core::{Config, Gray};
use gray_gateway::{Proxy, responder, serve};

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
        .header("te", "deflate") // of `TE`, only `trailers` goes on (below)
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

    // `TE: trailers` goes on, as gRPC needs it to, even when `Connection` names it.
    let body = reqwest::Client::new()
        .get(format!("http://{gw}/"))
        .header("connection", "te")
        .header("te", "deflate, trailers")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.split('|')
            .next()
            .unwrap()
            .split(',')
            .any(|n| n == "te"),
        "{body}"
    );

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
    let canary_metrics = proxy.gray().metrics();
    let canary_metrics = canary_metrics.version("canary").unwrap();
    assert_eq!(canary_metrics.error_rate(), 0.5);
    assert!(stable.try_recv().is_err() && canary.try_recv().is_err());
}

/// A mirror version that never answers holds at most `MAX_COPIES_IN_FLIGHT` copies (a task
/// and a connection each); past that, requests go uncopied, and every request is served
/// at once by its own version all along.
#[tokio::test]
async fn copies_to_a_mirror_version_that_never_answers_are_capped() {
    use gray_gateway::MAX_COPIES_IN_FLIGHT;
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

/// `X-Forwarded-Proto` and `X-Forwarded-Host` say what the client asked for, whatever it
/// claimed in them; `Host` is the endpoint's, or the client's with `--preserve-host`.
#[tokio::test]
async fn forwarding_headers_say_what_the_client_asked_for() {
    let echo = serve_app(
        axum::Router::new().fallback(|headers: http::HeaderMap| async move {
            let get = |name: &str| {
                let value = headers.get(name).and_then(|v| v.to_str().ok());
                value.unwrap_or("-").to_owned()
            };
            axum::Json(serde_json::json!({
                "host": get("host"),
                "proto": get("x-forwarded-proto"),
                "forwarded_host": get("x-forwarded-host"),
                "for": get("x-forwarded-for"),
            }))
        }),
    )
    .await;
    let client = reqwest::Client::new();
    for preserve in [false, true] {
        let proxy = Proxy::new(
            design(),
            vec![("stable".to_owned(), uri(echo))],
            Duration::from_secs(5),
        )
        .preserve_host(preserve);
        let (gw, _) = serve_proxy(proxy).await;
        let res = client
            .get(format!("http://{gw}/"))
            .header("host", "shop.example")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .send()
            .await
            .unwrap();
        let seen: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        let host = if preserve {
            "shop.example".to_owned()
        } else {
            echo.to_string()
        };
        assert_eq!(seen["host"], host.as_str(), "{seen}");
        assert_eq!(seen["proto"], "http", "{seen}");
        assert_eq!(seen["forwarded_host"], "shop.example", "{seen}");
        assert_eq!(seen["for"], "127.0.0.1", "{seen}");
    }
}

/// With an access log, each request proxied is a JSON line with its version, route,
/// status, endpoint and whether it was retried.
#[tokio::test]
async fn the_access_log_has_a_json_line_per_request_tagged_by_version() {
    let stable = responder("stable".to_owned()).await.unwrap();
    let canary = responder("canary".to_owned()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("gray-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("access.log");
    let _ = std::fs::remove_file(&file);
    let upstreams = vec![
        ("stable".to_owned(), uri(stable)),
        ("canary".to_owned(), uri(closed_port())),
        ("canary".to_owned(), uri(canary)),
    ];
    let proxy = Proxy::new(design(), upstreams, Duration::from_secs(5))
        .access_log(Some(file.to_str().unwrap()))
        .unwrap();
    let (gw, _) = serve_proxy(proxy).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        assert_eq!(
            version_of(&client, gw, &[("x-app-version", "beta")]).await,
            "canary"
        );
    }
    assert_eq!(
        version_of(&client, gw, &[("x-user-id", "7")]).await,
        "stable"
    );
    let lines = support::access_lines(&file, 21).await;
    for line in &lines[..20] {
        assert_eq!(line["version"], "canary", "{line}");
        assert_eq!(line["route"], "testers", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["path"], "/hello", "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["endpoint"], format!("http://{canary}/"), "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
    }
    // The dead endpoint was tried first by some of them (each picks it with a chance of
    // one in two, until it is taken out), and they say so.
    assert!(
        lines[..20].iter().any(|l| l["retried"] == true),
        "{lines:?}"
    );
    assert_eq!(lines[20]["version"], "stable");
    assert_eq!(lines[20]["route"], "users");
    assert_eq!(lines[20]["retried"], false);
    std::fs::remove_dir_all(&dir).unwrap();
}
