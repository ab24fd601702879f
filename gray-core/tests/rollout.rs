//! `Rollout`: stages widen a healthy canary, a worse one is rolled back or paused, all on
//! the per-version metrics of real decisions.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use common::{Logs, TempDir, gray, req, temp_dir, version_for_user};
use std::time::{Duration, Instant};

use gray_core::rollout::{
    Analysis, OnFailure, Rollout, RolloutError, RolloutStatus as Status, Verdict,
};
use gray_core::rules::Problem;
use gray_core::{Config, Gray};

const RULES: &str = r#"
versions: [stable, canary]
routes:
  - name: users
    split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
"#;

/// Stages judged after 20 canary requests, on errors only: latencies here are a few
/// microseconds, and one preempted request could move a tail quantile (the latency check
/// is tested on fixed numbers in the crate).
fn analysis() -> Analysis {
    let mut a = Analysis::default();
    a.min_requests = 20;
    a.max_latency_ratio = f64::INFINITY;
    a
}

/// Serves users `0..n` once each: the canary answers `canary_status`, stable 200.
/// Returns the users the canary served.
fn traffic(g: &Gray, n: u32, canary_status: u16) -> Vec<u32> {
    let mut on_canary = Vec::new();
    for user in 0..n {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        let canary = d.version() == "canary";
        if canary {
            on_canary.push(user);
        }
        let status = if canary { canary_status } else { 200 };
        d.measure().unwrap().finish(status);
    }
    on_canary
}

/// A progressing rollout at `stage`, `weight` percent.
fn progressing(stage: usize, weight: f64) -> Status {
    Status::Progressing { stage, weight }
}

/// Why `r` was rolled back; a failed test if it was not.
fn rolled_back(r: &Rollout) -> &str {
    match r.status() {
        Status::RolledBack { reason } => reason,
        other => panic!("not rolled back: {other:?}"),
    }
}

fn weights(g: &Gray) -> (f64, f64) {
    weights_of(g, "users")
}

/// Route `route`'s stable and canary weights in force.
fn weights_of(g: &Gray, route: &str) -> (f64, f64) {
    let config = g.config();
    let split = config
        .routes
        .iter()
        .find(|r| r.name == route)
        .unwrap()
        .split
        .as_ref();
    let w = &split.unwrap().weights;
    (w["stable"], w["canary"])
}

#[test]
fn a_healthy_canary_widens_stage_by_stage_and_keeps_its_users() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(analysis());
    assert_eq!(r.status(), &Status::Pending);
    assert_eq!(weights(&g), (100.0, 0.0));

    r.start().unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0));
    assert_eq!(weights(&g), (95.0, 5.0));
    let at_5 = traffic(&g, 2_000, 200);
    assert!((60..=140).contains(&at_5.len()), "{} of 2000", at_5.len());

    r.step().unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0));
    assert_eq!(weights(&g), (70.0, 30.0));
    let at_30 = traffic(&g, 2_000, 200);
    assert!(at_5.iter().all(|u| at_30.contains(u)), "canary users stay");

    r.step().unwrap();
    assert_eq!(r.status(), &progressing(2, 100.0));
    assert_eq!(traffic(&g, 2_000, 200).len(), 2_000);

    r.step().unwrap();
    assert_eq!(r.status(), &Status::Completed { weight: 100.0 });
    // A finished rollout does nothing more.
    r.step().unwrap();
    assert_eq!(weights(&g), (0.0, 100.0));
}

#[test]
fn a_failing_canary_is_rolled_back() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [10.0, 50.0, 100.0])
        .unwrap()
        .analysis(analysis());
    r.start().unwrap();
    // Too few requests yet: the stage waits.
    traffic(&g, 50, 500);
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(0, 10.0));

    traffic(&g, 2_000, 500);
    r.step().unwrap();
    let reason = rolled_back(&r);
    assert!(reason.contains("5xx"), "{reason}");
    assert_eq!(weights(&g), (100.0, 0.0));
    assert!(traffic(&g, 1_000, 200).is_empty(), "nobody on canary");
}

#[test]
fn a_failing_stage_can_pause_and_resume() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0])
        .unwrap()
        .analysis(analysis())
        .on_failure(OnFailure::Pause);
    r.start().unwrap();
    traffic(&g, 2_000, 503);
    r.step().unwrap();
    assert!(
        matches!(r.status(), Status::Paused { stage: 0, weight, .. } if *weight == 5.0),
        "{:?}",
        r.status()
    );
    assert_eq!(weights(&g), (95.0, 5.0), "the stage's weight stays");
    // Paused: steps change nothing until resumed; the fixed canary is judged afresh.
    r.step().unwrap();
    assert!(matches!(r.status(), Status::Paused { .. }));
    r.resume().unwrap();
    traffic(&g, 2_000, 200);
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0));
}

