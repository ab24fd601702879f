//! GrayMiddleware: `actix_web::test` for the unit level, a real `HttpServer` for the chain.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpMessage, HttpRequest, HttpServer, test, web};
use common::Items;
use gray_actix::{ActixRequest, GrayMiddleware, GrayStream, GrayVersion};
use gray_core::{Config, GrayContext};
use gray_reqwest::GrayPropagation;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// Starts a real actix server (one worker, no signal handling) on 127.0.0.1:0 with the
/// app factory `$factory`: its address and handle. A macro: `HttpServer`'s generics would
/// make a function's bounds longer than its body.
macro_rules! serve {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        (addr, handle)
    }};
}

/// `GET /v`, answering the version the middleware decided with `gray`'s rules.
fn serve_version(gray: gray_core::Gray) -> (SocketAddr, actix_web::dev::ServerHandle) {
    serve!(move || {
        App::new().wrap(GrayMiddleware::new(gray.clone())).route(
            "/v",
            web::get().to(|GrayVersion(ctx): GrayVersion| async move { ctx.version().to_owned() }),
        )
    })
}

fn edge() -> gray_core::Gray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    gray_core::Gray::from_path(path).unwrap()
}

fn expected(gray: &gray_core::Gray, user: &str) -> String {
    let req = http::Request::get("/")
        .header("x-user-id", user)
        .body(())
        .unwrap();
    gray.decide(&req).version().to_owned()
}

/// `extractor|extensions|current|label header`.
async fn who(
    GrayVersion(ctx): GrayVersion,
    req: HttpRequest,
    data: web::ReqData<GrayContext>,
) -> String {
    let ext = req
        .extensions()
        .get::<GrayContext>()
        .map(|c| c.version().to_owned());
    let current = GrayContext::current().map(|c| c.version().to_owned());
    let label = req
        .headers()
        .get("x-gray-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    assert_eq!(data.version(), ctx.version());
    format!(
        "{}|{}|{}|{label}",
        ctx.version(),
        ext.unwrap_or_default(),
        current.unwrap_or_default()
    )
}

#[actix_web::test]
async fn the_handler_sees_the_decision_every_way() {
    let rules = edge();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(rules.clone()))
            .route("/who", web::get().to(who)),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/who")
        .insert_header(("x-app-version", "beta"))
        .to_request();
    assert_eq!(
        test::call_and_read_body(&app, req).await,
        "canary|canary|canary|canary"
    );

    for user in 0..50 {
        let id = format!("u{user}");
        let want = expected(&edge(), &id);
        // A spoofed label at an `inherit: never` edge changes nothing and is overwritten.
        let req = test::TestRequest::get()
            .uri("/who")
            .insert_header(("x-user-id", id.as_str()))
            .insert_header(("x-gray-version", "canary"))
            .to_request();
        let body = test::call_and_read_body(&app, req).await;
        assert_eq!(
            body,
            format!("{want}|{want}|{want}|{want}").as_bytes(),
            "user {id}"
        );
    }
    // Read from actix's headers, each spoofed label was refused and counted.
    assert_eq!(rules.rejected_labels(), 50);
}

