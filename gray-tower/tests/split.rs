//! GraySplit: two versions of a router in one binary, behind one listener.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use axum::Router;
use axum::routing::get;
use common::{gray, serve};
use gray_tower::{GrayLayer, GraySplit};
use tower_layer::Layer;

const RULES: &str = r#"
versions: [v1, v2]
routes:
  - name: forced
    match: { headers: [{ name: x-gray-version, exact: v2 }] }
    to: v2
  - name: users
    split: { by: { header: x-user-id }, weights: { v1: 70, v2: 30 } }
"#;

async fn two_versions() -> std::net::SocketAddr {
    let v1: Router = Router::new().route("/", get(|| async { "v1" }));
    let v2: Router = Router::new().route("/", get(|| async { "v2" }));
    let split = GraySplit::new(v1).version("v2", v2);
    serve(Router::new().fallback_service(GrayLayer::new(gray(RULES)).layer(split))).await
}

#[tokio::test]
async fn a_forced_header_goes_to_v2() {
    let addr = two_versions().await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let res = common::get(
            &client,
            format!("http://{addr}/"),
            &[("x-gray-version", "v2")],
        )
        .await;
        assert_eq!(res.text().await.unwrap(), "v2");
    }
}

#[tokio::test]
async fn a_sticky_30_percent_split_over_400_users() {
    let addr = two_versions().await;
    let client = reqwest::Client::new();
    let mut on_v2 = 0;
    for user in 0..400 {
        let id = format!("u{user}");
        let first = common::get(&client, format!("http://{addr}/"), &[("x-user-id", &id)])
            .await
            .text()
            .await
            .unwrap();
        let again = common::get(&client, format!("http://{addr}/"), &[("x-user-id", &id)])
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(first, again, "user {id} is sticky");
        on_v2 += usize::from(first == "v2");
    }
    // 30% of 400 = 120, sigma = 9.2: within 5 sigma.
    assert!((74..=166).contains(&on_v2), "{on_v2} of 400 users on v2");
}

#[tokio::test]
async fn without_a_context_or_service_the_default_serves() {
    let v1: Router = Router::new().route("/", get(|| async { "v1" }));
    let v2: Router = Router::new().route("/", get(|| async { "v2" }));
    let split = GraySplit::new(v1).version("v2", v2);
    // No GrayLayer: no context, the default service.
    let addr = serve(Router::new().fallback_service(split.clone())).await;
    let client = reqwest::Client::new();
    let res = common::get(
        &client,
        format!("http://{addr}/"),
        &[("x-gray-version", "v2")],
    )
    .await;
    assert_eq!(res.text().await.unwrap(), "v1");
    // A version with no service of its own: the default.
    let three = gray("versions: [v1, v2, v3]\nroutes: [{ name: all, to: v3 }]\n");
    let addr = serve(Router::new().fallback_service(GrayLayer::new(three).layer(split))).await;
    let res = common::get(&client, format!("http://{addr}/"), &[]).await;
    assert_eq!(res.text().await.unwrap(), "v1");
}

/// Ready when every version's service is (which one a request needs is only known in
/// `call`); a version given twice is served by the last service given for it.
#[test]
fn a_split_is_ready_when_all_its_services_are_and_a_version_takes_its_last_service() {
    use common::{Gate, ready_now};
    let (v1, v2, v3) = (Gate::closed("v1"), Gate::closed("v2"), Gate::closed("v3"));
    let mut split = GraySplit::new(v1.clone())
        .version("v2", Gate::closed("old v2"))
        .version("v3", v3.clone())
        .version("v2", v2.clone());
    assert_eq!(split.service_for("v2").name, "v2");
    assert_eq!(split.service_for("v3").name, "v3");
    assert_eq!(split.service_for("v9").name, "v1");
    assert!(!ready_now(&mut split));
    v1.set(true);
    v2.set(true);
    assert!(!ready_now(&mut split), "v3 is not ready");
    v3.set(true);
    assert!(ready_now(&mut split));
    v1.set(false);
    assert!(!ready_now(&mut split), "the default is not ready");
}