/// An operator's promotion: the next stage at once, whatever the traffic; from a pause
/// too; completed from the last; nothing once over.
#[test]
fn a_promotion_moves_on_without_judging() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(analysis())
        .on_failure(OnFailure::Pause);
    r.start().unwrap();
    // No traffic at all: a step would wait; a promotion moves on.
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0));
    r.promote().unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0));
    assert_eq!(weights(&g), (70.0, 30.0));
    // A failing stage pauses; promoted, the next stage is entered (and judged afresh).
    traffic(&g, 2_000, 503);
    r.step().unwrap();
    assert!(
        matches!(r.status(), Status::Paused { stage: 1, .. }),
        "{:?}",
        r.status()
    );
    r.promote().unwrap();
    assert_eq!(r.status(), &progressing(2, 100.0));
    assert_eq!(weights(&g), (0.0, 100.0));
    r.promote().unwrap();
    assert_eq!(r.status(), &Status::Completed { weight: 100.0 });
    r.promote().unwrap();
    assert_eq!(r.status(), &Status::Completed { weight: 100.0 });
    // Rolled back, a promotion brings nothing back.
    r.roll_back("bad").unwrap();
    r.promote().unwrap();
    assert!(matches!(r.status(), Status::RolledBack { .. }));
    assert_eq!(weights(&g), (100.0, 0.0));
}

/// An operator's pause: the stage's weight stays and steps wait, whatever the traffic,
/// until resumed (judged afresh) or promoted; only a progressing rollout pauses.
#[test]
fn an_operator_pause_holds_the_stage_until_resumed_or_promoted() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(analysis());
    // Not started: nothing to pause.
    assert_eq!(r.pause("too early"), &Status::Pending);
    r.start().unwrap();
    let paused = r.pause("waiting for sign-off").clone();
    assert_eq!(
        paused,
        Status::Paused {
            stage: 0,
            weight: 5.0,
            reason: "waiting for sign-off".to_owned()
        }
    );
    // Healthy traffic that would pass the stage: paused, it waits.
    traffic(&g, 2_000, 200);
    r.step().unwrap();
    assert_eq!(r.status(), &paused);
    assert_eq!(weights(&g), (95.0, 5.0), "the stage's weight stays");
    // Paused again, the first reason stays.
    r.pause("again");
    assert_eq!(r.status(), &paused);
    // Resumed, the stage is judged on the requests from now on: the ones served while
    // paused do not count, so a step waits.
    r.resume().unwrap();
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0));
    traffic(&g, 2_000, 200);
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0));
    // Paused, then promoted: the next stage.
    r.pause("hold");
    r.promote().unwrap();
    assert_eq!(r.status(), &progressing(2, 100.0));
    // Over, nothing pauses.
    r.roll_back("bad").unwrap();
    r.pause("late");
    assert_eq!(rolled_back(&r), "bad");
    assert_eq!(weights(&g), (100.0, 0.0));
}

