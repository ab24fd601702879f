//! [`Hold`]: a canary weight that a [`Rollout`](crate::rollout::Rollout) keeps in force across
//! reloads, so that a rules file reloaded mid-rollout changes everything but that weight.

use std::sync::atomic::{AtomicU64, Ordering};

use super::config::Config;
use super::error::{Invalid, Problem};
use super::percent::BASIS_POINTS;

/// The canary's weight in one `split` route, held by one rollout: applied to every config
/// the `Gray` installs until the rollout lets go.
#[derive(Clone, Debug)]
pub(crate) struct Hold {
    /// Which rollout holds it: a later rollout of the same route takes the hold over, and
    /// an earlier one letting go must not release it.
    owner: u64,
    route: String,
    canary: String,
    /// Percent.
    weight: f64,
}

impl Hold {
    /// `owner`'s hold of `canary` at `weight` percent in route `route`.
    pub(crate) fn new(owner: u64, route: String, canary: String, weight: f64) -> Self {
        Self {
            owner,
            route,
            canary,
            weight,
        }
    }

    /// The route whose weights it holds.
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// Whether this is the hold on `route` (of `owner`, when given).
    pub(crate) fn holds(&self, route: &str, owner: Option<u64>) -> bool {
        self.route == route && owner.is_none_or(|owner| owner == self.owner)
    }

    /// A new owner's id, unique in the process.
    pub(crate) fn new_owner() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Gives the canary its held weight in `config`, taken from (or given back to) the
    /// default version; the split's other versions keep theirs.
    ///
    /// Nothing is held where there is nothing to hold — the route is gone or no longer a
    /// split, the canary is no longer declared or is now the default: the rollout's next
    /// step reports it, and a later reload that brings them back holds the weight again.
    /// A weight that does not fit beside the other versions' is an error naming the route
    /// and the rollout.
    pub(crate) fn apply(&self, config: &mut Config) -> Result<(), Invalid> {
        let Some(default) = config.versions.first().cloned() else {
            return Ok(());
        };
        if self.canary == default || !config.versions.contains(&self.canary) {
            return Ok(());
        }
        let route = config.routes.iter_mut().find(|r| r.name == self.route);
        let Some(split) = route.and_then(|r| r.split.as_mut()) else {
            return Ok(());
        };
        // Weights that do not add up as written are the config's own fault: left for its
        // validation to report, not made to add up by the hold.
        let points: f64 = split.weights.values().map(|w| (w * 100.0).round()).sum();
        if points != f64::from(BASIS_POINTS) {
            return Ok(());
        }
        let others: f64 = split
            .weights
            .iter()
            .filter(|(v, _)| **v != self.canary && **v != default)
            .map(|(_, w)| w)
            .sum();
        let rest = ((100.0 - others - self.weight) * 100.0).round() / 100.0;
        if rest < 0.0 {
            let problem = Problem::HeldByRollout {
                canary: self.canary.clone(),
                weight: self.weight,
                others,
            };
            return Err(Invalid::new(Some(&self.route), "split.weights", problem));
        }
        split.weights.insert(self.canary.clone(), self.weight);
        split.weights.insert(default, rest);
        Ok(())
    }
}
