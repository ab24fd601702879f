//! Following the rules where they are kept: a [`Watcher`] reloads a [`Gray`](crate::Gray)
//! whenever its rules file changes, Kubernetes ConfigMap updates included (feature
//! `watch`).
//!
//! ```no_run
//! use gray_core::Gray;
//! use gray_core::reload::Watcher;
//!
//! let gray = Gray::from_path("rules.yaml")?;
//! // Reloads on every change; a bad edit is refused, logged and counted, the rules in
//! // force stay. Dropping the watcher stops it.
//! let _watcher = Watcher::new(gray.clone(), "rules.yaml", |outcome| {
//!     if let Err(e) = outcome {
//!         eprintln!("rules refused: {e}");
//!     }
//! })?;
//! # Ok::<(), gray_core::Error>(())
//! ```

mod watch;

pub use watch::{Reloaded, Watcher};
