//! A rollout's step: judge the stage in force on the requests since it began, then widen,
//! finish, wait, or fail.

use std::time::Instant;

use super::analysis::Verdict;
use super::staged::Rollout;
use super::status::{OnFailure, RolloutError, RolloutStatus};
use crate::metrics::{MAX_METERED_VERSIONS, VersionMetrics};
use crate::rules::hold::Hold;

impl Rollout {
    /// Judges the stage in force on the requests since it began, and moves on: to the
    /// next stage, to [`RolloutStatus::Completed`] after the last, or to a failure. Waits (no
    /// change) while the canary has served too few requests, or the stage has served less
    /// than [`min_stage_duration`](Self::min_stage_duration), and does nothing unless the
    /// rollout is progressing.
    ///
    /// A step that waits for canary requests says so (`tracing`, at `DEBUG`: how many the
    /// canary has served of the [`Analysis::min_requests`](crate::rollout::Analysis::min_requests) it needs). Where the wait may
    /// never end — no request measured for any version (no traffic yet, or no adapter
    /// records metrics), or a canary without counters (all [`MAX_METERED_VERSIONS`]
    /// taken) — the first such step also logs a `WARN`, once per rollout.
    pub fn step(&mut self) -> Result<&RolloutStatus, RolloutError> {
        self.step_with(Verdict::Pass)
    }

