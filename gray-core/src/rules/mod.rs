//! The rules file as types: what a YAML, TOML or JSON rules file holds ([`Config`] and its
//! parts), the formats, and what validation says is wrong with one ([`Invalid`],
//! [`Problem`]). For code that builds rules itself, reads them, or reports their errors.
//!
//! ```
//! use gray_core::rules::{Config, Problem, Route};
//!
//! let config = Config::from_yaml(r#"
//! versions: [stable, canary]
//! routes:
//!   - name: testers
//!     match: { headers: [{ name: x-app-version, exact: beta }] }
//!     to: canary
//! "#)?;
//! let testers: &Route = &config.routes[0];
//! assert_eq!(testers.to.as_deref(), Some("canary"));
//!
//! let bad = Config::from_yaml("versions: [stable]\nroutes: [{ name: a, to: beta }]\n")?;
//! let err = bad.validate().unwrap_err();
//! assert_eq!(err.invalid().map(|i| &i.problem), Some(&Problem::UnknownVersion("beta".into())));
//! # Ok::<(), gray_core::Error>(())
//! ```
//!
//! Rules can be built in code as well, with a constructor for each type and a method for
//! each optional part (`Config::new(..).route(Route::to(..).matching(..))`): the types are
//! `#[non_exhaustive]`, so a field added to the rules file later is no breaking change.
//!
//! A `Config` is only parsed here; [`Gray::new`](crate::Gray::new),
//! [`Gray::reload`](crate::Gray::reload) and [`Config::validate`] check it, naming the
//! route and field of each problem.

mod build;
mod config;
mod error;
mod format;
pub(crate) mod hold;
pub(crate) mod names;
mod parse;
mod percent;
#[cfg(feature = "schema")]
mod schema;

pub use config::{
    ClientIpMatch, Config, Inherit, LabelConfig, Match, MirrorConfig, PathMatch, RealIpConfig,
    Route, SetCookieConfig, Split, SplitBy, ValueMatch,
};
pub use error::Error;
pub(crate) use error::Problems;
pub use error::{Invalid, Problem};
pub use format::Format;

/// Most versions a config may declare (they are indexed by a byte).
pub const MAX_VERSIONS: usize = 256;
