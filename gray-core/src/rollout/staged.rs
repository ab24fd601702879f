//! [`Rollout`]: widen a canary in stages (5% → 30% → 100%) while its metrics are compared
//! with the default version's, and roll back (or pause) when it is worse — its setup and
//! the operator's orders; `step` judges the stages.

use std::fmt;
use std::time::{Duration, Instant};

use super::analysis::Analysis;
use super::status::{OnFailure, RolloutError, RolloutStatus};
use crate::gray::Gray;
use crate::metrics::Metrics;
use crate::rules::hold::Hold;

/// Widens a canary's weight in one `split` route stage by stage, judging each stage with
/// [`Analysis`] on the per-version [`Metrics`] (recorded by an adapter with
/// `metrics(true)`), and rolls back or pauses when the canary is worse.
///
/// It is driven by [`step`](Self::step), from a timer of your choice — or by a tokio task
/// of its own, [`spawn`](Self::spawn), ordered about through a
/// [`RolloutHandle`](crate::rollout::RolloutHandle): each step judges the
/// stage on the requests since it began, then widens, finishes, waits, or fails.
/// [`min_stage_duration`](Self::min_stage_duration) holds each stage a while before it
/// may pass, [`failure_limit`](Self::failure_limit) tolerates a few failing readings, and
/// [`step_with`](Self::step_with) joins a verdict of your own (a Prometheus query, a
/// business figure) to the analysis's. Weights
/// change as a reload does, so every clone of the `Gray` follows at once, and a keyed
/// split keeps every user already on the canary there as it widens.
///
/// From [`start`](Self::start) until it is dropped, the rollout **holds** the canary's
/// weight (and the default version's beside it): a reload — the rules file edited while
/// the rollout runs, or after it ends — applies everything else in the file but keeps
/// that weight, so no user moves between versions behind the rollout's back, and a
/// rolled-back canary stays at 0% (as Argo Rollouts reconciles a VirtualService back to
/// the weights it set). A reload whose other weights leave the held one no room is
/// refused ([`Problem::HeldByRollout`](crate::rules::Problem::HeldByRollout)). Dropping the
/// rollout lets go: the rules in force stay, and the next reload applies the file's own
/// weights — so when a rollout ends, write its outcome into the rules file before you
/// drop it.
///
/// A rollout moves the weights of one process's `Gray` and judges that process's traffic;
/// it does not talk to other replicas. Run it where the version is decided for the whole
/// call chain (the edge: downstream services with `inherit: always` follow its label), in
/// every replica with the same stages and timer (each judges its own share, and rolls back
/// only its own weights), or not at all — stages driven through the rules file by a
/// pipeline that reads the metrics of every pod. `docs/rollouts.md` (*With several replicas*)
/// says more.
///
/// ```
/// use gray_core::{Config, Gray};
/// use gray_core::rollout::{Rollout, RolloutStatus};
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: users
///     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
/// "#)?)?;
/// let mut rollout = Rollout::new(gray.clone(), "users", "canary", [5.0, 30.0, 100.0])?;
/// rollout.start()?;
/// assert_eq!(rollout.status(), &RolloutStatus::Progressing { stage: 0, weight: 5.0 });
/// // Every minute, say:
/// rollout.step()?; // waits until the canary has served enough requests to judge
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Rollout {
    pub(super) gray: Gray,
    pub(super) route: String,
    pub(super) canary: String,
    pub(super) stages: Vec<f64>,
    pub(super) analysis: Analysis,
    pub(super) on_failure: OnFailure,
    pub(super) status: RolloutStatus,
    /// The metrics when the stage in force began.
    pub(super) since: Option<Metrics>,
    /// When the stage in force began.
    pub(super) began: Option<Instant>,
    /// How long a stage serves before it may pass.
    pub(super) min_stage: Duration,
    /// Failing steps a stage tolerates.
    pub(super) failure_limit: u32,
    /// Failing steps of the stage in force so far.
    pub(super) failures: u32,
    /// Whose hold on the route's weights is this rollout's.
    pub(super) owner: u64,
    /// The warning that the stage may wait for ever (nothing measured, or the canary
    /// without counters) has been logged.
    pub(super) warned_stuck: bool,
}

