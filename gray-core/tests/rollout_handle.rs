//! `Rollout::spawn`: a rollout stepped on its timer by a tokio task, ordered through its
//! handle. Tokio's clock is paused: a minute between steps passes at once, exactly.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Logs, gray, req};
use gray_core::rollout::{Analysis, Rollout, RolloutError, RolloutStatus as Status, Verdict};
use gray_core::{Config, Gray};

const RULES: &str = "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }\n";

const MINUTE: Duration = Duration::from_secs(60);

/// The canary's weight in force.
fn canary_weight(g: &Gray) -> f64 {
    let config = g.config();
    config.routes[0].split.as_ref().unwrap().weights["canary"]
}

/// A rollout through 5%, 30% and 100%, judged on nothing but your verdicts.
fn rollout(g: &Gray) -> Rollout {
    Rollout::new(g.clone(), "users", "canary", [5.0, 30.0, 100.0])
        .unwrap()
        .analysis(Analysis::none())
}

#[tokio::test(start_paused = true)]
async fn a_spawned_rollout_steps_on_its_timer_until_it_completes() {
    let g = gray(RULES);
    let began = tokio::time::Instant::now();
    let handle = rollout(&g).spawn(MINUTE).unwrap();
    assert_eq!(
        handle.status(),
        Status::Progressing {
            stage: 0,
            weight: 5.0
        }
    );
    assert_eq!(canary_weight(&g), 5.0);
    assert_eq!(handle.finished().await, Status::Completed { weight: 100.0 });
    // One step a minute, the first a minute after the start: three stages, three minutes.
    assert_eq!(began.elapsed(), 3 * MINUTE);
    assert_eq!(canary_weight(&g), 100.0);
    assert_eq!(handle.stage_elapsed(), None);
}

/// Your verdict is awaited before each step while the rollout progresses — not while it
/// is paused — and fails it with its reason.
#[tokio::test(start_paused = true)]
async fn your_verdict_is_asked_only_while_progressing_and_fails_the_stage() {
    let g = gray(RULES);
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    let handle = rollout(&g)
        .spawn_with(MINUTE, move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 => Verdict::Wait,
                    2 => Verdict::Pass,
                    _ => Verdict::Fail(format!("check {n} failed")),
                }
            }
        })
        .unwrap();
    // Half a minute past each step, so each is taken before the test looks.
    tokio::time::sleep(MINUTE + MINUTE / 2).await; // the first step: your wait holds it
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(
        handle.status(),
        Status::Progressing {
            stage: 0,
            weight: 5.0
        }
    );

    let paused = handle.pause("a look at the dashboards").await.unwrap();
    assert!(
        matches!(paused, Status::Paused { stage: 0, .. }),
        "{paused:?}"
    );
    tokio::time::sleep(10 * MINUTE).await;
    assert_eq!(asked.load(Ordering::SeqCst), 1, "not asked while paused");

    handle.resume().await.unwrap();
    tokio::time::sleep(MINUTE).await; // your pass: the next stage
    assert_eq!(
        handle.status(),
        Status::Progressing {
            stage: 1,
            weight: 30.0
        }
    );
    let status = handle.finished().await;
    assert_eq!(
        status,
        Status::RolledBack {
            reason: "check 3 failed".into()
        }
    );
    assert_eq!(canary_weight(&g), 0.0);
    // Over: the timer stops asking.
    tokio::time::sleep(10 * MINUTE).await;
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

/// A step ordered through the handle judges the real traffic now, as the timer would.
#[tokio::test(start_paused = true)]
async fn a_step_ordered_now_judges_the_traffic_so_far() {
    let g = gray(RULES);
    let mut analysis = Analysis::default();
    analysis.min_requests = 20;
    let handle = Rollout::new(g.clone(), "users", "canary", [50.0, 100.0])
        .unwrap()
        .analysis(analysis)
        .spawn(Duration::from_secs(3_600))
        .unwrap();
    for user in 0..1_000 {
        let d = g.decide(&req("/", &[("x-user-id", &user.to_string())]));
        let status = if d.version() == "canary" { 503 } else { 200 };
        d.measure().unwrap().finish(status);
    }
    let status = handle.step().await.unwrap();
    assert!(
        matches!(&status, Status::RolledBack { reason } if reason.contains("5xx")),
        "{status:?}"
    );
    assert_eq!(handle.status(), status);
}

