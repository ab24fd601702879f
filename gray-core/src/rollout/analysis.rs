//! [`Analysis`]: how a rollout's stage is judged — the canary's error rate and latency
//! against the default version's, over the same stretch of time.

use std::time::Duration;

use crate::metrics::VersionMetrics;

/// When a stage's canary is judged worse than the baseline (the default version).
///
/// Every stage is judged on the requests since it began: nothing is decided before the
/// canary has served `min_requests`. The checks against the baseline need `min_requests`
/// on both sides; the ceilings (`max_error_rate`, `max_latency`) only on the canary's.
///
/// ```
/// use std::time::Duration;
/// use gray_core::rollout::Analysis;
///
/// let mut analysis = Analysis::default();
/// analysis.min_requests = 500;
/// analysis.quantile = 0.99;
/// analysis.max_latency = Some(Duration::from_millis(300)); // p99 under 300 ms, always
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Analysis {
    /// Canary requests a stage needs before it is judged (default 100).
    pub min_requests: u64,
    /// Highest share of 5xx responses the canary may have (default 0.05).
    pub max_error_rate: f64,
    /// How much the canary's 5xx share may exceed the baseline's (default 0.01: one point).
    pub max_error_rate_increase: f64,
    /// The latency quantile compared (default 0.95). A tail quantile needs many requests
    /// to mean anything: raise `min_requests` with it.
    pub quantile: f64,
    /// How many times the baseline's quantile the canary's may be (default 1.5). Quantiles
    /// are estimated from the latency histogram as Prometheus does
    /// ([`VersionMetrics::latency_quantile`]), so a canary whose quantile crosses into
    /// the next bucket by a little is not judged as if it sat at that bucket's top.
    pub max_latency_ratio: f64,
    /// The highest the canary's latency quantile may be, whatever the baseline's (default:
    /// none) — Flagger's `request-duration` check. The only latency check once the canary
    /// serves everyone: a 100% stage leaves no baseline to compare with.
    pub max_latency: Option<Duration>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            min_requests: 100,
            max_error_rate: 0.05,
            max_error_rate_increase: 0.01,
            quantile: 0.95,
            max_latency_ratio: 1.5,
            max_latency: None,
        }
    }
}

/// The outcome of judging one stage.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Not enough canary requests yet.
    Wait,
    /// The canary is no worse than the baseline.
    Pass,
    /// The canary is worse; the reason says how.
    Fail(String),
}

