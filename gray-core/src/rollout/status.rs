//! Where a rollout stands ([`RolloutStatus`]), what a failed stage does ([`OnFailure`]),
//! and why a rollout cannot move ([`RolloutError`]).

use crate::rules::Error;

/// What to do when a stage fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Set the canary's weight back to 0 (default).
    #[default]
    RollBack,
    /// Keep the stage's weight and stop widening until [`Rollout::resume`](crate::rollout::Rollout::resume).
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
    /// A stage failed under [`OnFailure::Pause`], or [`Rollout::pause`](crate::rollout::Rollout::pause) stopped it: its
    /// weight stays.
    Paused {
        /// Index into the stages.
        stage: usize,
        /// The canary's weight in force, in percent.
        weight: f64,
        /// Why it paused: how the stage failed, or what [`Rollout::pause`](crate::rollout::Rollout::pause) was given.
        reason: String,
    },
    /// A stage failed, or [`Rollout::roll_back`](crate::rollout::Rollout::roll_back) was called: the canary's weight is 0.
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
    /// [`Rollout::spawn`](crate::rollout::Rollout::spawn) was called outside a tokio runtime.
    #[error("rollout: spawned outside a tokio runtime")]
    NoRuntime,
    /// [`Rollout::spawn`](crate::rollout::Rollout::spawn) was given no time between steps.
    #[error("rollout: the time between steps must be above 0")]
    ZeroInterval,
    /// The task driving a spawned rollout is gone:
    /// [`RolloutHandle::release`](crate::rollout::RolloutHandle::release) ended it, or its runtime
    /// shut down.
    #[error("rollout: the task driving it has stopped")]
    Stopped,
}
