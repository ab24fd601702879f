//! A cookie-keyed split with `set_cookie:` gives a client that came without the cookie a
//! key of its own: placed by it at once, on the same version from then on, and how a
//! config is refused.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::collections::HashSet;

use common::{first_visit, gray, req};
use gray_core::Config;
use gray_core::rules::Problem;

fn visitors(weights: &str, set_cookie: &str) -> String {
    format!(
        "versions: [stable, canary]\nroutes:\n  - name: visitors\n    split: {{ by: {{ cookie: gray-uid }}, weights: {weights}, set_cookie: {set_cookie} }}\n"
    )
}

#[test]
fn a_new_client_gets_a_key_and_stays_where_its_first_request_went() {
    let g = gray(&visitors("{ stable: 50, canary: 50 }", "{}"));
    let mut keys = HashSet::new();
    for _ in 0..500 {
        let (version, pair) = first_visit(&g);
        let (name, key) = pair.split_once('=').unwrap();
        assert_eq!(name, "gray-uid");
        assert!(
            key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        assert!(keys.insert(key.to_owned()), "two clients got key {key}");
        for _ in 0..3 {
            let again = g.decide(&req("/", &[("cookie", &format!("theme=dark; {pair}"))]));
            assert_eq!(again.version(), version, "{pair}");
            assert!(again.set_cookie().is_none(), "a client with a key keeps it");
        }
    }
}

#[test]
fn the_cookie_says_what_the_config_asks() {
    let g = gray(&visitors(
        "{ stable: 90, canary: 10 }",
        "{ max_age: 3600, path: /shop, domain: .example.com, secure: true }",
    ));
    let cookie = g.decide(&req("/", &[])).set_cookie().unwrap();
    let cookie = cookie.to_str().unwrap();
    let attributes = cookie.split_once(';').unwrap().1;
    assert_eq!(
        attributes,
        " Path=/shop; Max-Age=3600; HttpOnly; SameSite=Lax; Domain=.example.com; Secure"
    );
}

/// New clients are placed by random keys' buckets: each version's share of them is its
/// weight, within statistical bounds (10,000 clients at 10%: σ = 30, the bound is 5σ).
#[test]
fn new_clients_are_shared_by_weight() {
    let g = gray(&visitors("{ stable: 90, canary: 10 }", "{}"));
    let canary = (0..10_000)
        .filter(|_| first_visit(&g).0 == "canary")
        .count();
    assert!(
        canary.abs_diff(1_000) <= 150,
        "{canary} of 10,000 on canary"
    );
}

/// Widening the canary keeps every client it had: their keys are keys like any other.
#[test]
fn a_client_on_the_canary_stays_on_it_as_the_canary_widens() {
    let g = gray(&visitors("{ stable: 90, canary: 10 }", "{}"));
    let on_canary: Vec<String> = (0..2_000)
        .map(|_| first_visit(&g))
        .filter(|(version, _)| version == "canary")
        .map(|(_, pair)| pair)
        .collect();
    assert!(!on_canary.is_empty());
    g.reload(Config::from_yaml(&visitors("{ stable: 70, canary: 30 }", "{}")).unwrap())
        .unwrap();
    for pair in &on_canary {
        let d = g.decide(&req("/", &[("cookie", pair)]));
        assert_eq!(d.version(), "canary", "{pair}");
    }
}

/// Only the split that decides gives a cookie, and only when its key is missing or empty.
#[test]
fn no_cookie_unless_the_deciding_split_lacks_its_key() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }\n  - name: visitors\n    split: { by: { cookie: gray-uid }, weights: { stable: 90, canary: 10 }, set_cookie: {} }\n",
    );
    let tester = g.decide(&req("/", &[("x-app-version", "beta")]));
    assert_eq!(tester.route(), Some("testers"));
    assert!(tester.set_cookie().is_none());
    let empty = g.decide(&req("/", &[("cookie", "gray-uid=")]));
    assert!(empty.set_cookie().is_some(), "an empty key is no key");
    let other = g.decide(&req("/", &[("cookie", "uid=42")]));
    assert!(
        other.set_cookie().is_some(),
        "another cookie is not the key"
    );

    // Without `set_cookie`, a client without the key takes the unkeyed sequence.
    let plain = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: v, split: { by: { cookie: gray-uid }, weights: { stable: 90, canary: 10 } } }\n",
    );
    let canary = (0..1_000)
        .map(|_| plain.decide(&req("/", &[])))
        .inspect(|d| assert!(d.set_cookie().is_none()))
        .filter(|d| d.version() == "canary")
        .count();
    assert_eq!(canary, 100, "exact, as the unkeyed sequence is");
}

