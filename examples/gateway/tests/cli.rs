//! The command line: flags, their checks, the rollout they set up, the upstreams against the rules, the log.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;

use gray_core::rollout::RolloutStatus;
use gray_core::{Config, Gray};
use gray_gateway::upstream::Target;

#[test]
fn the_command_line_is_checked() {
    let parse = |args: &[&str]| gray_gateway::cli::parse(args.iter().map(std::ffi::OsString::from));
    let ok = parse(&[
        "--listen",
        "127.0.0.1:9000",
        "--upstream",
        "canary=http://10.0.0.9:8080/v2",
        "--threads",
        "1",
        "--rollout",
        "users:canary:5,30,100",
        "--rollout-every",
        "0.5",
        "--rollout-min-stage",
        "600",
        "--rollout-failure-limit",
        "2",
        "--rollout-min-requests",
        "500",
        "--rollout-max-latency",
        "250",
        "--eject-after",
        "3",
        "--eject-for",
        "2.5",
    ])
    .unwrap();
    assert_eq!(ok.listen.port(), 9000);
    assert_eq!(ok.upstreams[0].0, "canary");
    assert_eq!(ok.threads, Some(1));
    let rollout = ok.rollout.as_ref().unwrap();
    assert_eq!(
        (rollout.route.as_str(), rollout.canary.as_str()),
        ("users", "canary")
    );
    assert_eq!(rollout.stages, [5.0, 30.0, 100.0]);
    assert_eq!(ok.rollout_every, Duration::from_millis(500));
    assert_eq!(ok.rollout_min_stage, Duration::from_secs(600));
    assert_eq!(parse(&[]).unwrap().rollout_min_stage, Duration::ZERO);
    assert_eq!(ok.rollout_failure_limit, 2);
    assert_eq!(ok.rollout_analysis.min_requests, 500);
    assert_eq!(
        ok.rollout_analysis.max_latency,
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        parse(&[]).unwrap().rollout_analysis,
        gray_core::rollout::Analysis::default()
    );
    assert_eq!(parse(&[]).unwrap().rollout_failure_limit, 0);
    assert_eq!(
        ok.ejection,
        gray_gateway::upstream::Ejection {
            after: 3,
            duration: Duration::from_millis(2500)
        }
    );
    assert_eq!(ok.admin, None);
    assert_eq!(
        parse(&[]).unwrap().ejection,
        gray_gateway::upstream::Ejection {
            after: 5,
            duration: Duration::from_secs(10)
        }
    );
    assert_eq!(parse(&["--eject-after", "0"]).unwrap().ejection.after, 0);
    let admin = parse(&["--admin", "127.0.0.1:9901"]).unwrap();
    assert_eq!(admin.admin, Some("127.0.0.1:9901".parse().unwrap()));
    for bad in [
        &["--threads", "0"][..],
        &["--upstream", "canary"],
        &["--upstream", "canary=ftp://x"],
        &["--upstream", "canary=http://x/?q=1"],
        &["--listen", "nowhere"],
        &["--admin", "nowhere"],
        &["--timeout", "-1"],
        &["--rollout", "users:canary"],
        &["--rollout", "users:canary:5,x"],
        &["--rollout-every", "0"],
        &["--rollout-min-stage", "-1"],
        &["--rollout-min-stage", "soon"],
        &["--rollout-failure-limit", "-1"],
        &["--rollout-min-requests", "some"],
        &["--rollout-max-latency", "0"],
        &["--rollout-max-latency", "-5"],
        &["--eject-after", "-1"],
        &["--eject-for", "0"],
        &["--eject-for", "soon"],
        &["--bogus"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
}

/// `--rollout-min-stage` holds each stage of the `--rollout` that long: a healthy canary's
/// first stage stays after a step that would widen it without the flag, and a failing
/// canary is rolled back at once all the same; `--rollout-failure-limit` tolerates
/// failing judgements, `--rollout-min-requests` waits for more traffic.
#[test]
fn the_rollout_flags_set_up_the_rollout() {
    let flags = |extra: &[&str]| {
        let mut args = vec!["--rollout", "users:canary:20,100"];
        args.extend_from_slice(extra);
        gray_gateway::cli::parse(args.iter().map(std::ffi::OsString::from)).unwrap()
    };
    let rules = "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { weights: { stable: 100, canary: 0 } }\n";
    // Every request answered `canary_status` on the canary: its stage after one step.
    let stage_after = |options: &gray_gateway::cli::Options, canary_status: u16| {
        let gray = Gray::new(Config::from_yaml(rules).unwrap()).unwrap();
        let mut rollout = options.rollout(&gray).unwrap().unwrap();
        rollout.start().unwrap();
        for _ in 0..2_000 {
            let d = gray.decide(&http::Request::get("/").body(()).unwrap());
            let status = if d.version() == "canary" {
                canary_status
            } else {
                200
            };
            d.measure().unwrap().finish(status);
        }
        rollout.step().unwrap().clone()
    };
    let progressing = |stage, weight| RolloutStatus::Progressing { stage, weight };
    assert_eq!(stage_after(&flags(&[]), 200), progressing(1, 100.0));
    let held = flags(&["--rollout-min-stage", "3600"]);
    assert_eq!(stage_after(&held, 200), progressing(0, 20.0));
    assert!(matches!(
        stage_after(&held, 500),
        RolloutStatus::RolledBack { .. }
    ));
    // One failing judgement tolerated: the stage holds.
    let tolerant = flags(&["--rollout-failure-limit", "1"]);
    assert_eq!(stage_after(&tolerant, 500), progressing(0, 20.0));
    // The canary's ≈ 400 requests are too few to judge when 1,000 are asked for.
    let patient = flags(&["--rollout-min-requests", "1000"]);
    assert_eq!(stage_after(&patient, 500), progressing(0, 20.0));
    // No `--rollout`, no rollout; a bad one is the rules' error.
    let gray = design();
    assert!(
        gray_gateway::cli::parse(Vec::<std::ffi::OsString>::new())
            .unwrap()
            .rollout(&gray)
            .is_none()
    );
    let unknown =
        gray_gateway::cli::parse(["--rollout", "nope:canary:5"].map(std::ffi::OsString::from));
    assert!(
        unknown.unwrap().rollout(&gray).unwrap().is_err(),
        "no route `nope`"
    );
}

#[test]
fn upstreams_are_checked_against_the_rules() {
    use gray_gateway::check_upstreams;
    let versions = Config::from_yaml("versions: [stable, canary]\n").unwrap();
    let up = |v: &str| {
        (
            v.to_owned(),
            "http://127.0.0.1:9/".parse::<Target>().unwrap(),
        )
    };

    assert_eq!(
        check_upstreams(&versions, &[up("stable"), up("canary")]),
        Ok(vec![])
    );
    // A typo: canary's traffic would silently go to stable's upstream. Both are said.
    let warnings = check_upstreams(&versions, &[up("stable"), up("canry")]).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("declare no version `canry`"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("`canary` has no --upstream"),
        "{warnings:?}"
    );
    // Nothing for the default version, which every version without one falls back to.
    let err = check_upstreams(&versions, &[up("canary")]).unwrap_err();
    assert!(err.contains("default version `stable`"), "{err}");
    // At most 64 endpoints per version.
    let many: Vec<_> = std::iter::once(up("stable"))
        .chain(std::iter::repeat_with(|| up("canary")).take(65))
        .collect();
    let err = check_upstreams(&versions, &many).unwrap_err();
    assert!(
        err.contains("--upstream canary: 65 endpoints, at most 64"),
        "{err}"
    );
    assert!(check_upstreams(&versions, &many[..65]).is_ok());
    // A version routes mirror to, without an upstream: its copies are not sent.
    let mirrored = Config::from_yaml(
        "versions: [stable, canary]\nroutes:\n  - { name: a, to: stable, mirror: { to: canary } }\n  - { name: b, to: stable, mirror: { to: canary } }\n",
    )
    .unwrap();
    let warnings = check_upstreams(&mirrored, &[up("stable")]).unwrap();
    assert_eq!(
        warnings,
        [
            "version `canary` has no --upstream: its requests go to `stable`'s, and the copies mirrored to it (routes: a, b) are not sent"
        ]
    );
}

/// The gateway's log in a pipe or a pod's log (not a terminal) is plain text: no colour
/// escape codes around the level and the fields.
#[test]
fn the_log_is_coloured_only_when_asked() {
    fn logged(ansi: bool) -> String {
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&out);
        let writer = move || Sink(Arc::clone(&sink));
        tracing::subscriber::with_default(gray_gateway::logs(writer, ansi), || {
            tracing::info!(route = "users", "rollout: {:?}", RolloutStatus::Pending);
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let plain = logged(false);
    assert!(
        plain.contains(" INFO cli: rollout: Pending route=\"users\""),
        "{plain}"
    );
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(logged(true).contains('\x1b'));
}

/// The binary: `--help` and `--version` exit 0, `--help` names every flag's environment
/// variable; a bad flag or value exits 2 naming it, from the command line or the
/// environment; a taken port names the address and what to do.
#[test]
fn the_binary_answers_help_version_and_bad_flags() {
    use std::process::Command;
    let gateway = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gray-gateway"));
        cmd.env_remove("RUST_LOG");
        cmd
    };
    let help = gateway().arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--config",
        "--listen",
        "--upstream",
        "--threads",
        "--timeout",
        "--admin",
        "--rollout",
        "--rollout-every",
        "--rollout-min-stage",
        "--rollout-failure-limit",
        "--rollout-min-requests",
        "--rollout-max-latency",
        "--eject-after",
        "--eject-for",
        "--preserve-host",
        "--health-check",
        "--health-every",
        "--access-log",
        "--tls-cert",
        "--tls-key",
        "--max-connections",
        "--header-timeout",
        "--idle-timeout",
        "--max-header-size",
        "--max-headers",
    ] {
        assert!(
            text.contains(flag),
            "--help says nothing of {flag}:\n{text}"
        );
        let var = format!(
            "GRAY_GATEWAY_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(text.contains(&var), "--help says nothing of {var}:\n{text}");
    }
    let version = gateway().arg("--version").output().unwrap();
    assert_eq!(version.status.code(), Some(0));
    let version = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("gray-gateway {}", env!("CARGO_PKG_VERSION"))
    );

    let refused = |cmd: &mut Command, named: &str| {
        let out = cmd.output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(named), "{named} not in: {err}");
    };
    refused(gateway().arg("--bogus"), "--bogus");
    refused(gateway().args(["--threads", "0"]), "--threads");
    refused(gateway().args(["--upstream", "canary=ftp://x"]), "ftp://x");
    refused(gateway().env("GRAY_GATEWAY_THREADS", "none"), "--threads");
    refused(gateway().env("GRAY_GATEWAY_EJECT_FOR", "0"), "--eject-for");
    refused(gateway().args(["--tls-cert", "a.crt"]), "--tls-key");
    refused(
        gateway().args(["--max-header-size", "100"]),
        "--max-header-size",
    );
    refused(
        gateway().args(["--max-connections", "0"]),
        "--max-connections",
    );
    refused(gateway().args(["--upstream", "stable=h2c://"]), "h2c://");

    // A certificate that cannot be read: the flag and the file.
    let out = gateway()
        .args([
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--tls-cert/--tls-key: /nonexistent/tls.crt"),
        "{err}"
    );

    // A taken port: which address, and what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = gateway()
        .env("GRAY_GATEWAY_LISTEN", &addr)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--listen {addr}")), "{err}");
    assert!(
        err.contains("in use") && err.contains("another address"),
        "{err}"
    );
}

/// Variables set what the command line does not: the demo on the addresses
/// `GRAY_GATEWAY_LISTEN` and `GRAY_GATEWAY_ADMIN` give, `/metrics` answered on the admin
/// one; and a bad variable is refused naming its flag and value.
#[test]
fn environment_variables_set_flags() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gray-gateway"))
        .env("GRAY_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GRAY_GATEWAY_ADMIN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.strip_prefix("  /gray/status, /gray/metrics and /metrics on http://")
        {
            admin = Some(at.to_owned());
        }
        if line == "try:" {
            break;
        }
    }
    let admin = admin.expect("the admin listener's address is printed");
    let mut conn = std::net::TcpStream::connect(&admin).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("gray_gateway_endpoint_up{version=\"stable\""),
        "{answer}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_gray-gateway"))
        .env(
            "GRAY_GATEWAY_UPSTREAM",
            "stable=http://127.0.0.1:9,canary=ftp://nowhere",
        )
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ftp://nowhere") && err.contains("--upstream"),
        "{err}"
    );
}
