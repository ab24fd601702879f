//! `GrayLayer::trace`: events logged while serving a request carry its version and route.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Frames, edge, serve};
use gray_tower::GrayLayer;

/// Where the subscriber writes: a buffer the test reads.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// The lines that mention `what`.
    fn lines_with(&self, what: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains(what))
            .map(str::to_owned)
            .collect()
    }
}

async fn handler() -> &'static str {
    tracing::info!("before an await");
    tokio::task::yield_now().await;
    tracing::info!("after an await");
    "ok"
}

/// A subscriber writing to the returned logs, the default on this thread until the guard
/// is dropped.
fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Serves `layer` and sends one tester request and one user request; returns the logs.
/// Server and client run on this test's single thread, under a subscriber set for it.
async fn run(layer: GrayLayer) -> Logs {
    let (logs, _default) = capture();
    let addr = serve(Router::new().route("/", get(handler)).layer(layer)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let tester = client.get(&url).header("x-app-version", "beta");
    assert_eq!(tester.send().await.unwrap().status(), 200);
    let user = client.get(&url).header("x-user-id", "user-7");
    assert_eq!(user.send().await.unwrap().status(), 200);
    logs
}

#[tokio::test]
async fn events_while_serving_carry_the_version_and_route() {
    let gray = edge();
    let user_version = common::expected(&gray, &[("x-user-id", "user-7")]);
    let logs = run(GrayLayer::new(gray).trace(true)).await;
    for event in ["before an await", "after an await"] {
        let lines = logs.lines_with(event);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("gray{version=\"canary\" route=\"testers\"}"),
            "{lines:?}"
        );
        let user = format!("gray{{version=\"{user_version}\" route=\"users\"}}");
        assert!(lines[1].contains(&user), "{lines:?}");
    }
}

#[tokio::test]
async fn without_the_option_there_is_no_span() {
    let logs = run(GrayLayer::new(edge())).await;
    let lines = logs.lines_with("after an await");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("gray{")), "{lines:?}");
}

/// Log lines written while a streamed body is produced carry the request's span with
/// `GrayBodyLayer` inside `GrayLayer::trace`, and none without it.
#[tokio::test]
async fn a_streamed_body_logs_in_the_request_span_with_gray_body_layer() {
    for scoped in [true, false] {
        let (logs, _default) = capture();
        let trace = GrayLayer::new(edge()).trace(true);
        // Two frames, logging as the server polls for each, after the handler returned.
        let logging = || {
            axum::body::Body::new(Frames {
                count: 2,
                frame: || {
                    tracing::info!("streaming a frame");
                    "x".to_owned()
                },
            })
        };
        let app = Router::new().route("/", get(move || async move { logging() }));
        let app = if scoped {
            app.layer(
                tower::ServiceBuilder::new()
                    .layer(trace)
                    .layer(gray_tower::GrayBodyLayer),
            )
        } else {
            app.layer(trace)
        };
        let addr = serve(app).await;
        let res = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .header("x-app-version", "beta")
            .send()
            .await
            .unwrap();
        assert_eq!(res.text().await.unwrap(), "xx");
        let lines = logs.lines_with("streaming a frame");
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            let in_span = line.contains("gray{version=\"canary\" route=\"testers\"}");
            assert_eq!(in_span, scoped, "scoped: {scoped}, {line}");
        }
    }
}

/// A spawned `gray_core::rollout::Rollout` logs each change of its status, with its route and
/// canary — what an operator of a service running one reads (here for this file's log
/// capture; the rollout is gray-core's).
#[tokio::test]
async fn a_spawned_rollout_logs_each_change_of_status() {
    let (logs, _default) = capture();
    let gray = gray_core::Gray::new(
        gray_core::Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - { name: users, split: { weights: { stable: 100, canary: 0 } } }\n",
        )
        .unwrap(),
    )
    .unwrap();
    let rollout = gray_core::rollout::Rollout::new(gray, "users", "canary", [5.0, 30.0]).unwrap();
    let handle = rollout
        .spawn(std::time::Duration::from_secs(3_600))
        .unwrap();
    handle.promote().await.unwrap();
    handle.pause("a look").await.unwrap();
    handle.pause("again").await.unwrap(); // no change: not logged again
    handle.roll_back("by hand").await.unwrap();
    let lines = logs.lines_with("rollout: ");
    let expected = [
        "Progressing { stage: 0, weight: 5.0 }",
        "Progressing { stage: 1, weight: 30.0 }",
        "Paused { stage: 1, weight: 30.0, reason: \"a look\" }",
        "RolledBack { reason: \"by hand\" }",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, status) in lines.iter().zip(expected) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(status), "{line} should say {status}");
        assert!(
            line.contains("route=users") && line.contains("canary=canary"),
            "{line}"
        );
    }
}
