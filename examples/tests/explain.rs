//! The `explain` dry-run tool, driven through its `run` function with real rules files.

#[allow(dead_code)]
#[path = "../examples/explain.rs"]
mod explain;

use std::ffi::OsString;
use std::path::PathBuf;

fn rules() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("rules.yaml")
        .display()
        .to_string()
}

/// A directory of rules files for one test, removed with them when dropped (when the test
/// fails as well).
struct RulesDir(PathBuf);

impl RulesDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gray-explain-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// Writes `yaml` to file `name` in the directory; its path.
    fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, yaml).expect("write rules");
        path.display().to_string()
    }
}

impl Drop for RulesDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn explain(args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = explain::run(args.iter().map(OsString::from), &mut out, &mut err);
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8 output");
    (code, text(out), text(err))
}

#[test]
fn prints_the_version_and_the_route() {
    let rules = rules();
    let (code, out, _) = explain(&["--config", &rules, "-H", "x-app-version: beta"]);
    assert_eq!(code, 0);
    assert_eq!(out, "version: canary\nroute:   testers\n");

    let (code, out, _) = explain(&[
        "--config",
        &rules,
        "-H",
        "x-user-tier: premium",
        "-H",
        "x-activity-level: high-7",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, "version: canary\nroute:   premium-active\n");

    let (_, out, _) = explain(&["--config", &rules, "-H", "x-user-id: 7"]);
    assert_eq!(out, "version: stable\nroute:   users\n");

    // A label sent to this edge is refused, and the dry run says why.
    let spoofed = [
        "--config",
        &rules,
        "-H",
        "x-user-id: 7",
        "-H",
        "x-gray-version: canary",
    ];
    let (_, out, _) = explain(&spoofed);
    assert_eq!(
        out,
        "version: stable\nroute:   users\n\
         note:    the incoming label was refused: this service is an edge (`inherit: never`)\n"
    );
}

#[test]
fn a_label_from_a_peer_outside_label_from_is_refused() {
    let dir = RulesDir::new("from");
    let rules = dir.file(
        "internal.yaml",
        "label: { inherit: always, from: [10.0.0.0/8] }\nversions: [stable, canary]\n",
    );
    let labelled = |peer: &str| {
        explain(&[
            "--config",
            &rules,
            "-H",
            "x-gray-version: canary",
            "--peer",
            peer,
        ])
        .1
    };
    assert_eq!(
        labelled("10.1.2.3"),
        "version: canary\nroute:   (inherited label)\n"
    );
    assert_eq!(
        labelled("203.0.113.9"),
        "version: stable\nroute:   (none matched: the default version)\n\
         note:    the incoming label was refused: it names no declared version, is too long, \
         or its peer (`--peer`) is not in `label.from`\n"
    );
}

#[test]
fn samples_users_and_prints_shares() {
    let (code, out, _) = explain(&["--config", &rules(), "--sample", "10000"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("10000 simulated users, key header x-user-id:\n"),
        "{out}"
    );
    let share = |version: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(version))
            .expect("a line per version");
        let pct = line.split_whitespace().last().expect("a share");
        pct.trim_end_matches('%').parse().expect("a percentage")
    };
    // 10% canary: 5 sigma over 10,000 users is 1.5 points.
    assert!((share("canary") - 10.0).abs() < 1.5, "{out}");
    assert!((share("stable") - 90.0).abs() < 1.5, "{out}");
    assert!(out.contains("users") && out.contains("10000"), "{out}");
}

#[test]
fn an_invalid_file_prints_the_error_and_exits_1() {
    let dir = RulesDir::new("invalid");
    let bad = dir.file(
        "bad.yaml",
        "versions: [stable, canary]\nroutes:\n  - name: users\n    to: canry\n",
    );
    let (code, out, err) = explain(&["--config", &bad]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("invalid rules") && err.contains("users") && err.contains("canry"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(explain(&[]).0, 2);
    assert_eq!(explain(&["--config", &rules(), "-H", "no-colon"]).0, 2);
    assert_eq!(explain(&["--config", &rules(), "--sample", "many"]).0, 2);
    assert_eq!(explain(&["--config", &rules(), "--bogus"]).0, 2);
}

#[test]
fn why_lists_the_routes_tried_and_the_condition_that_failed() {
    let rules = rules();
    let (code, out, _) = explain(&[
        "--config",
        &rules,
        "--why",
        "-H",
        "x-user-tier: premium",
        "-H",
        "x-activity-level: low",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "version: stable\nroute:   users\nwhy:\n\
         \x20 testers          no: match.headers[0] {\"name\":\"x-app-version\",\"exact\":\"beta\"}\n\
         \x20 premium-active   no: match.headers[1] {\"name\":\"x-activity-level\",\"regex\":\"^high\"}\n\
         \x20 users            yes\n"
    );
    // The first route takes it: nothing after it is tried.
    let (_, out, _) = explain(&["--config", &rules, "--why", "-H", "x-app-version: beta"]);
    assert_eq!(
        out,
        "version: canary\nroute:   testers\nwhy:\n  testers          yes\n"
    );
}

/// A route's `mirror:` shows: on one request, and as a count in a sample.
#[test]
fn a_mirrored_request_says_where_its_copy_goes() {
    let dir = RulesDir::new("mirror");
    let path = dir.file(
        "rules.yaml",
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary, percent: 25 } }\n",
    );
    let (code, out, _) = explain(&["--config", &path]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "version: stable\nroute:   all\nmirror:  25% of these requests are copied to canary as well\n"
    );
    let (code, out, _) = explain(&["--config", &path, "--sample", "1000"]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("mirrored (a copy as well):\n  canary      250   25.00%\n"),
        "{out}"
    );
}

/// A split with `set_cookie:` shows the cookie a new client gets, and none for a client
/// that has one.
#[test]
fn a_new_client_is_shown_its_cookie() {
    let dir = RulesDir::new("cookie");
    let path = dir.file(
        "rules.yaml",
        "versions: [stable, canary]\nroutes:\n  - { name: visitors, split: { by: { cookie: gray-uid }, weights: { stable: 0, canary: 100 }, set_cookie: { max_age: 60 } } }\n",
    );
    let (code, out, _) = explain(&["--config", &path]);
    assert_eq!(code, 0);
    let (head, cookie) = out.split_once("cookie:  ").expect("a cookie line");
    assert_eq!(head, "version: canary\nroute:   visitors\n");
    let cookie = cookie
        .strip_prefix("a new client, placed by a key drawn for it: Set-Cookie: gray-uid=")
        .expect("the cookie");
    assert!(
        cookie.ends_with("; Path=/; Max-Age=60; HttpOnly; SameSite=Lax\n"),
        "{cookie}"
    );
    let (code, out, _) = explain(&["--config", &path, "-H", "cookie: gray-uid=1"]);
    assert_eq!(code, 0);
    assert_eq!(out, "version: canary\nroute:   visitors\n");
    // Users simulated by their cookie: keyed, so two samples agree user for user (new
    // clients' random keys would not).
    let half = dir.file(
        "half.yaml",
        "versions: [stable, canary]\nroutes:\n  - { name: visitors, split: { by: { cookie: gray-uid }, weights: { stable: 50, canary: 50 }, set_cookie: {} } }\n",
    );
    let sampled = [
        "--config",
        &half,
        "--sample",
        "1000",
        "--key-cookie",
        "gray-uid",
    ];
    let (code, out, _) = explain(&sampled);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("1000 simulated users, key cookie gray-uid:\n"),
        "{out}"
    );
    assert_eq!(
        explain(&sampled).1,
        out,
        "the same users, the same versions"
    );
    let both = [
        "--config",
        &path,
        "--sample",
        "9",
        "--key-cookie",
        "u",
        "--key-header",
        "x",
    ];
    assert_eq!(explain(&both).0, 2);
}

