//! What each condition means, route order, and reading each request value once.

mod common;

use std::cell::RefCell;

use common::{design, gray, req};
use gray_core::{Config, Gray, RequestView, Source};
use http::HeaderName;

fn decide(g: &Gray, r: &http::Request<()>) -> (String, Option<String>) {
    let d = g.decide(r);
    (d.version().to_owned(), d.route().map(str::to_owned))
}

#[test]
fn design_config_outcomes() {
    let g = design();
    let canary = |route: &str| ("canary".to_owned(), Some(route.to_owned()));
    assert_eq!(
        decide(&g, &req("/", &[("x-app-version", "beta")])),
        canary("testers")
    );
    assert_eq!(
        decide(
            &g,
            &req(
                "/",
                &[
                    ("x-user-tier", "premium"),
                    ("x-activity-level", "high-volume")
                ]
            )
        ),
        canary("premium-active")
    );
    // AND: one condition alone is not enough; `^high` is anchored.
    let half = req(
        "/",
        &[
            ("x-user-tier", "premium"),
            ("x-activity-level", "very-high"),
            ("x-user-id", "1"),
        ],
    );
    assert_eq!(decide(&g, &half).1.as_deref(), Some("users"));
    // Routes in order: the tester header wins over the split.
    let both = req("/", &[("x-app-version", "beta"), ("x-user-id", "1")]);
    assert_eq!(decide(&g, &both), canary("testers"));
    // The split has no match, so it takes every remaining request: the default is unreachable here.
    let d = g.decide(&req("/", &[]));
    assert_eq!((d.route(), d.source()), (Some("users"), Source::Route));
}

#[test]
fn no_route_matches_gives_the_first_declared_version() {
    let g = gray(
        "versions: [blue, green]\nroutes:\n  - { name: t, match: { method: POST }, to: green }",
    );
    let d = g.decide(&req("/", &[]));
    assert_eq!(
        (d.version(), d.route(), d.source()),
        ("blue", None, Source::Default)
    );
}

#[test]
fn every_condition_kind() {
    let g = gray(
        r#"
versions: [stable, canary]
routes:
  - { name: exact-header, match: { headers: [{ name: X-Env, exact: Beta }] }, to: canary }
  - { name: prefix-header, match: { headers: [{ name: x-ua, prefix: "gray/" }] }, to: canary }
  - { name: regex-header, match: { headers: [{ name: x-build, regex: "^[0-9]+-rc[0-9]$" }] }, to: canary }
  - { name: present, match: { headers: [{ name: x-debug, present: true }] }, to: canary }
  - { name: query, match: { query: [{ name: gray, exact: "1" }] }, to: canary }
  - { name: cookie, match: { cookies: [{ name: canary, exact: "yes" }] }, to: canary }
  - { name: path-prefix, match: { path: { prefix: /v2/ } }, to: canary }
  - { name: path-regex, match: { path: { regex: "^/items/[0-9]+/beta$" } }, to: canary }
  - { name: post-only, match: { method: DELETE }, to: canary }
"#,
    );
    let route = |r: http::Request<()>| g.decide(&r).route().map(str::to_owned);
    assert_eq!(
        route(req("/", &[("x-env", "Beta")])).as_deref(),
        Some("exact-header")
    );
    assert_eq!(
        route(req("/", &[("x-env", "beta")])),
        None,
        "exact is case-sensitive on values"
    );
    assert_eq!(
        route(req("/", &[("x-ua", "gray/1.2")])).as_deref(),
        Some("prefix-header")
    );
    assert_eq!(
        route(req("/", &[("x-build", "42-rc1")])).as_deref(),
        Some("regex-header")
    );
    assert_eq!(route(req("/", &[("x-build", "42-rc12")])), None);
    assert_eq!(
        route(req("/", &[("x-debug", "")])).as_deref(),
        Some("present")
    );
    assert_eq!(route(req("/a?x=2&gray=1", &[])).as_deref(), Some("query"));
    assert_eq!(route(req("/a?gray=10", &[])), None);
    assert_eq!(
        route(req("/", &[("cookie", "a=b; canary=\"yes\"")])).as_deref(),
        Some("cookie")
    );
    assert_eq!(
        route(req("/", &[("cookie", "a=b"), ("cookie", "canary=yes")])).as_deref(),
        Some("cookie")
    );
    assert_eq!(
        route(req("/v2/users?id=1", &[])).as_deref(),
        Some("path-prefix")
    );
    assert_eq!(
        route(req("/items/12/beta", &[])).as_deref(),
        Some("path-regex")
    );
    let delete = http::Request::delete("/").body(()).unwrap();
    assert_eq!(g.decide(&delete).route(), Some("post-only"));
}

