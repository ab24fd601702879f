//! GrayLayer on a real axum server, driven by a real reqwest client.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Extension;
use axum::routing::get;
use axum::{Router, body::Body};
use common::{Frames, INTERNAL, edge, expected, gray, serve};
use gray_core::GrayContext;
use gray_tower::{GrayLayer, GrayVersion};
use tower::ServiceExt;

/// Answers `extractor|extension|current|label header values seen`.
async fn who(
    GrayVersion(by_extractor): GrayVersion,
    Extension(by_extension): Extension<GrayContext>,
    headers: http::HeaderMap,
) -> String {
    let current = GrayContext::current().map(|c| c.version().to_owned());
    // The task-local is still there after an await.
    tokio::task::yield_now().await;
    let later = GrayContext::current().map(|c| c.version().to_owned());
    assert_eq!(current, later);
    let labels: Vec<&str> = headers
        .get_all("x-gray-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let label = if labels.is_empty() {
        "-".to_owned()
    } else {
        labels.join(",")
    };
    format!(
        "{}|{}|{}|{label}",
        by_extractor.version(),
        by_extension.version(),
        current.unwrap_or_default()
    )
}

/// Answers the `baggage` headers the handler sees, joined by `|`.
async fn baggage(headers: http::HeaderMap) -> String {
    let values: Vec<&str> = headers
        .get_all("baggage")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join("|")
}

fn app(gray: gray_core::Gray) -> Router {
    Router::new()
        .route("/who", get(who))
        .route("/baggage", get(baggage))
        .layer(GrayLayer::new(gray))
}

#[tokio::test]
async fn the_handler_sees_one_version_three_ways_and_rules_hold() {
    let rules = edge();
    let addr = serve(app(rules.clone())).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/who");

    let res = common::get(&client, url.clone(), &[("x-app-version", "beta")]).await;
    assert_eq!(res.text().await.unwrap(), "canary|canary|canary|canary");

    let premium = [("x-user-tier", "premium"), ("x-activity-level", "high")];
    let res = common::get(&client, url.clone(), &premium).await;
    assert_eq!(res.text().await.unwrap(), "canary|canary|canary|canary");

    let mut canary = 0;
    for user in 0..200 {
        let id = user.to_string();
        let headers = [("x-user-id", id.as_str())];
        let want = expected(&rules, &headers);
        for _ in 0..2 {
            let body = common::get(&client, url.clone(), &headers)
                .await
                .text()
                .await
                .unwrap();
            assert_eq!(body, format!("{want}|{want}|{want}|{want}"), "user {user}");
        }
        canary += usize::from(want == "canary");
    }
    // 10% of 200 users; 5 sigma is about 21.
    assert!(
        (1..=41).contains(&canary),
        "{canary} of 200 users on canary"
    );
}

