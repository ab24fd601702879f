//! [`RolloutHandle`]: a [`Rollout`] driven on a tokio task of its own — stepped on a
//! timer, ordered about from anywhere (an admin route, a chat command) through the handle.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::analysis::Verdict;
use super::staged::Rollout;
use super::status::{RolloutError, RolloutStatus};

/// A [`Rollout`] running on a tokio task: stepped every interval, with your own verdict
/// when it was spawned with one ([`Rollout::spawn_with`]), and ordered about through this
/// handle — the automation Argo Rollouts' controller gives a `Rollout`, inside your
/// service. Cheap to clone: every clone orders the same rollout.
///
/// The task keeps the rollout — and its hold on the canary's weight — for as long as a
/// handle lives, after the rollout has completed or rolled back too (so a rolled-back
/// canary stays at 0% through reloads); dropping the last handle, or
/// [`release`](Self::release), lets go of it. Orders and steps are taken one at a time,
/// in the order they come.
///
/// ```
/// use std::time::Duration;
/// use gray_core::{Config, Gray};
/// use gray_core::rollout::{Rollout, RolloutStatus};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: users
///     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
/// "#)?)?;
/// let rollout = Rollout::new(gray, "users", "canary", [5.0, 30.0, 100.0])?;
/// let handle = rollout.spawn(Duration::from_secs(60))?; // judged every minute
/// assert_eq!(handle.status(), RolloutStatus::Progressing { stage: 0, weight: 5.0 });
///
/// // From an admin route, say:
/// handle.pause("waiting for the product team").await?;
/// handle.resume().await?;
/// let status = handle.roll_back("checkout errors in the support queue").await?;
/// assert!(matches!(status, RolloutStatus::RolledBack { .. }));
/// assert_eq!(handle.finished().await, status);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RolloutHandle {
    orders: mpsc::UnboundedSender<Order>,
    seen: watch::Receiver<Seen>,
}

/// What the handle sees of the rollout.
#[derive(Debug)]
struct Seen {
    status: RolloutStatus,
    /// When the stage in force began, while progressing or paused.
    began: Option<Instant>,
}

impl Seen {
    fn of(rollout: &Rollout) -> Self {
        Self {
            status: rollout.status().clone(),
            began: rollout.stage_began(),
        }
    }
}

/// What a handle asks of the task.
enum Action {
    Step,
    Pause(String),
    Resume,
    Promote,
    RollBack(String),
    Release,
}

struct Order {
    action: Action,
    reply: oneshot::Sender<Result<RolloutStatus, RolloutError>>,
}

impl Rollout {
    /// Starts the rollout and drives it on a tokio task: a [`step`](Self::step) every
    /// `every` (the first one `every` after the start) until it completes or rolls back;
    /// operators order it about through the returned [`RolloutHandle`]. Each change of
    /// status is logged (`tracing`, at `INFO`), as is a step that fails (`WARN`: the
    /// route or canary gone in a reload; it is tried again at the next step); a step that
    /// waits for canary requests logs as [`step`](Self::step) says.
    ///
    /// Fails as [`start`](Self::start) does, outside a tokio runtime
    /// ([`RolloutError::NoRuntime`]), or with a zero `every`
    /// ([`RolloutError::ZeroInterval`]).
    pub fn spawn(self, every: Duration) -> Result<RolloutHandle, RolloutError> {
        self.spawn_with(every, || std::future::ready(Verdict::Pass))
    }

    /// [`spawn`](Self::spawn), each step joined by the verdict `verdict()` comes to —
    /// awaited before the step, only while the rollout is progressing: a Prometheus query
    /// over every replica, a business figure, a smoke test against the canary (see
    /// [`step_with`](Self::step_with)). Orders wait while it is awaited: give it a
    /// timeout of its own, and answer [`Verdict::Wait`] when it runs out.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use gray_core::{Config, Gray};
    /// use gray_core::rollout::{Analysis, Rollout, RolloutStatus, Verdict};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: users
    ///     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
    /// "#)?)?;
    /// let orders_ok = Arc::new(AtomicBool::new(true)); // your business check
    /// let check = Arc::clone(&orders_ok);
    /// let handle = Rollout::new(gray, "users", "canary", [5.0, 30.0, 100.0])?
    ///     .analysis(Analysis::none()) // judged by the check alone
    ///     .spawn_with(Duration::from_secs(60), move || {
    ///         let ok = check.load(Ordering::Relaxed);
    ///         async move {
    ///             if ok { Verdict::Pass } else { Verdict::Fail("orders down".into()) }
    ///         }
    ///     })?;
    /// orders_ok.store(false, Ordering::Relaxed);
    /// let status = handle.finished().await;
    /// assert_eq!(status, RolloutStatus::RolledBack { reason: "orders down".into() });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_with<F, Fut>(
        mut self,
        every: Duration,
        verdict: F,
    ) -> Result<RolloutHandle, RolloutError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Verdict> + Send + 'static,
    {
        if every.is_zero() {
            return Err(RolloutError::ZeroInterval);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| RolloutError::NoRuntime)?;
        self.start()?;
        let (seen_in, seen) = watch::channel(Seen::of(&self));
        let (orders, orders_in) = mpsc::unbounded_channel();
        tracing::info!(route = %self.route(), canary = %self.canary(), "rollout: {:?}", self.status());
        runtime.spawn(drive(self, every, verdict, seen_in, orders_in));
        Ok(RolloutHandle { orders, seen })
    }
}

