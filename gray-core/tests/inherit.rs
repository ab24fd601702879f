//! `label.inherit`: an incoming label is untrusted unless the config says otherwise.

mod common;

use common::{design, from, gray, req};
use gray_core::Source;
use gray_core::label::MAX_LABEL_LEN;

const INTERNAL: &str = r#"
label: { header: x-gray-version, inherit: always }
versions: [stable, canary, v2]
routes:
  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }
"#;

#[test]
fn never_ignores_an_incoming_label() {
    let edge = design(); // inherit: never
    for _ in 0..100 {
        let d = edge.decide(&req(
            "/",
            &[("x-gray-version", "canary"), ("x-user-id", "7")],
        ));
        assert_eq!(d.route(), Some("users"));
        assert_ne!(d.source(), Source::Inherited);
        assert!(
            d.label_rejected(),
            "an edge refuses every incoming label, and says so"
        );
    }
    // user 7 is on stable by its bucket: the spoofed label changed nothing.
    assert_eq!(
        edge.decide(&req(
            "/",
            &[("x-gray-version", "canary"), ("x-user-id", "7")]
        ))
        .version(),
        "stable"
    );
}

#[test]
fn always_honours_a_declared_label() {
    let g = gray(INTERNAL);
    for v in ["stable", "canary", "v2"] {
        let d = g.decide(&req(
            "/",
            &[("x-gray-version", v), ("x-app-version", "beta")],
        ));
        assert_eq!(
            (d.version(), d.route(), d.source()),
            (v, None, Source::Inherited)
        );
        assert!(!d.label_rejected());
    }
}

/// A version name may be `MAX_LABEL_LEN` bytes long, and a label naming it is honoured.
#[test]
fn always_honours_a_label_of_the_longest_version_name() {
    let longest = "v".repeat(MAX_LABEL_LEN);
    let g = gray(&INTERNAL.replace("v2]", &format!("{longest}]")));
    let d = g.decide(&req("/", &[("x-gray-version", &longest)]));
    assert_eq!(
        (d.version(), d.source()),
        (longest.as_str(), Source::Inherited)
    );
}

#[test]
fn always_ignores_undeclared_and_oversize_labels() {
    let g = gray(INTERNAL);
    let long = "c".repeat(MAX_LABEL_LEN + 1);
    for bad in ["v3", "Canary", "canary ", "", long.as_str()] {
        let d = g.decide(&req(
            "/",
            &[("x-gray-version", bad), ("x-app-version", "beta")],
        ));
        assert_eq!(
            (d.version(), d.source()),
            ("canary", Source::Route),
            "{bad:?}"
        );
        assert!(d.label_rejected(), "{bad:?} must be counted as rejected");
    }
    // Non-UTF-8 label bytes.
    let mut r = req("/", &[]);
    r.headers_mut().insert(
        "x-gray-version",
        http::HeaderValue::from_bytes(b"\xffcanary").unwrap(),
    );
    let d = g.decide(&r);
    assert_eq!((d.version(), d.label_rejected()), ("stable", true));
    // No label at all: decided here, nothing rejected.
    let d = g.decide(&req("/", &[]));
    assert_eq!(
        (d.version(), d.source(), d.label_rejected()),
        ("stable", Source::Default, false)
    );
}

#[test]
fn custom_label_header() {
    let g = gray("label: { header: X-Release, inherit: always }\nversions: [a, b]");
    assert_eq!(g.decide(&req("/", &[("x-release", "b")])).version(), "b");
    assert_eq!(
        g.decide(&req("/", &[("x-gray-version", "b")])).version(),
        "a"
    );
    assert_eq!(g.label_header(), "x-release");
    assert!(g.is_declared(b"b") && !g.is_declared(b"c"));

    // Interned: a reload (or another `Gray`) with the same name hands out the same bytes,
    // so adapters clone it per request without touching a reference count.
    let again = gray("label: { header: x-release }\nversions: [a, b]");
    let d = again.decide(&req("/", &[]));
    assert_eq!(
        d.label_header().as_str().as_ptr(),
        g.label_header().as_str().as_ptr()
    );
}