#[test]
fn invert_and_absence() {
    let g = gray(
        r#"
versions: [stable, canary]
routes:
  - { name: not-internal, match: { headers: [{ name: x-internal, exact: "1", invert: true }], path: { prefix: /api } }, to: canary }
  - { name: anonymous, match: { cookies: [{ name: session, present: false }] }, to: canary }
"#,
    );
    let route = |r: http::Request<()>| g.decide(&r).route().map(str::to_owned);
    // Inverted exact: holds for another value and for an absent header.
    assert_eq!(
        route(req("/api", &[("x-internal", "0"), ("cookie", "session=1")])).as_deref(),
        Some("not-internal")
    );
    assert_eq!(
        route(req("/api", &[("cookie", "session=1")])).as_deref(),
        Some("not-internal")
    );
    assert_eq!(
        route(req("/api", &[("x-internal", "1"), ("cookie", "session=1")])),
        None
    );
    // present: false holds when the cookie is absent.
    assert_eq!(
        route(req("/", &[("cookie", "theme=dark")])).as_deref(),
        Some("anonymous")
    );
    assert_eq!(route(req("/", &[("cookie", "session=abc")])), None);
}

#[test]
fn keyed_by_cookie_and_query_are_sticky_and_agree_with_header_keys() {
    let by = |source: &str| {
        gray(&format!(
            "versions: [stable, canary]\nroutes:\n  - {{ name: u, split: {{ by: {source}, weights: {{ stable: 50, canary: 50 }} }} }}"
        ))
    };
    let (h, c, q) = (
        by("{ header: x-uid }"),
        by("{ cookie: uid }"),
        by("{ query: uid }"),
    );
    for i in 0..500 {
        let v = h
            .decide(&req("/", &[("x-uid", &i.to_string())]))
            .version()
            .to_owned();
        assert_eq!(
            c.decide(&req("/", &[("cookie", &format!("uid={i}"))]))
                .version(),
            v
        );
        assert_eq!(q.decide(&req(&format!("/?uid={i}"), &[])).version(), v);
    }
}

/// A request that counts how often each header is read.
struct Counting {
    inner: http::Request<()>,
    reads: RefCell<Vec<String>>,
}

impl RequestView for Counting {
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.reads.borrow_mut().push(name.to_string());
        self.inner.header(name)
    }
    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.reads.borrow_mut().push(name.to_string());
        self.inner.header_all(name)
    }
    fn path(&self) -> &str {
        self.inner.path()
    }
    fn query(&self) -> Option<&str> {
        self.inner.query()
    }
    fn method(&self) -> &str {
        RequestView::method(&self.inner)
    }
}

#[test]
fn each_request_value_is_read_once_per_decision() {
    let g = Gray::new(
        Config::from_yaml(
            r#"
label: { inherit: always }
versions: [stable, canary]
routes:
  - { name: a, match: { headers: [{ name: x-tier, exact: gold }, { name: x-gray-version, exact: x }] }, to: canary }
  - { name: b, match: { headers: [{ name: x-tier, exact: silver }] }, to: canary }
  - { name: c, match: { headers: [{ name: x-tier, prefix: pl }, { name: x-user, present: true }] }, to: canary }
  - { name: d, split: { by: { header: x-user }, weights: { stable: 50, canary: 50 } } }
"#,
        )
        .unwrap(),
    )
    .unwrap();
    let r = Counting {
        inner: req(
            "/",
            &[
                ("x-tier", "bronze"),
                ("x-user", "7"),
                ("x-gray-version", "nope"),
            ],
        ),
        reads: RefCell::default(),
    };
    assert_eq!(g.decide(&r).route(), Some("d"));
    let mut reads = r.reads.take();
    reads.sort();
    // `baggage` too: read once, for a `gray` member the decision would contradict.
    assert_eq!(reads, ["baggage", "x-gray-version", "x-tier", "x-user"]);
}

/// A view that can only look headers up by name: the engine's fallback path.
struct LookupOnly(http::Request<()>);

