//! Two hops: the edge decides, the propagating client carries the label, the internal
//! service (`inherit: always`) stays on the same version.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use common::{INTERNAL, edge, expected, gray, serve};
use gray_core::GrayContext;
use gray_core::adapter::Propagation;
use gray_reqwest::GrayPropagation;
use gray_tower::{GrayLayer, GrayPropagationLayer, GrayPropagationService};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower::ServiceExt;
use tower_layer::Layer;

/// Service B: answers with the version it decided and the baggage it got, and
/// `|header=V` when the label header arrived (read before its `GrayLayer` sets it).
async fn service_b() -> SocketAddr {
    let app = Router::new()
        .route(
            "/b",
            get(|headers: http::HeaderMap| async move {
                let version = GrayContext::current().map(|c| c.version().to_owned());
                let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let arrived = text("x-label-arrived").map(|v| format!("|header={v}"));
                format!(
                    "{}|{}{}",
                    version.unwrap_or_default(),
                    text("baggage").unwrap_or(""),
                    arrived.unwrap_or_default()
                )
            }),
        )
        .layer(GrayLayer::new(gray(INTERNAL)))
        .layer(tower::util::MapRequestLayer::new(
            |mut req: http::Request<axum::body::Body>| {
                if let Some(label) = req.headers().get("x-gray-version").cloned() {
                    req.headers_mut().insert("x-label-arrived", label);
                }
                req
            },
        ));
    serve(app).await
}

/// A tower HTTP client (hyper-util's) behind `GrayPropagationLayer`.
type TowerClient = GrayPropagationService<HyperClient<HttpConnector, Empty<Bytes>>>;

fn tower_client(propagation: Propagation) -> Box<TowerClient> {
    let client = HyperClient::builder(TokioExecutor::new()).build_http();
    Box::new(GrayPropagationLayer::from(propagation).layer(client))
}

/// The propagating client service A calls B with: reqwest's or a tower one.
#[derive(Clone)]
enum Outbound {
    Reqwest(ClientWithMiddleware),
    Tower(Box<TowerClient>),
}

impl Outbound {
    /// `GET url` with `baggage: tenant=acme` (and `ctx` in the request, if given); the body.
    async fn call(&self, url: String, ctx: Option<GrayContext>) -> String {
        match self {
            Self::Reqwest(client) => {
                let mut req = client.get(url).header("baggage", "tenant=acme");
                if let Some(ctx) = ctx {
                    req = req.with_extension(ctx);
                }
                req.send().await.unwrap().text().await.unwrap()
            }
            Self::Tower(client) => {
                let mut req = http::Request::get(url)
                    .header("baggage", "tenant=acme")
                    .body(Empty::new())
                    .unwrap();
                if let Some(ctx) = ctx {
                    req.extensions_mut().insert(ctx);
                }
                let res = client.clone().oneshot(req).await.unwrap();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            }
        }
    }
}

/// Service A: the edge; its handler calls B through `client` and reports both versions.
async fn service_a(b: SocketAddr, client: Outbound) -> SocketAddr {
    let app = Router::new()
        .route(
            "/a",
            get(
                |State((b, client)): State<(SocketAddr, Outbound)>| async move {
                    let mine = GrayContext::current()
                        .map(|c| c.version().to_owned())
                        .unwrap_or_default();
                    let theirs = client.call(format!("http://{b}/b"), None).await;
                    format!("{mine}>{theirs}")
                },
            ),
        )
        .with_state((b, client))
        .layer(GrayLayer::new(edge()));
    serve(app).await
}

fn reqwest_client(propagation: GrayPropagation) -> Outbound {
    Outbound::Reqwest(
        ClientBuilder::new(reqwest::Client::new())
            .with(propagation)
            .build(),
    )
}

/// Over 200 users B follows A's version; `header`: whether the label header carried it
/// (else the `baggage` member alone did).
async fn chain_holds(client: Outbound, header: bool) {
    let b = service_b().await;
    let a = service_a(b, client).await;
    let rules = edge();
    let outside = reqwest::Client::new();
    let mut canary = 0;
    for user in 0..200 {
        let id = format!("user-{user}");
        let want = expected(&rules, &[("x-user-id", &id)]);
        let body = common::get(&outside, format!("http://{a}/a"), &[("x-user-id", &id)])
            .await
            .text()
            .await
            .unwrap();
        let sent = if header {
            format!("|header={want}")
        } else {
            String::new()
        };
        assert_eq!(
            body,
            format!("{want}>{want}|tenant=acme,gray={want}{sent}"),
            "user {id}"
        );
        canary += usize::from(want == "canary");
    }
    assert!(
        canary > 0,
        "some users are on canary, so B had both to follow"
    );
    // Testers go to canary by header at A; B has no such header but follows the label.
    let body = common::get(
        &outside,
        format!("http://{a}/a"),
        &[("x-app-version", "beta")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(body.starts_with("canary>canary|"), "{body}");
}

#[tokio::test]
async fn two_hops_stay_on_one_version() {
    chain_holds(reqwest_client(GrayPropagation::default()), true).await;
}

#[tokio::test]
async fn two_hops_stay_on_one_version_through_baggage_only() {
    chain_holds(reqwest_client(GrayPropagation::new().baggage_only()), false).await;
}

#[tokio::test]
async fn two_hops_stay_on_one_version_through_a_tower_client() {
    chain_holds(Outbound::Tower(tower_client(Propagation::default())), true).await;
}

#[tokio::test]
async fn two_hops_stay_on_one_version_through_a_tower_client_and_baggage_only() {
    chain_holds(
        Outbound::Tower(tower_client(Propagation::new().baggage_only())),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_tower_client_sends_an_explicit_context_and_nothing_outside_a_request() {
    let b = service_b().await;
    let client = Outbound::Tower(tower_client(Propagation::default()));
    let url = format!("http://{b}/b");
    // No request being served, nothing given: the call goes out unchanged.
    assert_eq!(client.call(url.clone(), None).await, "stable|tenant=acme");
    // A context in the outbound request's extensions is sent, and wins over the current one.
    let explicit = client.call(url.clone(), Some(GrayContext::new("canary")));
    assert_eq!(
        explicit.await,
        "canary|tenant=acme,gray=canary|header=canary"
    );
    let inside = GrayContext::scope(
        GrayContext::new("stable"),
        client.call(url, Some(GrayContext::new("canary"))),
    );
    assert_eq!(inside.await, "canary|tenant=acme,gray=canary|header=canary");
}
