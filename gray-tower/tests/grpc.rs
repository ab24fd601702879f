//! gRPC with tonic: `GrayLayer` on a tonic server and `GrayPropagationLayer` on a tonic
//! `Channel` keep a call chain on one version, as over plain HTTP. Real servers on
//! 127.0.0.1:0 speaking HTTP/2; the messages are protobuf strings (no code generation).
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::{INTERNAL, edge, expected, gray};
use gray_core::adapter::Propagation;
use gray_core::{Gray, GrayContext, PeerAddr};
use gray_tower::{GrayLayer, GrayPropagationLayer, GrayPropagationService, GraySplit};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::Channel;
use tonic::transport::server::TcpConnectInfo;
use tonic_prost::ProstCodec;
use tower_layer::Layer;

/// `test.Who/Say`: answers with what the handler sees — the label header as it reached
/// the handler (`-`: none), its `GrayContext::current()` and the context in its request
/// extensions — as `a|b|c`, after `name:` when the server has a name.
#[derive(Clone)]
struct Who(&'static str);

impl UnaryService<String> for Who {
    type Response = String;
    type Future = Ready<Result<tonic::Response<String>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<String>) -> Self::Future {
        let label = req.metadata().get("x-gray-version");
        let label = label.and_then(|v| v.to_str().ok()).unwrap_or("-");
        let current = GrayContext::current().map(|c| c.version().to_owned());
        let extension = req.extensions().get::<GrayContext>().map(|c| c.version());
        let server = if self.0.is_empty() {
            String::new()
        } else {
            format!("{}:", self.0)
        };
        let seen = format!(
            "{server}{label}|{}|{}",
            current.unwrap_or_default(),
            extension.unwrap_or_default()
        );
        ready(Ok(tonic::Response::new(seen)))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

/// What tonic's code generator writes for a service, by hand for one unary method.
impl tower_service::Service<http::Request<tonic::body::Body>> for Who {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let who = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<String, String>::default());
            Ok(grpc.unary(who, req).await)
        })
    }
}

impl NamedService for Who {
    const NAME: &'static str = "test.Who";
}

/// A tonic server with `GrayLayer` deciding with `rules`; without one when `None` (its
/// handler sees the metadata exactly as the client sent it).
async fn grpc_server(rules: Option<Gray>) -> SocketAddr {
    named_grpc_server("", rules).await
}

/// The same, answering with its `name` first.
async fn named_grpc_server(name: &'static str, rules: Option<Gray>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        let mut server = tonic::transport::Server::builder();
        match rules {
            Some(rules) => {
                let mut server = server.layer(GrayLayer::new(rules));
                server
                    .add_service(Who(name))
                    .serve_with_incoming(incoming)
                    .await
            }
            None => {
                server
                    .add_service(Who(name))
                    .serve_with_incoming(incoming)
                    .await
            }
        }
        .unwrap()
    });
    addr
}

type Client = tonic::client::Grpc<GrayPropagationService<Channel>>;

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A tonic client whose every call carries the current label.
async fn grpc_client(addr: SocketAddr, propagation: Propagation) -> Client {
    let channel = channel(addr).await;
    tonic::client::Grpc::new(GrayPropagationLayer::from(propagation).layer(channel))
}

