//! The `--rollout`: driven by a task of its own (`gray_core::rollout::Rollout::spawn`), ordered about
//! on the admin listener.

use std::time::Duration;

use gray_core::rollout::Rollout;
use http::{Response, StatusCode};

use crate::proxy::{Proxy, ProxyBody, json, text};

impl Proxy {
    /// `POST /gray/rollout/{roll-back,promote,pause,resume}`, answered on the admin
    /// listener only: the `--rollout`'s canary to 0% now (Argo's `abort`), held there
    /// until the gateway stops; its next stage now (Argo's `promote`); its stage held
    /// until resumed, when it is judged afresh (Argo's `pause`). Answers the rollout's
    /// status, `409` without one.
    pub(crate) async fn order_rollout(&self, action: Action) -> Response<ProxyBody> {
        let Some(rollout) = self.rollout.get() else {
            return text(StatusCode::CONFLICT, "gray: no rollout\n".to_owned());
        };
        let result = match action {
            Action::RollBack => rollout.roll_back("rolled back by an operator").await,
            Action::Promote => rollout.promote().await,
            Action::Pause => rollout.pause("paused by an operator").await,
            Action::Resume => rollout.resume().await,
        };
        match result {
            Ok(_) => json(self.rollout_json().to_string()),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("gray: the rollout could not {}: {e}\n", action.verb()),
            ),
        }
    }
}

/// Starts `rollout` on a task of its own — a step every `every` until it completes or
/// rolls back, an operator's order whenever one comes — and keeps its handle, and so the
/// rollout and its hold on the canary's weight, until the gateway stops. A gateway runs
/// one rollout: a second is refused.
pub fn start_rollout(
    proxy: &Proxy,
    rollout: Rollout,
    every: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    const RUNNING: &str = "gray: a rollout is running already";
    // Checked before the rollout starts (and moves the weights), not after.
    if proxy.rollout.get().is_some() {
        return Err(RUNNING.into());
    }
    let handle = rollout.spawn(every)?;
    proxy.rollout.set(handle).map_err(|_| RUNNING.into())
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