/// What a status page shows: the route and canary it was given, and how long the stage
/// in force has served, counted from its start while it progresses or is paused, and gone
/// once it is over.
#[test]
fn a_rollout_says_what_it_moves_and_how_long_its_stage_has_served() {
    let g = gray(RULES);
    let mut r = Rollout::new(g, "users", "canary", [5.0, 30.0]).unwrap();
    assert_eq!((r.route(), r.canary()), ("users", "canary"));
    // As a log line shows it: what it moves and where it stands, not the `Gray`'s insides.
    let debug = format!("{r:?}");
    assert!(
        debug.starts_with(r#"Rollout { route: "users", canary: "canary", stages: [5.0, 30.0]"#)
            && debug.ends_with("status: Pending, .. }"),
        "{debug}"
    );
    assert_eq!(r.stage_elapsed(), None, "not started");
    r.start().unwrap();
    let started = Instant::now();
    // Spin (no sleep) until the clock has moved past the start: the stage has served at
    // least that long.
    let waited = loop {
        let waited = started.elapsed();
        if waited > Duration::ZERO {
            break waited;
        }
    };
    let served = r.stage_elapsed().expect("progressing");
    assert!(served >= waited, "{served:?} < {waited:?}");
    r.pause("sign-off");
    assert!(r.stage_elapsed().expect("paused") >= served);
    r.roll_back("not today").unwrap();
    assert_eq!(r.stage_elapsed(), None, "over");
}

/// Each stage held an hour: a healthy canary's stage waits out its hour (no traffic
/// moves), a failing one is rolled back at the first step, and an operator's promotion
/// does not wait.
#[test]
fn a_minimum_stage_duration_holds_a_sound_stage_but_not_a_failing_one() {
    let hour = Duration::from_secs(3_600);
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(analysis())
        .min_stage_duration(hour);
    r.start().unwrap();
    traffic(&g, 2_000, 200);
    r.step().unwrap();
    assert_eq!(
        r.status(),
        &progressing(0, 5.0),
        "sound, but not an hour old"
    );
    assert_eq!(weights(&g), (95.0, 5.0));
    r.promote().unwrap();
    assert_eq!(
        r.status(),
        &progressing(1, 30.0),
        "a promotion does not wait"
    );
    traffic(&g, 2_000, 500);
    r.step().unwrap();
    let reason = rolled_back(&r);
    assert!(reason.contains("5xx"), "{reason}");
    assert_eq!(weights(&g), (100.0, 0.0));
}

/// Your verdict joins the analysis's: it fails a stage the analysis passes (its reason the
/// status's), holds it with a wait, and a pass of yours leaves a failing canary failing;
/// when both fail, both reasons are told.
#[test]
fn your_verdict_joins_the_analysis() {
    let g = gray(RULES);
    let new = || {
        let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0])
            .unwrap()
            .analysis(analysis());
        r.start().unwrap();
        r
    };
    let mut r = new();
    traffic(&g, 2_000, 200);
    r.step_with(Verdict::Wait).unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0), "yours waits");
    r.step_with(Verdict::Fail("orders down 40%".into()))
        .unwrap();
    assert_eq!(
        r.status(),
        &Status::RolledBack {
            reason: "orders down 40%".into()
        }
    );
    drop(r);

    let mut r = new();
    traffic(&g, 2_000, 500);
    r.step_with(Verdict::Pass).unwrap();
    assert!(rolled_back(&r).contains("5xx"), "{}", rolled_back(&r));
    drop(r);

    let mut r = new();
    traffic(&g, 2_000, 500);
    r.step_with(Verdict::Fail("orders down".into())).unwrap();
    let reason = rolled_back(&r);
    assert!(
        reason.contains("5xx") && reason.ends_with("; orders down"),
        "{reason}"
    );
}

/// A failure limit tolerates that many failing steps in a stage (they hold it), fails it
/// at the next, and starts counting afresh in each stage.
#[test]
fn a_failure_limit_tolerates_that_many_failing_steps_per_stage() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(analysis())
        .failure_limit(2);
    r.start().unwrap();
    traffic(&g, 2_000, 200);
    r.step_with(Verdict::Fail("a blip".into())).unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0), "tolerated, and held");
    r.step().unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0), "passed afterwards");
    // A new stage: two failing steps tolerated again, the third fails it.
    traffic(&g, 2_000, 500);
    for _ in 0..2 {
        r.step().unwrap();
        assert_eq!(r.status(), &progressing(1, 30.0));
        assert_eq!(weights(&g), (70.0, 30.0));
    }
    r.step().unwrap();
    let reason = rolled_back(&r);
    assert!(
        reason.contains("5xx") && reason.ends_with("(3 failing steps, 2 tolerated)"),
        "{reason}"
    );
    assert_eq!(weights(&g), (100.0, 0.0));
}

/// With `Analysis::none`, your verdicts alone judge: a stage with no traffic at all passes
/// when you say so, and fails when you say so.
#[test]
fn with_no_analysis_your_verdicts_alone_judge() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(Analysis::none());
    r.start().unwrap();
    r.step_with(Verdict::Wait).unwrap();
    assert_eq!(r.status(), &progressing(0, 5.0));
    r.step_with(Verdict::Pass).unwrap();
    assert_eq!(r.status(), &progressing(1, 30.0));
    traffic(&g, 2_000, 500); // failing here, but nobody asked the metrics
    r.step_with(Verdict::Pass).unwrap();
    assert_eq!(r.status(), &progressing(2, 100.0));
    r.step_with(Verdict::Fail("p99 across replicas 2.1 s".into()))
        .unwrap();
    assert_eq!(weights(&g), (100.0, 0.0));
}

