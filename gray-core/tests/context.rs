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

#[test]
fn contexts_compare_by_version_and_route_across_reloads() {
    use std::collections::HashSet;

    use gray_core::{Config, GrayContext};

    let rules = "versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n";
    let g = gray(rules);
    let first = g.decide(&req("/", &[])).context();
    // Reloading the same rules hands out equal contexts (interned once, however often).
    for _ in 0..1_000 {
        g.reload(Config::from_yaml(rules).unwrap()).unwrap();
    }
    let again = g.decide(&req("/", &[])).context();
    assert_eq!(first, again);
    let label = g.decide(&req("/", &[]));
    assert_eq!(label.label_value(), "canary");

    // An engine context and an explicit one with the same names are equal, and hash alike.
    let explicit = GrayContext::new("canary");
    assert_ne!(first, explicit, "the engine's context names its route");
    let unrouted = gray("versions: [canary]\n")
        .decide(&req("/", &[]))
        .context();
    assert_eq!(unrouted, explicit);
    let set: HashSet<GrayContext> = [unrouted, explicit.clone()].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert_eq!(
        format!("{explicit:?}"),
        r#"GrayContext { version: "canary", route: None }"#
    );
}
