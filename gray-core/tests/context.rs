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
            // The engine's contexts are interned: their version is `'static`.
            assert_eq!(ctx.static_version(), Some(d.version()));
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

/// A context is current inside its scope (a future's, across its awaits, or a closure's)
/// and nowhere else; `from_extensions` prefers the one in the extensions, else the current.
#[test]
fn a_context_is_current_inside_its_scope_only() {
    use gray_core::GrayContext;

    assert_eq!(GrayContext::current(), None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let canary = GrayContext::new("canary");
    let seen = runtime.block_on(GrayContext::scope(canary.clone(), async {
        let before = GrayContext::current();
        tokio::task::yield_now().await;
        let after = GrayContext::current();
        let mut extensions = http::Extensions::new();
        let fallback = GrayContext::from_extensions(&extensions);
        extensions.insert(GrayContext::new("v2"));
        let explicit = GrayContext::from_extensions(&extensions);
        [before, after, fallback, explicit]
    }));
    assert_eq!(
        seen,
        [
            Some(canary.clone()),
            Some(canary.clone()),
            Some(canary.clone()),
            Some(GrayContext::new("v2"))
        ]
    );
    let inner = GrayContext::sync_scope(canary.clone(), GrayContext::current);
    assert_eq!(inner, Some(canary));
    assert_eq!(GrayContext::current(), None);
    assert_eq!(GrayContext::from_extensions(&http::Extensions::new()), None);
}

/// Contexts that differ hash differently (by version and by route), not merely alike
/// when equal.
#[test]
fn contexts_that_differ_hash_apart() {
    use std::hash::BuildHasher;

    let hasher = std::collections::hash_map::RandomState::new();
    let g = design();
    let routed = g.decide(&req("/", &[("x-app-version", "beta")])).context();
    let contexts = [
        gray_core::GrayContext::new("canary"),
        gray_core::GrayContext::new("stable"),
        routed,
    ];
    let hashes: std::collections::HashSet<u64> =
        contexts.iter().map(|c| hasher.hash_one(c)).collect();
    assert_eq!(hashes.len(), contexts.len());
}
