//! `Gray::decide` on the example rules (`examples/rules.yaml`), one function per outcome, plus a 100-route config
//! that matches on its last route, and a cookie-keyed split with `set_cookie:`. Bar: ≤ 60 ns median each. `per-request`: what an adapter
//! does per request, on one thread and on every core at once.
//!
//! `cargo bench -p benches --bench decide`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use gray_core::{Config, Gray};

fn design() -> Gray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    match Gray::from_path(&path) {
        Ok(gray) => gray,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn request(headers: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::get("/api/orders?page=2")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match builder.body(()) {
        Ok(req) => req,
        Err(e) => panic!("bench request: {e}"),
    }
}

/// The rules in `yaml`; a bench given rules gray refuses stops, naming them (`what`).
fn rules(what: &str, yaml: &str) -> Gray {
    match Config::from_yaml(yaml).and_then(Gray::new) {
        Ok(gray) => gray,
        Err(e) => panic!("{what} config: {e}"),
    }
}

/// 100 routes, each on its own header; only the last one matches the bench request.
fn hundred_routes() -> Gray {
    let mut yaml = String::from("versions: [stable, canary]\nroutes:\n");
    for i in 0..99 {
        yaml.push_str(&format!(
            "  - {{ name: r{i}, match: {{ headers: [{{ name: x-tenant-{i}, exact: t{i} }}] }}, to: canary }}\n"
        ));
    }
    yaml.push_str(
        "  - { name: last, match: { headers: [{ name: x-tenant, prefix: acme }] }, to: canary }\n",
    );
    rules("100-route", &yaml)
}

fn decide(c: &mut Criterion) {
    let gray = design();
    let mut group = c.benchmark_group("decide");
    let cases = [
        ("testers", request(&[("x-app-version", "beta")]), "canary"),
        (
            "premium-active",
            request(&[("x-user-tier", "premium"), ("x-activity-level", "high-3")]),
            "canary",
        ),
        (
            "users-keyed",
            request(&[("x-user-id", "user-48213")]),
            "stable",
        ),
        ("unkeyed-default", request(&[]), ""),
    ];
    for (name, req, expect) in &cases {
        let got = gray.decide(req).version().to_owned();
        assert!(expect.is_empty() || got == *expect, "{name}: {got}");
        group.bench_function(*name, |b| {
            b.iter(|| gray.decide(black_box(req)).version().len())
        });
    }

    // A real regex (not an anchored literal): the lazy DFA at work.
    let regex = rules(
        "regex",
        "versions: [stable, canary]\nroutes:\n  - { name: tiers, match: { headers: [{ name: x-user-tier, regex: '^(gold|platinum)-[0-9]+$' }] }, to: canary }\n",
    );
    let req = request(&[("x-user-tier", "platinum-42")]);
    assert_eq!(regex.decide(&req).version(), "canary");
    group.bench_function("regex", |b| {
        b.iter(|| regex.decide(black_box(&req)).version().len())
    });

    // A split giving new clients a key (`set_cookie:`): a client with its cookie, and a
    // new one — a random key drawn and hashed, and its `Set-Cookie` built (allocates).
    let visitors = rules(
        "set_cookie",
        "versions: [stable, canary]\nroutes:\n  - { name: visitors, split: { by: { cookie: gray-uid }, weights: { stable: 90, canary: 10 }, set_cookie: {} } }\n",
    );
    let returning = request(&[("cookie", "theme=dark; gray-uid=0123456789abcdef")]);
    assert!(visitors.decide(&returning).set_cookie().is_none());
    group.bench_function("cookie-returning", |b| {
        b.iter(|| visitors.decide(black_box(&returning)).version().len())
    });
    // A browser's cookie header is often a kilobyte of analytics and session cookies,
    // the split's key among them.
    let mut long = String::new();
    for i in 0..12 {
        long.push_str(&format!(
            "_ga_{i}=GA1.1.{}.1732600000; ",
            1_000_000_007u64 * (i + 1)
        ));
    }
    long.push_str("session=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8; ");
    long.push_str("gray-uid=0123456789abcdef; theme=dark; consent=necessary%2Canalytics");
    let long = request(&[("cookie", &long)]);
    assert!(long.headers()["cookie"].len() > 500);
    assert!(visitors.decide(&long).set_cookie().is_none());
    group.bench_function("cookie-returning-long-header", |b| {
        b.iter(|| visitors.decide(black_box(&long)).version().len())
    });
    let new = request(&[]);
    assert!(visitors.decide(&new).set_cookie().is_some());
    group.bench_function("cookie-new-client", |b| {
        b.iter(|| {
            let d = visitors.decide(black_box(&new));
            d.set_cookie().map_or(0, |c| c.len())
        })
    });

    // The client's address: an office network, then a split by address; behind a
    // proxy whose `x-forwarded-for` is read from the right.
    let clients = rules(
        "client_ip",
        "real_ip: { trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - { name: office, match: { client_ip: { cidr: [198.51.100.0/24] } }, to: canary }
  - { name: rest, split: { by: client_ip, weights: { stable: 90, canary: 10 } } }
",
    );
    let mut proxied = request(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
    proxied
        .extensions_mut()
        .insert(gray_core::PeerAddr(([10, 0, 0, 2], 41_000).into()));
    assert_eq!(clients.decide(&proxied).route(), Some("rest"));
    group.bench_function("client-ip-behind-proxy", |b| {
        b.iter(|| clients.decide(black_box(&proxied)).version().len())
    });

    // An internal service honouring the edge's label (`inherit: always`), from any peer
    // and only from peers in `label.from` (the peer's address read, and checked).
    for (name, label) in [
        ("inherited", "label: { inherit: always }"),
        (
            "inherited-from",
            "label: { inherit: always, from: [10.0.0.0/8] }",
        ),
    ] {
        let internal = rules(name, &format!("{label}\nversions: [stable, canary]\n"));
        let mut labelled = request(&[("x-gray-version", "canary")]);
        labelled
            .extensions_mut()
            .insert(gray_core::PeerAddr(([10, 0, 0, 2], 41_000).into()));
        assert_eq!(internal.decide(&labelled).version(), "canary");
        group.bench_function(name, |b| {
            b.iter(|| internal.decide(black_box(&labelled)).version().len())
        });
    }

    let many = hundred_routes();
    let req = request(&[("x-tenant", "acme-eu")]);
    assert_eq!(many.decide(&req).route(), Some("last"));
    group.bench_function("100-routes-last", |b| {
        b.iter(|| many.decide(black_box(&req)).version().len())
    });
    group.finish();
}

/// What an adapter does per request — decide, take the context twice (extensions and
/// task-local) and the label value — on every core at once: the per-thread cost when all
/// threads share one `Gray`. Shared reference counts would make the cores fight over one
/// cache line; interned contexts and label values leave nothing shared to write.
fn contended(c: &mut Criterion) {
    let gray = design();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut group = c.benchmark_group("per-request");
    let cases = [
        ("keyed", request(&[("x-user-id", "user-48213")])),
        ("unkeyed", request(&[])),
    ];
    for (case, req) in &cases {
        for threads in [1, threads] {
            group.bench_function(format!("{case}-{threads}-threads"), |b| {
                b.iter_custom(|iters| {
                    let start = std::time::Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            s.spawn(|| {
                                for _ in 0..iters {
                                    let d = gray.decide(black_box(req));
                                    let (ctx, value) = (d.context(), d.label_value().clone());
                                    black_box((ctx.clone(), ctx, value));
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide, contended);
criterion_main!(benches);
