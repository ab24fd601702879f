//! [`Rollout`]: widen a canary in stages (5% → 30% → 100%) while its metrics are compared
//! with the default version's, and roll back (or pause) when it is worse.

use std::fmt;
use std::time::{Duration, Instant};

use crate::analysis::{Analysis, Verdict};
use crate::error::Error;
use crate::gray::Gray;
use crate::hold::Hold;
use crate::metrics::{MAX_METERED_VERSIONS, Metrics, VersionMetrics};

/// What to do when a stage fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Set the canary's weight back to 0 (default).
    #[default]
    RollBack,
    /// Keep the stage's weight and stop widening until [`Rollout::resume`].
    Pause,
}

/// Where a rollout stands.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RolloutStatus {
    /// Not started: the rules are as they were.
    Pending,
    /// Serving a stage's weight, collecting requests to judge it.
    Progressing {
        /// Index into the stages.
        stage: usize,
        /// The canary's weight in force, in percent.
        weight: f64,
    },
    /// A stage failed under [`OnFailure::Pause`], or [`Rollout::pause`] stopped it: its
    /// weight stays.
    Paused {
        /// Index into the stages.
        stage: usize,
        /// The canary's weight in force, in percent.
        weight: f64,
        /// Why it paused: how the stage failed, or what [`Rollout::pause`] was given.
        reason: String,
    },
    /// A stage failed, or [`Rollout::roll_back`] was called: the canary's weight is 0.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// Every stage passed; the last one's weight stays.
    Completed {
        /// The canary's weight in force, in percent.
        weight: f64,
    },
}

/// Why a rollout cannot be set up or moved on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The rules in force have no route of that name.
    #[error("rollout: no route named {0:?}")]
    UnknownRoute(String),
    /// The route does not split by weight.
    #[error("rollout: route {0:?} has no `split` to widen")]
    NotASplit(String),
    /// The canary is not a declared version, or is the default version.
    #[error("rollout: {0:?} is not a declared version other than the default")]
    BadCanary(String),
    /// Stages must rise, each above 0 and at most 100 percent.
    #[error("rollout: stages must rise within (0, 100], got {0:?}")]
    BadStages(Vec<f64>),
    /// The weights cannot be set: the other versions of the split leave too little room,
    /// or the new rules were refused.
    #[error("rollout: cannot set the weights of route {route:?}: {source}")]
    Weights {
        /// The route.
        route: String,
        /// What refused them.
        #[source]
        source: Box<Error>,
    },
    /// [`Rollout::spawn`] was called outside a tokio runtime.
    #[error("rollout: spawned outside a tokio runtime")]
    NoRuntime,
    /// [`Rollout::spawn`] was given no time between steps.
    #[error("rollout: the time between steps must be above 0")]
    ZeroInterval,
    /// The task driving a spawned rollout is gone:
    /// [`RolloutHandle::release`](crate::RolloutHandle::release) ended it, or its runtime
    /// shut down.
    #[error("rollout: the task driving it has stopped")]
    Stopped,
}

