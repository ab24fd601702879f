//! GrayPropagation and GrayUpstreams against real servers on 127.0.0.1:0.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use gray_core::GrayContext;
use gray_reqwest::{GrayPropagation, GrayUpstreams, Upstream};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// Echoes the label-ish headers it receives: `x-gray-version|x-label|baggage|name`.
async fn echo(name: &'static str) -> SocketAddr {
    let app = Router::new().fallback(get(move |headers: http::HeaderMap| async move {
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!(
            "{}|{}|{}|{name}",
            h("x-gray-version"),
            h("x-label"),
            h("baggage")
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client(p: GrayPropagation) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new()).with(p).build()
}

async fn text(req: reqwest_middleware::RequestBuilder) -> String {
    req.send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn outside_a_request_nothing_is_added() {
    let addr = echo("b").await;
    let body = text(client(GrayPropagation::default()).get(format!("http://{addr}/"))).await;
    assert_eq!(body, "-|-|-|b");
}

#[tokio::test]
async fn the_current_context_or_an_explicit_one_is_sent() {
    let addr = echo("b").await;
    let c = client(GrayPropagation::default());
    let url = format!("http://{addr}/");
    let body = GrayContext::scope(GrayContext::new("canary"), text(c.get(&url))).await;
    assert_eq!(body, "canary|-|gray=canary|b");

    // An explicit context wins over the ambient one.
    let explicit = c.get(&url).with_extension(GrayContext::new("v2"));
    let body = GrayContext::scope(GrayContext::new("canary"), text(explicit)).await;
    assert_eq!(body, "v2|-|gray=v2|b");
}

#[tokio::test]
async fn baggage_is_merged_and_options_apply() {
    let addr = echo("b").await;
    let url = format!("http://{addr}/");
    let ctx = || GrayContext::new("canary");

    let c = client(GrayPropagation::default());
    let req = c
        .get(&url)
        .header("baggage", "userId=alice,gray=stable;p=1");
    assert_eq!(
        GrayContext::scope(ctx(), text(req)).await,
        "canary|-|userId=alice,gray=canary|b"
    );

    let c = client(
        GrayPropagation::new()
            .header(http::HeaderName::from_static("x-label"))
            .baggage(false),
    );
    let req = c.get(&url).header("baggage", "userId=alice");
    assert_eq!(
        GrayContext::scope(ctx(), text(req)).await,
        "-|canary|userId=alice|b"
    );

    let c = client(GrayPropagation::new().baggage_only());
    assert_eq!(
        GrayContext::scope(ctx(), text(c.get(&url))).await,
        "-|-|gray=canary|b"
    );
}

#[tokio::test]
async fn each_version_calls_its_own_upstream() {
    let stable = echo("stable").await;
    let canary = echo("canary").await;
    let upstreams = GrayUpstreams::new().upstream(
        Upstream::new("http://orders/api", &format!("http://{stable}/v1"))
            .unwrap()
            .version("canary", &format!("http://{canary}/v1"))
            .unwrap(),
    );
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(upstreams.clone())
        .with(GrayPropagation::default())
        .build();
    let call = || c.get("http://orders/api/orders?page=2");
    assert_eq!(
        GrayContext::scope(GrayContext::new("canary"), text(call())).await,
        "canary|-|gray=canary|canary"
    );
    assert_eq!(
        GrayContext::scope(GrayContext::new("stable"), text(call())).await,
        "stable|-|gray=stable|stable"
    );
    // A version without an address of its own, and no context at all: the default.
    assert_eq!(
        GrayContext::scope(GrayContext::new("v3"), text(call())).await,
        "v3|-|gray=v3|stable"
    );
    assert_eq!(text(call()).await, "-|-|-|stable");

    // A rewritten call is a call to its base: its `Host` is the base's.
    let app = Router::new().fallback(get(|headers: http::HeaderMap| async move {
        format!("{:?}", headers.get(http::header::HOST))
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hosts = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(
            GrayUpstreams::new()
                .upstream(Upstream::new("http://orders", &format!("http://{hosts}")).unwrap()),
        )
        .build();
    assert_eq!(
        text(c.get("http://orders/api")).await,
        format!("Some({:?})", hosts.to_string())
    );
    // A call that names its own `Host` keeps it: a downstream behind a virtual-host proxy
    // can still be told the logical name.
    assert_eq!(
        text(
            c.get("http://orders/api")
                .header(http::header::HOST, "orders")
        )
        .await,
        "Some(\"orders\")"
    );

    // The rewrite keeps the path below the logical base and the query.
    let url = reqwest::Url::parse("http://orders/api/orders?page=2").unwrap();
    let moved = upstreams.resolve(&url, Some("canary")).unwrap();
    assert_eq!(moved.as_str(), format!("http://{canary}/v1/orders?page=2"));
    // Not under the logical base: untouched.
    for other in [
        "http://orders/apix",
        "http://orders:81/api",
        "https://orders/api",
        "http://other/api",
    ] {
        let url = reqwest::Url::parse(other).unwrap();
        assert!(upstreams.resolve(&url, Some("canary")).is_none(), "{other}");
    }
}

#[test]
fn bad_upstream_urls_are_refused_by_name() {
    let err = Upstream::new("orders", "http://10.0.0.1").unwrap_err();
    assert!(err.to_string().contains("logical"), "{err}");
    let err = Upstream::new("http://orders", "http://10.0.0.1")
        .unwrap()
        .version("canary", "ftp://x")
        .unwrap_err();
    assert!(err.to_string().contains("canary"), "{err}");
    // A base is where paths go below: no query, no fragment.
    for base in ["http://10.0.0.1/?a=1", "http://10.0.0.1/#top"] {
        let err = Upstream::new("http://orders", base).unwrap_err();
        assert!(err.to_string().contains("no query or fragment"), "{err}");
    }
}

/// A version given twice takes its last address, and leaves the others' alone; the
/// upstream prints as its logical base, default and versions (for a startup log line).
#[test]
fn a_version_given_again_moves_only_that_version() {
    let orders = Upstream::new("http://orders", "http://10.0.0.5:8080")
        .unwrap()
        .version("canary", "http://10.0.0.9:8080")
        .unwrap()
        .version("beta", "http://10.0.0.7:8080")
        .unwrap()
        .version("canary", "http://10.0.0.10:8080")
        .unwrap();
    assert_eq!(
        orders.base_for(Some("canary")).as_str(),
        "http://10.0.0.10:8080/"
    );
    assert_eq!(
        orders.base_for(Some("beta")).as_str(),
        "http://10.0.0.7:8080/"
    );
    assert_eq!(orders.base_for(None).as_str(), "http://10.0.0.5:8080/");
    assert_eq!(
        orders.to_string(),
        "http://orders/ -> http://10.0.0.5:8080/, beta: http://10.0.0.7:8080/, canary: http://10.0.0.10:8080/"
    );
}

/// Credentials in a call's URL (`http://user:secret@orders/…`, sent by reqwest as basic
/// auth) go along to the version's address, unless that base names its own.
#[test]
fn credentials_in_the_url_go_along() {
    let orders = Upstream::new("http://orders", "http://10.0.0.5:8080")
        .unwrap()
        .version("canary", "http://svc:token@10.0.0.9:8080")
        .unwrap();
    let url = reqwest::Url::parse("http://alice:s3cret@orders/api?page=2").unwrap();
    let stable = orders.rewrite(&url, Some("stable")).unwrap();
    assert_eq!(
        stable.as_str(),
        "http://alice:s3cret@10.0.0.5:8080/api?page=2"
    );
    let canary = orders.rewrite(&url, Some("canary")).unwrap();
    assert_eq!(canary.as_str(), "http://svc:token@10.0.0.9:8080/api?page=2");
    let plain = reqwest::Url::parse("http://orders/api").unwrap();
    let stable = orders.rewrite(&plain, None).unwrap();
    assert_eq!(stable.as_str(), "http://10.0.0.5:8080/api");
    // A base that names a user alone names its credentials too.
    let user_only = Upstream::new("http://orders", "http://svc@10.0.0.9:8080").unwrap();
    let moved = user_only.rewrite(&url, None).unwrap();
    assert_eq!(moved.as_str(), "http://svc@10.0.0.9:8080/api?page=2");
}