impl RolloutHandle {
    /// Where the rollout stands.
    pub fn status(&self) -> RolloutStatus {
        self.seen.borrow().status.clone()
    }

    /// How long the stage in force has served ([`Rollout::stage_elapsed`]).
    pub fn stage_elapsed(&self) -> Option<Duration> {
        self.seen.borrow().began.map(|began| began.elapsed())
    }

    /// Judges the stage now, as a step of the timer would (your verdict included), and
    /// answers where the rollout stands then.
    pub async fn step(&self) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::Step).await
    }

    /// [`Rollout::pause`].
    pub async fn pause(&self, reason: impl Into<String>) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::Pause(reason.into())).await
    }

    /// [`Rollout::resume`].
    pub async fn resume(&self) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::Resume).await
    }

    /// [`Rollout::promote`].
    pub async fn promote(&self) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::Promote).await
    }

    /// [`Rollout::roll_back`].
    pub async fn roll_back(
        &self,
        reason: impl Into<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::RollBack(reason.into())).await
    }

    /// Waits until the rollout has completed or rolled back, and answers which (or, if
    /// its task is gone first, where it stood then).
    pub async fn finished(&self) -> RolloutStatus {
        let mut seen = self.seen.clone();
        let over = match seen.wait_for(|seen| !still_going(&seen.status)).await {
            Ok(over) => Some(over.status.clone()),
            Err(_) => None, // the task is gone
        };
        over.unwrap_or_else(|| seen.borrow().status.clone())
    }

    /// Ends the task and lets go of the rollout — and of its hold on the canary's weight,
    /// so the next reload applies the rules file's own weights (write the outcome into
    /// it first) — for every clone of this handle; returns once it has let go, with where
    /// the rollout stood. Orders through other clones then fail
    /// ([`RolloutError::Stopped`]).
    pub async fn release(self) -> Result<RolloutStatus, RolloutError> {
        self.order(Action::Release).await
    }

    async fn order(&self, action: Action) -> Result<RolloutStatus, RolloutError> {
        let (reply, answer) = oneshot::channel();
        self.orders
            .send(Order { action, reply })
            .map_err(|_| RolloutError::Stopped)?;
        answer.await.map_err(|_| RolloutError::Stopped)?
    }
}

/// Whether a rollout in `status` still has steps to take (a paused one waits for them).
fn still_going(status: &RolloutStatus) -> bool {
    !matches!(
        status,
        RolloutStatus::Completed { .. } | RolloutStatus::RolledBack { .. }
    )
}

/// The task of [`Rollout::spawn_with`].
async fn drive<F, Fut>(
    mut rollout: Rollout,
    every: Duration,
    mut verdict: F,
    seen: watch::Sender<Seen>,
    mut orders: mpsc::UnboundedReceiver<Order>,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Verdict> + Send + 'static,
{
    let start = tokio::time::Instant::now() + every;
    let mut ticks = tokio::time::interval_at(start, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let released = loop {
        let going = still_going(rollout.status());
        let (action, reply) = tokio::select! {
            _ = ticks.tick(), if going => (Action::Step, None),
            order = orders.recv() => match order {
                Some(Order { action, reply }) => (action, Some(reply)),
                None => break None, // every handle dropped
            },
        };
        let result = match action {
            Action::Step => {
                let yours = match rollout.status() {
                    RolloutStatus::Progressing { .. } => verdict().await,
                    _ => Verdict::Pass, // nothing to judge: the step does nothing
                };
                let result = rollout.step_with(yours).cloned();
                if let Err(e) = &result {
                    tracing::warn!(route = %rollout.route(), canary = %rollout.canary(), "{e}");
                }
                result
            }
            Action::Pause(reason) => Ok(rollout.pause(reason).clone()),
            Action::Resume => rollout.resume().cloned(),
            Action::Promote => rollout.promote().cloned(),
            Action::RollBack(reason) => rollout.roll_back(reason).cloned(),
            Action::Release => break reply,
        };
        let now = Seen::of(&rollout);
        if seen.borrow().status != now.status {
            tracing::info!(route = %rollout.route(), canary = %rollout.canary(), "rollout: {:?}", now.status);
        }
        seen.send_replace(now);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    };
    let status = rollout.status().clone();
    drop(rollout); // lets go of the hold
    if let Some(reply) = released {
        let _ = reply.send(Ok(status));
    }
}
