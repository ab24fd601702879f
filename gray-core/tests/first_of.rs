//! `split.by: { first_of: [...] }`: the first key a request has places it — a user id,
//! else a session cookie, else the client's address — and how such a split is refused.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use common::{first_visit, gray, refused_in_route_r, req};
use gray_core::rules::{Problem, SplitBy};
use gray_core::{Config, Gray, PeerAddr};

const STICKY: &str = "versions: [stable, canary]
routes:
  - name: everyone
    split:
      by: { first_of: [{ header: x-user-id }, { cookie: sid }, { query: u }, client_ip] }
      weights: { stable: 50, canary: 50 }
";

/// A split of the same route name and weights keyed by `by` alone: what `first_of` must
/// agree with when `by` is the key the request has.
fn single(by: &str) -> Gray {
    gray(&format!(
        "versions: [stable, canary]\nroutes:\n  - name: everyone\n    split: {{ by: {by}, weights: {{ stable: 50, canary: 50 }} }}\n"
    ))
}

fn version(g: &Gray, r: &http::Request<()>) -> String {
    g.decide(r).version().to_owned()
}

#[test]
fn the_first_key_the_request_has_places_it() {
    let g = gray(STICKY);
    let (by_user, by_cookie, by_query, by_ip) = (
        single("{ header: x-user-id }"),
        single("{ cookie: sid }"),
        single("{ query: u }"),
        single("client_ip"),
    );
    for i in 0..300u32 {
        let id = format!("k{i}");
        let cookie = format!("theme=dark; sid={id}");
        let peer = PeerAddr(([198, 51, 100, (i % 250) as u8], 1).into());
        let mut everything = req(
            &format!("/?u={id}x"),
            &[("x-user-id", &id), ("cookie", &cookie)],
        );
        everything.extensions_mut().insert(peer);
        // The user id comes first, whatever else the request has.
        assert_eq!(version(&g, &everything), version(&by_user, &everything));
        // An empty user id is no key: the cookie is next.
        let mut no_user = req(
            &format!("/?u={id}x"),
            &[("x-user-id", ""), ("cookie", &cookie)],
        );
        no_user.extensions_mut().insert(peer);
        assert_eq!(version(&g, &no_user), version(&by_cookie, &no_user));
        // Then the query parameter, then the address.
        let mut query = req(&format!("/?u={id}x"), &[]);
        query.extensions_mut().insert(peer);
        assert_eq!(version(&g, &query), version(&by_query, &query));
        let mut address = req("/", &[]);
        address.extensions_mut().insert(peer);
        assert_eq!(version(&g, &address), version(&by_ip, &address));
    }
    // None of them: the unkeyed exact sequence.
    let none = req("/", &[]);
    let canary = (0..100).filter(|_| version(&g, &none) == "canary").count();
    assert_eq!(canary, 50);
}

#[test]
fn users_keyed_either_way_are_shared_by_weight() {
    let g = gray(&STICKY.replace("stable: 50, canary: 50", "stable: 80, canary: 20"));
    let n = 4000u32;
    let canary = (0..n)
        .filter(|i| {
            let id = i.to_string();
            let r = if i % 2 == 0 {
                req("/", &[("x-user-id", &id)])
            } else {
                req("/", &[("cookie", &format!("sid={id}"))])
            };
            version(&g, &r) == "canary"
        })
        .count();
    // 20% of 4,000: σ ≈ 25; within 5σ.
    assert!((675..=925).contains(&canary), "{canary} of {n} on canary");
}

#[test]
fn set_cookie_gives_the_first_cookie_listed_when_no_key_is_found() {
    let g = gray(
        "versions: [stable, canary]
routes:
  - name: everyone
    split:
      by: { first_of: [{ header: x-user-id }, { cookie: sid }] }
      weights: { stable: 50, canary: 50 }
      set_cookie: {}
",
    );
    let (version, pair) = first_visit(&g);
    assert!(pair.starts_with("sid="), "{pair}");
    // Sent back, it places the client where its first request went, and no other is given.
    let back = g.decide(&req("/", &[("cookie", &pair)]));
    assert_eq!(
        (back.version(), back.set_cookie()),
        (version.as_str(), None)
    );
    // A request with a user id gets no cookie.
    assert!(
        g.decide(&req("/", &[("x-user-id", "7")]))
            .set_cookie()
            .is_none()
    );
}