/// A client placed on a version marked unavailable is served by the default one and gets
/// no key: it is placed afresh on its next request.
#[test]
fn a_fallback_gives_no_cookie() {
    let g = gray(&visitors("{ stable: 0, canary: 100 }", "{}"));
    assert!(g.set_available("canary", false));
    let d = g.decide(&req("/", &[]));
    assert_eq!(d.version(), "stable");
    assert!(d.set_cookie().is_none());
    assert!(g.set_available("canary", true));
    assert_eq!(first_visit(&g).0, "canary");
}

#[test]
fn yaml_toml_and_json_load_the_same_set_cookie() {
    let yaml = Config::from_yaml(&visitors(
        "{ stable: 90, canary: 10 }",
        "{ max_age: 60, secure: true }",
    ))
    .unwrap();
    let toml = Config::from_toml(
        r#"versions = ["stable", "canary"]
[[routes]]
name = "visitors"
split = { by = { cookie = "gray-uid" }, weights = { stable = 90, canary = 10 }, set_cookie = { max_age = 60, secure = true } }
"#,
    )
    .unwrap();
    let json = Config::from_json(
        r#"{"versions": ["stable", "canary"], "routes": [{"name": "visitors", "split": {"by": {"cookie": "gray-uid"}, "weights": {"stable": 90, "canary": 10}, "set_cookie": {"max_age": 60, "secure": true}}}]}"#,
    )
    .unwrap();
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
}

/// Each refusal names the route and the field.
#[test]
fn a_bad_set_cookie_is_refused_naming_the_route_and_field() {
    let refused = |by: &str, set_cookie: &str| {
        let yaml = format!(
            "versions: [stable, canary]\nroutes:\n  - {{ name: r, split: {{ by: {by}, weights: {{ stable: 90, canary: 10 }}, set_cookie: {set_cookie} }} }}\n"
        );
        common::refused_in_route_r(&yaml)
    };
    let cookie = "{ cookie: uid }";
    assert_eq!(
        refused("{ header: x-user-id }", "{}"),
        (
            "split.set_cookie".into(),
            Problem::SetCookieWithoutCookieKey
        )
    );
    assert_eq!(
        refused("{ cookie: u/id }", "{}"),
        ("split.by.cookie".into(), Problem::BadName("u/id".into()))
    );
    // 400 days, the most browsers keep a cookie, is allowed; a second more is not.
    let at_most = format!(
        "versions: [stable, canary]\nroutes:\n  - name: r\n    split: {{ by: {cookie}, weights: {{ stable: 50, canary: 50 }}, set_cookie: {{ max_age: 34560000 }} }}\n"
    );
    let g = gray_core::Config::from_yaml(&at_most).and_then(gray_core::Gray::new);
    assert!(g.is_ok(), "{at_most}: {:?}", g.err());
    for age in [0, 34_560_001] {
        assert_eq!(
            refused(cookie, &format!("{{ max_age: {age} }}")),
            (
                "split.set_cookie.max_age".into(),
                Problem::CookieMaxAge(age)
            )
        );
    }
    for path in ["shop", "'/a;b'", "'/a b'", "''"] {
        let (field, problem) = refused(cookie, &format!("{{ path: {path} }}"));
        assert_eq!(field, "split.set_cookie.path", "{path}");
        assert!(
            matches!(problem, Problem::BadCookieAttribute(_)),
            "{problem:?}"
        );
    }
    for domain in ["'a b'", "'x;y'", "''", "exämple.com"] {
        let (field, problem) = refused(cookie, &format!("{{ domain: {domain} }}"));
        assert_eq!(field, "split.set_cookie.domain", "{domain}");
        assert!(
            matches!(problem, Problem::BadCookieAttribute(_)),
            "{problem:?}"
        );
    }
    // Unknown fields and wrong types are parse errors, as everywhere in the file.
    for bad in ["{ expires: 5 }", "true", "{ max_age: -1 }"] {
        let yaml = visitors("{ stable: 90, canary: 10 }", bad);
        assert!(Config::from_yaml(&yaml).is_err(), "{bad}");
    }
}