/// A stage waiting on requests that nothing measures (a server without `metrics(true)`)
/// warns once that it may wait for ever; each waiting step logs what the canary served.
#[test]
fn a_stage_waiting_on_requests_nothing_measures_says_so_once() {
    let (logs, subscriber) = Logs::subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let g = gray(RULES);
        let mut r = Rollout::new(g.clone(), "users", "canary", [50.0, 100.0])
            .unwrap()
            .analysis(analysis());
        r.start().unwrap();
        // Decided, as a server without `metrics(true)` decides, and never measured.
        for user in 0..200 {
            g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        }
        assert_eq!(r.step().unwrap(), &progressing(0, 50.0));
        assert_eq!(r.step().unwrap(), &progressing(0, 50.0));
        let warned = logs.lines_with("no request has been measured for any version");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("WARN") && warned[0].contains("metrics(true)"));
        assert!(warned[0].contains("route=users") && warned[0].contains("canary=canary"));
        let waits = logs.lines_with("the stage waits for canary requests");
        assert_eq!(waits.len(), 2, "{waits:?}");
        assert!(
            waits
                .iter()
                .all(|l| l.contains("served=0") && l.contains("needed=20"))
        );

        // Measured traffic, too little of it on the canary: a new rollout waits without
        // the warning, and counts what the canary served.
        drop(r);
        let mut r = Rollout::new(g.clone(), "users", "canary", [50.0, 100.0])
            .unwrap()
            .analysis(analysis());
        r.start().unwrap();
        let served = traffic(&g, 20, 200).len();
        assert!(served < 20, "{served} canary requests of 20 at 50%");
        assert_eq!(r.step().unwrap(), &progressing(0, 50.0));
        assert_eq!(logs.lines_with("no request has been measured").len(), 1);
        let waits = logs.lines_with("the stage waits for canary requests");
        assert!(waits[2].contains(&format!("served={served} ")), "{waits:?}");

        // Enough of it: the stage passes, and no step waits.
        traffic(&g, 200, 200);
        assert_eq!(r.step().unwrap(), &progressing(1, 100.0));
        assert_eq!(
            logs.lines_with("the stage waits for canary requests").len(),
            3
        );
    });
}

/// A canary that copies reach (`mirror:`) is judged on them as well: failing copies roll
/// it back at its first stage, though the few requests it serves there succeed.
#[test]
fn a_rollout_judges_the_copies_a_mirror_sends_its_canary() {
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }\n    mirror: { to: canary }\n",
    );
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 100.0])
        .unwrap()
        .analysis(analysis());
    r.start().unwrap();
    for user in 0..2_000 {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        d.measure().unwrap().finish(200);
        if let Some(copy) = d.mirror() {
            copy.measure().unwrap().finish(500);
        }
    }
    r.step().unwrap();
    let reason = rolled_back(&r);
    assert!(reason.contains("5xx"), "{reason}");
}

/// The rules file as an operator edits it mid-rollout: the split back at 90/10 as first
/// written, and a new route in front of it.
const EDITED: &str = r#"
versions: [stable, canary]
routes:
  - name: testers
    match: { headers: [{ name: x-app-version, exact: beta }] }
    to: canary
  - name: users
    split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } }
"#;

/// A rules file of its own in a fresh temp dir, holding `text`: the dir (removed when
/// dropped) and the file's path.
fn rules_file(name: &str, text: &str) -> (TempDir, std::path::PathBuf) {
    let dir = temp_dir(&format!("rollout-{name}"));
    let path = dir.join("rules.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The users of `0..n` that `g` sends to canary.
fn on_canary(g: &Gray, n: u32) -> Vec<u32> {
    (0..n)
        .filter(|user| version_for_user(g, &user.to_string()) == "canary")
        .collect()
}

#[test]
fn a_reload_mid_rollout_keeps_the_held_weight_and_its_users() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [30.0, 100.0]).unwrap();
    r.start().unwrap();
    let before = on_canary(&g, 2000);
    assert!((500..700).contains(&before.len()), "{}", before.len());

    // The file is edited and reloaded: its new route applies, its 90/10 does not.
    let (_dir, file) = rules_file("mid", EDITED);
    g.reload_from_path(&file).unwrap();
    assert_eq!(weights_of(&g, "users"), (70.0, 30.0));
    let tester = g.decide(&req("/", &[("x-app-version", "beta")]));
    assert_eq!(tester.route(), Some("testers"));
    assert_eq!(on_canary(&g, 2000), before, "no user moved");

    // The rollout goes on from the weight it holds.
    r.roll_back("by hand").unwrap();
    assert_eq!(weights_of(&g, "users"), (100.0, 0.0));
    assert_eq!(
        r.status(),
        &Status::RolledBack {
            reason: "by hand".into()
        }
    );
}

#[test]
fn a_rolled_back_canary_stays_out_until_the_rollout_is_dropped() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [30.0]).unwrap();
    r.start().unwrap();
    r.roll_back("canary is worse").unwrap();
    let (_dir, file) = rules_file("rolled-back", EDITED);
    g.reload_from_path(&file).unwrap(); // an unrelated edit: the canary must not come back
    assert_eq!(weights_of(&g, "users"), (100.0, 0.0));
    assert!(on_canary(&g, 1000).is_empty());

    drop(r); // lets go: the rules in force stay…
    assert_eq!(weights_of(&g, "users"), (100.0, 0.0));
    g.reload_from_path(&file).unwrap(); // …until the next reload applies the file's weights
    assert_eq!(weights_of(&g, "users"), (90.0, 10.0));
}