#[test]
fn always_reads_the_label_from_baggage_when_the_header_is_absent() {
    let g = gray(INTERNAL);
    let d = g.decide(&req("/", &[("baggage", "userId=alice, gray=v2;ttl=1")]));
    assert_eq!((d.version(), d.source()), ("v2", Source::Inherited));

    // The label header wins over baggage.
    let d = g.decide(&req(
        "/",
        &[("x-gray-version", "canary"), ("baggage", "gray=v2")],
    ));
    assert_eq!(d.version(), "canary");

    // Same rules: an undeclared baggage label is ignored and reported.
    let d = g.decide(&req(
        "/",
        &[("baggage", "gray=v9"), ("x-app-version", "beta")],
    ));
    assert_eq!((d.version(), d.route()), ("canary", Some("testers")));
    assert!(d.label_rejected());

    // Baggage without a gray member is not a label at all.
    let d = g.decide(&req("/", &[("baggage", "userId=alice")]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Default));
    assert!(!d.label_rejected());
}

#[test]
fn baggage_is_ignored_at_the_edge_and_when_turned_off() {
    let edge = design();
    let d = edge.decide(&req("/", &[("baggage", "gray=canary"), ("x-user-id", "7")]));
    assert_eq!((d.version(), d.route()), ("stable", Some("users")));
    assert!(d.label_rejected(), "refused, and counted");
    let d = edge.decide(&req(
        "/",
        &[("baggage", "userId=alice"), ("x-user-id", "7")],
    ));
    assert!(!d.label_rejected(), "no gray member: no label");

    let off = gray("label: { inherit: always, baggage: false }\nversions: [stable, canary]\n");
    let d = off.decide(&req("/", &[("baggage", "gray=canary")]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Default));
}

#[test]
fn an_edge_whose_rules_read_the_label_header_does_not_count_it() {
    // Testers force a version with the label header itself (nginx's
    // `map $http_x_gray_version`): there the header is a rule's input, not a refused label.
    let edge = gray(
        r#"
versions: [stable, canary]
routes:
  - { name: forced, match: { headers: [{ name: x-gray-version, exact: v2 }] }, to: canary }
"#,
    );
    let d = edge.decide(&req("/", &[("x-gray-version", "v2")]));
    assert_eq!((d.version(), d.route()), ("canary", Some("forced")));
    let d = edge.decide(&req("/", &[("x-gray-version", "canary")]));
    assert_eq!((d.version(), d.source()), ("stable", Source::Default));
    assert!(!d.label_rejected());
    // Baggage is not read as a label there either.
    let d = edge.decide(&req("/", &[("baggage", "gray=canary")]));
    assert!(!d.label_rejected());
    assert_eq!(edge.rejected_labels(), 0);
}

#[test]
fn refused_labels_are_counted() {
    let g = gray(INTERNAL);
    let clone = g.clone();
    let long = "c".repeat(MAX_LABEL_LEN + 1);
    for label in ["canary", "v3", "stable", long.as_str(), "Canary"] {
        let _ = g.decide(&req("/", &[("x-gray-version", label)]));
    }
    let _ = g.decide(&req("/", &[("baggage", "gray=nope")]));
    assert_eq!(
        clone.rejected_labels(),
        4,
        "v3, oversize, Canary and the baggage one"
    );

    // At an edge (inherit: never) every incoming label is refused — declared or not, in
    // the label header or in baggage — and counted: that is where spoofed labels arrive.
    let edge = design();
    let _ = edge.decide(&req("/", &[("x-user-id", "7")]));
    assert_eq!(edge.rejected_labels(), 0);
    for label in ["v3", "canary", "stable"] {
        let _ = edge.decide(&req("/", &[("x-gray-version", label)]));
    }
    let _ = edge.decide(&req("/", &[("baggage", "gray=canary")]));
    assert_eq!(edge.rejected_labels(), 4);

    // Each thread counts its own; the total is their sum.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let spoofed = req("/", &[("x-gray-version", "v3")]);
                for _ in 0..100 {
                    let _ = g.decide(&spoofed);
                }
            });
        }
    });
    assert_eq!(clone.rejected_labels(), 4 + 400);
    assert_eq!(
        clone.metrics().rejected_labels(),
        4 + 400,
        "the snapshot says the same"
    );
}

