//! Slow, oversized, malformed and random input on the gateway's listener: cut off,
//! answered 431 or 400, and the gateway serving on.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gray_gateway::{Limits, Proxy};
use rand::{Rng, SeedableRng};
use support::{design, responder_upstreams, serve_proxy, version_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The demo behind a gateway with `limits`.
async fn limited(limits: Limits) -> SocketAddr {
    let proxy = Proxy::new(
        design(),
        responder_upstreams().await,
        Duration::from_secs(5),
    );
    serve_proxy(proxy.limits(limits)).await.0
}

/// Everything the gateway sends on `stream` until it closes it (`None` if it has not
/// within 10 s).
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()?;
    Some(seen)
}

/// The status line of a raw HTTP/1.1 answer.
fn status_line(answer: &[u8]) -> String {
    let answer = String::from_utf8_lossy(answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let gw = limited(Limits::default().header_timeout(timeout)).await;
    let mut stream = TcpStream::connect(gw).await.unwrap();
    let start = Instant::now();
    let trickle = async {
        for byte in b"GET /hello HTTP/1.1\r\nhost: x\r\nx-padding: "
            .iter()
            .cycle()
        {
            if stream.write_all(&[*byte]).await.is_err() {
                return; // closed by the gateway
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the gateway never cut the trickle off");
    let elapsed = start.elapsed();
    assert!(elapsed >= timeout, "cut off after {elapsed:?}");
    // And it serves on.
    assert_eq!(version_of(&reqwest::Client::new(), gw, &[]).await, "stable");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_preface_is_closed() {
    let timeout = Duration::from_millis(300);
    let gw = limited(Limits::default().header_timeout(timeout)).await;
    for opening in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut stream = TcpStream::connect(gw).await.unwrap();
        stream.write_all(opening).await.unwrap();
        let start = Instant::now();
        let answer = until_closed(&mut stream).await.expect("never closed");
        assert!(start.elapsed() >= timeout - Duration::from_millis(50));
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
}

#[tokio::test]
async fn oversized_headers_get_431_and_a_malformed_request_400() {
    let gw = limited(
        Limits::default()
            .max_header_bytes(16 * 1024)
            .max_headers(20),
    )
    .await;
    let client = reqwest::Client::new();
    let big = "x".repeat(20 * 1024);
    let res = client
        .get(format!("http://{gw}/hello"))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    let mut req = client.get(format!("http://{gw}/hello"));
    for i in 0..30 {
        req = req.header(format!("x-h{i}"), "1");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // Within the limits: served.
    let res = client
        .get(format!("http://{gw}/hello"))
        .header("x-big", "x".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    for malformed in [
        &b"GET /hello HTTP/1.1\r\nhost x\r\n\r\n"[..],
        b"GET /he llo HTTP/1.1\r\nhost: x\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(gw).await.unwrap();
        stream.write_all(malformed).await.unwrap();
        let answer = until_closed(&mut stream).await.expect("never closed");
        let status = status_line(&answer);
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{malformed:?}: {status}"
        );
    }
}

#[tokio::test]
async fn oversized_http2_headers_are_refused() {
    let gw = limited(Limits::default().max_header_bytes(16 * 1024)).await;
    let (mut sender, _) = support::h2(gw).await;
    let req = |padding: usize| {
        http::Request::builder()
            .uri(format!("http://{gw}/hello"))
            .header("x-big", "x".repeat(padding))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    sender.ready().await.unwrap();
    match sender.send_request(req(20 * 1024)).await {
        Ok(res) => assert_eq!(res.status(), 431),
        Err(e) => assert!(e.to_string().contains("header"), "{e}"),
    }
}

#[tokio::test]
async fn past_max_connections_a_client_waits_until_one_closes() {
    let gw = limited(Limits::default().max_connections(1)).await;
    let request = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut first = TcpStream::connect(gw).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0; 4096];
    let n = first.read(&mut buf).await.unwrap();
    assert!(status_line(&buf[..n]).starts_with("HTTP/1.1 200"));

    // The first is kept alive: the second is not served...
    let mut second = TcpStream::connect(gw).await.unwrap();
    second.write_all(request).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(waited.is_err(), "served past the limit");
    // ...until the first closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf))
        .await
        .expect("never served")
        .unwrap();
    assert!(status_line(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn random_bytes_never_stop_the_gateway() {
    let gw = limited(Limits::default().header_timeout(Duration::from_millis(500))).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9a7);
    let openings: [&[u8]; 5] = [
        b"",
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    ];
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut bytes = openings[i % openings.len()].to_vec();
        let len = rng.random_range(0..4096);
        bytes.extend((0..len).map(|_| rng.random::<u8>()));
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(gw).await.unwrap();
            let _ = stream.write_all(&bytes).await;
            until_closed(&mut stream).await.is_some()
        }));
    }
    for client in clients {
        assert!(client.await.unwrap(), "a connection was never closed");
    }
    let client = reqwest::Client::new();
    assert_eq!(
        version_of(&client, gw, &[("x-app-version", "beta")]).await,
        "canary"
    );
    assert_eq!(version_of(&client, gw, &[]).await, "stable");
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    // An upstream whose answer takes longer than the idle timeout to stream.
    let slow = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                let chunks = futures_util::stream::unfold(0, |i| async move {
                    if i == 6 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::convert::Infallible>(format!("{i}")), i + 1))
                });
                axum::body::Body::from_stream(chunks)
            }),
        )
        .fallback(|| async { "quick" });
    let upstream = support::serve_app(slow).await;
    let idle = Duration::from_millis(400);
    let proxy = Proxy::new(
        design(),
        vec![("stable".to_owned(), support::uri(upstream))],
        Duration::from_secs(5),
    );
    let (gw, _) = serve_proxy(proxy.limits(Limits::default().idle_timeout(idle))).await;

    // HTTP/2: one request, then nothing: the connection ends.
    let (mut sender, conn) = support::h2(gw).await;
    let get = |path: &str| {
        http::Request::builder()
            .uri(format!("http://{gw}{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // A streamed answer lasting three idle timeouts is not cut.
    let start = Instant::now();
    let res = sender.send_request(get("/slow")).await.unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), "012345");
    assert!(start.elapsed() >= 3 * idle);
    // Then idle: closed, with a GOAWAY (the connection's future ends cleanly).
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let idle_for = start.elapsed();
    assert!(closed.expect("never closed").unwrap().is_ok());
    assert!(
        idle_for >= Duration::from_millis(1200) + idle,
        "{idle_for:?}"
    );
}
