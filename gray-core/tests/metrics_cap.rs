//! A process meters at most `MAX_METERED_VERSIONS` (`Gray`, version) pairs at once; later
//! versions are decided as usual, just not counted, and a dropped `Gray`'s slots serve the
//! next ones, from zero. (Its own test binary: slots are process-wide.)

mod common;

use common::{Logs, gray, req};
use gray_core::metrics::MAX_METERED_VERSIONS;
use gray_core::rollout::{Rollout, RolloutStatus};
use gray_core::rules::MAX_VERSIONS;

#[test]
fn versions_past_the_cap_are_served_but_not_counted_until_slots_are_given_back() {
    let versions: Vec<String> = (0..MAX_VERSIONS).map(|i| format!("v{i}")).collect();
    // Labels honoured, so that a request can be counted under any version.
    let rules = format!(
        "label: {{ inherit: always }}\nversions: [{}]\n",
        versions.join(", ")
    );
    let full = MAX_METERED_VERSIONS / MAX_VERSIONS;
    let grays: Vec<_> = (0..full).map(|_| gray(&rules)).collect();
    for g in &grays {
        assert_eq!(g.metrics().versions().len(), MAX_VERSIONS);
        assert!(g.decide(&req("/", &[])).measure().is_some());
    }
    let late = gray("versions: [late]\n");
    let d = late.decide(&req("/", &[]));
    assert_eq!(d.version(), "late");
    assert!(d.measure().is_none());
    assert!(late.metrics().versions().is_empty());
    // A rollout of an unmetered canary would wait for ever: it says so, once.
    let (logs, subscriber) = Logs::subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let late = gray(
            "versions: [stable, canary]\n\
             routes: [{ name: users, split: { weights: { stable: 100, canary: 0 } } }]\n",
        );
        let mut rollout = Rollout::new(late.clone(), "users", "canary", [50.0]).unwrap();
        rollout.start().unwrap();
        for _ in 0..200 {
            assert!(late.decide(&req("/", &[])).measure().is_none());
        }
        let waiting = RolloutStatus::Progressing {
            stage: 0,
            weight: 50.0,
        };
        assert_eq!(rollout.step().unwrap(), &waiting);
        assert_eq!(rollout.step().unwrap(), &waiting);
    });
    let warned = logs.lines_with("the canary is not metered");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(&format!("at most {MAX_METERED_VERSIONS} (`Gray`, version)")));
    assert_eq!(logs.lines_with("WARN").len(), 1); // that one only
    // The first ones still count.
    grays[0]
        .decide(&req("/", &[]))
        .measure()
        .unwrap()
        .finish(200);
    assert_eq!(grays[0].metrics().version("v0").map(|v| v.total()), Some(1));

    // Every slot has counted a request; one request is still being served when its
    // `Gray` goes.
    for g in &grays {
        for version in &versions {
            let d = g.decide(&req("/", &[("x-gray-version", version)]));
            d.measure().unwrap().finish(200);
        }
    }
    let in_flight = grays[1].decide(&req("/", &[])).measure().unwrap();
    drop(grays);

    // Every slot was taken, so these have the dropped ones' slots — and none of their
    // counts, nor the request that finished after its `Gray` was dropped.
    let next: Vec<_> = (0..full).map(|_| gray(&rules)).collect();
    in_flight.finish(500);
    for g in &next {
        let metrics = g.metrics();
        assert_eq!(metrics.versions().len(), MAX_VERSIONS);
        for v in metrics.versions() {
            assert_eq!((v.total(), v.latency_sum), (0, 0.0), "{}", v.version);
        }
    }
    next[0]
        .decide(&req("/", &[]))
        .measure()
        .unwrap()
        .finish(503);
    let v0 = next[0].metrics().version("v0").map(|v| v.requests);
    assert_eq!(v0, Some([0, 0, 0, 0, 1]));

    // Gone again: `Gray`s made and dropped one after another, two versions each — twice
    // the cap in all — never run out.
    drop(next);
    for _ in 0..MAX_METERED_VERSIONS {
        let g = gray("versions: [stable, canary]\n");
        g.decide(&req("/", &[])).measure().unwrap().finish(200);
        assert_eq!(g.metrics().version("stable").map(|v| v.total()), Some(1));
    }

    // Across threads. A slot's counters on another thread are left as they are when the
    // slot is given back and taken again: that thread starts them afresh when it first
    // counts for the new owner, and until then a read passes them over.
    let worker = Worker::new();
    let old = gray("versions: [stable]\n");
    let counted = old.clone();
    worker.run(move || {
        for _ in 0..3 {
            let d = counted.decide(&req("/", &[]));
            d.measure().unwrap().finish(200);
        }
    });
    assert_eq!(old.metrics().version("stable").map(|v| v.total()), Some(3));
    let stale = [(); 2].map(|()| old.decide(&req("/", &[])).measure().unwrap());
    drop(old); // the worker's clone went with its closure
    let new = gray("versions: [stable]\n"); // the slot `old` gave back: the last freed
    let stable = |g: &gray_core::Gray| g.metrics().version("stable").map(|v| v.requests);
    assert_eq!(stable(&new), Some([0; 5]));
    worker.run(move || stale[0].finish(500)); // counted where nobody reads
    assert_eq!(stable(&new), Some([0; 5]));
    let counted = new.clone();
    worker.run(move || {
        counted
            .decide(&req("/", &[]))
            .measure()
            .unwrap()
            .finish(200)
    });
    assert_eq!(stable(&new), Some([0, 1, 0, 0, 0]));
    worker.run(move || stale[1].finish(500)); // too late: the worker counts for `new` now
    assert_eq!(stable(&new), Some([0, 1, 0, 0, 0]));
}

/// A thread that runs what it is given, one job after another, each to its end before
/// `run` returns: the same thread, so the same counters, every time.
struct Worker(std::sync::mpsc::Sender<(Job, std::sync::mpsc::Sender<()>)>);

type Job = Box<dyn FnOnce() + Send>;

impl Worker {
    fn new() -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<(Job, std::sync::mpsc::Sender<()>)>();
        std::thread::spawn(move || {
            for (job, done) in queue {
                job();
                let _ = done.send(());
            }
        });
        Self(jobs)
    }

    fn run(&self, job: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        self.0.send((Box::new(job), done)).expect("the worker runs");
        finished.recv().expect("the job ran to its end");
    }
}