#[test]
fn a_label_is_in_place_only_when_it_came_once_and_was_honoured() {
    let g = gray(INTERNAL);
    let in_place = |headers: &[(&str, &str)]| g.decide(&req("/", headers)).label_in_place();
    assert!(in_place(&[("x-gray-version", "canary")]));
    assert!(in_place(&[
        ("x-gray-version", "stable"),
        ("x-user-id", "7")
    ]));
    // Not when the header has to be written: from baggage, repeated, refused, absent.
    assert!(!in_place(&[("baggage", "gray=canary")]));
    assert!(!in_place(&[
        ("x-gray-version", "canary"),
        ("x-gray-version", "canary")
    ]));
    assert!(!in_place(&[("x-gray-version", "v9")]));
    assert!(!in_place(&[("x-app-version", "beta")]));
    assert!(!in_place(&[]));
    // Nor when an unavailable version falls back to the default.
    g.set_available("canary", false);
    assert!(!in_place(&[("x-gray-version", "canary")]));
    // Nor at an edge, which never reads the label.
    let edge = design();
    assert!(
        !edge
            .decide(&req("/", &[("x-gray-version", "stable")]))
            .label_in_place()
    );
}

/// A view of a request that cannot list its headers (the engine looks each up, and cannot
/// tell whether one came once), and counts how often the engine asks for its `peer`.
struct Lookup {
    req: http::Request<()>,
    peer: Option<std::net::IpAddr>,
    peer_reads: std::cell::Cell<u32>,
}

impl Lookup {
    fn new(req: http::Request<()>, peer: Option<std::net::IpAddr>) -> Self {
        let peer_reads = std::cell::Cell::new(0);
        Self {
            req,
            peer,
            peer_reads,
        }
    }
}

impl gray_core::RequestView for Lookup {
    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        self.req.headers().get(name).map(|v| v.as_bytes())
    }
    fn header_all<'a>(&'a self, name: &'a http::HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
    }
    fn path(&self) -> &str {
        self.req.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.req.uri().query()
    }
    fn method(&self) -> &str {
        self.req.method().as_str()
    }
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer_reads.set(self.peer_reads.get() + 1);
        self.peer
    }
}

#[test]
fn a_label_header_is_in_place_through_a_lookup_view_never() {
    // Through a view that cannot list its headers, whether the header came once is unknown.
    let g = gray(INTERNAL);
    let d = g.decide(&Lookup::new(
        req("/", &[("x-gray-version", "canary")]),
        None,
    ));
    assert_eq!(d.version(), "canary");
    assert!(!d.label_in_place());
}

#[test]
fn a_baggage_label_that_contradicts_the_decision_is_marked_stale() {
    let stale = |g: &gray_core::Gray, headers: &[(&str, &str)]| {
        g.decide(&req("/", headers)).baggage_stale()
    };
    // At an edge: a spoofed baggage label, refused, is stale — unless it names the
    // decided version anyway.
    let edge = design();
    assert!(stale(
        &edge,
        &[("baggage", "a=1,gray=canary"), ("x-user-id", "7")]
    ));
    assert!(!stale(
        &edge,
        &[("baggage", "gray=stable"), ("x-user-id", "7")]
    ));
    let forced = gray(
        r#"
versions: [stable, canary]
routes:
  - { name: forced, match: { headers: [{ name: x-gray-version, exact: v2 }] }, to: canary }
"#,
    );
    assert!(
        stale(&forced, &[("baggage", "gray=canary")]),
        "an edge whose rules read the label header still rewrites baggage"
    );

    let g = gray(INTERNAL);
    // Honoured from baggage: in place.
    assert!(!stale(&g, &[("baggage", "gray=v2")]));
    // The label header won, or the baggage label was undeclared: stale.
    assert!(stale(
        &g,
        &[("x-gray-version", "canary"), ("baggage", "gray=v2")]
    ));
    assert!(stale(&g, &[("baggage", "gray=v9")]));
    // Two gray members, or a repeated header: the adapter has to look.
    assert!(stale(&g, &[("baggage", "gray=v2,gray=canary")]));
    assert!(stale(&g, &[("baggage", "gray=v2"), ("baggage", "a=1")]));
    // No baggage, no gray member: nothing to do.
    assert!(!stale(&g, &[]));
    assert!(!stale(&g, &[("baggage", "userId=alice")]));
    // Baggage of W3C's 8192 bytes is read here; a longer one the adapter has to look at.
    let baggage = |len: usize| format!("gray=v2,pad={}", "p".repeat(len - "gray=v2,pad=".len()));
    assert!(!stale(&g, &[("baggage", &baggage(8192))]));
    assert!(stale(&g, &[("baggage", &baggage(8193))]));
    // A fallback from an unavailable version.
    g.set_available("v2", false);
    assert!(stale(&g, &[("baggage", "gray=v2")]));
    g.set_available("v2", true);
    // `label.baggage: false`: baggage is none of this service's business.
    let off = gray("label: { baggage: false }\nversions: [stable, canary]\n");
    assert!(!stale(&off, &[("baggage", "gray=canary")]));
}

