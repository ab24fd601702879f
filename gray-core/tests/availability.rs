//! A version marked unavailable: decisions that would pick it give the default version.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use common::{design, gray, req, version_for_user};
use gray_core::{Config, Source};

#[test]
fn routes_splits_and_labels_fall_back_to_the_default() {
    let g = design();
    let canary_users: Vec<String> = (0..300)
        .map(|u| u.to_string())
        .filter(|u| version_for_user(&g, u) == "canary")
        .collect();
    assert!(!canary_users.is_empty());

    assert!(g.set_available("canary", false));
    assert_eq!(g.unavailable_versions(), ["canary"]);
    let d = g.decide(&req("/", &[("x-app-version", "beta")]));
    assert_eq!(
        (d.version(), d.route(), d.source()),
        ("stable", None, Source::Fallback)
    );
    let ctx = d.context();
    assert_eq!((ctx.version(), ctx.route()), ("stable", None));
    for user in &canary_users {
        assert_eq!(version_for_user(&g, user), "stable", "user {user}");
    }

    // Back again: the same users are on canary (sticky buckets are untouched).
    assert!(g.set_available("canary", true));
    assert!(g.unavailable_versions().is_empty());
    for user in &canary_users {
        assert_eq!(version_for_user(&g, user), "canary", "user {user}");
    }

    let internal = gray("label: { inherit: always }\nversions: [stable, canary]\n");
    internal.set_available("canary", false);
    let d = internal.decide(&req("/", &[("x-gray-version", "canary")]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Fallback));
}

#[test]
fn the_mark_survives_reloads_by_name_and_is_shared_by_clones() {
    let g = gray("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n");
    let clone = g.clone();
    assert!(clone.set_available("canary", false));
    assert_eq!(g.decide(&req("/", &[])).version(), "stable");

    // New rules, canary at another index: still unavailable.
    let next = "versions: [stable, v2, canary]\nroutes: [{ name: all, to: canary }]\n";
    g.reload(Config::from_yaml(next).unwrap()).unwrap();
    assert_eq!(g.decide(&req("/", &[])).version(), "stable");

    // A version not declared now is remembered for later rules.
    assert!(!g.set_available("v9", false));
    let later = "versions: [stable, v9]\nroutes: [{ name: all, to: v9 }]\n";
    g.reload(Config::from_yaml(later).unwrap()).unwrap();
    assert_eq!(g.decide(&req("/", &[])).version(), "stable");
    g.set_available("v9", true);
    assert_eq!(g.decide(&req("/", &[])).version(), "v9");
}

#[test]
fn the_default_version_always_serves() {
    let g = design();
    assert!(g.set_available("stable", false));
    let d = g.decide(&req("/", &[("x-user-id", "7")]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Route));
}