    /// [`step`](Self::step), with a verdict of your own on the stage joined to the
    /// [`Analysis`](crate::rollout::Analysis)'s — Argo Rollouts' analysis providers: a Prometheus query over every
    /// replica's metrics, a business figure (orders per minute on the canary), a smoke
    /// test against it. Your [`Verdict::Fail`] fails the stage, its reason the status's
    /// (joined to the analysis's when both fail); your [`Verdict::Wait`] holds the stage
    /// (for a query that could not be made: never pass on no data); your
    /// [`Verdict::Pass`] leaves the stage to the analysis. Make your judgement — async or
    /// not — before the call; [`Analysis::none`](crate::rollout::Analysis::none) leaves the stage to yours alone. As
    /// `step`, it does nothing unless the rollout is progressing: a paused one waits for
    /// [`resume`](Self::resume), or your [`roll_back`](Self::roll_back).
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Rollout, RolloutStatus, Verdict};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0])?;
    /// rollout.start()?;
    /// let orders_per_minute = 3.0; // read from your metrics backend, say
    /// let verdict = if orders_per_minute < 10.0 {
    ///     Verdict::Fail(format!("canary orders {orders_per_minute}/min, under 10"))
    /// } else {
    ///     Verdict::Pass
    /// };
    /// let status = rollout.step_with(verdict)?;
    /// assert!(matches!(status, RolloutStatus::RolledBack { reason } if reason.contains("orders")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step_with(&mut self, verdict: Verdict) -> Result<&RolloutStatus, RolloutError> {
        self.step_at(verdict, Instant::now())
    }

    fn step_at(&mut self, yours: Verdict, now: Instant) -> Result<&RolloutStatus, RolloutError> {
        let RolloutStatus::Progressing { stage, weight } = self.status else {
            return Ok(&self.status);
        };
        self.set_weight(weight)?; // the route or canary may have gone in a reload
        let window = self.window();
        let judged = self.analysis.judge(&window.canary, &window.baseline);
        if judged == Verdict::Wait {
            self.log_wait(stage, &window);
        }
        let verdict = match join(judged, yours) {
            Verdict::Pass if !self.served_min_stage(now) => Verdict::Wait,
            verdict => verdict,
        };
        match verdict {
            Verdict::Wait => {}
            Verdict::Pass if stage + 1 < self.stages.len() => self.enter(stage + 1)?,
            Verdict::Pass => self.status = RolloutStatus::Completed { weight },
            Verdict::Fail(reason) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures > self.failure_limit {
                    let reason = match self.failure_limit {
                        0 => reason,
                        limit => format!(
                            "{reason} ({} failing steps, {limit} tolerated)",
                            self.failures
                        ),
                    };
                    self.fail(stage, weight, reason)?;
                }
            }
        }
        Ok(&self.status)
    }

    /// Whether the stage in force has served its minimum duration by `now`.
    fn served_min_stage(&self, now: Instant) -> bool {
        self.began
            .is_none_or(|began| now.saturating_duration_since(began) >= self.min_stage)
    }

    pub(super) fn enter(&mut self, stage: usize) -> Result<(), RolloutError> {
        let weight = self.stages[stage];
        self.set_weight(weight)?;
        self.since = Some(self.gray.metrics());
        self.began = Some(Instant::now());
        self.failures = 0;
        self.status = RolloutStatus::Progressing { stage, weight };
        Ok(())
    }

    pub(super) fn fail(
        &mut self,
        stage: usize,
        weight: f64,
        reason: String,
    ) -> Result<(), RolloutError> {
        match self.on_failure {
            OnFailure::RollBack => {
                self.roll_back(reason)?;
            }
            OnFailure::Pause => {
                self.status = RolloutStatus::Paused {
                    stage,
                    weight,
                    reason,
                }
            }
        }
        Ok(())
    }

    /// Says why a step waits for the analysis: at `DEBUG`, how many requests the canary
    /// has served of those the stage needs; at `WARN`, once, when it may wait for ever
    /// without a word — the canary has no counters, or no request has been measured for
    /// any version at all (no traffic yet, or, more often, nothing records metrics).
    fn log_wait(&mut self, stage: usize, window: &Window) {
        tracing::debug!(
            route = %self.route,
            canary = %self.canary,
            stage,
            served = window.canary.total(),
            needed = self.analysis.min_requests,
            "rollout: the stage waits for canary requests"
        );
        if self.warned_stuck {
            return;
        }
        let why = if !window.canary_metered {
            format!(
                "the canary is not metered, so the stage waits: a process meters at most \
                 {MAX_METERED_VERSIONS} (`Gray`, version) pairs at once, and every one is \
                 taken — drop the `Gray`s no longer in use"
            )
        } else if !window.measured {
            "no request has been measured for any version, so the stage waits: either no \
             traffic has come yet, or nothing records metrics — turn on `metrics(true)` on \
             the server adapter (or finish each `Decision::measure`)"
                .to_owned()
        } else {
            return;
        };
        self.warned_stuck = true;
        tracing::warn!(route = %self.route, canary = %self.canary, "rollout: {why}");
    }

    /// The canary's and the default version's requests since the stage began.
    fn window(&self) -> Window {
        let now = self.gray.metrics();
        let default = self.gray.config().versions.first().cloned();
        let delta = |version: &str| {
            let current = now.version(version);
            let before = self.since.as_ref().and_then(|m| m.version(version));
            match (current, before) {
                (Some(c), Some(b)) => c.since(b),
                (Some(c), None) => c.clone(),
                _ => VersionMetrics::empty(version),
            }
        };
        Window {
            canary: delta(&self.canary),
            baseline: delta(default.as_deref().unwrap_or_default()),
            measured: now.versions().iter().any(|v| v.total() > 0),
            canary_metered: now.version(&self.canary).is_some(),
        }
    }

    /// Gives the canary `weight` percent in the route, taken from (or given back to) the
    /// default version; other versions of the split keep theirs. The weight is held: every
    /// reload keeps it until this rollout is dropped.
    pub(super) fn set_weight(&self, weight: f64) -> Result<(), RolloutError> {
        let config = self.gray.config();
        let route = config.routes.iter().find(|r| r.name == self.route);
        let route = route.ok_or_else(|| RolloutError::UnknownRoute(self.route.clone()))?;
        if route.split.is_none() {
            return Err(RolloutError::NotASplit(self.route.clone()));
        }
        if !config.versions.iter().skip(1).any(|v| *v == self.canary) {
            return Err(RolloutError::BadCanary(self.canary.clone()));
        }
        let hold = Hold::new(self.owner, self.route.clone(), self.canary.clone(), weight);
        self.gray
            .hold(hold)
            .map_err(|source| RolloutError::Weights {
                route: self.route.clone(),
                source: Box::new(source),
            })
    }
}

/// What a step judges: the requests since the stage began, and whether they can come.
struct Window {
    /// The canary's.
    canary: VersionMetrics,
    /// The default version's.
    baseline: VersionMetrics,
    /// Some version of the `Gray` has had a request measured since it was made.
    measured: bool,
    /// The canary has counters (see [`MAX_METERED_VERSIONS`]).
    canary_metered: bool,
}