#[test]
fn a_reload_that_leaves_the_held_weight_no_room_is_refused() {
    let three = RULES
        .replace("[stable, canary]", "[stable, canary, beta]")
        .replace("canary: 0 }", "canary: 0, beta: 0 }");
    let g = gray(&three);
    let mut r = Rollout::new(g.clone(), "users", "canary", [30.0]).unwrap();
    r.start().unwrap();
    let crowded = three.replace(
        "stable: 100, canary: 0, beta: 0",
        "stable: 20, canary: 0, beta: 80",
    );
    let (_dir, file) = rules_file("crowded", &crowded);
    let err = g.reload_from_path(&file).unwrap_err();
    let invalid = err.invalid().unwrap();
    assert_eq!(invalid.route.as_deref(), Some("users"));
    assert_eq!(invalid.field, "split.weights");
    assert!(
        matches!(&invalid.problem, Problem::HeldByRollout { canary, weight, others }
            if canary == "canary" && *weight == 30.0 && *others == 80.0),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a rollout holds \"canary\" at 30%"),
        "{err}"
    );
    // The rules in force stay.
    assert_eq!(weights_of(&g, "users"), (70.0, 30.0));

    // A file that fits is taken, the held weight kept.
    let fits = three.replace(
        "stable: 100, canary: 0, beta: 0",
        "stable: 50, canary: 0, beta: 50",
    );
    std::fs::write(&file, fits).unwrap();
    g.reload_from_path(&file).unwrap();
    let config = g.config();
    let w = &config.routes[0].split.as_ref().unwrap().weights;
    assert_eq!((w["stable"], w["canary"], w["beta"]), (20.0, 30.0, 50.0));
}

/// A reload mid-stage that makes a version declared only now the default: the stage
/// compares the canary with it, counted from its first request.
#[test]
fn a_default_version_first_declared_mid_stage_is_the_baseline() {
    let g = gray(RULES);
    let mut a = analysis();
    a.max_error_rate = 1.0; // only the comparison with the baseline judges
    let mut r = Rollout::new(g.clone(), "users", "canary", [30.0, 100.0])
        .unwrap()
        .analysis(a);
    r.start().unwrap();
    let renamed = RULES.replace("stable", "stable-2");
    g.reload(Config::from_yaml(&renamed).unwrap()).unwrap();
    let config = g.config();
    let w = &config.routes[0].split.as_ref().unwrap().weights;
    assert_eq!(
        (w["stable-2"], w["canary"]),
        (70.0, 30.0),
        "the hold applies"
    );
    // The new default answers well, the canary fails one request in five.
    let mut canary = 0;
    for user in 0..1_000 {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        let status = match d.version() {
            "canary" => {
                canary += 1;
                if canary % 5 == 0 { 500 } else { 200 }
            }
            version => {
                assert_eq!(version, "stable-2");
                200
            }
        };
        d.measure().unwrap().finish(status);
    }
    r.step().unwrap();
    let reason = rolled_back(&r);
    assert!(reason.contains("against 0.00% for stable-2"), "{reason}");
}

#[test]
fn a_reload_may_take_the_route_or_the_canary_away_and_the_rollout_says_so() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [30.0]).unwrap();
    r.start().unwrap();
    // The route is gone: nothing to hold, the file is taken.
    let no_route = "versions: [stable, canary]\nroutes: [{ name: all, to: stable }]\n";
    g.reload(Config::from_yaml(no_route).unwrap()).unwrap();
    assert!(matches!(r.step(), Err(RolloutError::UnknownRoute(_))));
    // The canary is no longer declared: the same.
    let no_canary =
        "versions: [stable]\nroutes:\n  - { name: users, split: { weights: { stable: 100 } } }\n";
    g.reload(Config::from_yaml(no_canary).unwrap()).unwrap();
    assert!(matches!(r.step(), Err(RolloutError::BadCanary(_))));
    // Back as it was: the held weight applies again, at once.
    g.reload(Config::from_yaml(RULES).unwrap()).unwrap();
    assert_eq!(weights(&g), (70.0, 30.0));
    r.step().unwrap();
}