/// A split with `set_cookie:` gives a client that came without its cookie a key on the
/// response, beside the handler's own cookies; sent back, it keeps the client's version.
#[actix_web::test]
async fn a_new_client_gets_its_split_key_as_a_cookie_and_keeps_its_version() {
    async fn version(GrayVersion(ctx): GrayVersion) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok()
            .append_header(("set-cookie", "theme=dark"))
            .body(ctx.version().to_owned())
    }
    let rules = gray_core::Gray::new(
        Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - name: visitors\n    split: { by: { cookie: gray-uid }, weights: { stable: 50, canary: 50 }, set_cookie: {} }\n",
        )
        .unwrap(),
    )
    .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(rules))
            .route("/v", web::get().to(version)),
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let req = test::TestRequest::get().uri("/v").to_request();
        let res = test::call_service(&app, req).await;
        let cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let served = test::read_body(res).await;
        seen.insert(served.clone());
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        assert!(cookies.contains(&"theme=dark".to_owned()), "{cookies:?}");
        let gray = cookies.iter().find(|c| c.starts_with("gray-uid=")).unwrap();
        assert!(
            gray.ends_with("; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"),
            "{gray}"
        );
        let key = gray.split(';').next().unwrap();
        for _ in 0..3 {
            let req = test::TestRequest::get()
                .uri("/v")
                .insert_header(("cookie", key))
                .to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(res.headers().get_all("set-cookie").count(), 1, "{key}");
            assert_eq!(test::read_body(res).await, served, "{key}");
        }
    }
    // 40 new clients at 50/50: both versions got some (all on one: p = 2⁻³⁹).
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A route's `mirror:` puts a `Mirror` in the extensions of the requests it draws only.
#[actix_web::test]
async fn a_mirrored_request_carries_its_mirror_in_the_extensions() {
    async fn copy(req: HttpRequest) -> String {
        let to = req
            .extensions()
            .get::<gray_core::Mirror>()
            .map(|m| m.version().to_owned());
        to.unwrap_or_else(|| "-".to_owned())
    }
    let rules = gray_core::Gray::new(
        Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary, percent: 50 } }\n",
        )
        .unwrap(),
    )
    .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(rules))
            .route("/copy", web::get().to(copy)),
    )
    .await;
    let mut copied = 0;
    for _ in 0..20 {
        let req = test::TestRequest::get().uri("/copy").to_request();
        match &test::call_and_read_body(&app, req).await[..] {
            b"canary" => copied += 1,
            b"-" => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(copied, 10);
}

#[actix_web::test]
async fn a_spoofed_baggage_label_is_rewritten_and_other_members_kept() {
    let rules = edge();
    let app = test::init_service(App::new().wrap(GrayMiddleware::new(rules.clone())).route(
        "/baggage",
        web::get().to(|req: HttpRequest| async move {
            let values: Vec<&str> = req
                .headers()
                .get_all("baggage")
                .filter_map(|v| v.to_str().ok())
                .collect();
            values.join("|")
        }),
    ))
    .await;
    for user in 0..20 {
        let id = format!("u{user}");
        let want = expected(&rules, &id);
        let req = test::TestRequest::get()
            .uri("/baggage")
            .insert_header(("x-user-id", id.as_str()))
            .append_header(("baggage", "a=1,gray=canary"))
            .append_header(("baggage", "gray=v2;p=1, b=2"))
            .to_request();
        let body = test::call_and_read_body(&app, req).await;
        assert_eq!(body, format!("a=1,b=2,gray={want}").as_bytes(), "user {id}");
    }
    // Baggage without a gray member is left as it came.
    let req = test::TestRequest::get()
        .uri("/baggage")
        .append_header(("baggage", "a=1"))
        .append_header(("baggage", "b=2"))
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "a=1|b=2");
}

#[actix_web::test]
async fn an_internal_service_keeps_a_label_that_came_once_and_normalises_a_repeated_one() {
    let internal = gray_core::Gray::new(
        Config::from_yaml("label: { inherit: always }\nversions: [stable, canary]\n").unwrap(),
    )
    .unwrap();
    let labels = |req: HttpRequest| async move {
        let all: Vec<String> = req
            .headers()
            .get_all("x-gray-version")
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        format!(
            "{}|{}",
            GrayContext::current().unwrap().version(),
            all.join(",")
        )
    };
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(internal))
            .route("/labels", web::get().to(labels)),
    )
    .await;
    let once = test::TestRequest::get()
        .uri("/labels")
        .insert_header(("x-gray-version", "canary"))
        .to_request();
    assert_eq!(test::call_and_read_body(&app, once).await, "canary|canary");
    let twice = test::TestRequest::get()
        .uri("/labels")
        .append_header(("x-gray-version", "canary"))
        .append_header(("x-gray-version", "stable"))
        .to_request();
    assert_eq!(test::call_and_read_body(&app, twice).await, "canary|canary");
    let none = test::TestRequest::get().uri("/labels").to_request();
    assert_eq!(test::call_and_read_body(&app, none).await, "stable|stable");
}

#[actix_web::test]
async fn echo_is_off_by_default_and_the_next_service_is_called_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "ok" }
    };
    let plain = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(edge()))
            .route("/", web::get().to(handler.clone())),
    )
    .await;
    let echo = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(edge()).echo_version(true))
            .route("/", web::get().to(handler)),
    )
    .await;
    let beta = || {
        test::TestRequest::get()
            .insert_header(("x-app-version", "beta"))
            .to_request()
    };
    let res = test::call_service(&plain, beta()).await;
    assert!(res.headers().get("x-gray-version").is_none());
    let res = test::call_service(&echo, beta()).await;
    assert_eq!(res.headers().get("x-gray-version").unwrap(), "canary");
    for _ in 0..48 {
        test::call_service(&plain, beta()).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 50);
}

#[actix_web::test]
async fn without_the_middleware_the_extractor_answers_500() {
    let app = test::init_service(
        App::new()
            .route(
                "/",
                web::get()
                    .to(|GrayVersion(ctx): GrayVersion| async move { ctx.version().to_owned() }),
            )
            .route(
                "/maybe",
                web::get()
                    .to(|g: Option<GrayVersion>| async move { format!("{:?}", g.map(|g| g.0)) }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 500);
    let body = test::read_body(res).await;
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("GrayMiddleware")
    );
    let req = test::TestRequest::get().uri("/maybe").to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "None");
}

