//! The `--rollout`: a task steps it on a timer and takes an operator's orders.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use gray_core::{Rollout, RolloutStatus};
use http::{Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::proxy::{Proxy, ProxyBody, json, text};

impl Proxy {
    /// Moves `rollout` on one step (see `gray_core::Rollout::step`), logs a change and
    /// keeps its status for `/gray/status`. Returns whether it is still going.
    pub(crate) fn step_rollout(&self, rollout: &mut Rollout) -> bool {
        if let Err(e) = rollout.step() {
            tracing::warn!("rollout: {e}");
            return true; // the rules may come right; try again next time
        }
        self.set_rollout(rollout);
        still_going(rollout.status())
    }

    /// `POST /gray/rollout/{roll-back,promote,pause,resume}`, answered on the admin
    /// listener only: the `--rollout`'s canary to 0% now (Argo's `abort`), held there
    /// until the gateway stops; its next stage now (Argo's `promote`); its stage held
    /// until resumed, when it is judged afresh (Argo's `pause`). Answers the rollout's
    /// status, `409` without one.
    pub(crate) async fn order_rollout(&self, action: Action) -> Response<ProxyBody> {
        let none = || text(StatusCode::CONFLICT, "gray: no rollout\n".to_owned());
        if self
            .rollout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return none();
        }
        let (reply, answer) = oneshot::channel();
        if self.orders.send(Order { action, reply }).is_err() {
            return none();
        }
        match answer.await {
            Ok(Ok(())) => json(self.rollout_json().to_string()),
            Ok(Err(e)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("gray: the rollout could not {}: {e}\n", action.verb()),
            ),
            Err(_) => none(), // no task drives a rollout
        }
    }

    /// Keeps `rollout`'s status, and when its stage began, for `/gray/status`; logs a
    /// change of status.
    fn set_rollout(&self, rollout: &Rollout) {
        let status = rollout.status().clone();
        let elapsed = rollout.stage_elapsed();
        let began = elapsed.and_then(|elapsed| Instant::now().checked_sub(elapsed));
        let mut current = self.rollout.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().map(|shown| &shown.status) != Some(&status) {
            tracing::info!("rollout: {status:?}");
        }
        *current = Some(Shown { status, began });
    }
}

/// Starts `rollout` and drives it on a task of its own: a step every `every` until it
/// completes or rolls back, an operator's order whenever one comes; then it keeps the
/// rollout — and its hold on the canary's weight — until the gateway stops.
pub(crate) fn start_rollout(
    proxy: &Arc<Proxy>,
    mut rollout: Rollout,
    every: Duration,
) -> Result<(), gray_core::RolloutError> {
    rollout.start()?;
    proxy.set_rollout(&rollout);
    let orders = proxy
        .orders_in
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    tokio::spawn(drive_rollout(rollout, every, Arc::clone(proxy), orders));
    Ok(())
}

/// [`start_rollout`]'s task.
async fn drive_rollout(
    mut rollout: Rollout,
    every: Duration,
    proxy: Arc<Proxy>,
    mut orders: Option<mpsc::UnboundedReceiver<Order>>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // the first tick is now: let a stage see traffic first
    let mut going = true;
    loop {
        tokio::select! {
            _ = ticks.tick(), if going => going = proxy.step_rollout(&mut rollout),
            Some(Order { action, reply }) = next(&mut orders) => {
                let result = match action {
                    Action::RollBack => rollout.roll_back("rolled back by an operator"),
                    Action::Promote => rollout.promote(),
                    Action::Pause => Ok(rollout.pause("paused by an operator")),
                    Action::Resume => rollout.resume(),
                };
                let answer = match result {
                    Ok(_) => {
                        going = still_going(rollout.status());
                        proxy.set_rollout(&rollout);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(answer);
            }
        }
    }
}

/// Whether a rollout in `status` still has steps to take (a paused one waits for them).
fn still_going(status: &RolloutStatus) -> bool {
    !matches!(
        status,
        RolloutStatus::Completed { .. } | RolloutStatus::RolledBack { .. }
    )
}

/// The next operator's order; never, without a channel.
async fn next(orders: &mut Option<mpsc::UnboundedReceiver<Order>>) -> Option<Order> {
    match orders {
        Some(orders) => orders.recv().await,
        None => std::future::pending().await,
    }
}

/// A rollout as `/gray/status` shows it: its status, and since when its stage in force
/// has served (progressing or paused).
#[derive(Debug)]
pub(crate) struct Shown {
    pub(crate) status: RolloutStatus,
    pub(crate) began: Option<Instant>,
}

/// What an operator asks of a running rollout.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action {
    RollBack,
    Promote,
    Pause,
    Resume,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::RollBack => "roll back",
            Self::Promote => "promote",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// An operator's order, and where the task driving the rollout answers it.
pub(crate) struct Order {
    action: Action,
    reply: oneshot::Sender<Result<(), String>>,
}