#[test]
fn a_later_rollout_of_a_route_takes_its_hold_over() {
    let g = gray(RULES);
    let mut first = Rollout::new(g.clone(), "users", "canary", [5.0]).unwrap();
    first.start().unwrap();
    let mut second = Rollout::new(g.clone(), "users", "canary", [30.0]).unwrap();
    second.start().unwrap();
    drop(first); // not its hold any more: nothing is let go
    g.reload(Config::from_yaml(RULES).unwrap()).unwrap();
    assert_eq!(weights_of(&g, "users"), (70.0, 30.0));
    drop(second);
    g.reload(Config::from_yaml(RULES).unwrap()).unwrap();
    assert_eq!(weights_of(&g, "users"), (100.0, 0.0));
}

/// Rollouts of two routes at once: each holds its own route's weight across a reload.
#[test]
fn rollouts_of_two_routes_each_hold_their_own() {
    let two = format!(
        "{RULES}  - name: orders\n    split: {{ by: {{ header: x-order }}, weights: {{ stable: 100, canary: 0 }} }}\n"
    );
    let g = gray(&two);
    let mut users = Rollout::new(g.clone(), "users", "canary", [5.0]).unwrap();
    users.start().unwrap();
    let mut orders = Rollout::new(g.clone(), "orders", "canary", [30.0]).unwrap();
    orders.start().unwrap();
    g.reload(Config::from_yaml(&two).unwrap()).unwrap();
    assert_eq!(weights_of(&g, "users"), (95.0, 5.0));
    assert_eq!(weights_of(&g, "orders"), (70.0, 30.0));
    drop(users); // lets go of its route only
    g.reload(Config::from_yaml(&two).unwrap()).unwrap();
    assert_eq!(weights_of(&g, "users"), (100.0, 0.0));
    assert_eq!(weights_of(&g, "orders"), (70.0, 30.0));
}

/// A rollout's change and a file's reload at the same time: each starts from the rules
/// the other left, so neither is lost. After each edit of the file, once the rollout has
/// changed its weight again, the edit is still in force; at the end, so is the last
/// rollout's weight.
#[test]
fn a_rollout_and_a_reload_at_once_lose_neither() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

    let g = gray(RULES);
    // A hundred routes more, so that each compile takes a while and the two overlap.
    let padding: String = (0..100)
        .map(|i| {
            format!("  - {{ name: r{i}, match: {{ path: {{ prefix: /r{i} }} }}, to: canary }}\n")
        })
        .collect();
    let variant = |n: usize| {
        let edited = EDITED.replace("name: testers", &format!("name: testers-{n}"));
        edited.replace("  - name: users", &format!("{padding}  - name: users"))
    };
    let rounds = 100;
    let edits: Vec<Config> = (0..rounds)
        .map(|n| Config::from_yaml(&variant(n)).unwrap())
        .collect();
    let changes = AtomicU32::new(0); // the rollouts' weight changes done
    let finished = AtomicBool::new(false);
    let rollouts = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for (n, edit) in edits.iter().enumerate() {
                g.reload(edit.clone()).unwrap();
                // Wait for a change that may have begun before this edit to end.
                let seen = changes.load(SeqCst);
                while changes.load(SeqCst) == seen && !finished.load(SeqCst) {
                    std::thread::yield_now();
                }
                let name = g.config().routes[0].name.clone();
                assert_eq!(name, format!("testers-{n}"), "a file's edit was lost");
            }
        });
        s.spawn(|| {
            for n in 0..rounds * 4 {
                let mut r = Rollout::new(g.clone(), "users", "canary", [20.0, 40.0]).unwrap();
                r.start().unwrap();
                changes.fetch_add(1, SeqCst);
                if n % 2 == 0 {
                    r.roll_back("again").unwrap();
                    changes.fetch_add(1, SeqCst);
                }
                rollouts.lock().unwrap().push(r); // the next one takes its hold over
            }
            finished.store(true, SeqCst);
        });
    });
    let config = g.config();
    assert_eq!(
        config.routes[0].name,
        format!("testers-{}", rounds - 1),
        "the last edit"
    );
    assert_eq!(
        weights_of(&g, "users"),
        (80.0, 20.0),
        "the last rollout's weight"
    );
}