/// Calls `test.Who/Say` with `metadata`; what the server's handler saw.
async fn say<S>(client: &mut tonic::client::Grpc<S>, metadata: &[(&'static str, &str)]) -> String
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: std::fmt::Debug,
    S::ResponseBody: tonic::transport::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::transport::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>>,
{
    client.ready().await.unwrap();
    let mut req = tonic::Request::new("hi".to_owned());
    for (key, value) in metadata {
        req.metadata_mut().insert(*key, value.parse().unwrap());
    }
    let path = http::uri::PathAndQuery::from_static("/test.Who/Say");
    let codec = ProstCodec::<String, String>::default();
    client.unary(req, path, codec).await.unwrap().into_inner()
}

#[tokio::test]
async fn a_grpc_call_chain_stays_on_the_edge_version() {
    let internal = grpc_server(Some(gray(INTERNAL))).await;
    let mut client = grpc_client(internal, Propagation::default()).await;
    let edge = edge();
    let mut on_canary = 0;
    for user in 0..200 {
        let id = format!("user-{user}");
        // The edge's decision for this user, as its `GrayLayer` would make it.
        let want = expected(&edge, &[("x-user-id", &id)]);
        on_canary += usize::from(want == "canary");
        let ctx = GrayContext::new(want.as_str());
        let seen = GrayContext::scope(ctx, say(&mut client, &[])).await;
        // The label arrived as metadata, was honoured, and the handler sees it both ways.
        assert_eq!(seen, format!("{want}|{want}|{want}"), "{id}");
    }
    assert!(
        on_canary > 0 && on_canary < 200,
        "both versions were exercised"
    );
}

#[tokio::test]
async fn outside_a_request_a_grpc_call_carries_no_label() {
    // A server without GrayLayer sees the metadata exactly as sent.
    let bare = grpc_server(None).await;
    let mut client = grpc_client(bare, Propagation::default()).await;
    assert_eq!(say(&mut client, &[]).await, "-||");
    let inside = GrayContext::scope(GrayContext::new("canary"), say(&mut client, &[])).await;
    assert_eq!(
        inside, "canary||",
        "inside a request, the client sends the label"
    );
    // An explicit context in the call's extensions wins over the current one.
    let mut req = tonic::Request::new("hi".to_owned());
    req.extensions_mut().insert(GrayContext::new("v2"));
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/test.Who/Say");
    let codec = ProstCodec::<String, String>::default();
    let call = client.unary(req, path, codec);
    let explicit = GrayContext::scope(GrayContext::new("canary"), call).await;
    assert_eq!(explicit.unwrap().into_inner(), "v2||");
}

#[tokio::test]
async fn a_grpc_edge_decides_and_overwrites_a_spoofed_label() {
    let rules = edge();
    let server = grpc_server(Some(rules.clone())).await;
    let mut client = grpc_client(server, Propagation::default()).await;
    let tester = say(&mut client, &[("x-app-version", "beta")]).await;
    assert_eq!(tester, "canary|canary|canary");
    let spoofed = [("x-gray-version", "canary"), ("x-user-id", "7")];
    // User 7 is on stable by its bucket; the handler sees the label GrayLayer set.
    assert_eq!(say(&mut client, &spoofed).await, "stable|stable|stable");
    assert_eq!(rules.rejected_labels(), 1);
}

#[tokio::test]
async fn a_grpc_label_can_travel_in_baggage_only() {
    let internal = grpc_server(Some(gray(INTERNAL))).await;
    let mut client = grpc_client(internal, Propagation::new().baggage_only()).await;
    let seen = GrayContext::scope(GrayContext::new("canary"), say(&mut client, &[])).await;
    // GrayLayer read `baggage` and wrote the label header.
    assert_eq!(seen, "canary|canary|canary");
    // No label header went out: a server without the layer sees the metadata as sent.
    let bare = grpc_server(None).await;
    let mut client = grpc_client(bare, Propagation::new().baggage_only()).await;
    let seen = GrayContext::scope(GrayContext::new("canary"), say(&mut client, &[])).await;
    assert_eq!(seen, "-||");
}

#[tokio::test]
async fn per_version_upstreams_with_one_channel_per_version() {
    // Full-link gray where each version of the next service has its own address: one
    // Channel per version behind `GraySplit`, which picks by the current context.
    let stable = named_grpc_server("stable-pool", Some(gray(INTERNAL))).await;
    let canary = named_grpc_server("canary-pool", Some(gray(INTERNAL))).await;
    let split = GraySplit::new(channel(stable).await).version("canary", channel(canary).await);
    let mut client = tonic::client::Grpc::new(GrayPropagationLayer::default().layer(split));
    for version in ["canary", "stable", "canary"] {
        let seen = GrayContext::scope(GrayContext::new(version), say(&mut client, &[])).await;
        assert_eq!(
            seen,
            format!("{version}-pool:{version}|{version}|{version}")
        );
    }
    // Outside a request: the default version's upstream, no label.
    assert_eq!(
        say(&mut client, &[]).await,
        "stable-pool:stable|stable|stable"
    );
}

/// HTTP/2 carries the host in `:authority`, not in a `host` header: a rule on `host`
/// still matches it.
#[tokio::test]
async fn a_host_rule_matches_the_http2_authority() {
    let rules = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: local, match: { headers: [{ name: host, prefix: '127.0.0.1:' }] }, to: canary }\n",
    );
    let server = grpc_server(Some(rules)).await;
    let mut client = grpc_client(server, Propagation::default()).await;
    assert_eq!(say(&mut client, &[]).await, "canary|canary|canary");
}

/// `test.Count/Up`: a server stream of three messages, each naming the version current
/// when tonic polls the stream for it — after the handler has returned.
#[derive(Clone)]
struct Count;

struct Counting(u8);

impl tonic::codegen::tokio_stream::Stream for Counting {
    type Item = Result<String, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        let seen = GrayContext::current().map_or("none".to_owned(), |c| c.version().to_owned());
        Poll::Ready(Some(Ok(seen)))
    }
}

