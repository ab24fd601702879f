//! Reading: [`VersionMetrics`], one version's totals, and [`Metrics`], the snapshot of one
//! [`Gray`](crate::Gray)'s versions that [`Gray::metrics`](crate::Gray::metrics) takes.

use super::record::{BUCKETS, CLASSES, LATENCY_BUCKETS, Slot, totals};
use super::reloads::Reloads;

/// One version's totals, summed over every thread.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct VersionMetrics {
    /// The version, e.g. `"canary"`.
    pub version: String,
    /// Requests by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub requests: [u64; CLASSES],
    /// Requests by latency bucket, not cumulative: `latency[i]` counts requests that took
    /// at most [`LATENCY_BUCKETS`]`[i]` seconds and more than the bound before; the last
    /// entry counts the slower ones.
    pub latency: [u64; BUCKETS],
    /// Total latency, in seconds.
    pub latency_sum: f64,
}

impl VersionMetrics {
    /// No requests yet.
    pub(crate) fn empty(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            requests: [0; CLASSES],
            latency: [0; BUCKETS],
            latency_sum: 0.0,
        }
    }

    /// The totals of `slot` over every thread's shard.
    fn read(version: &str, slot: Slot) -> Self {
        let (requests, latency, latency_sum) = totals(slot);
        Self {
            version: version.to_owned(),
            requests,
            latency,
            latency_sum,
        }
    }

    /// What was counted after `earlier`, a snapshot of the same version taken before.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable]\n")?)?;
    /// let req = http::Request::get("/").body(())?;
    /// gray.decide(&req).measure().map(|m| m.finish(200));
    /// let before = gray.metrics();
    /// gray.decide(&req).measure().map(|m| m.finish(503));
    /// let now = gray.metrics();
    /// let window = now.version("stable").zip(before.version("stable")).map(|(n, b)| n.since(b));
    /// assert_eq!(window.map(|w| w.requests), Some([0, 0, 0, 0, 1]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn since(&self, earlier: &Self) -> Self {
        let mut out = self.clone();
        for (n, e) in out.requests.iter_mut().zip(&earlier.requests) {
            *n = n.saturating_sub(*e);
        }
        for (n, e) in out.latency.iter_mut().zip(&earlier.latency) {
            *n = n.saturating_sub(*e);
        }
        out.latency_sum = (self.latency_sum - earlier.latency_sum).max(0.0);
        out
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// The share of 5xx responses, `0.0` with no requests.
    pub fn error_rate(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.requests[4] as f64 / total as f64,
        }
    }

    /// The `q` latency quantile (`0.0..=1.0`, clamped) in seconds, estimated from the
    /// histogram as Prometheus' `histogram_quantile` does: linear interpolation within the
    /// bucket the quantile falls in (from 0 in the first bucket), and the last finite bound
    /// ([`LATENCY_BUCKETS`]) when it falls past it. `None` with no requests, or when `q` is
    /// NaN.
    ///
    /// ```
    /// # use gray_core::{Config, Gray};
    /// # use gray_core::metrics::LATENCY_BUCKETS;
    /// # let gray = Gray::new(Config::from_yaml("versions: [stable]\n")?)?;
    /// let mut stable = gray.metrics().version("stable").cloned().expect("declared");
    /// assert_eq!(stable.latency_quantile(0.5), None); // no requests yet
    ///
    /// assert_eq!((LATENCY_BUCKETS[3], LATENCY_BUCKETS[4]), (0.005, 0.01));
    /// stable.latency[4] = 100; // 100 requests that took 5 to 10 ms
    /// let median = stable.latency_quantile(0.5).expect("some requests");
    /// assert!((median - 0.0075).abs() < 1e-12); // halfway through the bucket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 || q.is_nan() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            // The first non-empty bucket that reaches the rank.
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    break; // past the last bound: that bound, as Prometheus answers
                };
                let lower = i.checked_sub(1).map_or(0.0, |j| LATENCY_BUCKETS[j]);
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += n;
        }
        LATENCY_BUCKETS.last().copied()
    }
}