impl Rollout {
    /// A rollout of `canary` in route `route` of `gray`'s rules, through `stages`
    /// (percent, rising). Nothing changes until [`start`](Self::start).
    pub fn new(
        gray: Gray,
        route: &str,
        canary: &str,
        stages: impl IntoIterator<Item = f64>,
    ) -> Result<Self, RolloutError> {
        let stages: Vec<f64> = stages.into_iter().collect();
        let rising = stages.windows(2).all(|w| w[0] < w[1]);
        let in_range = stages.iter().all(|&s| s > 0.0 && s <= 100.0);
        if stages.is_empty() || !rising || !in_range {
            return Err(RolloutError::BadStages(stages));
        }
        let config = gray.config();
        let found = config.routes.iter().find(|r| r.name == route);
        let found = found.ok_or_else(|| RolloutError::UnknownRoute(route.to_owned()))?;
        if found.split.is_none() {
            return Err(RolloutError::NotASplit(route.to_owned()));
        }
        let declared = config.versions.iter().skip(1).any(|v| v == canary);
        if !declared {
            return Err(RolloutError::BadCanary(canary.to_owned()));
        }
        Ok(Self {
            gray,
            route: route.to_owned(),
            canary: canary.to_owned(),
            stages,
            analysis: Analysis::default(),
            on_failure: OnFailure::default(),
            status: RolloutStatus::Pending,
            since: None,
            began: None,
            min_stage: Duration::ZERO,
            failure_limit: 0,
            failures: 0,
            owner: Hold::new_owner(),
            warned_stuck: false,
        })
    }

    /// How stages are judged (default [`Analysis::default`]).
    pub fn analysis(mut self, analysis: Analysis) -> Self {
        self.analysis = analysis;
        self
    }