/// Widens a canary's weight in one `split` route stage by stage, judging each stage with
/// [`Analysis`] on the per-version [`Metrics`] (recorded by an adapter with
/// `metrics(true)`), and rolls back or pauses when the canary is worse.
///
/// It is driven by [`step`](Self::step), from a timer of your choice — or by a tokio task
/// of its own, [`spawn`](Self::spawn), ordered about through a
/// [`RolloutHandle`](crate::RolloutHandle): each step judges the
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
/// refused ([`Problem::HeldByRollout`](crate::Problem::HeldByRollout)). Dropping the
/// rollout lets go: the rules in force stay, and the next reload applies the file's own
/// weights — so when a rollout ends, write its outcome into the rules file before you
/// drop it.
///
/// A rollout moves the weights of one process's `Gray` and judges that process's traffic;
/// it does not talk to other replicas. Run it where the version is decided for the whole
/// call chain (the edge: downstream services with `inherit: always` follow its label), in
/// every replica with the same stages and timer (each judges its own share, and rolls back
/// only its own weights), or not at all — stages driven through the rules file by a
/// pipeline that reads the metrics of every pod. The README's *With several replicas*
/// says more.
///
/// ```
/// use gray_core::{Config, Gray, Rollout, RolloutStatus};
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
    gray: Gray,
    route: String,
    canary: String,
    stages: Vec<f64>,
    analysis: Analysis,
    on_failure: OnFailure,
    status: RolloutStatus,
    /// The metrics when the stage in force began.
    since: Option<Metrics>,
    /// When the stage in force began.
    began: Option<Instant>,
    /// How long a stage serves before it may pass.
    min_stage: Duration,
    /// Failing steps a stage tolerates.
    failure_limit: u32,
    /// Failing steps of the stage in force so far.
    failures: u32,
    /// Whose hold on the route's weights is this rollout's.
    owner: u64,
    /// The warning that the stage may wait for ever (nothing measured, or the canary
    /// without counters) has been logged.
    warned_stuck: bool,
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
    /// use gray_core::{Config, Gray, Rollout, RolloutStatus};
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
    /// use gray_core::{Config, Gray, Rollout, RolloutStatus, Verdict};
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
    /// use gray_core::{Config, Gray, Rollout};
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

    /// Judges the stage in force on the requests since it began, and moves on: to the
    /// next stage, to [`RolloutStatus::Completed`] after the last, or to a failure. Waits (no
    /// change) while the canary has served too few requests, or the stage has served less
    /// than [`min_stage_duration`](Self::min_stage_duration), and does nothing unless the
    /// rollout is progressing.
    ///
    /// A step that waits for canary requests says so (`tracing`, at `DEBUG`: how many the
    /// canary has served of the [`Analysis::min_requests`] it needs). Where the wait may
    /// never end — no request measured for any version (no traffic yet, or no adapter
    /// records metrics), or a canary without counters (all [`MAX_METERED_VERSIONS`]
    /// taken) — the first such step also logs a `WARN`, once per rollout.
    pub fn step(&mut self) -> Result<&RolloutStatus, RolloutError> {
        self.step_with(Verdict::Pass)
    }

    /// [`step`](Self::step), with a verdict of your own on the stage joined to the
    /// [`Analysis`]'s — Argo Rollouts' analysis providers: a Prometheus query over every
    /// replica's metrics, a business figure (orders per minute on the canary), a smoke
    /// test against it. Your [`Verdict::Fail`] fails the stage, its reason the status's
    /// (joined to the analysis's when both fail); your [`Verdict::Wait`] holds the stage
    /// (for a query that could not be made: never pass on no data); your
    /// [`Verdict::Pass`] leaves the stage to the analysis. Make your judgement — async or
    /// not — before the call; [`Analysis::none`] leaves the stage to yours alone. As
    /// `step`, it does nothing unless the rollout is progressing: a paused one waits for
    /// [`resume`](Self::resume), or your [`roll_back`](Self::roll_back).
    ///
    /// ```
    /// use gray_core::{Config, Gray, Rollout, RolloutStatus, Verdict};
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

    /// Stops at the stage in force (Argo's `pause`): its weight stays, and
    /// [`step`](Self::step) does nothing until [`resume`](Self::resume) or
    /// [`promote`](Self::promote). Only a progressing rollout pauses; otherwise nothing
    /// changes (a paused one keeps the reason it has). Weights do not change, so nothing can
    /// fail.
    ///
    /// ```
    /// use gray_core::{Config, Gray, Rollout, RolloutStatus};
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
    /// use gray_core::{Config, Gray, Rollout, RolloutStatus};
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

    /// Whether the stage in force has served its minimum duration by `now`.
    fn served_min_stage(&self, now: Instant) -> bool {
        self.began
            .is_none_or(|began| now.saturating_duration_since(began) >= self.min_stage)
    }

    fn enter(&mut self, stage: usize) -> Result<(), RolloutError> {
        let weight = self.stages[stage];
        self.set_weight(weight)?;
        self.since = Some(self.gray.metrics());
        self.began = Some(Instant::now());
        self.failures = 0;
        self.status = RolloutStatus::Progressing { stage, weight };
        Ok(())
    }

    fn fail(&mut self, stage: usize, weight: f64, reason: String) -> Result<(), RolloutError> {
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
    fn set_weight(&self, weight: f64) -> Result<(), RolloutError> {
        let config = self.gray.config();
        let route = config.routes.iter().find(|r| r.name == self.route);
        let route = route.ok_or_else(|| RolloutError::UnknownRoute(self.route.clone()))?;
        if route.split.is_none() {
            return Err(RolloutError::NotASplit(self.route.clone()));
        }
        if !config.versions.iter().skip(1).any(|v| *v == self.canary) {
            return Err(RolloutError::BadCanary(self.canary.clone()));
        }
        let hold = Hold {
            owner: self.owner,
            route: self.route.clone(),
            canary: self.canary.clone(),
            weight,
        };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

    use super::*;
    use crate::config::Config;

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
