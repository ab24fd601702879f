//! Per-version metrics: requests by status class and a latency histogram for each version,
//! recorded by the server adapters when a response is ready, read as a [`Metrics`]
//! snapshot of one [`Gray`](crate::Gray) (by version name, across reloads) or as
//! Prometheus text; and [`Reloads`], what became of the rules' reloads.
//!
//! ```
//! use gray_core::{Config, Gray};
//!
//! let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
//! let req = http::Request::get("/").body(())?;
//! if let Some(measure) = gray.decide(&req).measure() {
//!     measure.finish(503); // the response's status
//! }
//! let stable = gray.metrics().version("stable").cloned().expect("declared");
//! assert_eq!((stable.total(), stable.error_rate()), (1, 1.0));
//! assert!(gray.metrics().prometheus().contains(r#"gray_requests_total{version="stable",class="5xx"} 1"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Recording takes no lock and writes no memory another core writes: each thread counts
//! into its own shard, and a read sums the shards. Each (`Gray`, version name) pair gets a
//! counter slot when rules declaring the version are first compiled, and gives it back
//! when the last clone of its `Gray` is dropped; a process has at most
//! [`MAX_METERED_VERSIONS`] of them at once, and versions met while they are all taken are
//! served but not counted.

mod prometheus;
mod record;
mod reloads;
mod snapshot;

pub use record::{LATENCY_BUCKETS, MAX_METERED_VERSIONS, Measure};
pub(crate) use record::{Slot, new_slot, release_slot};
pub use reloads::Reloads;
pub(crate) use reloads::fingerprint;
pub(crate) use snapshot::InForce;
pub use snapshot::{Metrics, VersionMetrics};