#[tokio::test]
async fn an_edge_ignores_a_spoofed_label() {
    let rules = edge(); // inherit: never
    let addr = serve(app(rules.clone())).await;
    let client = reqwest::Client::new();
    let mut stable_users = 0;
    for user in 0..100 {
        let id = format!("spoof-{user}");
        let want = expected(&rules, &[("x-user-id", &id)]);
        stable_users += usize::from(want == "stable");
        let body = common::get(
            &client,
            format!("http://{addr}/who"),
            &[
                ("x-user-id", &id),
                ("x-gray-version", "canary"),
                ("baggage", "gray=canary"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
        // Decided by the rules; the label the handler sees was overwritten.
        assert_eq!(body, format!("{want}|{want}|{want}|{want}"), "user {id}");

        // So is the baggage label, in every `baggage` header, other members kept: a
        // proxy forwarding these headers passes on no spoofed label.
        let seen = common::get(
            &client,
            format!("http://{addr}/baggage"),
            &[
                ("x-user-id", &id),
                ("baggage", "a=1,gray=canary"),
                ("baggage", "gray=v2;p=1, b=2"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
        assert_eq!(seen, format!("a=1,b=2,gray={want}"), "user {id}");
    }
    assert!(
        stable_users > 50,
        "the spoof would have moved these to canary"
    );
    // Each spoofed request is counted (`expected` decides on requests without a label).
    assert_eq!(rules.rejected_labels(), 200);

    // Baggage without a gray member is none of the layer's business: left as it came.
    let seen = common::get(
        &client,
        format!("http://{addr}/baggage"),
        &[("baggage", "a=1"), ("baggage", "b=2")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(seen, "a=1|b=2");
}

#[tokio::test]
async fn an_internal_service_honours_declared_labels_only() {
    let addr = serve(app(gray(INTERNAL))).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/who");
    let body = |res: reqwest::Response| async move { res.text().await.unwrap() };

    let res = common::get(&client, url.clone(), &[("x-gray-version", "canary")]).await;
    assert_eq!(body(res).await, "canary|canary|canary|canary");
    let res = common::get(&client, url.clone(), &[("baggage", "k=v, gray=canary")]).await;
    assert_eq!(body(res).await, "canary|canary|canary|canary");
    // A repeated label header: the first value decides, and the handler (or a proxy
    // forwarding the request) sees that one value only.
    let twice = [("x-gray-version", "canary"), ("x-gray-version", "stable")];
    let res = common::get(&client, url.clone(), &twice).await;
    assert_eq!(body(res).await, "canary|canary|canary|canary");
    // Undeclared: ignored, decided here (no route matches: the default version).
    let res = common::get(&client, url.clone(), &[("x-gray-version", "v9")]).await;
    assert_eq!(body(res).await, "stable|stable|stable|stable");
    let res = common::get(&client, url.clone(), &[("x-gray-version", &"c".repeat(65))]).await;
    assert_eq!(body(res).await, "stable|stable|stable|stable");
}

#[tokio::test]
async fn the_response_echoes_the_version_only_when_asked() {
    let handler = get(|| async { "ok" });
    let plain = serve(
        Router::new()
            .route("/", handler.clone())
            .layer(GrayLayer::new(edge())),
    )
    .await;
    let echo = serve(
        Router::new()
            .route("/", handler)
            .layer(GrayLayer::new(edge()).echo_version(true)),
    )
    .await;
    let client = reqwest::Client::new();
    let beta = [("x-app-version", "beta")];
    let res = common::get(&client, format!("http://{plain}/"), &beta).await;
    assert!(res.headers().get("x-gray-version").is_none());
    let res = common::get(&client, format!("http://{echo}/"), &beta).await;
    assert_eq!(res.headers()["x-gray-version"], "canary");
}

#[tokio::test]
async fn without_the_layer_the_extractor_rejects_with_500() {
    let app = Router::new()
        .route(
            "/who",
            get(|GrayVersion(ctx): GrayVersion| async move { ctx.version().to_owned() }),
        )
        .route(
            "/maybe",
            get(|ctx: Option<GrayVersion>| async move {
                format!("{:?}", ctx.map(|g| g.0.version().to_owned()))
            }),
        );
    let addr = serve(app.clone()).await;
    let client = reqwest::Client::new();
    let res = common::get(&client, format!("http://{addr}/who"), &[]).await;
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("GrayLayer"));
    let res = common::get(&client, format!("http://{addr}/maybe"), &[]).await;
    assert_eq!(res.text().await.unwrap(), "None");
    // With the layer, `Option<GrayVersion>` has it.
    let addr = serve(app.layer(GrayLayer::new(edge()))).await;
    let res = common::get(&client, format!("http://{addr}/maybe"), &[]).await;
    assert_eq!(res.text().await.unwrap(), "Some(\"stable\")");
}

/// `GrayService` is ready exactly when the service it wraps is: backpressure passes
/// through the layer.
#[test]
fn the_layer_is_ready_when_its_inner_service_is() {
    use tower_layer::Layer;
    let gate = common::Gate::closed("inner");
    let mut service = GrayLayer::new(edge()).layer(gate.clone());
    assert!(!common::ready_now(&mut service));
    gate.set(true);
    assert!(common::ready_now(&mut service));
    gate.set(false);
    assert!(!common::ready_now(&mut service));
}

#[tokio::test]
async fn the_inner_service_is_called_exactly_once_per_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |req: http::Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let version = req
                .extensions()
                .get::<GrayContext>()
                .map(|c| c.version().to_owned())
                .unwrap_or_default();
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(version))) }
        })
    };
    let service = tower_layer::Layer::layer(&GrayLayer::new(edge()), counted);
    for i in 0..100 {
        let req = http::Request::get("/")
            .header("x-user-id", i.to_string())
            .body(Body::empty())
            .unwrap();
        let res = service.clone().oneshot(req).await.unwrap();
        assert!(res.status().is_success());
        assert_eq!(calls.load(Ordering::SeqCst), i + 1, "request {i}");
    }

    // And through a real server, with a router handler counting.
    let hits = Arc::new(AtomicUsize::new(0));
    let app = {
        let hits = Arc::clone(&hits);
        Router::new()
            .route(
                "/",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { "ok" }
                }),
            )
            .layer(GrayLayer::new(edge()))
    };
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    for _ in 0..50 {
        common::get(&client, format!("http://{addr}/"), &[]).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn the_layer_around_a_whole_router_serves_with_into_make_service() {
    let service = tower_layer::Layer::layer(
        &GrayLayer::new(edge()),
        Router::new().route("/who", get(who)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
        )
        .await
        .unwrap()
    });
    let res = common::get(
        &reqwest::Client::new(),
        format!("http://{addr}/who"),
        &[("x-app-version", "beta")],
    )
    .await;
    assert_eq!(res.text().await.unwrap(), "canary|canary|canary|canary");
}