/// A snapshot of one [`Gray`](crate::Gray)'s per-version metrics, from
/// [`Gray::metrics`](crate::Gray::metrics): every version its rules have declared since it
/// was made, in the order first declared, counted by name across reloads.
///
/// Adapters record them when asked to (`GrayLayer::metrics`, `GrayMiddleware::metrics`);
/// a metrics endpoint serves [`Metrics::prometheus`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub(super) versions: Vec<VersionMetrics>,
    pub(super) rejected_labels: u64,
    pub(super) reloads: Reloads,
    pub(super) in_force: InForce,
}

/// What the rules in force give each version when the metrics are read: for the gauges
/// beside the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct InForce {
    /// `(route, version, percent)`: every declared version's weight in every split route,
    /// in route order.
    pub(super) weights: Vec<(String, String, f64)>,
    /// Every declared version, and whether it is available.
    pub(super) available: Vec<(String, bool)>,
}

impl InForce {
    /// `weights`: `(route, version, percent)` for every declared version in every split
    /// route, in route order; `available`: every declared version and whether it is.
    pub(crate) fn new(weights: Vec<(String, String, f64)>, available: Vec<(String, bool)>) -> Self {
        Self { weights, available }
    }
}

impl Metrics {
    /// Reads the counters of `(version, slot)` pairs.
    pub(crate) fn read<'a>(
        slots: impl IntoIterator<Item = (&'a str, Slot)>,
        rejected_labels: u64,
        reloads: Reloads,
        in_force: InForce,
    ) -> Self {
        Self {
            versions: slots
                .into_iter()
                .map(|(version, slot)| VersionMetrics::read(version, slot))
                .collect(),
            rejected_labels,
            reloads,
            in_force,
        }
    }

    /// What became of the reloads, and the fingerprint of the rules in force
    /// ([`Gray::reloads`](crate::Gray::reloads)).
    pub fn reloads(&self) -> &Reloads {
        &self.reloads
    }

    /// Incoming labels refused so far ([`Gray::rejected_labels`](crate::Gray::rejected_labels)).
    pub fn rejected_labels(&self) -> u64 {
        self.rejected_labels
    }

    /// Every version's totals.
    pub fn versions(&self) -> &[VersionMetrics] {
        &self.versions
    }

    /// The totals of `version`, if the rules ever declared it.
    pub fn version(&self, version: &str) -> Option<&VersionMetrics> {
        self.versions.iter().find(|v| v.version == version)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

    use std::time::{Duration, Instant};

    use super::VersionMetrics;
    use crate::metrics::record::{BUCKETS, CHUNK, Measure, Slot, new_slot, release_slot};

    /// A request of slot `slot` that began `ago`, answered `status` now.
    fn served(slot: Slot, ago: Duration, status: u16) {
        let start = Instant::now().checked_sub(ago).unwrap();
        Measure { slot, start }.finish(status);
    }

    #[test]
    fn a_request_past_the_last_bound_counts_in_inf_and_in_the_sum() {
        let slot = new_slot().unwrap();
        served(slot, Duration::from_secs(11), 200);
        let before = VersionMetrics::read("slow", slot);
        assert_eq!(before.latency[BUCKETS - 1], 1, "{before:?}");
        assert_eq!(before.latency.iter().sum::<u64>(), 1);
        assert!((11.0..12.0).contains(&before.latency_sum), "{before:?}");
        served(slot, Duration::from_secs(2), 200);
        let now = VersionMetrics::read("slow", slot);
        assert!((13.0..14.0).contains(&now.latency_sum), "{now:?}");
        let window = now.since(&before);
        assert!((2.0..2.5).contains(&window.latency_sum), "{window:?}");
        assert_eq!(
            window.latency[BUCKETS - 4],
            1,
            "2 s is within 2.5 s: {window:?}"
        );
        release_slot(slot);
    }

    #[test]
    fn slots_past_a_chunk_keep_counters_of_their_own() {
        let slots: Vec<_> = (0..CHUNK + 10).map(|_| new_slot().unwrap()).collect();
        for (n, &slot) in slots.iter().enumerate() {
            for _ in 0..=n {
                served(slot, Duration::ZERO, 200);
            }
        }
        for (n, &slot) in slots.iter().enumerate() {
            let v = VersionMetrics::read("v", slot);
            assert_eq!(v.total(), n as u64 + 1, "slot {slot:?}");
            release_slot(slot);
        }
    }
}
