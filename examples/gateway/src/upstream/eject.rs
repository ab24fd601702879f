//! Passive health checks: an endpoint that fails `--eject-after` requests in a row (no
//! answer: refused, reset or timed out — a `5xx` is an answer, judged by a rollout) is
//! taken out of its version's balancing for `--eject-for`, then let back in, and one more
//! failure takes it out again at once (nginx's `max_fails` and `fail_timeout`, Envoy's
//! outlier detection on gateway errors). Active health checks (`--health-check`) take an
//! endpoint out while its checks fail. When every endpoint of a version is out, the
//! version is marked unavailable (`Gray::set_available`), so its requests — by route,
//! split or inherited label — are served by the default version. The default version is
//! never marked: there is nowhere else to send its requests.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// When endpoints are taken out, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// Failures in a row that take an endpoint out; 0: never.
    pub after: u32,
    /// How long it stays out.
    pub duration: Duration,
}

impl Default for Ejection {
    fn default() -> Self {
        Self {
            after: 5,
            duration: Duration::from_secs(10),
        }
    }
}

/// One endpoint's record of failures.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Requests in a row that got no answer.
    failures: AtomicU32,
    /// Taken out by failures, until `--eject-for` has passed.
    ejected: AtomicBool,
    /// Taken out by a failing active check, until one passes.
    unhealthy: AtomicBool,
    /// Times taken out since start.
    ejections: AtomicU64,
}

impl Health {
    /// An answer came: the count of failures in a row starts again. Read-only when it is
    /// already 0, so cores serving the same endpoint do not write one cache line on every
    /// request.
    #[inline]
    pub(crate) fn answered(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Whether it is out of balancing now.
    #[inline]
    pub(crate) fn is_out(&self) -> bool {
        self.ejected.load(Ordering::Relaxed) || self.unhealthy.load(Ordering::Relaxed)
    }

    /// No answer came. True when this failure took it out (the `after`th in a row).
    pub(crate) fn failed(&self, ejection: Ejection) -> bool {
        if ejection.after == 0 {
            return false;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < ejection.after || self.ejected.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Let back in after `--eject-for`, half-open: the next failure takes it out again,
    /// the next answer clears it.
    pub(crate) fn readmit(&self, ejection: Ejection) {
        self.failures
            .store(ejection.after.saturating_sub(1), Ordering::Relaxed);
        self.ejected.store(false, Ordering::Release);
    }

    /// An active check's verdict. True when it changed whether the endpoint is healthy.
    pub(crate) fn checked(&self, healthy: bool) -> bool {
        let was_unhealthy = self.unhealthy.swap(!healthy, Ordering::AcqRel);
        if !healthy && !was_unhealthy {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
        was_unhealthy == healthy
    }

    /// Times taken out since start.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }
}
