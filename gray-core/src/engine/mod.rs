//! The engine: rules compiled into a table that decides a request with no lock and no
//! allocation. Most of it is the crate's own; what is public here is for those who look
//! inside a decision — the hashing a keyed split uses ([`bucket`]), and why each route did
//! or did not take a request ([`RouteCheck`], from [`Gray::explain`](crate::Gray::explain)).
//!
//! ```
//! use gray_core::engine::{BUCKETS, bucket};
//!
//! // A keyed split hashes its salt (the route name by default) and the key.
//! let b = bucket("users", b"42");
//! assert!(b < BUCKETS);
//! assert_eq!(b, bucket("users", b"42")); // sticky
//! ```
//!
//! How a request goes through it: `compile` (with `route`) turns a
//! [`Config`](crate::Config) into an `Engine` (`compiled`); `decide` reads the request's
//! values through `values` (and `split_key`, `client_ip`, `real_ip`), tries the routes'
//! conditions (`matcher`) and places keys in buckets (`bucket`).

mod bucket;
mod client_ip;
mod compile;
mod compiled;
mod decide;
mod explain;
mod matcher;
mod mirror;
mod real_ip;
mod request;
mod route;
mod set_cookie;
mod split_key;
mod values;

pub use bucket::{BUCKETS, bucket};
pub use client_ip::PeerAddr;
pub use compiled::Source;
pub(crate) use compiled::{Engine, Outcome};
pub use explain::RouteCheck;
pub use mirror::Mirror;
pub use request::RequestView;