/// Three frames, each naming the version current when the server polls for it.
fn frames() -> Body {
    Body::new(Frames {
        count: 3,
        frame: || {
            let seen = GrayContext::current().map(|c| c.version().to_owned());
            format!("{};", seen.as_deref().unwrap_or("none"))
        },
    })
}

/// A body streamed after the handler returns is polled by the server outside the handler's
/// task-local scope: wrapped in `GrayBody`, its frames see the request's version as well.
#[tokio::test]
async fn a_streamed_body_sees_the_version_when_wrapped() {
    let rules = gray("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n");
    let app = Router::new()
        .route("/plain", get(|| async { frames() }))
        .route(
            "/wrapped",
            get(|GrayVersion(ctx): GrayVersion| async move {
                Body::new(gray_tower::GrayBody::new(ctx, frames()))
            }),
        )
        .layer(GrayLayer::new(rules));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let text = |path: &'static str| {
        let req = client.get(format!("http://{addr}{path}"));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(text("/wrapped").await, "canary;canary;canary;");
    assert_eq!(
        text("/plain").await,
        "none;none;none;",
        "outside the scope without it"
    );
}

/// `GrayBodyLayer` inside `GrayLayer` wraps every response body: no handler has to.
#[tokio::test]
async fn gray_body_layer_scopes_every_streamed_body() {
    let rules = gray("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n");
    let layers = tower::ServiceBuilder::new()
        .layer(GrayLayer::new(rules))
        .layer(gray_tower::GrayBodyLayer);
    let app = Router::new()
        .route("/plain", get(|| async { frames() }))
        .route("/sized", get(|| async { "hello" }))
        .layer(layers);
    let addr = serve(app).await;
    let body = reqwest::get(format!("http://{addr}/plain"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "canary;canary;canary;");
    // A body whose length is known keeps its `Content-Length` (not sent chunked).
    let res = reqwest::get(format!("http://{addr}/sized")).await.unwrap();
    assert_eq!(res.headers()[http::header::CONTENT_LENGTH], "5");
    assert_eq!(res.text().await.unwrap(), "hello");
}

/// A wrapped body tells what the body it wraps tells (its size, its end) and its
/// context; `GrayBodyService` is ready when its inner service is.
#[test]
fn a_gray_body_is_its_inner_body_as_far_as_anyone_can_tell() {
    use http_body::Body as _;
    let ctx = GrayContext::new("canary");
    let sized = gray_tower::GrayBody::new(
        ctx.clone(),
        http_body_util::Full::new(bytes::Bytes::from("hello")),
    );
    assert_eq!(sized.size_hint().exact(), Some(5));
    assert!(!sized.is_end_stream());
    assert_eq!(sized.context().map(|c| c.version()), Some("canary"));
    let empty = gray_tower::GrayBody::new(ctx, http_body_util::Empty::<bytes::Bytes>::new());
    assert!(empty.is_end_stream());

    let gate = common::Gate::closed("inner");
    let mut service = tower_layer::Layer::layer(&gray_tower::GrayBodyLayer, gate.clone());
    assert!(!common::ready_now(&mut service));
    gate.set(true);
    assert!(common::ready_now(&mut service));
}

/// A route's `mirror:` puts a `Mirror` beside the context, on the requests it draws only:
/// half of them here, each still served by its own version.
#[tokio::test]
async fn a_mirrored_request_carries_its_mirror_in_the_extensions() {
    async fn copy(
        Extension(ctx): Extension<GrayContext>,
        mirror: Option<Extension<gray_core::Mirror>>,
    ) -> String {
        let to = mirror.map_or("-".to_owned(), |Extension(m)| m.version().to_owned());
        format!("{}>{to}", ctx.version())
    }
    let gray = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary, percent: 50 } }\n",
    );
    let addr = serve(
        Router::new()
            .route("/copy", get(copy))
            .layer(GrayLayer::new(gray)),
    )
    .await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let res = common::get(&client, format!("http://{addr}/copy"), &[]).await;
        answers.push(res.text().await.unwrap());
    }
    let copied = answers.iter().filter(|a| *a == "stable>canary").count();
    let kept = answers.iter().filter(|a| *a == "stable>-").count();
    assert_eq!(copied + kept, 20, "{answers:?}");
    assert!((9..=11).contains(&copied), "{answers:?}");
}

