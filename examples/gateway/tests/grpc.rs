//! gRPC through the gateway: a tonic client → the gateway (HTTP/2 with prior knowledge) →
//! two tonic servers, stable and canary, as `h2c://` endpoints. Unary and streaming calls,
//! routed by the rules, statuses reaching the client as the servers sent them. Real
//! servers on 127.0.0.1:0; the messages are protobuf strings (no code generation).
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use support::{design, serve_proxy};
use tokio_stream::{Stream, StreamExt};
use tonic::server::{NamedService, StreamingService, UnaryService};
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

/// `test.Who`: `Say` answers `name:label` (the label header as the server got it, `-` for
/// none), or fails with `NOT_FOUND` when asked `missing`; `Echo` answers each message
/// with `name:message`, and ends with `INTERNAL` at a message `fail`.
#[derive(Clone)]
struct Who(&'static str);

impl UnaryService<String> for Who {
    type Response = String;
    type Future = Ready<Result<tonic::Response<String>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<String>) -> Self::Future {
        if req.get_ref() == "missing" {
            return ready(Err(tonic::Status::not_found(format!(
                "{}: no such thing",
                self.0
            ))));
        }
        let label = req.metadata().get("x-gray-version");
        let label = label.and_then(|v| v.to_str().ok()).unwrap_or("-");
        ready(Ok(tonic::Response::new(format!("{}:{label}", self.0))))
    }
}

type Replies = Pin<Box<dyn Stream<Item = Result<String, tonic::Status>> + Send>>;