    /// How long each stage serves its weight, at least, before it passes (default zero:
    /// a stage passes at the first step that finds enough requests and nothing wrong) —
    /// Argo Rollouts' `pause: { duration }` after a `setWeight`. A step before then that
    /// finds the stage sound waits; one that finds it worse fails it at once (or counts
    /// it, under a [`failure_limit`](Self::failure_limit)). So step
    /// often and let the duration set the pace: a canary that leaks memory, or fails only
    /// at the evening's peak, has the time to show it, and a plainly broken one is still
    /// rolled back at the next step. A stage resumed after a pause serves the duration
    /// afresh; [`promote`](Self::promote) does not wait for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Rollout, RolloutStatus};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// // Judged every 10 seconds, each stage held for at least 10 minutes.
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0, 100.0])?
    ///     .min_stage_duration(Duration::from_secs(600));
    /// rollout.start()?;
    /// assert_eq!(rollout.step()?, &RolloutStatus::Progressing { stage: 0, weight: 5.0 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn min_stage_duration(mut self, duration: Duration) -> Self {
        self.min_stage = duration;
        self
    }

    /// How many failing steps a stage tolerates before it fails (default 0: the first
    /// fails it) — Argo Rollouts' `failureLimit` (Flagger's `threshold: n` is
    /// `failure_limit(n - 1)`), for measures too noisy to act on one bad reading. A tolerated failing step holds the stage (it
    /// does not pass at that step) and counts; the stage fails at its `limit + 1`th, its
    /// reason saying so. The count starts afresh with each stage, and when a paused
    /// stage is resumed.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Rollout, RolloutStatus, Verdict};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0])?.failure_limit(1);
    /// rollout.start()?;
    /// let slow = || Verdict::Fail("p99 over 300 ms".into());
    /// assert_eq!(rollout.step_with(slow())?, &RolloutStatus::Progressing { stage: 0, weight: 5.0 });
    /// let status = rollout.step_with(slow())?;
    /// assert!(matches!(status, RolloutStatus::RolledBack { reason } if reason.contains("2 failing steps")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_limit(mut self, limit: u32) -> Self {
        self.failure_limit = limit;
        self
    }

    /// What a failed stage does (default [`OnFailure::RollBack`]).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// Where the rollout stands.
    pub fn status(&self) -> &RolloutStatus {
        &self.status
    }

    /// The `split` route whose weights it moves.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The version it widens.
    pub fn canary(&self) -> &str {
        &self.canary
    }

    /// How long the stage in force has served: since it began, or was last resumed.
    /// `None` unless the rollout is progressing or paused. With a
    /// [`min_stage_duration`](Self::min_stage_duration), what a status page shows beside it.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::Rollout;
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0])?;
    /// assert_eq!(rollout.stage_elapsed(), None);
    /// rollout.start()?;
    /// assert!(rollout.stage_elapsed().is_some());
    /// rollout.roll_back("not today")?;
    /// assert_eq!(rollout.stage_elapsed(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stage_elapsed(&self) -> Option<Duration> {
        self.stage_began().map(|began| began.elapsed())
    }

    /// When the stage in force began (or was last resumed), while progressing or paused.
    pub(crate) fn stage_began(&self) -> Option<Instant> {
        match self.status {
            RolloutStatus::Progressing { .. } | RolloutStatus::Paused { .. } => self.began,
            _ => None,
        }
    }

    /// Sets the first stage's weight.
    pub fn start(&mut self) -> Result<&RolloutStatus, RolloutError> {
        self.enter(0)?;
        Ok(&self.status)
    }

    /// Stops at the stage in force (Argo's `pause`): its weight stays, and
    /// [`step`](Self::step) does nothing until [`resume`](Self::resume) or
    /// [`promote`](Self::promote). Only a progressing rollout pauses; otherwise nothing
    /// changes (a paused one keeps the reason it has). Weights do not change, so nothing can
    /// fail.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Rollout, RolloutStatus};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0])?;
    /// rollout.start()?;
    /// rollout.pause("waiting for the product team");
    /// assert!(matches!(rollout.step()?, RolloutStatus::Paused { stage: 0, .. }));
    /// // Judged afresh, on the requests from now on.
    /// assert_eq!(rollout.resume()?, &RolloutStatus::Progressing { stage: 0, weight: 5.0 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, reason: impl Into<String>) -> &RolloutStatus {
        if let RolloutStatus::Progressing { stage, weight } = self.status {
            self.status = RolloutStatus::Paused {
                stage,
                weight,
                reason: reason.into(),
            };
        }
        &self.status
    }

    /// Goes on from [`RolloutStatus::Paused`]: the paused stage is judged again on requests
    /// from now on.
    pub fn resume(&mut self) -> Result<&RolloutStatus, RolloutError> {
        if let RolloutStatus::Paused { stage, .. } = self.status {
            self.enter(stage)?;
        }
        Ok(&self.status)
    }

    /// Moves on now, without judging the stage in force (Argo's `promote`): to the next
    /// stage, or to [`RolloutStatus::Completed`] from the last; from a progressing or a
    /// paused stage, and otherwise does nothing. The next stage is judged as usual.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Rollout, RolloutStatus};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let mut rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0])?;
    /// rollout.start()?;
    /// assert_eq!(rollout.promote()?, &RolloutStatus::Progressing { stage: 1, weight: 30.0 });
    /// assert_eq!(rollout.promote()?, &RolloutStatus::Completed { weight: 30.0 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn promote(&mut self) -> Result<&RolloutStatus, RolloutError> {
        let (RolloutStatus::Progressing { stage, weight }
        | RolloutStatus::Paused { stage, weight, .. }) = self.status
        else {
            return Ok(&self.status);
        };
        if stage + 1 < self.stages.len() {
            self.enter(stage + 1)?;
        } else {
            self.set_weight(weight)?; // the route or canary may have gone in a reload
            self.status = RolloutStatus::Completed { weight };
        }
        Ok(&self.status)
    }

    /// Sets the canary's weight to 0 now, whatever the stage. A rollout already rolled
    /// back keeps the reason it was first rolled back for.
    pub fn roll_back(&mut self, reason: impl Into<String>) -> Result<&RolloutStatus, RolloutError> {
        self.set_weight(0.0)?;
        if !matches!(self.status, RolloutStatus::RolledBack { .. }) {
            self.status = RolloutStatus::RolledBack {
                reason: reason.into(),
            };
        }
        Ok(&self.status)
    }
}

/// Lets go of the canary weight: the rules in force stay, and the next reload applies the
/// rules file's own weights to the route.
impl Drop for Rollout {
    fn drop(&mut self) {
        self.gray.release(&self.route, self.owner);
    }
}

impl fmt::Debug for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rollout")
            .field("route", &self.route)
            .field("canary", &self.canary)
            .field("stages", &self.stages)
            .field("analysis", &self.analysis)
            .field("min_stage_duration", &self.min_stage)
            .field("failure_limit", &self.failure_limit)
            .field("on_failure", &self.on_failure)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
