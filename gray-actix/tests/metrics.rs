//! `GrayMiddleware::metrics`: each request counted under its version, errors by the status
//! of their response.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use actix_web::{App, HttpResponse, error, test, web};
use gray_actix::GrayMiddleware;
use gray_core::Config;

const RULES: &str = r#"
versions: [stable, canary]
routes:
  - name: testers
    match: { headers: [{ name: x-app-version, exact: beta }] }
    to: canary
"#;

async fn fail() -> Result<HttpResponse, actix_web::Error> {
    Err(error::ErrorServiceUnavailable("down"))
}

#[actix_web::test]
async fn requests_and_errors_are_counted_by_version() {
    let gray = gray_core::Gray::new(Config::from_yaml(RULES).unwrap()).unwrap();
    let scrape = gray.clone();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(gray.clone()).metrics(true))
            .route("/ok", web::get().to(|| async { "ok" }))
            .route("/missing", web::get().to(HttpResponse::NotFound))
            .route("/fail", web::get().to(fail))
            .route(
                "/metrics",
                web::get().to(move || {
                    let text = scrape.metrics().prometheus();
                    async move { text }
                }),
            ),
    )
    .await;
    for (uri, beta, status) in [
        ("/ok", false, 200),
        ("/ok", false, 200),
        ("/missing", false, 404),
        ("/ok", true, 200),
        ("/fail", true, 503),
        ("/fail", true, 503),
    ] {
        let mut req = test::TestRequest::get().uri(uri);
        if beta {
            req = req.insert_header(("x-app-version", "beta"));
        }
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{uri}");
    }

    let metrics = gray.metrics();
    let of = |name: &str| metrics.version(name).unwrap();
    assert_eq!(of("stable").requests, [0, 2, 0, 1, 0]);
    assert_eq!(of("canary").requests, [0, 1, 0, 0, 2]);

    let res = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        text.contains("gray_requests_total{version=\"canary\",class=\"5xx\"} 2\n"),
        "{text}"
    );
}