/// An operator's orders through any clone of the handle: promoted, rolled back (the first
/// reason kept); held through a reload until released, when the file's weights apply and
/// other clones' orders fail.
#[tokio::test(start_paused = true)]
async fn orders_through_the_handle_and_release() {
    let g = gray(RULES);
    let handle = rollout(&g).spawn(Duration::from_secs(3_600)).unwrap();
    let other = handle.clone();
    assert_eq!(
        other.promote().await.unwrap(),
        Status::Progressing {
            stage: 1,
            weight: 30.0
        }
    );
    assert_eq!(
        handle.status(),
        Status::Progressing {
            stage: 1,
            weight: 30.0
        }
    );
    assert!(handle.stage_elapsed().is_some());
    let back = handle.roll_back("by hand").await.unwrap();
    assert_eq!(other.roll_back("again").await.unwrap(), back);
    assert_eq!(
        back,
        Status::RolledBack {
            reason: "by hand".into()
        }
    );
    // Held: an edit giving the canary 10% keeps it at 0.
    let edited = RULES.replace("stable: 100, canary: 0", "stable: 90, canary: 10");
    g.reload(Config::from_yaml(&edited).unwrap()).unwrap();
    assert_eq!(canary_weight(&g), 0.0);
    // Released: the hold goes with it, and the next reload applies the file.
    assert_eq!(handle.release().await.unwrap(), back);
    g.reload(Config::from_yaml(&edited).unwrap()).unwrap();
    assert_eq!(canary_weight(&g), 10.0);
    assert!(matches!(other.promote().await, Err(RolloutError::Stopped)));
    // `finished` answers where it stood when its task ended.
    assert_eq!(other.finished().await, back);
}

/// Dropping every handle ends the task, which lets go of the hold.
#[tokio::test(start_paused = true)]
async fn dropping_every_handle_lets_go() {
    let g = gray(RULES);
    let handle = rollout(&g).spawn(Duration::from_secs(3_600)).unwrap();
    assert_eq!(canary_weight(&g), 5.0);
    drop(handle);
    // The task sees the last handle gone when it next runs.
    let edited = RULES.replace("stable: 100, canary: 0", "stable: 80, canary: 20");
    let mut let_go = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        g.reload(Config::from_yaml(&edited).unwrap()).unwrap();
        if canary_weight(&g) == 20.0 {
            let_go = true;
            break;
        }
    }
    assert!(let_go, "the hold outlived every handle");
}

#[test]
fn a_rollout_is_not_spawned_without_a_runtime_or_an_interval_or_a_start() {
    let g = gray(RULES);
    assert!(matches!(
        rollout(&g).spawn(MINUTE),
        Err(RolloutError::NoRuntime)
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(matches!(
            rollout(&g).spawn(Duration::ZERO),
            Err(RolloutError::ZeroInterval)
        ));
        // Another version holds 80%: the first stage (30%) has no room.
        let three = gray(
            "versions: [stable, canary, v3]\nroutes:\n  - { name: users, split: { weights: { stable: 20, v3: 80 } } }\n",
        );
        let r = Rollout::new(three, "users", "canary", [30.0]).unwrap();
        assert!(matches!(
            r.spawn(MINUTE),
            Err(RolloutError::Weights { .. })
        ));
    });
    assert_eq!(canary_weight(&g), 0.0, "nothing started");
}

/// The start and each change of status are logged once, as they happen; a step that
/// changes nothing (your verdict waits) logs nothing.
#[tokio::test(start_paused = true)]
async fn the_start_and_each_change_of_status_are_logged_once() {
    let (logs, subscriber) = Logs::subscriber();
    let _logging = tracing::subscriber::set_default(subscriber);
    let g = gray(RULES);
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    let handle = rollout(&g)
        .spawn_with(MINUTE, move || {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            async move { if first { Verdict::Wait } else { Verdict::Pass } }
        })
        .unwrap();
    assert_eq!(handle.finished().await, Status::Completed { weight: 100.0 });
    assert_eq!(
        asked.load(Ordering::SeqCst),
        4,
        "a wait, then a pass for each of three steps"
    );
    // The start, then each change; nothing for the step your verdict held.
    let changes = logs.lines_with("rollout: ");
    let expected = [
        "Progressing { stage: 0, weight: 5.0 }",
        "Progressing { stage: 1, weight: 30.0 }",
        "Progressing { stage: 2, weight: 100.0 }",
        "Completed { weight: 100.0 }",
    ];
    assert_eq!(changes.len(), expected.len(), "{changes:#?}");
    for (line, status) in changes.iter().zip(expected) {
        assert!(line.contains(status), "{line} is not {status}");
        assert!(
            line.contains("INFO") && line.contains("route=users"),
            "{line}"
        );
    }
}
