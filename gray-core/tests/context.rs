//! `Decision::context` hands out the prebuilt context of each outcome.

mod common;

use common::{design, gray, req};

#[test]
fn a_context_matches_its_decision() {
    let g = design();
    let inherit = gray(
        "label: { inherit: always }\nversions: [stable, canary, v2]\nroutes:\n  - { name: all-v2, match: { headers: [{ name: x-v2, present: true }] }, to: v2 }\n",
    );
    let cases = [
        (&g, req("/", &[("x-app-version", "beta")])),
        (
            &g,
            req(
                "/",
                &[("x-user-tier", "premium"), ("x-activity-level", "high")],
            ),
        ),
        (&g, req("/", &[("x-user-id", "7")])),
        (&g, req("/", &[])),
        (&inherit, req("/", &[("x-gray-version", "canary")])),
        (&inherit, req("/", &[("x-v2", "1")])),
        (&inherit, req("/", &[])),
    ];
    for (g, r) in &cases {
        for _ in 0..20 {
            let d = g.decide(r);
            let ctx = d.context();
            assert_eq!((ctx.version(), ctx.route()), (d.version(), d.route()));
            assert_eq!(ctx.to_string(), d.version());
        }
    }
    // Split contexts exist for every version a split can pick.
    let mut seen = std::collections::HashSet::new();
    for user in 0..200 {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        seen.insert((
            d.context().version().to_owned(),
            d.context().route().map(str::to_owned),
        ));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}