/// A split with `set_cookie:` gives a client that came without its cookie a key on the
/// response, beside the handler's own cookies; sent back, the key keeps the client on the
/// version its first request went to, and no new one is given.
#[tokio::test]
async fn a_new_client_gets_its_split_key_as_a_cookie_and_keeps_its_version() {
    async fn version(
        GrayVersion(ctx): GrayVersion,
    ) -> ([(http::HeaderName, &'static str); 1], String) {
        (
            [(http::header::SET_COOKIE, "theme=dark")],
            ctx.version().to_owned(),
        )
    }
    let gray = gray(
        "versions: [stable, canary]\nroutes:\n  - name: visitors\n    split: { by: { cookie: gray-uid }, weights: { stable: 50, canary: 50 }, set_cookie: { max_age: 600 } }\n",
    );
    let addr = serve(
        Router::new()
            .route("/v", get(version))
            .layer(GrayLayer::new(gray)),
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let first = common::get(&client, url.clone(), &[]).await;
        let cookies: Vec<String> = first
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let served = first.text().await.unwrap();
        seen.insert(served.clone());
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        assert_eq!(cookies[0], "theme=dark", "the handler's cookie stays");
        let key = cookies[1].split(';').next().unwrap().to_owned();
        assert!(key.starts_with("gray-uid="), "{cookies:?}");
        assert!(
            cookies[1].contains("; Max-Age=600; HttpOnly"),
            "{cookies:?}"
        );
        for _ in 0..3 {
            let again = common::get(&client, url.clone(), &[("cookie", &key)]).await;
            assert_eq!(
                again
                    .headers()
                    .get_all(http::header::SET_COOKIE)
                    .iter()
                    .count(),
                1
            );
            assert_eq!(again.text().await.unwrap(), served, "{key}");
        }
    }
    // 40 new clients at 50/50: both versions got some (all on one: p = 2⁻³⁹).
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// Three versions by the client's address: an office network, this machine, the rest —
/// behind a proxy on this machine whose `x-forwarded-for` is believed.
const CLIENTS: &str = "real_ip: { trusted: [127.0.0.1] }
versions: [stable, canary, local]
routes:
  - name: office
    match: { client_ip: { cidr: [198.51.100.0/24] } }
    to: canary
  - name: here
    match: { client_ip: { cidr: [127.0.0.0/8, \"::1\"] } }
    to: local
";

/// The version `who` answers at `addr` for a request with `x-forwarded-for: xff`.
async fn version_from(addr: std::net::SocketAddr, xff: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
    let body = common::get(
        &reqwest::Client::new(),
        format!("http://{addr}/who"),
        &headers,
    )
    .await
    .text()
    .await
    .unwrap();
    body.split('|').next().unwrap().to_owned()
}

/// `/who` behind `GrayLayer` (around the router), served with axum's `ConnectInfo`: the
/// connection's peer is known.
async fn serve_who_with_connect_info(gray: gray_core::Gray) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service =
        tower_layer::Layer::layer(&GrayLayer::new(gray), Router::new().route("/who", get(who)));
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(service);
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_client_address_comes_from_axum_connect_info_and_trusted_proxies() {
    let addr = serve_who_with_connect_info(gray(CLIENTS)).await;
    // This machine, as the peer.
    assert_eq!(version_from(addr, None).await, "local");
    // Through the proxy on this machine: the address it names, from the right.
    assert_eq!(version_from(addr, Some("198.51.100.4")).await, "canary");
    assert_eq!(
        version_from(addr, Some("203.0.113.9, 198.51.100.4")).await,
        "canary"
    );
    assert_eq!(
        version_from(addr, Some("198.51.100.4, 203.0.113.9")).await,
        "stable"
    );

    // Served without ConnectInfo the peer is unknown: no header is believed.
    let addr = serve(
        Router::new()
            .route("/who", get(who))
            .layer(GrayLayer::new(gray(CLIENTS))),
    )
    .await;
    assert_eq!(version_from(addr, Some("198.51.100.4")).await, "stable");
    assert_eq!(version_from(addr, None).await, "stable");
}

/// The version and the label header `/who` sees for a request labelled `canary`, served
/// by `gray` with axum's `ConnectInfo` or without it.
async fn labelled_canary(gray: gray_core::Gray, connect_info: bool) -> String {
    let addr = if connect_info {
        serve_who_with_connect_info(gray).await
    } else {
        serve(
            Router::new()
                .route("/who", get(who))
                .layer(GrayLayer::new(gray)),
        )
        .await
    };
    let url = format!("http://{addr}/who");
    let client = reqwest::Client::new();
    let res = common::get(&client, url, &[("x-gray-version", "canary")]).await;
    res.text().await.unwrap()
}

#[tokio::test]
async fn label_from_honours_labels_only_from_peers_in_its_networks() {
    const FROM: &str = "label: { inherit: always, from: [127.0.0.0/8, \"::1\"] }
versions: [stable, canary]
";
    // From this machine, in `from`: honoured; the handler sees it, and the label header.
    let body = labelled_canary(gray(FROM), true).await;
    assert!(body.starts_with("canary|"), "{body}");
    // From a peer outside it: refused, counted, decided here, the header overwritten.
    let outside = gray(&FROM.replace("127.0.0.0/8, \"::1\"", "10.0.0.0/8"));
    let body = labelled_canary(outside.clone(), true).await;
    assert!(
        body.starts_with("stable|") && !body.contains("canary"),
        "{body}"
    );
    assert_eq!(outside.rejected_labels(), 1);
    // Served without ConnectInfo the peer is unknown: refused.
    let body = labelled_canary(gray(FROM), false).await;
    assert!(
        body.starts_with("stable|") && !body.contains("canary"),
        "{body}"
    );
}

/// A rule of every other kind — path, query, method, and a client address from a
/// repeated forwarding header — each deciding on its own.
const REQUEST_PARTS: &str = "real_ip: { trusted: [127.0.0.1] }
versions: [stable, canary]
routes:
  - { name: api-v2, match: { path: { prefix: /api/v2 } }, to: canary }
  - { name: preview, match: { query: [{ name: preview, exact: \"1\" }] }, to: canary }
  - { name: writes, match: { method: POST }, to: canary }
  - { name: office, match: { client_ip: { cidr: [198.51.100.0/24] } }, to: canary }
";

/// The rules read the request as the server received it: its path, query string and
/// method, and every line of a repeated header.
#[tokio::test]
async fn path_query_method_and_repeated_header_rules_hold_on_a_real_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().fallback(|| async {
        let ctx = GrayContext::current().unwrap();
        format!("{} {}", ctx.version(), ctx.route().unwrap_or("-"))
    });
    let service = tower_layer::Layer::layer(&GrayLayer::new(gray(REQUEST_PARTS)), router);
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(service);
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });

    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let text = |req: reqwest::RequestBuilder| async move {
        req.send().await.unwrap().text().await.unwrap()
    };
    for (path, want) in [
        ("/api/v2/orders", "canary api-v2"),
        ("/api/v1/orders", "stable -"),
        ("/shop?preview=1", "canary preview"),
        ("/shop?preview=0", "stable -"),
    ] {
        assert_eq!(text(client.get(url(path))).await, want, "GET {path}");
    }
    assert_eq!(text(client.post(url("/shop"))).await, "canary writes");
    // Two `x-forwarded-for` lines: the client is the last line's last address.
    let two_lines = |first: &'static str, second: &'static str| {
        client
            .get(url("/shop"))
            .header("x-forwarded-for", first)
            .header("x-forwarded-for", second)
    };
    assert_eq!(
        text(two_lines("203.0.113.9", "198.51.100.4")).await,
        "canary office"
    );
    assert_eq!(
        text(two_lines("198.51.100.4", "203.0.113.9")).await,
        "stable -"
    );
}