impl RequestView for LookupOnly {
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.0.header(name)
    }
    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.0.header_all(name)
    }
    fn path(&self) -> &str {
        self.0.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.query()
    }
    fn method(&self) -> &str {
        RequestView::method(&self.0)
    }
    fn authority(&self) -> Option<&str> {
        self.0.authority()
    }
}

/// A view giving only what the trait requires: the provided methods read no authority
/// and no peer, and parse the query and cookies from what it gives.
struct Minimal(http::Request<()>);

impl RequestView for Minimal {
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.0.header(name)
    }
    fn header_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.0.header_all(name)
    }
    fn path(&self) -> &str {
        self.0.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.query()
    }
    fn method(&self) -> &str {
        RequestView::method(&self.0)
    }
}

#[test]
fn a_view_of_only_the_required_methods_has_no_authority_and_parses_the_rest() {
    let g = gray(
        "versions: [stable, canary, v2, v3]
routes:
  - { name: host, match: { headers: [{ name: host, present: true }] }, to: canary }
  - { name: query, match: { query: [{ name: uid, exact: '7' }] }, to: v2 }
  - { name: cookie, match: { cookies: [{ name: uid, exact: '42' }] }, to: v3 }",
    );
    let view = |uri: &str, cookie: Option<&str>| {
        let mut b = http::Request::get(uri);
        if let Some(cookie) = cookie {
            b = b.header("cookie", cookie);
        }
        Minimal(b.body(()).unwrap())
    };
    // The URI's authority is the host of an HTTP/2 request: the `http` view reads it,
    // a view that does not give it has none.
    let absolute = view("http://example.com/", None);
    assert_eq!(g.decide(&absolute.0).route(), Some("host"));
    assert_eq!(absolute.authority(), None);
    assert_eq!(g.decide(&absolute).route(), None);
    assert_eq!(
        g.decide(&view("/cart?a=1&uid=7", None)).route(),
        Some("query")
    );
    let cookie = view("/", Some("theme=dark; uid=42"));
    assert_eq!(g.decide(&cookie).route(), Some("cookie"));
    assert_eq!(cookie.peer_ip(), None);
}

/// `http::request::Parts` (what an extractor or a middleware holding the body apart
/// has), and a reference to either, are read as the whole request is: every field a rule
/// can look at.
#[test]
fn request_parts_and_references_decide_as_their_request_does() {
    let g = gray(
        "versions: [stable, v1, v2, v3, v4, v5, v6, v7]
routes:
  - { name: header, match: { headers: [{ name: x-tier, exact: premium }] }, to: v1 }
  - { name: path, match: { path: { prefix: /beta } }, to: v2 }
  - { name: query, match: { query: [{ name: uid, exact: '7' }] }, to: v3 }
  - { name: method, match: { method: DELETE }, to: v4 }
  - { name: host, match: { headers: [{ name: host, exact: api.example.com }] }, to: v5 }
  - { name: ip, match: { client_ip: { cidr: [192.0.2.0/24] } }, to: v6 }
  - { name: cookie, match: { cookies: [{ name: uid, exact: '42' }] }, to: v7 }",
    );
    let build = |method: &str, uri: &str, headers: &[(&str, &str)], peer: Option<[u8; 4]>| {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(ip) = peer {
            b = b.extension(gray_core::PeerAddr((ip, 1).into()));
        }
        b.body(()).unwrap()
    };
    let cases = [
        (
            build("GET", "/", &[("x-tier", "premium")], None),
            Some("header"),
        ),
        (build("GET", "/beta/cart", &[], None), Some("path")),
        (build("GET", "/?a=1&uid=7", &[], None), Some("query")),
        (build("DELETE", "/", &[], None), Some("method")),
        (
            build("GET", "http://api.example.com/", &[], None),
            Some("host"),
        ),
        (build("GET", "/", &[], Some([192, 0, 2, 9])), Some("ip")),
        (build("GET", "/", &[], Some([198, 51, 100, 9])), None),
        (
            build(
                "GET",
                "/",
                &[("cookie", "theme=dark"), ("cookie", "uid=42")],
                None,
            ),
            Some("cookie"),
        ),
        (build("GET", "/", &[("x-tier", "basic")], None), None),
    ];
    for (request, route) in cases {
        let whole = g.decide(&request).route().map(str::to_owned);
        // A reference is a view of what it points to (`decide::<&Request<()>>`).
        let by_ref = g.decide(&&request).route().map(str::to_owned);
        let (parts, ()) = request.into_parts();
        assert_eq!(whole.as_deref(), route, "{parts:?}");
        assert_eq!(by_ref.as_deref(), route, "{parts:?}");
        assert_eq!(g.decide(&parts).route(), route, "{parts:?}");
        assert_eq!(g.decide(&&parts).route(), route, "{parts:?}");
    }
}

