//! The client's address: `match.client_ip`, `split.by: client_ip`, and `real_ip:` — which
//! proxies' forwarding header is believed — and how a config with them is refused.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::net::IpAddr;

use common::{from, gray, refused_in_route_r};
use gray_core::rules::Problem;
use gray_core::{Config, Gray};

const OFFICE: &str = "versions: [stable, canary]
routes:
  - name: office
    match: { client_ip: { cidr: [10.20.0.0/16, 192.0.2.7, \"2001:db8:aa::/48\"] } }
    to: canary
";

fn version(g: &Gray, peer: Option<&str>, headers: &[(&str, &str)]) -> String {
    g.decide(&from(peer, headers)).version().to_owned()
}

#[test]
fn clients_in_the_networks_match() {
    let g = gray(OFFICE);
    for inside in [
        "10.20.0.1",
        "10.20.255.254",
        "192.0.2.7",
        "2001:db8:aa::1",
        // An IPv4 client on an IPv6 socket.
        "::ffff:10.20.3.4",
        "[::ffff:192.0.2.7]:443",
    ] {
        assert_eq!(version(&g, Some(inside), &[]), "canary", "{inside}");
    }
    for outside in [
        "10.21.0.1",
        "192.0.2.8",
        "2001:db8:ab::1",
        "::ffff:10.21.0.1",
    ] {
        assert_eq!(version(&g, Some(outside), &[]), "stable", "{outside}");
    }
    // A server that does not tell the peer: no network holds it.
    assert_eq!(version(&g, None, &[]), "stable");
    // Without `real_ip:`, a forwarding header is not believed.
    let spoof = [("x-forwarded-for", "10.20.0.1")];
    assert_eq!(version(&g, Some("203.0.113.9"), &spoof), "stable");
}

#[test]
fn invert_holds_for_clients_outside_and_unknown() {
    let g = gray(
        "versions: [stable, canary]
routes:
  - name: outsiders
    match: { client_ip: { cidr: [10.0.0.0/8], invert: true } }
    to: canary
",
    );
    assert_eq!(version(&g, Some("10.1.1.1"), &[]), "stable");
    assert_eq!(version(&g, Some("203.0.113.9"), &[]), "canary");
    assert_eq!(version(&g, None, &[]), "canary");
}

/// Behind two proxies of ours (`10.0.0.0/8`), in front of which clients write what they
/// like in `x-forwarded-for`.
const BEHIND_PROXIES: &str = "real_ip: { trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - name: office
    match: { client_ip: { cidr: [198.51.100.0/24] } }
    to: canary
";

#[test]
fn behind_trusted_proxies_the_client_is_read_from_the_right() {
    let g = gray(BEHIND_PROXIES);
    let proxy = Some("10.0.0.2");
    let xff = |v| [("x-forwarded-for", v)];
    // The office client, through two proxies.
    assert_eq!(version(&g, proxy, &xff("198.51.100.4, 10.0.0.1")), "canary");
    // A client elsewhere that writes an office address first is not believed.
    assert_eq!(
        version(&g, proxy, &xff("198.51.100.4, 203.0.113.9, 10.0.0.1")),
        "stable"
    );
    // Repeated headers read in order, the last one last.
    let req = from(
        proxy,
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.4"),
        ],
    );
    assert_eq!(g.decide(&req).version(), "canary");
    // A peer that is not a trusted proxy is the client, whatever its header says.
    assert_eq!(
        version(&g, Some("203.0.113.9"), &xff("198.51.100.4")),
        "stable"
    );
    assert_eq!(
        version(&g, Some("198.51.100.9"), &xff("203.0.113.9")),
        "canary"
    );
    // An unknown peer is not a trusted one.
    assert_eq!(version(&g, None, &xff("198.51.100.4")), "stable");
    // Other headers the rules read, met first in the pass over the headers, are not taken
    // for the forwarding header.
    let g = gray(&BEHIND_PROXIES.replace(
        "routes:\n",
        "routes:\n  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }\n",
    ));
    let headers = [
        ("x-app-version", "1.0"),
        ("x-forwarded-for", "198.51.100.4"),
    ];
    let d = g.decide(&from(proxy, &headers));
    assert_eq!((d.version(), d.route()), ("canary", Some("office")));
}

#[test]
fn spoofed_forwarding_headers_never_reach_the_canary() {
    let g = gray(BEHIND_PROXIES);
    // 200 requests from outside straight to the service, each claiming an office address
    // in every way a header can.
    for i in 0..200u32 {
        let claim = format!("198.51.100.{}", i % 256);
        let chain = format!("{claim}, 10.0.0.1");
        let headers = [
            ("x-forwarded-for", claim.as_str()),
            ("x-forwarded-for", chain.as_str()),
            ("x-real-ip", claim.as_str()),
            ("forwarded", "for=198.51.100.1"),
        ];
        let peer = format!("203.0.113.{}", i % 200);
        assert_eq!(version(&g, Some(&peer), &headers), "stable", "{i}");
    }
}

#[test]
fn x_real_ip_and_forwarded_can_be_the_header() {
    let real = |header: &str| {
        gray(&BEHIND_PROXIES.replace(
            "real_ip: { trusted",
            &format!("real_ip: {{ header: {header}, trusted"),
        ))
    };
    let g = real("x-real-ip");
    assert_eq!(
        version(&g, Some("10.0.0.2"), &[("x-real-ip", "198.51.100.4")]),
        "canary"
    );
    assert_eq!(
        version(&g, Some("10.0.0.2"), &[("x-forwarded-for", "198.51.100.4")]),
        "stable"
    );
    let g = real("forwarded");
    let forwarded = r#"for="[2001:db8::1]:4711", for=198.51.100.4;proto=https, for=10.0.0.1"#;
    assert_eq!(
        version(&g, Some("10.0.0.2"), &[("forwarded", forwarded)]),
        "canary"
    );
    // An element is read up to 512 bytes long (`by` and `host` make it long); a longer one
    // is not read, and the proxy that sent it is the client.
    let element = |len: usize| {
        let head = "for=198.51.100.4;proto=https;host=";
        format!("{head}{}", "h".repeat(len - head.len()))
    };
    let at_limit = element(512);
    assert_eq!(at_limit.len(), 512);
    assert_eq!(
        version(&g, Some("10.0.0.2"), &[("forwarded", &at_limit)]),
        "canary"
    );
    assert_eq!(
        version(&g, Some("10.0.0.2"), &[("forwarded", &element(513))]),
        "stable"
    );
}

#[test]
fn trusting_every_address_believes_a_server_that_does_not_tell_the_peer() {
    let g = gray(&BEHIND_PROXIES.replace("[10.0.0.0/8]", "[0.0.0.0/0, \"::/0\"]"));
    assert_eq!(
        version(&g, None, &[("x-forwarded-for", "198.51.100.4")]),
        "canary"
    );
}

#[test]
fn a_split_by_client_ip_is_sticky_and_shared_by_weight() {
    let g = gray(
        "versions: [stable, canary]
routes:
  - name: everyone
    split: { by: client_ip, weights: { stable: 70, canary: 30 } }
",
    );
    let mut canary = 0;
    let n = 4000u32;
    for i in 0..n {
        let peer = IpAddr::from((0xc633_6400u32 + i).to_be_bytes()).to_string();
        let first = version(&g, Some(&peer), &[]);
        for port in [1, 2] {
            assert_eq!(version(&g, Some(&format!("{peer}:{port}")), &[]), first);
        }
        canary += u32::from(first == "canary");
    }
    // 30% of 4,000: σ = √(4000 · 0.3 · 0.7) ≈ 29; within 5σ.
    assert!((1055..=1345).contains(&canary), "{canary} of {n} on canary");
    // An IPv4 client is the same client on an IPv6 socket.
    for peer in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        assert_eq!(
            version(&g, Some(peer), &[]),
            version(&g, Some(&format!("::ffff:{peer}")), &[])
        );
    }
    // No address known: the unkeyed sequence, exact.
    let unknown: usize = (0..100)
        .filter(|_| version(&g, None, &[]) == "canary")
        .count();
    assert_eq!(unknown, 30);
}

#[test]
fn a_split_by_client_ip_uses_the_address_real_ip_finds() {
    let g = gray(
        "real_ip: { trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - name: everyone
    split: { by: client_ip, weights: { stable: 50, canary: 50 } }
",
    );
    for i in 0..200u32 {
        let client = IpAddr::from((0xcb00_7100u32 + i).to_be_bytes()).to_string();
        let direct = version(&g, Some(&client), &[]);
        let proxied = version(&g, Some("10.0.0.9"), &[("x-forwarded-for", &client)]);
        assert_eq!(direct, proxied, "{client}");
    }
}

#[test]
fn real_ip_is_checked_even_when_no_rule_reads_the_client() {
    let err = Gray::new(
        Config::from_yaml("real_ip: { trusted: [10.0.0.0/33] }\nversions: [stable]\n").unwrap(),
    )
    .unwrap_err();
    let invalid = err.invalid().unwrap();
    assert_eq!(
        (invalid.route.as_deref(), invalid.field.as_str()),
        (None, "real_ip.trusted[0]")
    );
    assert_eq!(
        invalid.problem,
        Problem::BadNetwork("10.0.0.0/33".to_owned())
    );
    assert!(err.to_string().contains("real_ip.trusted[0]"), "{err}");
    for (yaml, field) in [
        ("real_ip: { trusted: [] }", "real_ip.trusted"),
        (
            "real_ip: { header: \"x y\", trusted: [10.0.0.0/8] }",
            "real_ip.header",
        ),
    ] {
        let err = Config::from_yaml(&format!("{yaml}\nversions: [stable]\n"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.invalid().unwrap().field, field, "{err}");
    }
    assert!(Config::from_yaml("real_ip: { header: x-real-ip }\nversions: [stable]\n").is_err());
}

#[test]
fn bad_networks_are_refused_naming_the_route_and_field() {
    let route = |m: &str| {
        format!(
            "versions: [stable, canary]\nroutes:\n  - name: r\n    match: {{ client_ip: {m} }}\n    to: canary\n"
        )
    };
    for (m, field, problem) in [
        (
            "{ cidr: [10.0.0.0/8, 10.0.0.0/40] }",
            "match.client_ip.cidr[1]",
            Problem::BadNetwork("10.0.0.0/40".into()),
        ),
        (
            "{ cidr: [office] }",
            "match.client_ip.cidr[0]",
            Problem::BadNetwork("office".into()),
        ),
        ("{ cidr: [] }", "match.client_ip.cidr", Problem::NoNetworks),
    ] {
        assert_eq!(
            refused_in_route_r(&route(m)),
            (field.to_owned(), problem),
            "{m}"
        );
    }
    let many = format!("{{ cidr: [{}] }}", vec!["10.0.0.1"; 4097].join(", "));
    let (field, problem) = refused_in_route_r(&route(&many));
    assert_eq!(field, "match.client_ip.cidr");
    assert!(matches!(problem, Problem::TooMany { count: 4097, .. }));
    let most = format!("{{ cidr: [{}] }}", vec!["10.0.0.1"; 4096].join(", "));
    assert!(Config::from_yaml(&route(&most)).and_then(Gray::new).is_ok());
    // Unknown fields are parse errors.
    assert!(Config::from_yaml(&route("{ cidr: [10.0.0.0/8], nets: [] }")).is_err());
    // A cookie to give needs a cookie key.
    let by_ip = "versions: [stable, canary]\nroutes:\n  - name: r\n    split: { by: client_ip, weights: { stable: 50, canary: 50 }, set_cookie: {} }\n";
    assert_eq!(
        refused_in_route_r(by_ip),
        (
            "split.set_cookie".to_owned(),
            Problem::SetCookieWithoutCookieKey
        )
    );
}

#[test]
fn yaml_toml_and_json_load_the_same_client_rules() {
    let yaml = Config::from_yaml(
        "real_ip: { header: x-real-ip, trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - name: office
    match: { client_ip: { cidr: [192.0.2.0/24], invert: true } }
    to: canary
  - name: rest
    split: { by: client_ip, weights: { stable: 90, canary: 10 } }
",
    )
    .unwrap();
    let toml = Config::from_toml(
        r#"versions = ["stable", "canary"]
real_ip = { header = "x-real-ip", trusted = ["10.0.0.0/8"] }
[[routes]]
name = "office"
to = "canary"
match = { client_ip = { cidr = ["192.0.2.0/24"], invert = true } }
[[routes]]
name = "rest"
split = { by = "client_ip", weights = { stable = 90, canary = 10 } }
"#,
    )
    .unwrap();
    let json = Config::from_json(
        r#"{"real_ip": {"header": "x-real-ip", "trusted": ["10.0.0.0/8"]},
            "versions": ["stable", "canary"],
            "routes": [
              {"name": "office", "match": {"client_ip": {"cidr": ["192.0.2.0/24"], "invert": true}}, "to": "canary"},
              {"name": "rest", "split": {"by": "client_ip", "weights": {"stable": 90, "canary": 10}}}]}"#,
    )
    .unwrap();
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
    assert_eq!(
        yaml.routes[1].split.as_ref().unwrap().by,
        Some(gray_core::rules::SplitBy::ClientIp)
    );
    Gray::new(yaml).unwrap();
}

#[test]
fn explain_names_the_client_ip_condition() {
    let g = gray(OFFICE);
    let checks = g.explain(&from(Some("203.0.113.9"), &[]));
    assert_eq!(checks[0].failed.as_deref(), Some("match.client_ip"));
    let checks = g.explain(&from(Some("10.20.0.1"), &[]));
    assert_eq!(checks[0].failed, None);
}

#[test]
fn gray_says_whether_its_rules_read_the_client_address() {
    assert!(gray(OFFICE).reads_client_ip());
    assert!(gray(BEHIND_PROXIES).reads_client_ip());
    // `real_ip:` alone reads nothing; neither do the example rules.
    assert!(!gray("real_ip: { trusted: [10.0.0.0/8] }\nversions: [stable]\n").reads_client_ip());
    let g = common::design();
    assert!(!g.reads_client_ip());
    g.reload(Config::from_yaml(OFFICE).unwrap()).unwrap();
    assert!(g.reads_client_ip());
}
