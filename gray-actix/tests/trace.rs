//! `GrayMiddleware::trace`: events logged while serving a request carry its version.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::sync::{Arc, Mutex};

use actix_web::{App, test, web};
use common::Items;
use gray_actix::GrayMiddleware;
use gray_core::Config;

const RULES: &str = r#"
versions: [stable, canary]
routes:
  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }
"#;

/// Appends what the subscriber writes to a buffer the test reads.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber writing to the returned buffer, the default on this thread until the
/// guard is dropped.
fn capture() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&logs);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(Arc::clone(&sink)))
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

async fn handler() -> &'static str {
    tracing::info!("serving");
    "ok"
}

#[actix_web::test]
async fn events_while_serving_carry_the_version_only_when_asked() {
    let (logs, _default) = capture();
    let gray = gray_core::Gray::new(Config::from_yaml(RULES).unwrap()).unwrap();
    for trace in [true, false] {
        let app = test::init_service(
            App::new()
                .wrap(GrayMiddleware::new(gray.clone()).trace(trace))
                .route("/", web::get().to(handler)),
        )
        .await;
        let req = test::TestRequest::get().insert_header(("x-app-version", "beta"));
        assert!(
            test::call_service(&app, req.to_request())
                .await
                .status()
                .is_success()
        );
    }
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("serving")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("gray{version=\"canary\" route=\"testers\"}"),
        "{text}"
    );
    assert!(!lines[1].contains("gray{"), "{text}");
}

/// Two items, each logging as actix polls for it, after the handler has returned.
fn logging() -> Items<impl FnMut() -> String + Unpin> {
    Items {
        count: 2,
        item: || {
            tracing::info!("streaming an item");
            "x".to_owned()
        },
    }
}

/// A streamed response's log lines carry the request's span when its stream is wrapped in
/// `GrayStream`, and not otherwise.
#[actix_web::test]
async fn a_streamed_response_logs_in_the_request_span_with_gray_stream() {
    let (logs, _default) = capture();
    let gray = gray_core::Gray::new(Config::from_yaml(RULES).unwrap()).unwrap();
    let app = test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(gray).trace(true))
            .route(
                "/wrapped",
                web::get().to(
                    |gray_actix::GrayVersion(ctx): gray_actix::GrayVersion| async move {
                        actix_web::HttpResponse::Ok()
                            .streaming(gray_actix::GrayStream::new(ctx, logging()))
                    },
                ),
            )
            .route(
                "/plain",
                web::get().to(|| async { actix_web::HttpResponse::Ok().streaming(logging()) }),
            ),
    )
    .await;
    for path in ["/wrapped", "/plain"] {
        let req = test::TestRequest::get()
            .uri(path)
            .insert_header(("x-app-version", "beta"));
        let body = test::call_and_read_body(&app, req.to_request()).await;
        assert_eq!(&body[..], b"xx");
    }
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("streaming an item"))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let in_span = |l: &&str| l.contains("gray{version=\"canary\" route=\"testers\"}");
    assert!(lines[..2].iter().all(in_span), "{text}");
    assert!(!lines[2..].iter().any(in_span), "{text}");
}
