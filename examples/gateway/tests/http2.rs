//! HTTP/2 clients on the gateway's port, beside HTTP/1.1 ones: hyper's HTTP/2 client with
//! prior knowledge (h2c), routed and labelled as HTTP/1.1 requests are, to HTTP/1.1
//! upstreams.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use support::{demo, design, gateway, serve_app, uri, version_of};

/// An HTTP/2 connection to `addr`, with prior knowledge.
async fn h2(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    support::h2(addr).await.0
}

/// `method http://{addr}{path}` with `headers` and `body` over `sender`: the status, the
/// headers and the body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: &'static str,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    sender.ready().await.unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn h2c_and_http1_requests_on_one_port_are_routed_alike() {
    let (gw, _) = demo().await;
    let mut sender = h2(gw).await;
    let client = reqwest::Client::new();
    let cases: [&[(&str, &str)]; 4] = [
        &[("x-app-version", "beta")],
        &[("x-user-id", "7")],
        &[("x-user-id", "3")],
        &[],
    ];
    for headers in cases {
        let (status, _, body) = send(&mut sender, gw, ("GET", "/hello"), headers, "").await;
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["path"], "/hello");
        let over_h1 = version_of(&client, gw, headers).await;
        assert_eq!(body["version"], over_h1.as_str(), "{headers:?}");
    }
    // Streams of one connection at once.
    let calls = (0..50).map(|_| {
        let mut sender = sender.clone();
        async move {
            send(
                &mut sender,
                gw,
                ("GET", "/hello"),
                &[("x-app-version", "beta")],
                "",
            )
            .await
        }
    });
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert!(body.contains("\"canary\""), "{body}");
    }
}

#[tokio::test]
async fn an_h2c_request_reaches_an_http1_upstream_with_its_body_host_and_label() {
    let echo = axum::Router::new().fallback(|headers: http::HeaderMap, body: String| async move {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!(
            "{}|{}|{}|{}|{body}",
            value("host"),
            value("x-gray-version"),
            value("x-forwarded-proto"),
            value("x-forwarded-host"),
        )
    });
    let upstream = serve_app(echo).await;
    let (gw, _) = gateway(
        design(),
        vec![("stable", uri(upstream))],
        Duration::from_secs(5),
    )
    .await;
    let mut sender = h2(gw).await;
    let (status, _, body) = send(&mut sender, gw, ("POST", "/items"), &[], "a body").await;
    assert_eq!(status, 200);
    // The endpoint's own Host; the one the client asked for (its `:authority`) in
    // X-Forwarded-Host.
    assert_eq!(body, format!("{upstream}|stable|http|{gw}|a body"));
}
