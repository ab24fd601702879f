//! The contract every server adapter meets (`gray_core::adapter::contract`), run against
//! `GrayMiddleware` in an actix-web app.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, test, web};
use gray_actix::GrayMiddleware;
use gray_core::adapter::contract::{HANDLER_COOKIE, Seen, cases};
use gray_core::{GrayContext, Mirror};

/// Header `name`'s values in actix's map, as text.
fn texts(headers: &actix_web::http::header::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

#[actix_web::test]
async fn gray_middleware_meets_the_contract() {
    for case in cases() {
        let gray = case.gray();
        let options = case.options();
        let middleware = GrayMiddleware::new(gray.clone())
            .echo_version(options.echo_on())
            .metrics(options.metrics_on())
            .trace(options.trace_on());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (status, recorder) = (case.status(), Arc::clone(&seen));
        let app = test::init_service(App::new().wrap(middleware).default_service(web::to(
            move |req: HttpRequest| {
                let recorder = Arc::clone(&recorder);
                async move {
                    actix_web::rt::task::yield_now().await;
                    let extensions = req.extensions();
                    *recorder.lock().unwrap() = Seen {
                        label: texts(req.headers(), "x-gray-version"),
                        baggage: texts(req.headers(), "baggage"),
                        extension: extensions
                            .get::<GrayContext>()
                            .map(|c| c.version().to_owned()),
                        current: GrayContext::current().map(|c| c.version().to_owned()),
                        mirror: extensions.get::<Mirror>().map(|m| m.version().to_owned()),
                        ..Seen::default()
                    };
                    HttpResponse::build(StatusCode::from_u16(status).unwrap())
                        .append_header(("set-cookie", HANDLER_COOKIE))
                        .finish()
                }
            },
        )))
        .await;
        let mut req = test::TestRequest::get().uri("/");
        for &(name, value) in case.headers() {
            req = req.append_header((name, value));
        }
        let res = test::call_service(&app, req.to_request()).await;
        let mut seen = seen.lock().unwrap().clone();
        seen.status = res.status().as_u16();
        seen.response_label = texts(res.headers(), "x-gray-version");
        seen.set_cookie = texts(res.headers(), "set-cookie");
        case.check(&gray, &seen).unwrap_or_else(|e| panic!("{e}"));
    }
}