/// An internal service that takes labels only from the system's own networks.
const FROM_INSIDE: &str = r#"
label: { inherit: always, from: [10.0.0.0/8, "fd00::/8", 192.0.2.7] }
versions: [stable, canary]
routes:
  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }
"#;

#[test]
fn from_honours_a_label_only_from_a_peer_in_its_networks() {
    let g = gray(FROM_INSIDE);
    assert!(g.reads_client_ip(), "a server must tell the peer");
    let inside = [
        "10.1.2.3:4000",
        "[fd00::7]:80",
        "192.0.2.7:1",
        "[::ffff:10.9.9.9]:80",
    ];
    for peer in inside {
        for label in [("x-gray-version", "canary"), ("baggage", "gray=canary")] {
            let d = g.decide(&from(Some(peer), &[label]));
            assert_eq!(
                (d.version(), d.source()),
                ("canary", Source::Inherited),
                "{peer} {label:?}"
            );
            assert!(!d.label_rejected());
        }
    }
    assert_eq!(g.rejected_labels(), 0);

    // From anywhere else, or from a peer the server does not tell, the label is refused,
    // counted, and the request decided here: by a route, or the default version.
    let outside = [
        Some("192.0.2.8:1"),
        Some("11.0.0.1:80"),
        Some("[2001:db8::1]:80"),
        Some("[::ffff:11.0.0.1]:80"),
        None,
    ];
    for peer in outside {
        let d = g.decide(&from(peer, &[("x-gray-version", "canary")]));
        assert_eq!(
            (d.version(), d.source()),
            ("stable", Source::Default),
            "{peer:?}"
        );
        assert!(d.label_rejected(), "{peer:?}");
        let d = g.decide(&from(
            peer,
            &[("x-gray-version", "stable"), ("x-app-version", "beta")],
        ));
        assert_eq!(
            (d.version(), d.route()),
            ("canary", Some("testers")),
            "{peer:?}"
        );
        let d = g.decide(&from(peer, &[("baggage", "gray=canary")]));
        assert_eq!(d.version(), "stable", "{peer:?}");
    }
    assert_eq!(g.rejected_labels(), 3 * outside.len() as u64);

    // No label: nothing refused, whoever the peer.
    let d = g.decide(&from(Some("11.0.0.1:80"), &[("x-app-version", "beta")]));
    assert_eq!((d.version(), d.label_rejected()), ("canary", false));
    // An undeclared label from inside is refused as before.
    let d = g.decide(&from(Some("10.1.2.3:4000"), &[("x-gray-version", "v9")]));
    assert!(d.label_rejected());
}

