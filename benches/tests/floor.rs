//! The floor is a yardstick only if it does the work it stands for: for each request, the
//! handler behind it sees the same version as behind `GrayLayer` — in the label header, in
//! the extension and as the current context.

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::get;
use benches::{Floor, design};
use gray_core::GrayContext;
use gray_tower::GrayLayer;
use http::HeaderMap;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tower_layer::Layer;

/// `label header | extension | current` as the handler saw them.
async fn seen(headers: HeaderMap, Extension(ctx): Extension<GrayContext>) -> String {
    let label = headers
        .get("x-gray-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let current = GrayContext::current().map(|c| c.version().to_owned());
    format!(
        "{label}|{}|{}",
        ctx.version(),
        current.as_deref().unwrap_or("-")
    )
}

async fn ask<S>(app: S, req: http::Request<Body>) -> String
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Error: std::fmt::Debug,
{
    let res = match app.oneshot(req).await {
        Ok(res) => res,
        Err(e) => panic!("request: {e:?}"),
    };
    match res.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(e) => panic!("body: {e}"),
    }
}

#[tokio::test]
async fn the_floor_labels_every_request_as_gray_layer_does() {
    let gray = design();
    let router: Router = Router::new().route("/ping", get(seen));
    let floor = Floor::new(router.clone(), gray.clone());
    let layer = GrayLayer::new(gray).layer(router);
    let mut versions = std::collections::BTreeSet::new();
    for user in 0..200 {
        let request = || {
            let req = http::Request::get("/ping")
                .header("x-user-id", format!("user-{user}"))
                // Spoofed: the edge overwrites it.
                .header("x-gray-version", "canary")
                .body(Body::empty());
            match req {
                Ok(req) => req,
                Err(e) => panic!("request: {e}"),
            }
        };
        let by_floor = ask(floor.clone(), request()).await;
        assert_eq!(by_floor, ask(layer.clone(), request()).await, "user-{user}");
        let parts: Vec<&str> = by_floor.split('|').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| *p == parts[0]),
            "{by_floor}"
        );
        versions.insert(parts[0].to_owned());
    }
    // Both versions were decided: the split ran, not a constant.
    assert_eq!(versions.len(), 2, "{versions:?}");
}