/// Everything a view gives, owned.
#[derive(Debug, PartialEq)]
struct Fields {
    header: Option<Vec<u8>>,
    cookies: Vec<Vec<u8>>,
    listed: Option<Vec<(String, Vec<u8>)>>,
    path: String,
    query: Option<String>,
    method: String,
    authority: Option<String>,
    peer: Option<std::net::IpAddr>,
    param: Option<Vec<u8>>,
    cookie: Option<Vec<u8>>,
}

fn fields(v: &impl RequestView) -> Fields {
    let mut listed = Vec::new();
    let lists = v.for_each_header(|name, value| listed.push((name.to_owned(), value.to_vec())));
    Fields {
        header: v
            .header(&HeaderName::from_static("x-tier"))
            .map(<[u8]>::to_vec),
        cookies: v
            .header_all(&http::header::COOKIE)
            .map(<[u8]>::to_vec)
            .collect(),
        listed: lists.then_some(listed),
        path: v.path().to_owned(),
        query: v.query().map(str::to_owned),
        method: v.method().to_owned(),
        authority: v.authority().map(str::to_owned),
        peer: v.peer_ip(),
        param: v.query_param("uid").map(<[u8]>::to_vec),
        cookie: v.cookie("uid").map(<[u8]>::to_vec),
    }
}

#[test]
fn request_parts_and_references_give_every_field_as_the_request_does() {
    let request = http::Request::post("http://api.example.com/cart?a=1&uid=7")
        .header("x-tier", "premium")
        .header("cookie", "theme=dark")
        .header("cookie", "uid=42")
        .extension(gray_core::PeerAddr(([192, 0, 2, 9], 1).into()))
        .body(())
        .unwrap();
    let whole = fields(&request);
    assert_eq!(
        whole,
        Fields {
            header: Some(b"premium".to_vec()),
            cookies: vec![b"theme=dark".to_vec(), b"uid=42".to_vec()],
            listed: Some(vec![
                ("x-tier".to_owned(), b"premium".to_vec()),
                ("cookie".to_owned(), b"theme=dark".to_vec()),
                ("cookie".to_owned(), b"uid=42".to_vec()),
            ]),
            path: "/cart".to_owned(),
            query: Some("a=1&uid=7".to_owned()),
            method: "POST".to_owned(),
            authority: Some("api.example.com".to_owned()),
            peer: Some([192, 0, 2, 9].into()),
            param: Some(b"7".to_vec()),
            cookie: Some(b"42".to_vec()),
        }
    );
    assert_eq!(fields(&&request), whole);
    let (parts, ()) = request.into_parts();
    assert_eq!(fields(&parts), whole);
    assert_eq!(fields(&&parts), whole);
}

/// Rules on `names` headers (h0, h1, …), then a keyed split on `x-user`.
fn many_header_rules(names: usize) -> Gray {
    let mut yaml =
        String::from("label: { inherit: always }\nversions: [stable, canary, v2]\nroutes:\n");
    for i in 0..names {
        let to = ["canary", "v2"][i % 2];
        yaml.push_str(&format!(
            "  - {{ name: r{i}, match: {{ headers: [{{ name: h{i}, exact: 'on' }}, {{ name: h{}, present: true, invert: true }}] }}, to: {to} }}\n",
            (i + 1) % names
        ));
    }
    yaml.push_str("  - { name: users, split: { by: { header: x-user }, weights: { stable: 50, canary: 30, v2: 20 } } }\n");
    Gray::new(Config::from_yaml(&yaml).expect("rules parse")).expect("rules are valid")
}