/// The downstream service: axum behind GrayLayer with `inherit: always`.
async fn downstream() -> SocketAddr {
    let gray = gray_core::Gray::new(
        Config::from_yaml("label: { inherit: always }\nversions: [stable, canary]\n").unwrap(),
    )
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                GrayContext::current()
                    .map(|c| c.version().to_owned())
                    .unwrap_or_default()
            }),
        )
        .layer(gray_tower::GrayLayer::new(gray));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_actix_server_keeps_the_downstream_on_its_version() {
    let down = downstream().await;
    let gray = edge();
    let (addr, handle) = serve!({
        let gray = gray.clone();
        move || {
            let client: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new())
                .with(GrayPropagation::default())
                .build();
            App::new()
                .app_data(web::Data::new((client, down)))
                .wrap(GrayMiddleware::new(gray.clone()))
                .route(
                    "/ping",
                    web::get().to(
                        |GrayVersion(ctx): GrayVersion, data: web::Data<(ClientWithMiddleware, SocketAddr)>| async move {
                            let (client, down) = &**data;
                            let theirs = client
                                .get(format!("http://{down}/"))
                                .send()
                                .await
                                .unwrap()
                                .text()
                                .await
                                .unwrap();
                            format!("{}>{theirs}", ctx.version())
                        },
                    ),
                )
        }
    });

    let client = reqwest::Client::new();
    let mut canary = 0;
    for user in 0..50 {
        let id = format!("actix-{user}");
        let want = expected(&gray, &id);
        let body = client
            .get(format!("http://{addr}/ping"))
            .header("x-user-id", &id)
            .header("x-gray-version", "spoofed")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, format!("{want}>{want}"), "user {id}");
        canary += usize::from(want == "canary");
    }
    let body = client
        .get(format!("http://{addr}/ping"))
        .header("x-app-version", "beta")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "canary>canary");
    assert!(canary < 50);
    handle.stop(true).await;
}

/// HTTP/2 sends the host as `:authority`, in the URI, with no `Host` header: a rule on
/// `host` matches it there, and a `Host` header, when sent, is what counts.
#[actix_web::test]
async fn a_host_rule_reads_the_authority_when_there_is_no_host_header() {
    let gray = gray_core::Gray::new(
        Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - { name: shop, match: { headers: [{ name: host, exact: shop.example }] }, to: canary }\n",
        )
        .unwrap(),
    )
    .unwrap();
    let http2 = test::TestRequest::get()
        .uri("https://shop.example/cart")
        .to_http_request();
    assert!(http2.headers().get("host").is_none());
    assert_eq!(gray.decide(&ActixRequest(&http2)).version(), "canary");
    let other = test::TestRequest::get()
        .uri("https://shop.example/cart")
        .insert_header(("host", "other.example"))
        .to_http_request();
    assert_eq!(gray.decide(&ActixRequest(&other)).version(), "stable");
}

/// Three items, each naming the version current when actix polls for it.
fn items() -> Items<impl FnMut() -> String + Unpin> {
    Items {
        count: 3,
        item: || {
            let seen = GrayContext::current().map(|c| c.version().to_owned());
            format!("{};", seen.as_deref().unwrap_or("none"))
        },
    }
}

/// A streamed response is polled by actix after the handler returns, outside the
/// middleware's scope: wrapped in `GrayStream`, its items see the request's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_sees_the_version_when_wrapped() {
    let gray = gray_core::Gray::new(
        Config::from_yaml("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n")
            .unwrap(),
    )
    .unwrap();
    let (addr, handle) = serve!(move || {
        App::new()
            .wrap(GrayMiddleware::new(gray.clone()))
            .route(
                "/plain",
                web::get().to(|| async { actix_web::HttpResponse::Ok().streaming(items()) }),
            )
            .route(
                "/wrapped",
                web::get().to(|GrayVersion(ctx): GrayVersion| async move {
                    actix_web::HttpResponse::Ok().streaming(GrayStream::new(ctx, items()))
                }),
            )
    });
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    // Wrapped, a stream tells what it wraps tells of its length.
    let wrapped = GrayStream::new(GrayContext::new("canary"), items());
    assert_eq!(futures_core::Stream::size_hint(&wrapped), (3, Some(3)));
    assert_eq!(get("/wrapped").await, "canary;canary;canary;");
    assert_eq!(
        get("/plain").await,
        "none;none;none;",
        "outside the scope without it"
    );
    handle.stop(true).await;
}

/// The client's address is the connection's peer, and behind a proxy on this machine the
/// address its `x-forwarded-for` names, from the right; the same header from a client
/// that is not a trusted proxy is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_peer_or_what_a_trusted_proxy_names() {
    let rules = "real_ip: { trusted: [127.0.0.1] }
versions: [stable, canary, local]
routes:
  - name: office
    match: { client_ip: { cidr: [198.51.100.0/24] } }
    to: canary
  - name: here
    match: { client_ip: { cidr: [127.0.0.0/8] } }
    to: local
