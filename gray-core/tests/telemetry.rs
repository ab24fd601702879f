//! `Telemetry`: what a server adapter records about one request, as asked — the metrics
//! counted once, the span entered around each poll.

mod common;

use common::{design, req};
use gray_core::Telemetry;

#[test]
fn a_request_is_counted_once_and_only_when_asked() {
    let g = design();
    let tester = req("/", &[("x-app-version", "beta")]);
    let canary = || g.metrics().version("canary").map(|v| v.total());
    assert_eq!(canary(), Some(0));

    let decision = g.decide(&tester);
    let mut counted = Telemetry::new(&decision, &decision.context(), true, false);
    counted.finish(200);
    counted.finish(500); // once: later calls do nothing
    assert_eq!(canary(), Some(1));
    let snapshot = g.metrics();
    let v = snapshot.version("canary").expect("canary's counters");
    assert_eq!(
        (v.total(), v.error_rate()),
        (1, 0.0),
        "counted with the first status"
    );

    let decision = g.decide(&tester);
    let mut quiet = Telemetry::new(&decision, &decision.context(), false, false);
    quiet.finish(200);
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
        let ctx = decision.context();
        let current = || tracing::Span::current().metadata().map(|m| m.name());

        let traced = Telemetry::new(&decision, &ctx, false, true);
        assert_eq!(current(), None);
        {
            let _entered = traced.enter();
            assert_eq!(current(), Some("gray"));
        }
        assert_eq!(current(), None, "left when the guard is dropped");
        assert_eq!(traced.in_scope(current), Some("gray"));

        let untraced = Telemetry::new(&decision, &ctx, false, false);
        assert!(untraced.enter().is_none());
        assert_eq!(untraced.in_scope(current), None);
    });
}