proptest::proptest! {
    /// Reading headers in one pass gives the same decisions as looking each one up,
    /// with repeated headers, more rule headers than the one pass keeps, and both the
    /// small (linear) and large (hashed) name tables.
    #[test]
    fn one_pass_and_lookups_agree(
        names in proptest::sample::select(vec![3usize, 30]),
        headers in proptest::collection::vec((0usize..32, proptest::bool::ANY), 0..20),
        user in 0u32..1000,
        label in proptest::option::of(proptest::sample::select(vec!["stable", "canary", "v2", "v9"])),
    ) {
        let g = many_header_rules(names);
        let mut b = http::Request::get("/").header("x-user", user.to_string());
        if let Some(label) = label {
            b = b.header("x-gray-version", label);
        }
        for (h, on) in &headers {
            b = b.header(format!("h{h}"), if *on { "on" } else { "off" });
        }
        let req = b.body(()).unwrap();
        let fast = g.decide(&req);
        let slow = g.decide(&LookupOnly(req.clone()));
        proptest::prop_assert_eq!(
            (fast.version(), fast.route(), fast.label_rejected()),
            (slow.version(), slow.route(), slow.label_rejected())
        );
    }
}

/// Rules on ten headers that never match, then on cookies `c` and `uid` (a request without
/// a `uid`, or with an empty one, is routed before the split: its unkeyed sequence would
/// draw differently for the two ways of reading).
fn cookie_rules() -> Gray {
    let mut yaml = String::from("versions: [stable, canary, v2]\nroutes:\n");
    for i in 0..10 {
        yaml.push_str(&format!(
            "  - {{ name: r{i}, match: {{ headers: [{{ name: h{i}, exact: never }}] }}, to: canary }}\n"
        ));
    }
    yaml.push_str(
        "  - { name: c, match: { cookies: [{ name: c, exact: 'on' }] }, to: v2 }\n  - { name: nokey, match: { cookies: [{ name: uid, regex: '.', invert: true }] }, to: stable }\n  - { name: users, split: { by: { cookie: uid }, weights: { stable: 50, canary: 30, v2: 20 } } }\n",
    );
    Gray::new(Config::from_yaml(&yaml).expect("rules parse")).expect("rules are valid")
}

proptest::proptest! {
    /// Cookies read from the `cookie` header the one pass kept agree with cookies read by
    /// looking the header up: one `cookie` header, several (HTTP/2 splits them), none,
    /// and more rule headers than the pass keeps (it then looks them up).
    #[test]
    fn cookies_read_in_one_pass_and_by_lookup_agree(
        lines in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(vec![
                    "c=on", "c=off", "uid=7", "uid=8", "uid=", "a=b", " c = on ", "c",
                    "\"uid\"=1", "uid=\"9\"", "",
                ]),
                0..4,
            ),
            0..3,
        ),
        others in 0usize..12,
    ) {
        let g = cookie_rules();
        let mut b = http::Request::get("/");
        for i in 0..others {
            b = b.header(format!("h{}", i % 10), "sometimes");
        }
        for line in &lines {
            b = b.header("cookie", line.join("; "));
        }
        let req = b.body(()).unwrap();
        let fast = g.decide(&req);
        let slow = g.decide(&LookupOnly(req.clone()));
        proptest::prop_assert_eq!(
            (fast.version(), fast.route()),
            (slow.version(), slow.route())
        );
    }
}

#[test]
fn regexes_match_the_same_on_every_thread() {
    let g = Gray::new(
        Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - { name: tiers, match: { headers: [{ name: x-user-tier, regex: '^(gold|platinum)-[0-9]+$' }] }, to: canary }\n",
        )
        .expect("rules parse"),
    )
    .expect("rules are valid");
    std::thread::scope(|s| {
        for t in 0..4 {
            let g = &g;
            s.spawn(move || {
                for i in 0..1000 {
                    let tier = if (i + t) % 2 == 0 {
                        format!("gold-{i}")
                    } else {
                        format!("gold{i}")
                    };
                    let want = if (i + t) % 2 == 0 { "canary" } else { "stable" };
                    let d = g.decide(&req("/", &[("x-user-tier", &tier)]));
                    assert_eq!(d.version(), want, "thread {t}, {tier}");
                }
            });
        }
    });
}