#[test]
fn a_bad_first_of_is_refused_naming_the_route_and_field() {
    let route = |by: &str| {
        format!(
            "versions: [stable, canary]\nroutes:\n  - name: r\n    split: {{ by: {by}, weights: {{ stable: 50, canary: 50 }} }}\n"
        )
    };
    for (by, field, problem) in [
        ("{ first_of: [] }", "split.by.first_of", Problem::NoKeys),
        (
            "{ first_of: [{ header: x-user-id }, { first_of: [client_ip] }] }",
            "split.by.first_of[1]",
            Problem::NestedFirstOf,
        ),
        (
            "{ first_of: [{ header: x-user-id }, { cookie: \"a b\" }] }",
            "split.by.first_of[1].cookie",
            Problem::BadName("a b".into()),
        ),
        (
            "{ first_of: [{ header: \"x y\" }] }",
            "split.by.first_of[0].header",
            Problem::BadHeaderName("x y".into()),
        ),
        (
            "{ first_of: [client_ip, client_ip, client_ip, client_ip, client_ip, client_ip, client_ip, client_ip, client_ip] }",
            "split.by.first_of",
            Problem::TooMany { count: 9, max: 8 },
        ),
        // A single key's field is named as before.
        (
            "{ cookie: \"a;b\" }",
            "split.by.cookie",
            Problem::BadName("a;b".into()),
        ),
    ] {
        assert_eq!(
            refused_in_route_r(&route(by)),
            (field.to_owned(), problem),
            "{by}"
        );
    }
    // Eight keys are allowed (the ninth above is one too many).
    let eight = "{ first_of: [client_ip, client_ip, client_ip, client_ip, client_ip, client_ip, client_ip, client_ip] }";
    let g = gray_core::Config::from_yaml(&route(eight)).and_then(gray_core::Gray::new);
    assert!(g.is_ok(), "{:?}", g.err());
    // Every key of a `first_of` that has a problem is told.
    let config = gray_core::Config::from_yaml(&route(
        "{ first_of: [{ header: \"x y\" }, client_ip, { first_of: [client_ip] }, { query: \"a&b\" }] }",
    ))
    .unwrap();
    let told: Vec<String> = config
        .validate()
        .unwrap_err()
        .problems()
        .map(|p| p.field.clone())
        .collect();
    assert_eq!(
        told,
        [
            "split.by.first_of[0].header",
            "split.by.first_of[2]",
            "split.by.first_of[3].query"
        ]
    );
    // set_cookie needs a cookie among the keys.
    let yaml = "versions: [stable, canary]\nroutes:\n  - name: r\n    split: { by: { first_of: [{ header: x-user-id }, client_ip] }, weights: { stable: 50, canary: 50 }, set_cookie: {} }\n";
    assert_eq!(
        refused_in_route_r(yaml),
        (
            "split.set_cookie".to_owned(),
            Problem::SetCookieWithoutCookieKey
        )
    );
}

#[test]
fn yaml_toml_and_json_load_the_same_first_of() {
    let yaml = Config::from_yaml(STICKY).unwrap();
    let toml = Config::from_toml(
        r#"versions = ["stable", "canary"]
[[routes]]
name = "everyone"
split = { by = { first_of = [{ header = "x-user-id" }, { cookie = "sid" }, { query = "u" }, "client_ip"] }, weights = { stable = 50, canary = 50 } }
"#,
    )
    .unwrap();
    let json = Config::from_json(
        r#"{"versions": ["stable", "canary"], "routes": [{"name": "everyone", "split": {
            "by": {"first_of": [{"header": "x-user-id"}, {"cookie": "sid"}, {"query": "u"}, "client_ip"]},
            "weights": {"stable": 50, "canary": 50}}}]}"#,
    )
    .unwrap();
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
    let by = yaml.routes[0].split.as_ref().unwrap().by.clone();
    assert_eq!(
        by,
        Some(SplitBy::FirstOf(vec![
            SplitBy::Header("x-user-id".into()),
            SplitBy::Cookie("sid".into()),
            SplitBy::Query("u".into()),
            SplitBy::ClientIp,
        ]))
    );
    // A key falling back to the address reads the client's address.
    assert!(Gray::new(yaml).unwrap().reads_client_ip());
}
