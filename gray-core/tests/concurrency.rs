//! Decisions on four threads while another thread reloads: every decision comes whole from
//! one of the two configs, never a mix, and no reload is lost.

mod common;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{gray, req};
use gray_core::Config;

/// Two configs that differ in every observable way: versions, route names, outcomes.
fn config(n: usize) -> Config {
    let (a, b) = [("blue", "green"), ("red", "black")][n];
    Config::from_yaml(&format!(
        "versions: [{a}, {b}]
routes:
  - {{ name: {a}-testers, match: {{ headers: [{{ name: x-t, exact: '1' }}] }}, to: {b} }}
  - {{ name: {a}-users, split: {{ by: {{ header: x-user-id }}, weights: {{ {a}: 50, {b}: 50 }} }} }}"
    ))
    .expect("valid")
}

#[test]
fn decide_on_4_threads_while_reloading_1000_times() {
    let g = gray("versions: [blue, green]");
    g.reload(config(0)).unwrap();
    let stop = AtomicBool::new(false);
    let decided = AtomicU64::new(0);
    // Lets the reloader wait for workers to make progress, without sleeping.
    let wait_for = |n: u64| {
        let target = decided.load(Ordering::SeqCst) + n;
        while decided.load(Ordering::SeqCst) < target {
            std::thread::yield_now();
        }
    };
    let start = Barrier::new(5);
    let tester = req("/", &[("x-t", "1"), ("x-user-id", "5")]);
    let user = req("/", &[("x-user-id", "5")]);
    let seen = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let mut seen = [0u64; 2];
                    while !stop.load(Ordering::Relaxed) {
                        for r in [&tester, &user] {
                            let d = g.decide(r);
                            let which = match (d.version(), d.route()) {
                                ("green", Some("blue-testers"))
                                | ("blue" | "green", Some("blue-users")) => 0,
                                ("black", Some("red-testers"))
                                | ("red" | "black", Some("red-users")) => 1,
                                other => panic!("decision from no single config: {other:?}"),
                            };
                            let ctx = d.context();
                            assert_eq!(ctx.version(), d.version());
                            seen[which] += 1;
                            decided.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        wait_for(1_000); // decisions under config 0 for sure
        let configs = [config(0), config(1)];
        for i in 0..1_000 {
            g.reload(configs[i % 2].clone()).unwrap();
        }
        wait_for(1_000); // and under config 1, the last one installed
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold([0, 0], |acc, s| [acc[0] + s[0], acc[1] + s[1]])
    });
    // The last reload (i = 999) installed config 1.
    assert_eq!(g.decide(&tester).route(), Some("red-testers"));
    assert!(seen[0] >= 1_000 && seen[1] >= 1, "{seen:?}");
}
