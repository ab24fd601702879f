//! gray-reqwest: placeholder until its issue lands; see the workspace README.
//!
//! ```
//! let _ = gray_reqwest::CRATE;
//! ```
#![deny(missing_docs)]

/// The crate's name.
pub const CRATE: &str = "gray-reqwest";