#[test]
fn the_peer_and_its_forwarding_header_place_a_request_by_address() {
    let dir = RulesDir::new("client-ip");
    let rules = dir.file(
        "clients.yaml",
        "real_ip: { trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - name: office
    match: { client_ip: { cidr: [198.51.100.0/24] } }
    to: canary
  - name: rest
    split: { by: client_ip, weights: { stable: 80, canary: 20 } }
",
    );
    let (code, out, _) = explain(&["--config", &rules, "--peer", "198.51.100.7"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "version: canary\nroute:   office\n")
    );
    // Behind a trusted proxy: the client it names. From anyone else: not believed.
    let via = |peer| {
        let args = ["--config", &rules, "--peer", peer, "--why"];
        let xff = ["-H", "x-forwarded-for: 198.51.100.7"];
        explain(&[&args[..], &xff[..]].concat()).1
    };
    assert!(via("10.1.2.3").starts_with("version: canary\nroute:   office\n"));
    let out = via("203.0.113.9");
    assert!(out.contains("route:   rest\n"), "{out}");
    assert!(
        out.contains(r#"office           no: match.client_ip {"cidr":["198.51.100.0/24"]}"#),
        "{out}"
    );
    // Simulated clients, each from its own address: 20% on canary, give or take.
    let (code, out, _) = explain(&["--config", &rules, "--sample", "10000", "--key-peer"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("10000 simulated users, each from its own address:\n"),
        "{out}"
    );
    let canary: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("canary"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_default();
    // σ = √(10000 · 0.2 · 0.8) = 40; within 5σ.
    assert!((1800..=2200).contains(&canary), "{out}");
    // A bad address, or two sample keys, is bad usage.
    assert_eq!(explain(&["--config", &rules, "--peer", "nowhere"]).0, 2);
    let both = [
        "--config",
        &rules,
        "--sample",
        "9",
        "--key-peer",
        "--key-header",
        "x",
    ];
    assert_eq!(explain(&both).0, 2);
}

#[test]
fn the_fingerprint_is_the_one_a_process_running_the_file_shows() {
    let dir = RulesDir::new("fingerprint");
    let yaml = dir.file(
        "rules.yaml",
        "versions: [stable, canary]\nroutes: [{ name: all, split: { weights: { stable: 90, canary: 10 } } }]\n",
    );
    let json = dir.file(
        "rules.json",
        r#"{"versions":["stable","canary"],"routes":[{"name":"all","split":{"weights":{"canary":10,"stable":90}}}]}"#,
    );
    let (code, out, _) = explain(&["--config", &yaml, "--fingerprint"]);
    assert_eq!(code, 0);
    let printed = out.trim_end();
    assert_eq!(printed.len(), 16, "{out:?}");
    // What a service running the file exposes.
    let text = gray_core::Gray::from_path(&yaml)
        .unwrap()
        .metrics()
        .prometheus();
    let info = format!("gray_config_info{{fingerprint=\"{printed}\"}} 1");
    assert!(text.lines().any(|l| l == info), "{info} in:\n{text}");
    // The same rules as JSON: the same fingerprint; other weights: another.
    assert_eq!(explain(&["--config", &json, "--fingerprint"]).1, out);
    let wider = dir.file(
        "wider.yaml",
        "versions: [stable, canary]\nroutes: [{ name: all, split: { weights: { stable: 70, canary: 30 } } }]\n",
    );
    assert_ne!(explain(&["--config", &wider, "--fingerprint"]).1, out);
}