#[test]
fn bad_rollouts_are_refused_with_a_reason() {
    let g = gray(RULES);
    let new = |route: &str, canary: &str, stages: &[f64]| {
        Rollout::new(g.clone(), route, canary, stages.iter().copied()).map(|_| ())
    };
    assert!(matches!(
        new("nope", "canary", &[5.0]),
        Err(RolloutError::UnknownRoute(_))
    ));
    assert!(matches!(
        new("users", "stable", &[5.0]),
        Err(RolloutError::BadCanary(_))
    ));
    assert!(matches!(
        new("users", "v9", &[5.0]),
        Err(RolloutError::BadCanary(_))
    ));
    for stages in [
        &[][..],
        &[30.0, 5.0],
        &[0.0, 5.0],
        &[50.0, 150.0],
        &[f64::NAN],
        &[5.0, f64::INFINITY],
    ] {
        assert!(matches!(
            new("users", "canary", stages),
            Err(RolloutError::BadStages(_))
        ));
    }
    let to = gray("versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n");
    let e = Rollout::new(to, "all", "canary", [5.0]).unwrap_err();
    assert!(matches!(e, RolloutError::NotASplit(_)), "{e}");

    // Another version holds 80%: a 30% stage leaves no room, and the rules stay.
    let three = gray(
        "versions: [stable, canary, v3]\nroutes:\n  - { name: users, split: { weights: { stable: 20, v3: 80 } } }\n",
    );
    let mut r = Rollout::new(three.clone(), "users", "canary", [30.0]).unwrap();
    let e = r.start().unwrap_err();
    assert!(matches!(e, RolloutError::Weights { .. }), "{e}");
    assert!(e.to_string().contains("users"), "{e}");
    assert_eq!(r.status(), &Status::Pending);
    let config = three.config();
    let w = &config.routes[0].split.as_ref().unwrap().weights;
    assert_eq!((w["stable"], w["v3"], w.get("canary")), (20.0, 80.0, None));
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(256))]
    /// Whatever weights a reloaded file gives three versions, while a rollout holds the
    /// canary: the reload is taken with the canary at its held weight and the weights
    /// summing to 100 — beta keeping the file's — or refused, the rules in force unchanged.
    /// A file whose own weights do not sum to 100 is refused as it would be without the
    /// hold, not mended by it.
    #[test]
    fn a_reload_under_a_hold_keeps_it_or_is_refused(
        held in proptest::sample::select(vec![0.5, 5.0, 30.0, 100.0]),
        stable in 0u32..=100,
        beta in 0u32..=100,
    ) {
        let rules = |stable: u32, canary: u32, beta: u32| format!(
            "versions: [stable, canary, beta]\nroutes:\n  - name: users\n    split: {{ by: {{ header: x-user-id }}, weights: {{ stable: {stable}, canary: {canary}, beta: {beta} }} }}\n"
        );
        let g = gray(&rules(100, 0, 0));
        let mut r = Rollout::new(g.clone(), "users", "canary", [held]).unwrap();
        r.start().unwrap();
        let before = g.config();
        // The file's own weights may or may not sum to 100.
        let canary = 100u32.saturating_sub(stable + beta);
        let result = g.reload(Config::from_yaml(&rules(stable, canary, beta)).unwrap());
        let config = g.config();
        let w = &config.routes[0].split.as_ref().unwrap().weights;
        match result {
            Ok(()) => {
                proptest::prop_assert_eq!(stable + canary + beta, 100, "an invalid file was taken");
                proptest::prop_assert_eq!(w["canary"], held);
                proptest::prop_assert_eq!(w["beta"], f64::from(beta));
                proptest::prop_assert!((w.values().sum::<f64>() - 100.0).abs() < 1e-9, "{:?}", w);
            }
            Err(e) => {
                proptest::prop_assert_eq!(&*config, &*before, "a refused reload changed the rules");
                let problem = e.invalid().map(|i| i.problem.clone());
                if stable + canary + beta == 100 {
                    let no_room = matches!(problem, Some(Problem::HeldByRollout { .. }));
                    proptest::prop_assert!(no_room, "{}", e);
                } else {
                    let sum = matches!(problem, Some(Problem::WeightSum { .. }));
                    proptest::prop_assert!(sum, "{}", e);
                }
            }
        }
    }
}

