//! The public types a server shares between tasks and threads are `Send + Sync` (the
//! Rust API guidelines' C-SEND-SYNC), those it moves into a task `Send`: a change that
//! loses one fails to compile here, not in a user's `tokio::spawn`.

use gray_core::adapter::{Finish, Labeling, Propagation};
use gray_core::metrics::{Measure, Metrics, Reloads, VersionMetrics};
use gray_core::rollout::{Analysis, Rollout, RolloutError, RolloutHandle, RolloutStatus, Verdict};
use gray_core::{Config, Decision, Error, Gray, GrayContext, Mirror};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn shared_types_are_send_and_sync() {
    send_sync::<Gray>();
    send_sync::<Config>();
    send_sync::<GrayContext>();
    send_sync::<Metrics>();
    send_sync::<VersionMetrics>();
    send_sync::<Reloads>();
    send_sync::<Propagation>();
    send_sync::<Mirror>();
    send_sync::<Analysis>();
    send_sync::<Verdict>();
    send_sync::<RolloutStatus>();
    send_sync::<Error>();
    send_sync::<RolloutError>();
    #[cfg(feature = "watch")]
    send_sync::<gray_core::reload::Watcher>();
    // Moved into the task that drives it, or behind a `Mutex` shared with an admin route.
    send_sync::<Rollout>();
    // Cloned into admin routes.
    send_sync::<RolloutHandle>();
    // Kept in a response future, which a multi-threaded runtime moves between threads.
    send::<Measure>();
    send::<Finish>();
    send::<Labeling>();
    // Holds the rules' snapshot: made and dropped in a service's `call`.
    send::<Decision>();
}
