//! A route's `mirror:` copies a share of its requests to another version: which ones, how
//! many, and how a config is refused.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use common::{gray, req};
use gray_core::rules::Problem;
use gray_core::{Config, Gray, Source};

/// How many of `n` requests to `g` are copied, and to which version.
fn copies(g: &Gray, n: usize, headers: &[(&str, &str)]) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut to = Vec::new();
    for _ in 0..n {
        if let Some(m) = g.decide(&req("/", headers)).mirror() {
            count += 1;
            if !to.contains(&m.version().to_owned()) {
                to.push(m.version().to_owned());
            }
        }
    }
    (count, to)
}

#[test]
fn every_request_is_copied_by_default_under_the_routes_name() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary } }\n",
    );
    let d = g.decide(&req("/", &[]));
    assert_eq!((d.version(), d.route()), ("stable", Some("all")));
    let m = d.mirror().expect("100% by default");
    assert_eq!(m.version(), "canary");
    assert_eq!(m.context().version(), "canary");
    assert_eq!(m.context().route(), Some("all"));
    assert_eq!(format!("{m:?}"), r#"Mirror("canary")"#);
    assert_eq!(copies(&g, 100, &[]), (100, vec!["canary".to_owned()]));
}

/// The share is exact, as an unkeyed split's sequence is: 10% is 100 of 1,000.
#[test]
fn a_percentage_is_drawn_as_an_exact_sequence() {
    for (percent, per_1000) in [("10", 100), ("0.5", 5), ("33.33", 333), ("0", 0)] {
        let g = gray(&format!(
            "versions: [stable, canary]\nroutes:\n  - {{ name: all, to: stable, mirror: {{ to: canary, percent: {percent} }} }}\n"
        ));
        let (n, _) = copies(&g, 1_000, &[]);
        assert!(n.abs_diff(per_1000) <= 1, "{percent}%: {n} of 1000");
    }
}

/// In a split, what the route already sends to the mirror version is not copied: the
/// share is of the others.
#[test]
fn requests_already_on_the_mirror_version_are_not_copied() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { by: { header: x-user-id }, weights: { stable: 70, canary: 30 } }\n    mirror: { to: canary, percent: 50 }\n",
    );
    let (mut served_stable, mut copied) = (0, 0);
    for user in 0..2_000 {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        match (d.version(), d.mirror()) {
            ("canary", m) => assert!(m.is_none(), "user {user} on canary copied"),
            (_, m) => {
                served_stable += 1;
                copied += usize::from(m.is_some());
            }
        }
    }
    assert!(
        copied.abs_diff(served_stable / 2) <= 1,
        "{copied} of {served_stable}"
    );
}

#[test]
fn only_the_deciding_route_copies_and_an_inherited_label_is_not_copied() {
    let g = gray(
        "label: { inherit: always }\nversions: [stable, canary]\nroutes:\n  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }\n  - { name: api, match: { path: { prefix: /api } }, to: stable, mirror: { to: canary } }\n",
    );
    let api = g.decide(&req("/api/orders", &[]));
    assert!(api.mirror().is_some());
    // Another route decided, none did, or a label was honoured: no copy.
    let tester = g.decide(&req("/api/orders", &[("x-app-version", "beta")]));
    assert_eq!(tester.route(), Some("testers"));
    assert!(tester.mirror().is_none());
    let home = g.decide(&req("/", &[]));
    assert_eq!(home.source(), Source::Default);
    assert!(home.mirror().is_none());
    let labelled = g.decide(&req("/api/orders", &[("x-gray-version", "stable")]));
    assert_eq!(labelled.source(), Source::Inherited);
    assert!(labelled.mirror().is_none());
}

/// A mirror version marked unavailable (a failed health check) gets no copies until it is
/// available again; a route whose own version is unavailable falls back, uncopied.
#[test]
fn an_unavailable_version_gets_no_copies() {
    let g = gray(
        "versions: [stable, canary, next]\nroutes:\n  - { name: all, to: next, mirror: { to: canary } }\n",
    );
    assert_eq!(copies(&g, 10, &[]).0, 10);
    assert!(g.set_available("canary", false));
    assert_eq!(copies(&g, 10, &[]).0, 0);
    assert!(g.set_available("canary", true));
    assert_eq!(copies(&g, 10, &[]).0, 10);
    assert!(g.set_available("next", false));
    let d = g.decide(&req("/", &[]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Fallback));
    assert!(d.mirror().is_none());
}

#[test]
fn a_reload_changes_what_is_copied() {
    let g = gray("versions: [stable, canary]\nroutes:\n  - { name: all, to: stable }\n");
    assert_eq!(copies(&g, 10, &[]).0, 0);
    g.reload(
        Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary } }\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(copies(&g, 10, &[]).0, 10);
}

#[test]
fn yaml_toml_and_json_load_the_same_mirror() {
    let yaml = Config::from_yaml(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary, percent: 5 } }\n",
    )
    .unwrap();
    let toml = Config::from_toml(
        "versions = ['stable', 'canary']\n[[routes]]\nname = 'all'\nto = 'stable'\nmirror = { to = 'canary', percent = 5 }\n",
    )
    .unwrap();
    let json = Config::from_json(
        r#"{"versions": ["stable", "canary"], "routes": [{"name": "all", "to": "stable", "mirror": {"to": "canary", "percent": 5}}]}"#,
    )
    .unwrap();
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
}

/// Each refusal names the route and the field.
#[test]
fn a_bad_mirror_is_refused_naming_the_route_and_field() {
    let refused = |mirror: &str, to: &str| {
        let yaml = format!(
            "versions: [stable, canary]\nroutes:\n  - {{ name: r, to: {to}, mirror: {mirror} }}\n"
        );
        common::refused_in_route_r(&yaml)
    };
    assert_eq!(
        refused("{ to: canray }", "stable"),
        ("mirror.to".into(), Problem::UnknownVersion("canray".into()))
    );
    assert_eq!(
        refused("{ to: canary }", "canary"),
        ("mirror.to".into(), Problem::MirrorToSelf("canary".into()))
    );
    for bad in ["-1", "100.5", "0.001", ".nan", ".inf"] {
        let (field, problem) = refused(&format!("{{ to: canary, percent: {bad} }}"), "stable");
        assert_eq!(field, "mirror.percent", "{bad}");
        assert!(
            matches!(problem, Problem::MirrorPercent(_)),
            "{bad}: {problem:?}"
        );
    }
    // Unknown fields are parse errors, as everywhere in the file.
    let e = Config::from_yaml(
        "versions: [stable, canary]\nroutes:\n  - { name: r, to: stable, mirror: { to: canary, share: 5 } }\n",
    )
    .expect_err("unknown field");
    assert!(e.to_string().contains("share"), "{e}");
}

/// A measured copy counts under the mirror version, beside the requests it serves.
#[test]
fn a_measured_copy_counts_under_the_mirror_version() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary } }\n",
    );
    for _ in 0..10 {
        let d = g.decide(&req("/", &[]));
        d.measure().unwrap().finish(200);
        d.mirror().unwrap().measure().unwrap().finish(503);
    }
    let metrics = g.metrics();
    let (stable, canary) = (
        metrics.version("stable").unwrap(),
        metrics.version("canary").unwrap(),
    );
    assert_eq!((stable.total(), stable.error_rate()), (10, 0.0));
    assert_eq!((canary.total(), canary.error_rate()), (10, 1.0));
}
