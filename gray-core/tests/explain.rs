//! `Gray::explain`: the routes tried for a request, and which condition stopped each.

mod common;

use common::{design, gray, req};
use gray_core::Source;
use proptest::prelude::*;

/// Every kind of condition, in one route each and all together in the last.
const KINDS: &str = r#"
label: { inherit: always }
versions: [stable, canary]
routes:
  - { name: q, match: { query: [{ name: k, exact: v }] }, to: canary }
  - { name: c, match: { cookies: [{ name: s, present: true }] }, to: canary }
  - { name: p, match: { path: { prefix: /api/ } }, to: canary }
  - { name: m, match: { method: PUT }, to: canary }
  - name: all
    match:
      headers: [{ name: x-a, exact: "1" }, { name: x-b, prefix: y }]
      query: [{ name: k, exact: w }]
      path: { exact: /x }
      method: GET
    to: canary
"#;

#[test]
fn each_route_names_its_first_failed_condition() {
    let g = gray(KINDS);
    let why = g.explain(&req("/x?k=w", &[("x-a", "1"), ("x-b", "n")]));
    let failed: Vec<(&str, Option<&str>)> = why
        .iter()
        .map(|c| (c.route.as_str(), c.failed.as_deref()))
        .collect();
    assert_eq!(
        failed,
        [
            ("q", Some("match.query[0]")),
            ("c", Some("match.cookies[0]")),
            ("p", Some("match.path")),
            ("m", Some("match.method")),
            ("all", Some("match.headers[1]")),
        ]
    );
    // All hold: the last route takes it.
    let why = g.explain(&req("/x?k=w", &[("x-a", "1"), ("x-b", "yes")]));
    assert_eq!(
        why.last().map(|c| (c.route.as_str(), c.failed.is_none())),
        Some(("all", true))
    );
    // An honoured label decides before any route: nothing tried.
    assert!(
        g.explain(&req("/", &[("x-gray-version", "canary")]))
            .is_empty()
    );
    // A dry run counts nothing: a refused label is not added to the counter.
    let _ = g.explain(&req("/", &[("x-gray-version", "v9")]));
    assert_eq!(g.rejected_labels(), 0);
}

fn header() -> impl Strategy<Value = (&'static str, &'static str)> {
    (
        prop::sample::select(vec![
            "x-app-version",
            "x-user-tier",
            "x-activity-level",
            "x-user-id",
        ]),
        prop::sample::select(vec!["beta", "premium", "high-1", "low", "7", ""]),
    )
}

/// The example rules without their catch-all `users` route: a request can match none.
const NO_CATCH_ALL: &str = r#"
versions: [stable, canary]
routes:
  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }
  - name: premium-active
    match: { headers: [{ name: x-user-tier, exact: premium }, { name: x-activity-level, regex: "^high" }] }
    to: canary
"#;

proptest! {
    /// The explanation agrees with the decision: the route that decided is the last one
    /// listed, and it alone has no failed condition; with no route deciding (only possible
    /// without the example's catch-all route), every route is listed, each with a failure.
    #[test]
    fn the_explanation_agrees_with_the_decision(headers in prop::collection::vec(header(), 0..4)) {
        for g in [design(), gray(NO_CATCH_ALL)] {
            let r = req("/", &headers);
            let decision = g.decide(&r);
            let why = g.explain(&r);
            let took: Vec<&str> = why.iter().filter(|c| c.failed.is_none()).map(|c| c.route.as_str()).collect();
            match decision.source() {
                Source::Route => {
                    prop_assert_eq!(took, vec![decision.route().unwrap_or_default()]);
                    prop_assert_eq!(why.last().map(|c| c.route.as_str()), decision.route());
                }
                Source::Default => {
                    prop_assert!(took.is_empty());
                    prop_assert_eq!(why.len(), g.config().routes.len());
                }
                other => prop_assert!(false, "unexpected source {other:?}"),
            }
        }
    }
}