/// One thing done to a rollout, or to the traffic it judges.
#[derive(Clone, Debug)]
enum Op {
    /// 2,000 users served, the canary answering 500 when `failing`.
    Traffic {
        failing: bool,
    },
    Step(Verdict),
    Pause,
    Resume,
    Promote,
    RollBack,
    /// The rules file edited: the split at `100 - canary` / `canary`.
    Reload {
        canary: u32,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        any::<bool>().prop_map(|failing| Op::Traffic { failing }),
        Just(Op::Step(Verdict::Pass)),
        Just(Op::Step(Verdict::Wait)),
        Just(Op::Step(Verdict::Fail("yours".into()))),
        Just(Op::Pause),
        Just(Op::Resume),
        Just(Op::Promote),
        Just(Op::RollBack),
        (0u32..=100).prop_map(|canary| Op::Reload { canary }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(128))]
    /// Whatever an operator, the traffic, your verdicts and edits of the rules file do to
    /// a rollout, in any order: the weights in force are always the status's (the stage's while it progresses or
    /// pauses, 0 once rolled back) and sum to 100; stages only move forward; a rolled-back
    /// rollout stays rolled back; with an hour's minimum stage, no step ever widens (only a
    /// promotion does); a passing step of yours fails only on the analysis, a failing one
    /// fails the stage (or, within a failure limit, holds it).
    #[test]
    fn any_sequence_keeps_weights_and_status_in_step(
        ops in proptest::collection::vec(op(), 1..24),
        held_an_hour in proptest::prelude::any::<bool>(),
        pause_on_failure in proptest::prelude::any::<bool>(),
        failure_limit in 0u32..3,
    ) {
        let stages = [5.0, 30.0, 100.0];
        let g = gray(RULES);
        let min_stage = if held_an_hour { Duration::from_secs(3_600) } else { Duration::ZERO };
        let on_failure = if pause_on_failure { OnFailure::Pause } else { OnFailure::RollBack };
        let mut r = Rollout::new(g.clone(), "users", "canary", stages)
            .unwrap()
            .analysis(analysis())
            .on_failure(on_failure)
            .min_stage_duration(min_stage)
            .failure_limit(failure_limit);
        r.start().unwrap();
        let stage_of = |s: &Status| match s {
            Status::Progressing { stage, .. } | Status::Paused { stage, .. } => Some(*stage),
            _ => None,
        };
        for op in ops {
            let before = r.status().clone();
            match &op {
                Op::Traffic { failing } => {
                    traffic(&g, 2_000, if *failing { 500 } else { 200 });
                }
                Op::Step(verdict) => {
                    r.step_with(verdict.clone()).unwrap();
                }
                Op::Pause => {
                    r.pause("an operator");
                }
                Op::Resume => {
                    r.resume().unwrap();
                }
                Op::Promote => {
                    r.promote().unwrap();
                }
                Op::RollBack => {
                    r.roll_back("an operator").unwrap();
                }
                Op::Reload { canary } => {
                    let stable = 100 - canary;
                    let yaml = format!(
                        "versions: [stable, canary]\nroutes:\n  - name: users\n    split: {{ by: {{ header: x-user-id }}, weights: {{ stable: {stable}, canary: {canary} }} }}\n"
                    );
                    g.reload(Config::from_yaml(&yaml).unwrap()).unwrap();
                    proptest::prop_assert_eq!(r.status(), &before, "a reload moved the status");
                }
            }
            let after = r.status().clone();
            let (stable, canary) = weights(&g);
            proptest::prop_assert!((stable + canary - 100.0).abs() < 1e-9, "{stable} + {canary}");
            let expected = match &after {
                Status::Progressing { stage, weight } | Status::Paused { stage, weight, .. } => {
                    proptest::prop_assert_eq!(*weight, stages[*stage]);
                    *weight
                }
                Status::Completed { weight } => {
                    proptest::prop_assert_eq!(*weight, 100.0);
                    *weight
                }
                Status::RolledBack { .. } => 0.0,
                Status::Pending => unreachable!("started"),
                _ => unreachable!("a new status"),
            };
            proptest::prop_assert_eq!(canary, expected, "{:?} after {:?}", after, op);
            if let (Some(from), Some(to)) = (stage_of(&before), stage_of(&after)) {
                proptest::prop_assert!(to >= from, "{:?} → {:?}", before, after);
            }
            if matches!(before, Status::RolledBack { .. }) {
                proptest::prop_assert_eq!(&after, &before);
            }
            if let Op::Step(verdict) = &op {
                let widened = match (stage_of(&before), &after) {
                    (Some(from), _) if stage_of(&after).is_some_and(|to| to > from) => true,
                    (Some(_), Status::Completed { .. }) => true,
                    _ => false,
                };
                if held_an_hour {
                    proptest::prop_assert!(!widened, "{:?} → {:?} within the hour", before, after);
                }
                if *verdict == Verdict::Pass && matches!(before, Status::Progressing { .. }) {
                    // Only the analysis can fail it, on failing traffic (the canary's 5xx).
                    if let Status::RolledBack { reason } | Status::Paused { reason, .. } = &after {
                        proptest::prop_assert!(reason.contains("5xx"), "{}", reason);
                    }
                }
                if matches!(verdict, Verdict::Fail(_)) && matches!(before, Status::Progressing { .. }) {
                    let failed = matches!(&after,
                        Status::RolledBack { reason } | Status::Paused { reason, .. } if reason.contains("yours"));
                    // Failed, or (with a limit) tolerated: the stage held.
                    let held = failure_limit > 0 && after == before;
                    proptest::prop_assert!(failed || held, "{:?} → {:?}", before, after);
                }
            }
        }
    }
}
