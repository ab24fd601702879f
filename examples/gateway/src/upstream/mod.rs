//! The upstreams: each version's endpoints, their connections, their health, the
//! deadlines of the requests waiting on them, and the order in which a request tries
//! them.
//!
//! ```
//! use gray_gateway::upstream::Target;
//!
//! let target: Target = "http://10.0.0.7:8080/v2".parse().unwrap();
//! assert_eq!(target.addr(), "10.0.0.7:8080");
//! let grpc: Target = "h2c://10.0.0.8:50051".parse().unwrap();
//! assert_eq!(grpc.scheme(), gray_gateway::upstream::Scheme::H2c);
//! assert!("ftp://10.0.0.7".parse::<Target>().is_err());
//! ```

mod attempts;
mod check;
mod connect;
mod deadline;
mod eject;
mod endpoint;
mod h2;
mod pool;
mod target;
mod version;

pub use check::HealthCheck;
pub use connect::{UpstreamTls, UpstreamTlsError};
pub use deadline::{Deadlines, Elapsed, TICK, Within};
pub use eject::Ejection;
pub use target::{Scheme, Target};
pub use version::MAX_ENDPOINTS;

pub(crate) use attempts::Attempts;
pub(crate) use endpoint::{Carried, Endpoint};
pub(crate) use pool::{Failed, PoolError, PooledBody, ReadBody};
pub(crate) use version::Upstream;

use std::sync::Arc;

/// Every version's endpoints, in the order the command line gave them.
#[derive(Debug)]
pub(crate) struct Upstreams {
    list: Vec<Arc<Upstream>>,
}

impl Upstreams {
    /// `targets` grouped by version: a version named more than once has that many
    /// endpoints.
    pub(crate) fn new(targets: Vec<(String, Target)>, tls: Option<&UpstreamTls>) -> Self {
        let mut grouped: Vec<(String, Vec<Target>)> = Vec::new();
        for (version, target) in targets {
            match grouped.iter_mut().find(|(v, _)| *v == version) {
                Some((_, list)) => list.push(target),
                None => grouped.push((version, vec![target])),
            }
        }
        Self {
            list: grouped
                .into_iter()
                .map(|(v, t)| Arc::new(Upstream::new(v, t, tls)))
                .collect(),
        }
    }

    /// `version`'s own endpoints.
    pub(crate) fn get(&self, version: &str) -> Option<&Arc<Upstream>> {
        self.list.iter().find(|u| u.version() == version)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.list.iter()
    }

    /// Every endpoint's URL with its version, in order.
    pub(crate) fn targets(&self) -> Vec<(String, Target)> {
        let mut targets = Vec::new();
        for upstream in &self.list {
            for endpoint in upstream.endpoints() {
                targets.push((upstream.version().to_owned(), endpoint.target().clone()));
            }
        }
        targets
    }
}
