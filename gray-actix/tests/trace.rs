//! `GrayMiddleware::trace`: events logged while serving a request carry its version.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::sync::{Arc, Mutex};

use actix_web::{App, test, web};
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

async fn handler() -> &'static str {
    tracing::info!("serving");
    "ok"
}

#[actix_web::test]
async fn events_while_serving_carry_the_version_only_when_asked() {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&logs);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(Arc::clone(&sink)))
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
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
