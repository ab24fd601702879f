//! Staged rollouts: a [`Rollout`] widens a canary in one `split` route stage by stage
//! (5% → 30% → 100%), judging each stage on the per-version metrics since it began
//! ([`Analysis`]: 5xx rate against a ceiling and against the default version, a latency
//! quantile against the default version's), and rolls the canary back to 0% — or pauses —
//! when it is worse.
//!
//! ```
//! use gray_core::rollout::{Rollout, RolloutStatus};
//! use gray_core::{Config, Gray};
//!
//! let gray = Gray::new(Config::from_yaml(r#"
//! versions: [stable, canary]
//! routes:
//!   - name: users
//!     split: { by: { header: x-user-id }, weights: { stable: 100, canary: 0 } }
//! "#)?)?;
//! let mut rollout = Rollout::new(gray.clone(), "users", "canary", [5.0, 30.0, 100.0])?;
//! rollout.start()?;
//! assert_eq!(rollout.status(), &RolloutStatus::Progressing { stage: 0, weight: 5.0 });
//! assert_eq!(gray.config().routes[0].split.as_ref().map(|s| s.weights["canary"]), Some(5.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each stage is held at least [`Rollout::min_stage_duration`], a few failing readings are
//! tolerated with [`Rollout::failure_limit`], and your own verdicts join the analysis's with
//! [`Rollout::step_with`]. Drive it with [`Rollout::step`] from a timer, or let a tokio task
//! drive it ([`Rollout::spawn`]) and order it about through its [`RolloutHandle`].

mod analysis;
mod handle;
mod staged;
mod status;
mod step;

pub use analysis::{Analysis, Verdict};
pub use handle::RolloutHandle;
pub use staged::Rollout;
pub use status::{OnFailure, RolloutError, RolloutStatus};
