//! Two hops: the edge decides, the propagating client carries the label, the internal
//! service (`inherit: always`) stays on the same version.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{INTERNAL, edge, expected, gray, serve};
use gray_core::GrayContext;
use gray_reqwest::GrayPropagation;
use gray_tower::GrayLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// Service B: answers with the version it decided and the baggage it got.
async fn service_b() -> SocketAddr {
    let app = Router::new()
        .route(
            "/b",
            get(|headers: http::HeaderMap| async move {
                let version = GrayContext::current().map(|c| c.version().to_owned());
                let baggage = headers
                    .get("baggage")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                format!("{}|{baggage}", version.unwrap_or_default())
            }),
        )
        .layer(GrayLayer::new(gray(INTERNAL)));
    serve(app).await
}

/// Service A: the edge; its handler calls B through `client` and reports both versions.
async fn service_a(b: SocketAddr, client: ClientWithMiddleware) -> SocketAddr {
    let app = Router::new()
        .route(
            "/a",
            get(
                |State((b, client)): State<(SocketAddr, ClientWithMiddleware)>| async move {
                    let mine = GrayContext::current()
                        .map(|c| c.version().to_owned())
                        .unwrap_or_default();
                    let theirs = client
                        .get(format!("http://{b}/b"))
                        .header("baggage", "tenant=acme")
                        .send()
                        .await
                        .expect("B answers")
                        .text()
                        .await
                        .expect("B's body");
                    format!("{mine}>{theirs}")
                },
            ),
        )
        .with_state((b, client))
        .layer(GrayLayer::new(edge()));
    serve(app).await
}

async fn chain_holds(propagation: GrayPropagation) {
    let b = service_b().await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(propagation)
        .build();
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
        assert_eq!(
            body,
            format!("{want}>{want}|tenant=acme,gray={want}"),
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
    chain_holds(GrayPropagation::default()).await;
}

#[tokio::test]
async fn two_hops_stay_on_one_version_through_baggage_only() {
    chain_holds(GrayPropagation::new().baggage_only()).await;
}