impl Analysis {
    /// An analysis that passes every stage at once, whatever the metrics, for a rollout
    /// judged by your own verdicts alone ([`Rollout::step_with`](crate::rollout::Rollout::step_with)):
    /// one that reads every replica's metrics from Prometheus, say, where this process's
    /// share is not the whole story. Pair it with a
    /// [`min_stage_duration`](crate::rollout::Rollout::min_stage_duration), or each stage passes at
    /// the first step your verdict lets it.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Analysis, Verdict};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let metrics = gray.metrics(); // nothing served yet
    /// let (stable, canary) = (metrics.version("stable").unwrap(), metrics.version("canary").unwrap());
    /// assert_eq!(Analysis::default().judge(canary, stable), Verdict::Wait);
    /// assert_eq!(Analysis::none().judge(canary, stable), Verdict::Pass);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn none() -> Self {
        Self {
            min_requests: 0,
            max_error_rate: f64::INFINITY,
            max_error_rate_increase: f64::INFINITY,
            max_latency_ratio: f64::INFINITY,
            ..Self::default()
        }
    }

    /// Judges `canary` against `baseline`, each counted over the same stretch of time.
    pub fn judge(&self, canary: &VersionMetrics, baseline: &VersionMetrics) -> Verdict {
        if canary.total() < self.min_requests {
            return Verdict::Wait;
        }
        let rate = canary.error_rate();
        if rate > self.max_error_rate {
            return Verdict::Fail(format!(
                "canary 5xx rate {:.2}% over the {:.2}% ceiling",
                rate * 100.0,
                self.max_error_rate * 100.0
            ));
        }
        let quantile = canary.latency_quantile(self.quantile);
        if let (Some(c), Some(max)) = (quantile, self.max_latency)
            && c > max.as_secs_f64()
        {
            return Verdict::Fail(format!(
                "canary p{} latency ≈ {:.1} ms over the {:.1} ms ceiling",
                self.quantile * 100.0,
                c * 1000.0,
                max.as_secs_f64() * 1000.0
            ));
        }
        if baseline.total() >= self.min_requests {
            let base = baseline.error_rate();
            if rate > base + self.max_error_rate_increase {
                return Verdict::Fail(format!(
                    "canary 5xx rate {:.2}% against {:.2}% for {}",
                    rate * 100.0,
                    base * 100.0,
                    baseline.version
                ));
            }
            let quantiles = (quantile, baseline.latency_quantile(self.quantile));
            if let (Some(c), Some(b)) = quantiles
                && c > b * self.max_latency_ratio
            {
                return Verdict::Fail(format!(
                    "canary p{} latency ≈ {:.1} ms against ≈ {:.1} ms for {}",
                    self.quantile * 100.0,
                    c * 1000.0,
                    b * 1000.0,
                    baseline.version
                ));
            }
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(version: &str, requests: [u64; 5], latency_bucket: usize) -> VersionMetrics {
        let mut v = VersionMetrics::empty(version);
        v.requests = requests;
        v.latency[latency_bucket] = requests.iter().sum();
        v
    }

    #[test]
    fn a_stage_is_judged_on_errors_then_latency() {
        let a = Analysis::default();
        let base = counted("stable", [0, 1000, 0, 0, 10], 2);
        // Too few canary requests.
        assert_eq!(
            a.judge(&counted("canary", [0, 99, 0, 0, 0], 2), &base),
            Verdict::Wait
        );
        // As good as the baseline.
        assert_eq!(
            a.judge(&counted("canary", [0, 990, 0, 0, 10], 2), &base),
            Verdict::Pass
        );
        // Over the absolute ceiling.
        let bad = a.judge(&counted("canary", [0, 90, 0, 0, 10], 2), &base);
        assert!(
            matches!(&bad, Verdict::Fail(r) if r.contains("ceiling")),
            "{bad:?}"
        );
        // Under the ceiling, but two points worse than the baseline's 1%.
        let worse = a.judge(&counted("canary", [0, 970, 0, 0, 30], 2), &base);
        assert!(
            matches!(&worse, Verdict::Fail(r) if r.contains("against")),
            "{worse:?}"
        );
        // Slower: p95 two buckets up (≈ 2.4 ms → ≈ 9.8 ms).
        let slow = a.judge(&counted("canary", [0, 1000, 0, 0, 0], 4), &base);
        assert!(
            matches!(&slow, Verdict::Fail(r) if r.contains("latency ≈ 9.8 ms against ≈ 2.4 ms")),
            "{slow:?}"
        );
        // A p95 that only just crosses a bucket bound: ≈ 9.8 ms (all in 5–10 ms) against
        // ≈ 12.5 ms (6% in 10–25 ms), 1.28×, passes; the buckets' tops (10 and 25 ms) would
        // have made it 2.5×.
        let base = counted("stable", [0, 1000, 0, 0, 0], 4);
        let mut canary = counted("canary", [0, 1000, 0, 0, 0], 4);
        canary.latency[4] = 940;
        canary.latency[5] = 60;
        assert_eq!(a.judge(&canary, &base), Verdict::Pass);
        // With no baseline traffic (100%), only the ceiling counts.
        let alone = a.judge(
            &counted("canary", [0, 1000, 0, 0, 0], 4),
            &VersionMetrics::empty("stable"),
        );
        assert_eq!(alone, Verdict::Pass);
    }

    #[test]
    fn a_latency_ceiling_holds_whatever_the_baseline() {
        let a = Analysis {
            max_latency: Some(Duration::from_millis(10)),
            ..Analysis::default()
        };
        // All in the 5–10 ms bucket: p95 ≈ 9.8 ms, under the ceiling.
        let fast = counted("canary", [0, 1000, 0, 0, 0], 4);
        assert_eq!(
            a.judge(&fast, &VersionMetrics::empty("stable")),
            Verdict::Pass
        );
        // All in 10–25 ms: p95 ≈ 24.2 ms, over it — with no baseline at all (a 100% stage),
        // and against a baseline as slow (no ratio to fail).
        let slow = counted("canary", [0, 1000, 0, 0, 0], 5);
        for base in [
            VersionMetrics::empty("stable"),
            counted("stable", [0, 1000, 0, 0, 0], 5),
        ] {
            let v = a.judge(&slow, &base);
            assert!(
                matches!(&v, Verdict::Fail(r) if r.contains("over the 10.0 ms ceiling")),
                "{v:?}"
            );
        }
        // Without a ceiling (the default), the same canary passes against the slow baseline.
        let slow_base = counted("stable", [0, 1000, 0, 0, 0], 5);
        assert_eq!(Analysis::default().judge(&slow, &slow_base), Verdict::Pass);
    }

    /// A ceiling, or a bound against the baseline, is the most allowed: a canary right at
    /// it passes.
    #[test]
    fn a_canary_at_a_ceiling_passes_it() {
        let a = Analysis {
            max_latency: Some(Duration::from_micros(9750)),
            ..Analysis::default()
        };
        // 5% of 5xx, the default ceiling, against a baseline as bad.
        let base = counted("stable", [0, 95, 0, 0, 5], 4);
        let at = counted("canary", [0, 95, 0, 0, 5], 4);
        assert_eq!(at.latency_quantile(0.95), Some(0.00975));
        assert_eq!(a.judge(&at, &base), Verdict::Pass);
        let over = counted("canary", [0, 94, 0, 0, 6], 4);
        assert!(matches!(a.judge(&over, &base), Verdict::Fail(r) if r.contains("ceiling")));
        // Exactly one point of 5xx over the baseline's, and exactly the latency ratio.
        let base = counted("stable", [0, 99, 0, 0, 1], 4);
        let a = Analysis {
            max_latency_ratio: 1.0,
            ..Analysis::default()
        };
        assert_eq!(
            a.judge(&counted("canary", [0, 98, 0, 0, 2], 4), &base),
            Verdict::Pass
        );
        let worse = a.judge(&counted("canary", [0, 97, 0, 0, 3], 4), &base);
        assert!(
            matches!(&worse, Verdict::Fail(r) if r.contains("against")),
            "{worse:?}"
        );
    }

    #[test]
    fn no_analysis_passes_whatever_the_canary_does() {
        let none = Analysis::none();
        let base = counted("stable", [0, 1000, 0, 0, 0], 0);
        for canary in [
            VersionMetrics::empty("canary"),
            counted("canary", [0, 0, 0, 0, 1000], 0), // every request a 5xx
            counted("canary", [0, 1000, 0, 0, 0], 14), // all past the last bound
            counted("canary", [0, 10, 0, 0, 990], 14), // both
        ] {
            assert_eq!(none.judge(&canary, &base), Verdict::Pass, "{canary:?}");
            assert_ne!(Analysis::default().judge(&canary, &base), Verdict::Pass);
        }
    }
}
