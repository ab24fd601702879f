//! What the gateway's tests share: upstreams, a gateway in front of them, requests.
#![allow(dead_code)] // each test file uses some of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gray_core::Gray;
use gray_gateway::upstream::Target;
use gray_gateway::{Proxy, responder, serve};

pub(crate) fn design() -> Gray {
    Gray::new(gray_core::Config::from_yaml(gray_gateway::DEMO_RULES).unwrap()).unwrap()
}

/// Serves `app` on an ephemeral loopback port.
pub(crate) async fn serve_app(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `http://{addr}`, as an upstream.
pub(crate) fn uri(addr: SocketAddr) -> Target {
    format!("http://{addr}").parse().unwrap()
}

/// A gateway in front of `upstreams`, on an ephemeral port.
pub(crate) async fn gateway(
    gray: Gray,
    upstreams: Vec<(&str, Target)>,
    timeout: Duration,
) -> (SocketAddr, Arc<Proxy>) {
    let upstreams = upstreams
        .into_iter()
        .map(|(v, u)| (v.to_owned(), u))
        .collect();
    serve_proxy(Proxy::new(gray, upstreams, timeout)).await
}

/// A loopback address nothing listens on: a port the system handed out, then closed.
pub(crate) fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `proxy` served on an ephemeral port.
pub(crate) async fn serve_proxy(proxy: Proxy) -> (SocketAddr, Arc<Proxy>) {
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

/// A built-in responder per version of the demo.
pub(crate) async fn responder_upstreams() -> Vec<(String, Target)> {
    let mut upstreams = Vec::new();
    for version in ["stable", "canary"] {
        let addr = responder(version.to_owned()).await.unwrap();
        upstreams.push((version.to_owned(), uri(addr)));
    }
    upstreams
}

/// The demo: the example rules, a built-in responder per version.
pub(crate) async fn demo() -> (SocketAddr, Arc<Proxy>) {
    let upstreams = responder_upstreams().await;
    serve_proxy(Proxy::new(design(), upstreams, Duration::from_secs(10))).await
}

/// The body of `GET http://{gw}{path}`.
pub(crate) async fn get_text(client: &reqwest::Client, gw: SocketAddr, path: &str) -> String {
    let res = client
        .get(format!("http://{gw}{path}"))
        .send()
        .await
        .unwrap();
    res.text().await.unwrap()
}

pub(crate) async fn version_of(
    client: &reqwest::Client,
    gw: SocketAddr,
    headers: &[(&str, &str)],
) -> String {
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

/// `GET /gray/status` as JSON.
pub(crate) async fn status(client: &reqwest::Client, gw: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get_text(client, gw, "/gray/status").await).unwrap()
}

/// Waits (bounded, 10 ms steps) until the gateway lets every version back in: its own
/// timer, which nothing outside can await.
pub(crate) async fn until_all_available(client: &reqwest::Client, gw: SocketAddr) {
    for _ in 0..1_000 {
        if status(client, gw).await["unavailable"] == serde_json::json!([]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a version was never let back in");
}

/// A raw upstream: answers each request with `body`, counting connections; with
/// `close_after_one`, it closes every connection after one response, without saying so.
pub(crate) async fn raw_upstream(
    body: &'static str,
    close_after_one: bool,
) -> (SocketAddr, Arc<AtomicUsize>) {
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

/// An upstream that answers `{"version": name, "at": its port}` until stopped: dropping
/// or sending on the returned stopper shuts it down gracefully (requests in flight
/// answered, idle connections closed), as a pod does on SIGTERM.
pub(crate) async fn stoppable(
    name: &'static str,
    at: Option<SocketAddr>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind(at.unwrap_or(([127, 0, 0, 1], 0).into()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        axum::Json(serde_json::json!({ "version": name, "at": addr.port() }))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, task)
}

/// `GET /hello` with `headers` through the gateway: the status, and the JSON body's
/// `version` and `at` (the port of the endpoint that answered) when it is 200.
pub(crate) async fn who(
    client: &reqwest::Client,
    gw: SocketAddr,
    headers: &[(&str, &str)],
) -> (u16, String, u64) {
    let mut req = client.get(format!("http://{gw}/hello"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(body) if status == 200 => (
            status,
            body["version"].as_str().unwrap_or_default().to_owned(),
            body["at"].as_u64().unwrap_or_default(),
        ),
        _ => (status, text, 0),
    }
}

/// An HTTP/2 connection to `addr` with prior knowledge: its sender, and the task driving
/// it (which ends when the connection closes).
pub(crate) async fn h2<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(conn))
}

/// The access log's lines in `file`, parsed, once there are `n` (bounded, 10 ms steps:
/// the log's writer thread is not something a test can await).
pub(crate) async fn access_lines(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for _ in 0..500 {
        lines = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        if lines.len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), n, "{lines:?}");
    lines
}
