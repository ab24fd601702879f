//! TLS termination with certificates the tests make (rcgen): both ALPN protocols, a
//! rotation of the files while requests run (none failing), a bad new pair refused with
//! the old one kept.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gray_gateway::{Proxy, Tls, TlsError};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use support::{design, responder_upstreams, serve_proxy};

/// A self-signed certificate for `localhost` and its key, as PEM.
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A directory of its own for a test's files.
fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gray-gateway-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `pem` to `path` whole: to a file beside it, renamed over it.
fn write(path: &Path, pem: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The demo's upstreams behind a gateway serving HTTPS with the files in `dir`.
async fn https_gateway(dir: &Path) -> SocketAddr {
    let tls = Tls::load(dir.join("tls.crt"), dir.join("tls.key")).unwrap();
    let proxy = Proxy::new(
        design(),
        responder_upstreams().await,
        Duration::from_secs(5),
    );
    serve_proxy(proxy.tls(Some(tls))).await.0
}

/// A client trusting `roots` (PEM certificates), offering `alpn`.
fn client(roots: &[&str], alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        use rustls::pki_types::pem::PemObject;
        store
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    // Each connection a full handshake, which shows the certificate in force.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET https://localhost/hello` on a new connection: the protocol agreed, the status, the
/// body, and the certificate the gateway showed.
async fn get(
    gw: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    headers: &[(&str, &str)],
) -> Result<(Vec<u8>, u16, String, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(gw).await?;
    let name = ServerName::try_from("localhost")?;
    let stream = connector.connect(name, tcp).await?;
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().unwrap_or_default().to_vec();
    let shown = session.peer_certificates().unwrap_or_default()[0].to_vec();
    let mut req = http::Request::builder().uri(format!("https://localhost:{}/hello", gw.port()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let io = TokioIo::new(stream);
    let res = if alpn == b"h2" {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        sender
            .send_request(req.body(Empty::<Bytes>::new())?)
            .await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = req
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())?;
        sender.send_request(req).await?
    };
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((alpn, status, String::from_utf8(body.to_vec())?, shown))
}

/// The DER of a PEM certificate.
fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn https_with_either_alpn_protocol_is_routed() {
    let dir = dir("alpn");
    let (cert, key) = certificate();
    write(&dir.join("tls.crt"), &cert);
    write(&dir.join("tls.key"), &key);
    let gw = https_gateway(&dir).await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let connector = client(&[&cert], alpn);
        let (agreed, status, body, shown) = get(gw, &connector, &[("x-app-version", "beta")])
            .await
            .unwrap();
        assert_eq!(agreed, alpn);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"canary\""), "{body}");
        assert_eq!(shown, der(&cert));
        let (_, _, body, _) = get(gw, &connector, &[]).await.unwrap();
        assert!(body.contains("\"stable\""), "{body}");
    }
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{gw}/hello"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_with_no_request_failing_and_a_bad_one_refused() {
    let dir = dir("rotate");
    let (old_cert, old_key) = certificate();
    let (new_cert, new_key) = certificate();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    write(&cert_path, &old_cert);
    write(&key_path, &old_key);
    let gw = https_gateway(&dir).await;
    // The client trusts both, as it would a CA that signed both.
    let connector = client(&[&old_cert, &new_cert], b"h2");
    let (_, _, _, shown) = get(gw, &connector, &[]).await.unwrap();
    assert_eq!(shown, der(&old_cert));

    // Requests on new connections all along, while the files change under them (the key
    // first: in between, the pair does not match and is refused).
    let load = tokio::spawn({
        let connector = connector.clone();
        let new = der(&new_cert);
        async move {
            let mut seen_new = false;
            for _ in 0..2_000 {
                let (_, status, body, shown) = get(gw, &connector, &[]).await.unwrap();
                assert_eq!(status, 200, "{body}");
                if shown == new {
                    seen_new = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen_new
        }
    });
    write(&key_path, &new_key);
    write(&cert_path, &new_cert);
    assert!(load.await.unwrap(), "the new certificate was never served");

    // A broken certificate is refused: the one in force stays.
    write(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    let tls = Tls::load(&cert_path, &key_path);
    assert!(matches!(tls, Err(TlsError::Certificate { .. })), "{tls:?}");
    for _ in 0..30 {
        let (_, status, _, shown) = get(gw, &connector, &[]).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(shown, der(&new_cert));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_bad_pair_is_refused_naming_the_file() {
    let dir = dir("bad");
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    write(&cert_path, &cert);
    write(&key_path, &other_key);
    let err = Tls::load(&cert_path, &key_path).unwrap_err();
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("tls.key is not the private key of the certificate in"),
        "{err}"
    );

    let missing = dir.join("missing.crt");
    let err = Tls::load(&missing, &key_path).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.crt"), "{err}");

    write(&key_path, "not a key");
    let err = Tls::load(&cert_path, &key_path).unwrap_err();
    assert!(matches!(err, TlsError::Key { .. }), "{err:?}");

    // In force, a reload of a bad pair is an error and changes nothing; of a good one, true.
    write(&key_path, &key);
    let tls = Tls::load(&cert_path, &key_path).unwrap();
    assert!(!tls.reload().unwrap(), "unchanged files reloaded");
    write(&key_path, &other_key);
    assert!(matches!(tls.reload(), Err(TlsError::Mismatch { .. })));
    assert!(
        !tls.reload().unwrap(),
        "a refused pair tried again before it changed"
    );
    write(&key_path, &key);
    assert!(tls.reload().unwrap());
}

/// An HTTPS upstream answering `name:HTTP/x` (the protocol it was asked in), with the
/// certificate `(cert, key)`, offering `alpn` only.
async fn https_upstream(
    name: &'static str,
    (cert, key): (&str, &str),
    alpn: &[&[u8]],
) -> SocketAddr {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let answer = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let body = format!("{name}:{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), answer)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_endpoints_speak_what_alpn_agrees_and_an_untrusted_one_is_refused() {
    let dir = dir("upstream");
    let (cert, key) = certificate();
    std::fs::write(dir.join("ca.pem"), &cert).unwrap();
    let pair = (cert.as_str(), key.as_str());
    let h2 = https_upstream("canary", pair, &[b"h2", b"http/1.1"]).await;
    let h1 = https_upstream("stable", pair, &[b"http/1.1"]).await;
    let https = |addr: SocketAddr| {
        format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap()
    };
    let upstreams = vec![
        ("stable".to_owned(), https(h1)),
        ("canary".to_owned(), https(h2)),
    ];
    let tls = gray_gateway::upstream::UpstreamTls::from_ca_file(dir.join("ca.pem")).unwrap();
    let proxy = Proxy::new(design(), upstreams, Duration::from_secs(5)).upstream_tls(&tls);
    let (gw, _) = serve_proxy(proxy).await;
    let client = reqwest::Client::new();
    let get = |headers: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        async move {
            let mut req = client.get(format!("http://{gw}/hello"));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    for _ in 0..3 {
        assert_eq!(
            get(&[("x-app-version", "beta")]).await,
            (200, "canary:HTTP/2.0".to_owned())
        );
        assert_eq!(get(&[]).await, (200, "stable:HTTP/1.1".to_owned()));
    }

    // The system's roots do not know the test's certificate: no answer, 502.
    let upstreams = vec![("stable".to_owned(), https(h1))];
    let (gw, _) = serve_proxy(Proxy::new(design(), upstreams, Duration::from_secs(5))).await;
    let res = client
        .get(format!("http://{gw}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);

    let err = gray_gateway::upstream::UpstreamTls::from_ca_file(dir.join("none.pem")).unwrap_err();
    assert!(err.to_string().contains("none.pem"), "{err}");
}