/// A regex from a small grammar that reaches what the engine treats differently: anchors,
/// classes, Unicode and ASCII word boundaries, case folding, repetition, alternation, and
/// non-ASCII literals.
fn regex_source() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let atom = proptest::sample::select(vec![
        "a",
        "b",
        "-",
        "é",
        ".",
        "[a-c]",
        "[^a]",
        r"\d",
        r"\w",
        r"\s",
        r"\b",
        r"(?-u:\b)",
        "^",
        "$",
        "(?i)a",
        r"\x80",
        r"(?-u:[\x80-\xFF])",
        "",
    ])
    .prop_map(str::to_owned);
    atom.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|parts| parts.concat()),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(?:{a}|{b})")),
            (
                inner,
                proptest::sample::select(vec!["*", "+", "?", "{1,3}", "*?"])
            )
                .prop_map(|(a, rep)| format!("(?:{a}){rep}")),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(512))]
    /// A `regex` condition matches exactly where the regex crate's own engine
    /// (`regex_automata::meta`, byte-oriented as the condition is) finds a match anywhere
    /// in the value — through the lazy DFA, its fallback on non-ASCII input, and the
    /// anchored-literal shortcut — and refuses exactly the regexes it refuses.
    #[test]
    fn regex_conditions_match_as_the_regex_crate_does(
        src in regex_source(),
        values in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(b"ab-_ 19aA\t\xc3\xa9\x80\xff".to_vec()),
                0..12,
            ),
            1..8,
        ),
    ) {
        let rules = serde_json::json!({
            "versions": ["stable", "canary"],
            "routes": [{ "name": "re", "match": { "headers": [{ "name": "x-v", "regex": src }] }, "to": "canary" }],
        });
        // Configured as `regex::bytes::Regex` is.
        let oracle = regex_automata::meta::Builder::new()
            .syntax(regex_automata::util::syntax::Config::new().utf8(false))
            .configure(regex_automata::meta::Config::new().utf8_empty(false))
            .build(&src);
        let gray = Config::from_json(&rules.to_string()).and_then(Gray::new);
        let (gray, oracle) = match (gray, oracle) {
            (Ok(gray), Ok(oracle)) => (gray, oracle),
            (Err(_), Err(_)) => return Ok(()),
            // gray's size limit is lower than the regex crate's (2 MiB against 10 MiB).
            (Err(e), Ok(_)) if e.to_string().contains("the limit for one regex") => return Ok(()),
            (gray, oracle) => {
                return Err(proptest::test_runner::TestCaseError::fail(format!(
                    "{src:?}: gray {:?}, regex crate {:?}",
                    gray.err().map(|e| e.to_string()),
                    oracle.err().map(|e| e.to_string()),
                )));
            }
        };
        for value in &values {
            let req = http::Request::get("/")
                .header("x-v", http::HeaderValue::from_bytes(value).unwrap())
                .body(())
                .unwrap();
            let matched = gray.decide(&req).route() == Some("re");
            proptest::prop_assert_eq!(matched, oracle.is_match(value.as_slice()), "{:?} on {:?}", src, value);
        }
    }
}

/// HTTP/2 sends the host as `:authority`, in the URI, with no `Host` header: a rule on
/// `host` matches it there, and a `Host` header, when sent, is what counts.
#[test]
fn a_host_rule_reads_the_authority_when_there_is_no_host_header() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: shop, match: { headers: [{ name: host, exact: shop.example }] }, to: canary }\n",
    );
    let http2 = http::Request::get("https://shop.example/cart")
        .body(())
        .unwrap();
    assert_eq!(decide(&g, &http2), ("canary".into(), Some("shop".into())));
    let (parts, ()) = http2.into_parts();
    assert_eq!(g.decide(&parts).version(), "canary");
    assert_eq!(
        g.explain(&parts).last().map(|c| c.failed.is_none()),
        Some(true)
    );

    let other = http::Request::get("https://shop.example/cart")
        .header("host", "other.example")
        .body(())
        .unwrap();
    assert_eq!(decide(&g, &other).0, "stable", "the Host header counts");
    let http1 = req("/cart", &[("host", "shop.example")]);
    assert_eq!(decide(&g, &http1).0, "canary");
    assert_eq!(decide(&g, &req("/cart", &[])).0, "stable", "no host at all");
    // Looked up one by one (a view that cannot list its headers), the same.
    let lookups = LookupOnly(
        http::Request::get("https://shop.example/")
            .body(())
            .unwrap(),
    );
    assert_eq!(g.decide(&lookups).version(), "canary");
}

/// A decision printed with `{:?}` (in a log line, a failed assertion) says what was
/// decided and why.
#[test]
fn a_decision_debug_prints_its_version_route_and_source() {
    let d = design().decide(&req("/", &[("x-app-version", "beta")]));
    let printed = format!("{d:?}");
    for words in [
        "Decision",
        "version: \"canary\"",
        "route: Some(\"testers\")",
        "source: Route",
    ] {
        assert!(printed.contains(words), "{printed} lacks {words}");
    }
}
