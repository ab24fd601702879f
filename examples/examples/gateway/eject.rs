//! Passive health checks: a version whose upstream fails `--eject-after` requests in a row
//! (no answer: refused, reset or timed out — a `5xx` is an answer, judged by a rollout)
//! is taken out with `Gray::set_available(version, false)`, so its requests — by route,
//! split or inherited label — are served by the default version; `--eject-for` later it
//! is let back in, and one more failure takes it out again at once (nginx's `max_fails`
//! and `fail_timeout`, Envoy's outlier detection on gateway errors). The default version
//! is never taken out: there is nowhere else to send its requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use gray_core::Gray;

/// When versions are taken out, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ejection {
    /// Failures in a row that take a version out; 0: never.
    pub(crate) after: u32,
    /// How long it stays out.
    pub(crate) duration: Duration,
}

impl Default for Ejection {
    fn default() -> Self {
        Self {
            after: 5,
            duration: Duration::from_secs(10),
        }
    }
}

/// One upstream's record of failures.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Requests in a row that got no answer.
    failures: AtomicU32,
    /// Taken out now.
    ejected: AtomicBool,
    /// Times taken out since start, for `/gray/status`.
    ejections: AtomicU64,
}

impl Health {
    /// An answer came: the count of failures in a row starts again. Read-only when it is
    /// already 0, so cores serving the same upstream do not write one cache line on every
    /// request.
    #[inline]
    pub(crate) fn answered(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// No answer came from `version`'s upstream. On the `after`th in a row, the version is
    /// taken out of `gray` for `ejection.duration`, then let back in with one failure left.
    pub(crate) fn failed(self: &Arc<Self>, gray: &Gray, version: &str, ejection: Ejection) {
        if ejection.after == 0 || gray.config().versions.first().is_some_and(|d| d == version) {
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < ejection.after || self.ejected.swap(true, Ordering::AcqRel) {
            return;
        }
        if !gray.set_available(version, false) {
            // No longer declared (the rules were reloaded): nothing to take out.
            self.ejected.store(false, Ordering::Release);
            return;
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        let secs = ejection.duration.as_secs_f64();
        tracing::warn!(
            version,
            "no answer from {version}'s upstream, again: taken out for {secs} s, its requests go to the default version"
        );
        let (health, gray, version) = (Arc::clone(self), gray.clone(), version.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(ejection.duration).await;
            // Half-open: the next failure takes it out again, the next answer clears it.
            health
                .failures
                .store(ejection.after.saturating_sub(1), Ordering::Relaxed);
            health.ejected.store(false, Ordering::Release);
            gray.set_available(&version, true);
            tracing::info!(version, "{version} let back in");
        });
    }

    /// Times this upstream's version was taken out since start.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }
}