/// The analysis's verdict and the caller's, as one: a failure of either fails (both
/// reasons when both fail), else a wait of either waits.
fn join(analysis: Verdict, yours: Verdict) -> Verdict {
    match (analysis, yours) {
        (Verdict::Fail(a), Verdict::Fail(b)) => Verdict::Fail(format!("{a}; {b}")),
        (Verdict::Fail(reason), _) | (_, Verdict::Fail(reason)) => Verdict::Fail(reason),
        (Verdict::Wait, _) | (_, Verdict::Wait) => Verdict::Wait,
        (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

    use std::time::Duration;

    use super::*;
    use crate::gray::Gray;
    use crate::rollout::analysis::Analysis;
    use crate::rules::Config;

    /// A rollout of `canary` in `users` through 5% and 30%, judged after 20 requests,
    /// each stage held for `min_stage`.
    fn rollout(min_stage: Duration) -> (Gray, Rollout) {
        let yaml = "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { weights: { stable: 100, canary: 0 } }\n";
        let gray = Gray::new(Config::from_yaml(yaml).unwrap()).unwrap();
        let analysis = Analysis {
            min_requests: 20,
            ..Analysis::default()
        };
        let rollout = Rollout::new(gray.clone(), "users", "canary", [5.0, 30.0])
            .unwrap()
            .analysis(analysis)
            .min_stage_duration(min_stage);
        (gray, rollout)
    }

    /// 1,000 requests, every one answered `status`.
    fn serve(gray: &Gray, status: u16) {
        for _ in 0..1_000 {
            let req = http::Request::get("/").body(()).unwrap();
            gray.decide(&req).measure().unwrap().finish(status);
        }
    }

    fn progressing(stage: usize, weight: f64) -> RolloutStatus {
        RolloutStatus::Progressing { stage, weight }
    }

    #[test]
    fn a_sound_stage_passes_once_it_has_served_its_duration() {
        let minute = Duration::from_secs(60);
        let (gray, mut r) = rollout(10 * minute);
        r.start().unwrap();
        let began = r.began.unwrap();
        serve(&gray, 200);
        // Sound, but a second short of ten minutes: it waits.
        let early = began + 10 * minute - Duration::from_secs(1);
        assert_eq!(
            r.step_at(Verdict::Pass, early).unwrap(),
            &progressing(0, 5.0)
        );
        // Ten minutes: it passes, and the next stage's clock starts.
        let due = began + 10 * minute;
        assert_eq!(
            r.step_at(Verdict::Pass, due).unwrap(),
            &progressing(1, 30.0)
        );
        let next = r.began.unwrap();
        assert!(next > began);
        serve(&gray, 200);
        assert_eq!(
            r.step_at(Verdict::Pass, due).unwrap(),
            &progressing(1, 30.0)
        );
        // A pause and a resume start the stage's clock again.
        r.pause("a look at the dashboards");
        r.resume().unwrap();
        let resumed = r.began.unwrap();
        assert!(resumed >= next);
        serve(&gray, 200);
        let at = resumed + 10 * minute - Duration::from_secs(1);
        assert_eq!(r.step_at(Verdict::Pass, at).unwrap(), &progressing(1, 30.0));
        assert_eq!(
            r.step_at(Verdict::Pass, resumed + 10 * minute).unwrap(),
            &RolloutStatus::Completed { weight: 30.0 }
        );
    }

    #[test]
    fn a_failing_stage_fails_before_its_duration() {
        let (gray, mut r) = rollout(Duration::from_secs(3_600));
        r.start().unwrap();
        let began = r.began.unwrap();
        serve(&gray, 200);
        // Sound but young, your verdict a pass too: it waits.
        assert_eq!(
            r.step_at(Verdict::Pass, began).unwrap(),
            &progressing(0, 5.0)
        );
        // Yours fails it at once.
        let status = r
            .step_at(Verdict::Fail("orders down".into()), began)
            .unwrap();
        assert_eq!(
            status,
            &RolloutStatus::RolledBack {
                reason: "orders down".into()
            }
        );
    }

    #[test]
    fn verdicts_join_failure_first_then_waiting() {
        use Verdict::{Fail, Pass, Wait};
        let fail = |r: &str| Fail(r.to_owned());
        assert_eq!(join(Pass, Pass), Pass);
        assert_eq!(join(Pass, Wait), Wait);
        assert_eq!(join(Wait, Pass), Wait);
        assert_eq!(join(Wait, fail("b")), fail("b"));
        assert_eq!(join(fail("a"), Wait), fail("a"));
        assert_eq!(join(fail("a"), Pass), fail("a"));
        assert_eq!(join(fail("a"), fail("b")), fail("a; b"));
    }
}