#[test]
fn from_reads_the_peer_never_a_forwarding_header() {
    // `real_ip:` finds the client for the routes; the label's sender is the peer.
    let g = gray(
        r#"
real_ip: { trusted: [10.0.0.0/8] }
label: { inherit: always, from: [10.0.0.0/8] }
versions: [stable, canary]
"#,
    );
    // The edge, inside, forwarding an outside client's request: its label is honoured.
    let d = g.decide(&from(
        Some("10.0.0.2:5000"),
        &[
            ("x-gray-version", "canary"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    ));
    assert_eq!(d.source(), Source::Inherited);
    // An outside client naming an inside address: refused.
    let d = g.decide(&from(
        Some("203.0.113.9:5000"),
        &[
            ("x-gray-version", "canary"),
            ("x-forwarded-for", "10.0.0.2"),
        ],
    ));
    assert_eq!((d.version(), d.label_rejected()), ("stable", true));
}

#[test]
fn from_every_address_trusts_a_peer_the_server_does_not_tell() {
    // As with `real_ip.trusted`: a network of every address (`0.0.0.0/0` or `::/0`).
    for every in ["0.0.0.0/0", "\"::/0\""] {
        let g = gray(&format!(
            "label: {{ inherit: always, from: [{every}] }}\nversions: [stable, canary]\n"
        ));
        let d = g.decide(&from(None, &[("x-gray-version", "canary")]));
        assert_eq!(d.source(), Source::Inherited, "{every}");
    }
}

#[test]
fn from_is_refused_at_an_edge_and_needs_networks() {
    for (label, field, problem) in [
        (
            "{ inherit: never, from: [10.0.0.0/8] }",
            "label.from",
            gray_core::rules::Problem::LabelFromAtEdge,
        ),
        (
            "{ from: [10.0.0.0/8] }",
            "label.from",
            gray_core::rules::Problem::LabelFromAtEdge,
        ),
        (
            "{ inherit: always, from: [] }",
            "label.from",
            gray_core::rules::Problem::NoNetworks,
        ),
        (
            "{ inherit: always, from: [10.0.0.0/8, 10.0.0.0/33] }",
            "label.from[1]",
            gray_core::rules::Problem::BadNetwork("10.0.0.0/33".to_owned()),
        ),
    ] {
        let yaml = format!("label: {label}\nversions: [stable, canary]\n");
        let config = gray_core::Config::from_yaml(&yaml).expect("test config parses");
        let err = config.validate().expect_err(&yaml);
        let invalid = err.invalid().expect("a validation error");
        assert_eq!(
            (
                invalid.route.as_deref(),
                invalid.field.as_str(),
                &invalid.problem
            ),
            (None, field, &problem),
            "{yaml}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    // Unset, it is not written back (rules without it keep their fingerprint).
    let config = gray_core::Config::from_yaml("versions: [stable]\n").expect("parses");
    let json = serde_json::to_string(&config).expect("serialises");
    assert!(!json.contains("from"), "{json}");
}

#[test]
fn from_and_client_ip_rules_read_the_peer_once() {
    let g = gray(
        "label: { inherit: always, from: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - { name: outside, match: { client_ip: { cidr: [203.0.113.0/24] } }, to: canary }
",
    );
    // The label is refused for its peer, and the route then reads the same peer.
    let peer = Some([203, 0, 113, 9].into());
    let view = Lookup::new(req("/", &[("x-gray-version", "stable")]), peer);
    let d = g.decide(&view);
    assert_eq!((d.version(), d.label_rejected()), ("canary", true));
    assert_eq!(
        view.peer_reads.get(),
        1,
        "the peer is read once per decision"
    );
}

/// The pass over the headers notes the ones present in a 64-bit set, fields past the 64th
/// sharing bits. However many headers the rules read — so that the label header (read by a
/// route here) and `baggage` may land on one bit — a label in either is still seen.
#[test]
fn labels_are_seen_however_many_headers_the_rules_read() {
    for extra in 60..=70 {
        let mut yaml = String::from(
            "label: { header: x-gray-version, inherit: always }\n\
             versions: [stable, canary, v2]\nroutes:\n\
             - { name: label, match: { headers: [{ name: x-gray-version, exact: beta }] }, to: canary }\n",
        );
        for i in 0..extra {
            yaml.push_str(&format!(
                "- {{ name: r{i}, match: {{ headers: [{{ name: x-h{i}, exact: y }}] }}, to: canary }}\n"
            ));
        }
        let g = gray(&yaml);
        let d = g.decide(&req("/", &[("x-gray-version", "v2")]));
        assert_eq!(
            (d.version(), d.source()),
            ("v2", Source::Inherited),
            "{extra}"
        );
        let d = g.decide(&req("/", &[("baggage", "gray=v2")]));
        assert_eq!(
            (d.version(), d.source()),
            ("v2", Source::Inherited),
            "{extra}"
        );
        let d = g.decide(&req("/", &[("x-h3", "y")]));
        assert_eq!((d.version(), d.route()), ("canary", Some("r3")), "{extra}");
    }
}
