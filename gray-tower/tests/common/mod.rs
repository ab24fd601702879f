//! Helpers shared by the gray-tower tests: real servers on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use gray_core::{Config, Gray};

/// The example edge rules (`inherit: never`), from `examples/rules.yaml`.
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

/// A service that is ready only while its gate is open (as a service applying
/// backpressure is), answering with its name.
#[derive(Clone, Debug)]
pub struct Gate {
    pub name: &'static str,
    pub open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    pub fn closed(name: &'static str) -> Self {
        Self {
            name,
            open: Default::default(),
        }
    }

    pub fn set(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<B> tower_service::Service<http::Request<B>> for Gate {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if self.open.load(std::sync::atomic::Ordering::SeqCst) {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(self.name.to_owned())))
    }
}

/// One poll of `service`'s readiness: whether it is ready.
pub fn ready_now<S: tower_service::Service<http::Request<()>>>(service: &mut S) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(service.poll_ready(&mut cx), std::task::Poll::Ready(Ok(())))
}