";
    let version = |rules: &str| {
        serve_version(gray_core::Gray::new(gray_core::Config::from_yaml(rules).unwrap()).unwrap())
    };
    let get = |addr: SocketAddr, xff: Option<&'static str>| async move {
        let mut req = reqwest::Client::new().get(format!("http://{addr}/v"));
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        req.send().await.unwrap().text().await.unwrap()
    };
    let (addr, handle) = version(rules);
    assert_eq!(get(addr, None).await, "local");
    assert_eq!(get(addr, Some("198.51.100.4")).await, "canary");
    assert_eq!(get(addr, Some("198.51.100.4, 203.0.113.9")).await, "stable");
    handle.stop(true).await;
    // This machine is no trusted proxy here: its header is not believed.
    let (addr, handle) = version(&rules.replace("127.0.0.1]", "10.0.0.0/8]"));
    assert_eq!(get(addr, Some("198.51.100.4")).await, "local");
    handle.stop(true).await;
}

#[actix_web::test]
async fn label_from_honours_labels_only_from_peers_in_its_networks() {
    let labelled_canary = |from: &str| {
        let rules =
            format!("label: {{ inherit: always, from: [{from}] }}\nversions: [stable, canary]\n");
        let gray = gray_core::Gray::new(gray_core::Config::from_yaml(&rules).unwrap()).unwrap();
        let counted = gray.clone();
        let (addr, handle) = serve_version(gray);
        async move {
            let res = reqwest::Client::new()
                .get(format!("http://{addr}/v"))
                .header("x-gray-version", "canary")
                .send();
            let version = res.await.unwrap().text().await.unwrap();
            handle.stop(true).await;
            (version, counted.rejected_labels())
        }
    };
    // This machine is the peer: in `from`, its label is honoured; outside, refused.
    assert_eq!(
        labelled_canary("127.0.0.0/8").await,
        ("canary".to_owned(), 0)
    );
    assert_eq!(
        labelled_canary("10.0.0.0/8").await,
        ("stable".to_owned(), 1)
    );
}

/// The rules read the request as actix received it: path, query string, method, every
/// line of a repeated header; and a label header of the rules' own naming, renamed by a
/// reload.
#[actix_web::test]
async fn path_query_method_repeated_header_and_label_header_rules_hold() {
    let rules = gray_core::Gray::new(
        Config::from_yaml(
            "label: { header: x-release }
real_ip: { trusted: [127.0.0.1] }
versions: [stable, canary]
routes:
  - { name: api-v2, match: { path: { prefix: /api/v2 } }, to: canary }
  - { name: preview, match: { query: [{ name: preview, exact: \"1\" }] }, to: canary }
  - { name: writes, match: { method: POST }, to: canary }
  - { name: office, match: { client_ip: { cidr: [198.51.100.0/24] } }, to: canary }
",
        )
        .unwrap(),
    )
    .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(rules.clone()))
            .default_service(web::to(
                |GrayVersion(ctx): GrayVersion, req: HttpRequest| async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    };
                    format!(
                        "{} {} {} {}",
                        ctx.version(),
                        ctx.route().unwrap_or("-"),
                        header("x-release"),
                        header("x-train")
                    )
                },
            )),
    )
    .await;
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let call = |req: test::TestRequest| {
        let app = &app;
        async move {
            let body = test::call_and_read_body(app, req.peer_addr(peer).to_request()).await;
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    for (uri, want) in [
        ("/api/v2/orders", "canary api-v2 canary -"),
        ("/api/v1/orders", "stable - stable -"),
        ("/shop?preview=1", "canary preview canary -"),
        ("/shop?preview=0", "stable - stable -"),
    ] {
        assert_eq!(call(test::TestRequest::get().uri(uri)).await, want, "{uri}");
    }
    let post = test::TestRequest::post().uri("/shop");
    assert_eq!(call(post).await, "canary writes canary -");
    // Two `x-forwarded-for` lines: the client is the last line's last address.
    let two_lines = |first: &'static str, second: &'static str| {
        test::TestRequest::get()
            .uri("/shop")
            .append_header(("x-forwarded-for", first))
            .append_header(("x-forwarded-for", second))
    };
    let office = call(two_lines("203.0.113.9", "198.51.100.4")).await;
    assert_eq!(office, "canary office canary -");
    let outside = call(two_lines("198.51.100.4", "203.0.113.9")).await;
    assert_eq!(outside, "stable - stable -");

    // A reload that renames the label header: the next request carries the new name.
    rules
        .reload(
            Config::from_yaml("label: { header: x-train }\nversions: [stable, canary]\n").unwrap(),
        )
        .unwrap();
    let renamed = call(test::TestRequest::get().uri("/shop")).await;
    assert_eq!(renamed, "stable - - stable");
}
