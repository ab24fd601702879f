//! `Finish`: what a server adapter records about one request, as asked — the metrics
//! counted once, the span entered around each poll.

mod common;

use common::{design, req};
use gray_core::Decision;
use gray_core::adapter::{Finish, Labeling, Options};

/// The finish of `decision`'s request, as `options` ask.
fn finish(decision: &Decision, options: Options) -> Finish {
    let (_, _, finish) = Labeling::new(decision, options).write(&mut http::HeaderMap::new());
    finish
}

#[test]
fn a_request_is_counted_once_and_only_when_asked() {
    let g = design();
    let tester = req("/", &[("x-app-version", "beta")]);
    let canary = || g.metrics().version("canary").map(|v| v.total());
    assert_eq!(canary(), Some(0));

    let decision = g.decide(&tester);
    let mut counted = finish(&decision, Options::new().metrics(true));
    counted.response(200, &mut http::HeaderMap::new());
    counted.failed(500); // once: later calls do nothing
    assert_eq!(canary(), Some(1));
    let snapshot = g.metrics();
    let v = snapshot.version("canary").expect("canary's counters");
    assert_eq!(
        (v.total(), v.error_rate()),
        (1, 0.0),
        "counted with the first status"
    );

    let decision = g.decide(&tester);
    let mut quiet = finish(&decision, Options::new());
    quiet.response(200, &mut http::HeaderMap::new());
    assert_eq!(canary(), Some(1), "not asked to count");
}

#[test]
fn the_span_is_entered_only_when_asked() {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let g = design();
        let decision = g.decide(&req("/", &[("x-app-version", "beta")]));
        let current = || tracing::Span::current().metadata().map(|m| m.name());

        let traced = finish(&decision, Options::new().trace(true));
        assert_eq!(current(), None);
        {
            let _entered = traced.enter();
            assert_eq!(current(), Some("gray"));
        }
        assert_eq!(current(), None, "left when the guard is dropped");
        assert_eq!(traced.in_scope(current), Some("gray"));

        let untraced = finish(&decision, Options::new());
        assert!(untraced.enter().is_none());
        assert_eq!(untraced.in_scope(current), None);
    });
}