impl StreamingService<String> for Who {
    type Response = String;
    type ResponseStream = Replies;
    type Future = Ready<Result<tonic::Response<Replies>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<tonic::Streaming<String>>) -> Self::Future {
        let name = self.0;
        let replies = req.into_inner().map(move |message| {
            let message = message?;
            if message == "fail" {
                return Err(tonic::Status::internal(format!("{name}: failed at fail")));
            }
            Ok(format!("{name}:{message}"))
        });
        ready(Ok(tonic::Response::new(Box::pin(replies) as Replies)))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

/// What tonic's code generator writes for a service, by hand for two methods.
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
            Ok(match req.uri().path() {
                "/test.Who/Say" => grpc.unary(who, req).await,
                "/test.Who/Echo" => grpc.streaming(who, req).await,
                _ => tonic::Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

impl NamedService for Who {
    const NAME: &'static str = "test.Who";
}

/// A tonic server answering as `name`.
async fn grpc_server(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(Who(name))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

/// The gateway in front of a stable and a canary tonic server; a tonic client to it.
async fn setup() -> tonic::client::Grpc<Channel> {
    setup_logged(None).await
}

/// The same, with an access log to `log`.
async fn setup_logged(log: Option<&std::path::Path>) -> tonic::client::Grpc<Channel> {
    let stable = grpc_server("stable").await;
    let canary = grpc_server("canary").await;
    let h2c = |addr: SocketAddr| format!("h2c://{addr}").parse().unwrap();
    let upstreams = vec![
        ("stable".to_owned(), h2c(stable)),
        ("canary".to_owned(), h2c(canary)),
    ];
    let proxy = gray_gateway::Proxy::new(design(), upstreams, Duration::from_secs(10))
        .access_log(log.and_then(|p| p.to_str()))
        .unwrap();
    let (gw, _) = serve_proxy(proxy).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{gw}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

async fn say(
    client: &mut tonic::client::Grpc<Channel>,
    message: &str,
    metadata: &[(&'static str, &str)],
) -> Result<String, tonic::Status> {
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(message.to_owned());
    for (key, value) in metadata {
        req.metadata_mut().insert(*key, value.parse().unwrap());
    }
    let path = PathAndQuery::from_static("/test.Who/Say");
    let codec = ProstCodec::<String, String>::default();
    Ok(client.unary(req, path, codec).await?.into_inner())
}

#[tokio::test]
async fn unary_calls_are_routed_by_the_rules_and_labelled() {
    let mut client = setup().await;
    // The demo's rules: a tester's header goes to canary, anyone else to stable.
    let tester = [("x-app-version", "beta")];
    assert_eq!(
        say(&mut client, "hi", &tester).await.unwrap(),
        "canary:canary"
    );
    assert_eq!(say(&mut client, "hi", &[]).await.unwrap(), "stable:stable");
    // A label from outside is not trusted: the gateway decides.
    let spoofed = [("x-gray-version", "canary")];
    assert_eq!(
        say(&mut client, "hi", &spoofed).await.unwrap(),
        "stable:stable"
    );
}

#[tokio::test]
async fn a_status_in_a_trailers_only_answer_reaches_the_client() {
    let mut client = setup().await;
    let status = say(&mut client, "missing", &[("x-app-version", "beta")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "canary: no such thing");
}

#[tokio::test]
async fn streams_both_ways_and_a_status_in_the_trailers_reach_the_client() {
    let mut client = setup().await;
    let path = PathAndQuery::from_static("/test.Who/Echo");
    let codec = ProstCodec::<String, String>::default();

    let messages: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(tokio_stream::iter(messages.clone()));
    req.metadata_mut()
        .insert("x-app-version", "beta".parse().unwrap());
    let res = client.streaming(req, path.clone(), codec).await.unwrap();
    let replies: Vec<String> = res.into_inner().map(Result::unwrap).collect().await;
    let expected: Vec<String> = messages.iter().map(|m| format!("canary:{m}")).collect();
    assert_eq!(replies, expected);

    // Two answers, then `INTERNAL` in the trailers.
    let failing = ["a", "b", "fail", "never"].map(str::to_owned);
    client.ready().await.unwrap();
    let req = tonic::Request::new(tokio_stream::iter(failing));
    let codec = ProstCodec::<String, String>::default();
    let mut replies = client
        .streaming(req, path, codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replies.message().await.unwrap().as_deref(),
        Some("stable:a")
    );
    assert_eq!(
        replies.message().await.unwrap().as_deref(),
        Some("stable:b")
    );
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_eq!(status.message(), "stable: failed at fail");
}

#[tokio::test]
async fn many_calls_at_once_are_all_answered() {
    let mut client = setup().await;
    let calls = (0..200).map(|_| {
        let mut client = client.clone();
        async move { say(&mut client, "hi", &[("x-app-version", "beta")]).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for answer in answers {
        assert_eq!(answer.unwrap(), "canary:canary");
    }
    assert_eq!(say(&mut client, "hi", &[]).await.unwrap(), "stable:stable");
}

#[tokio::test]
async fn the_access_log_has_each_calls_grpc_status_from_its_trailers() {
    let dir = std::env::temp_dir().join(format!("gray-grpc-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("access.log");
    let _ = std::fs::remove_file(&file);
    let mut client = setup_logged(Some(&file)).await;
    say(&mut client, "hi", &[("x-app-version", "beta")])
        .await
        .unwrap();
    say(&mut client, "missing", &[]).await.unwrap_err();
    client.ready().await.unwrap();
    let failing = tonic::Request::new(tokio_stream::iter(["a", "fail"].map(str::to_owned)));
    let path = PathAndQuery::from_static("/test.Who/Echo");
    let codec = ProstCodec::<String, String>::default();
    let mut replies = client
        .streaming(failing, path, codec)
        .await
        .unwrap()
        .into_inner();
    while replies.message().await.is_ok_and(|m| m.is_some()) {}

    let lines = support::access_lines(&file, 3).await;
    let by_path = |path: &str, version: &str| {
        lines
            .iter()
            .find(|l| l["path"] == path && l["version"] == version)
            .unwrap_or_else(|| panic!("no {path} on {version}: {lines:?}"))
    };
    // OK, in the trailers; NOT_FOUND, in a trailers-only answer's head; INTERNAL, in the
    // trailers after a message.
    assert_eq!(by_path("/test.Who/Say", "canary")["grpc_status"], 0);
    assert_eq!(by_path("/test.Who/Say", "stable")["grpc_status"], 5);
    let stream = by_path("/test.Who/Echo", "stable");
    assert_eq!(stream["grpc_status"], 13, "{stream}");
    assert_eq!(stream["status"], 200, "{stream}");
}
