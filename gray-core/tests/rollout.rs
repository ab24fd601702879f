//! `Rollout`: stages widen a healthy canary, a worse one is rolled back or paused, all on
//! the per-version metrics of real decisions.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use common::{gray, req};
use gray_core::{
    Analysis, Config, Gray, OnFailure, Rollout, RolloutError, RolloutStatus as Status,
};

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

fn weights(g: &Gray) -> (f64, f64) {
    let config = g.config();
    let w = &config.routes[0].split.as_ref().unwrap().weights;
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
    assert_eq!(
        r.status(),
        &Status::Progressing {
            stage: 0,
            weight: 5.0
        }
    );
    assert_eq!(weights(&g), (95.0, 5.0));
    let at_5 = traffic(&g, 2_000, 200);
    assert!((60..=140).contains(&at_5.len()), "{} of 2000", at_5.len());

    r.step().unwrap();
    assert_eq!(
        r.status(),
        &Status::Progressing {
            stage: 1,
            weight: 30.0
        }
    );
    assert_eq!(weights(&g), (70.0, 30.0));
    let at_30 = traffic(&g, 2_000, 200);
    assert!(at_5.iter().all(|u| at_30.contains(u)), "canary users stay");

    r.step().unwrap();
    assert_eq!(
        r.status(),
        &Status::Progressing {
            stage: 2,
            weight: 100.0
        }
    );
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
    assert_eq!(
        r.status(),
        &Status::Progressing {
            stage: 0,
            weight: 10.0
        }
    );

    traffic(&g, 2_000, 500);
    r.step().unwrap();
    let Status::RolledBack { reason } = r.status() else {
        panic!("{:?}", r.status());
    };
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
    assert_eq!(
        r.status(),
        &Status::Progressing {
            stage: 1,
            weight: 30.0
        }
    );
}

#[test]
fn a_step_puts_back_the_stage_weight_after_a_reload() {
    let g = gray(RULES);
    let mut r = Rollout::new(g.clone(), "users", "canary", [5.0, 30.0]).unwrap();
    r.start().unwrap();
    g.reload(Config::from_yaml(RULES).unwrap()).unwrap(); // a rules file reloaded
    assert_eq!(weights(&g), (100.0, 0.0));
    r.step().unwrap();
    assert_eq!(weights(&g), (95.0, 5.0));
    r.roll_back("by hand").unwrap();
    assert_eq!(weights(&g), (100.0, 0.0));
    assert_eq!(
        r.status(),
        &Status::RolledBack {
            reason: "by hand".into()
        }
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