impl tonic::server::ServerStreamingService<String> for Count {
    type Response = String;
    type ResponseStream = Counting;
    type Future = Ready<Result<tonic::Response<Counting>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<String>) -> Self::Future {
        ready(Ok(tonic::Response::new(Counting(3))))
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Count {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<String, String>::default());
            Ok(grpc.server_streaming(Count, req).await)
        })
    }
}

impl NamedService for Count {
    const NAME: &'static str = "test.Count";
}

/// The messages of one `test.Count/Up` call to a server with `GrayLayer`, and
/// `GrayBodyLayer` inside it when `scoped`.
async fn count(scoped: bool) -> Vec<String> {
    let rules = gray("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        let served = if scoped {
            let layers = tower::ServiceBuilder::new()
                .layer(GrayLayer::new(rules))
                .layer(gray_tower::GrayBodyLayer);
            tonic::transport::Server::builder()
                .layer(layers)
                .add_service(Count)
                .serve_with_incoming(incoming)
                .await
        } else {
            tonic::transport::Server::builder()
                .layer(GrayLayer::new(rules))
                .add_service(Count)
                .serve_with_incoming(incoming)
                .await
        };
        served.unwrap()
    });
    let mut client = tonic::client::Grpc::new(channel(addr).await);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/test.Count/Up");
    let codec = ProstCodec::<String, String>::default();
    let req = tonic::Request::new("hi".to_owned());
    let mut stream = client
        .server_streaming(req, path, codec)
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        seen.push(message);
    }
    seen
}

/// A gRPC server stream is polled by tonic after the handler returns: with
/// `GrayBodyLayer`, each message is produced in the call's context.
#[tokio::test]
async fn a_grpc_server_stream_is_produced_in_the_calls_context_with_gray_body_layer() {
    assert_eq!(count(true).await, ["canary", "canary", "canary"]);
    assert_eq!(count(false).await, ["none", "none", "none"], "without it");
}

/// A tonic server keeps the connection's address in its own `TcpConnectInfo`: handed on
/// as a `PeerAddr` in front of `GrayLayer`, rules on the client's address see it (the
/// snippet `GrayLayer`'s docs describe). Without it, no client address.
#[tokio::test]
async fn a_grpc_server_hands_the_peer_on_to_client_address_rules() {
    let rules = "versions: [stable, canary]
routes:
  - name: here
    match: { client_ip: { cidr: [127.0.0.0/8] } }
    to: canary
";
    for (peer_on, want) in [(true, "canary"), (false, "stable")] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let gray = gray(rules);
        tokio::spawn(async move {
            let stack = tower::ServiceBuilder::new()
                .map_request(move |mut req: http::Request<tonic::body::Body>| {
                    let info = req.extensions().get::<TcpConnectInfo>();
                    if let Some(peer) = info.and_then(TcpConnectInfo::remote_addr)
                        && peer_on
                    {
                        req.extensions_mut().insert(PeerAddr(peer));
                    }
                    req
                })
                .layer(GrayLayer::new(gray));
            tonic::transport::Server::builder()
                .layer(stack)
                .add_service(Who(""))
                .serve_with_incoming(incoming)
                .await
                .unwrap()
        });
        let mut client = grpc_client(addr, Propagation::default()).await;
        assert_eq!(say(&mut client, &[]).await, format!("{want}|{want}|{want}"));
    }
}
