//! Helpers shared by the gray-tower tests: real servers on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use gray_core::{Config, Gray};

/// DESIGN.md's edge rules (`inherit: never`), from `examples/rules.yaml`.
pub fn edge() -> Gray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    Gray::from_path(path).expect("examples/rules.yaml is valid")
}

/// Rules of an internal service: trust a declared label, else decide by header.
pub const INTERNAL: &str = r#"
label: { header: x-gray-version, inherit: always }
versions: [stable, canary]
routes:
  - name: testers
    match: { headers: [{ name: x-app-version, exact: beta }] }
    to: canary
"#;

pub fn gray(yaml: &str) -> Gray {
    Gray::new(Config::from_yaml(yaml).expect("test rules parse")).expect("test rules are valid")
}

/// Serves `app` on an ephemeral loopback port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server runs") });
    addr
}

/// The version the rules give a request with these headers (keyed decisions are pure).
pub fn expected(gray: &Gray, headers: &[(&str, &str)]) -> String {
    let mut req = http::Request::get("/");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    gray.decide(&req.body(()).expect("request builds"))
        .version()
        .to_owned()
}

pub async fn get(
    client: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request succeeds")
}

/// A streamed body of `count` frames, each made by `frame` when the server polls for it —
/// after the handler has returned, as a server-sent events body is.
pub struct Frames<F> {
    pub count: u8,
    pub frame: F,
}

impl<F: FnMut() -> String + Unpin> http_body::Body for Frames<F> {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.count == 0 {
            return std::task::Poll::Ready(None);
        }
        self.count -= 1;
        let data = bytes::Bytes::from((self.frame)());
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }
}
