//! A version's endpoints and how a request picks one: the power of two choices on
//! requests in flight, among the endpoints not taken out and not tried yet.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gray_core::Gray;

use super::connect::UpstreamTls;
use super::eject::Ejection;
use super::endpoint::Endpoint;
use super::target::Target;

/// Most endpoints one version may have.
pub const MAX_ENDPOINTS: usize = 64;

/// A version and its endpoints.
#[derive(Debug)]
pub(crate) struct Upstream {
    version: String,
    endpoints: Box<[Arc<Endpoint>]>,
    /// Requests that failed on one of its endpoints before any of them was sent, and went
    /// to another endpoint.
    retries: AtomicU64,
}

/// The endpoints a request has tried, by index (at most [`MAX_ENDPOINTS`] per version).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tried(u64);

impl Tried {
    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    pub(crate) fn add(&mut self, i: usize) {
        self.0 |= 1 << i;
    }
}

impl Upstream {
    /// `version` with its endpoints (at most [`MAX_ENDPOINTS`]; those past it are dropped:
    /// the command line refuses them first).
    pub(crate) fn new(version: String, targets: Vec<Target>, tls: Option<&UpstreamTls>) -> Self {
        Self {
            version,
            endpoints: targets
                .into_iter()
                .take(MAX_ENDPOINTS)
                .map(|t| Arc::new(Endpoint::new(t, tls)))
                .collect(),
            retries: AtomicU64::new(0),
        }
    }

    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    pub(crate) fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether every endpoint is out.
    pub(crate) fn all_out(&self) -> bool {
        self.endpoints.iter().all(|e| e.is_out())
    }

    /// The endpoint for a request that has tried `tried`: of two picked at random among
    /// the others (not out, unless `even_out`), the one with fewer requests in flight.
    pub(crate) fn pick(&self, tried: Tried, even_out: bool) -> Option<usize> {
        let usable = |i: usize| !tried.has(i) && (even_out || !self.endpoints[i].is_out());
        if self.endpoints.len() == 1 {
            return usable(0).then_some(0);
        }
        let count = (0..self.endpoints.len()).filter(|&i| usable(i)).count();
        let nth = |n: usize| (0..self.endpoints.len()).filter(|&i| usable(i)).nth(n);
        match count {
            0 => None,
            1 => nth(0),
            _ => {
                let r = random();
                let a = (r % count as u64) as usize;
                let mut b = ((r >> 32) % (count as u64 - 1)) as usize;
                if b >= a {
                    b += 1;
                }
                let (a, b) = (nth(a)?, nth(b)?);
                let load = |i: usize| self.endpoints[i].in_flight();
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    /// An endpoint for a request that tries one only: one that is in if there is one.
    pub(crate) fn pick_one(&self) -> Option<usize> {
        self.pick(Tried::default(), false)
            .or_else(|| self.pick(Tried::default(), true))
    }

    /// Endpoint `i` got no answer. Takes it out on its `--eject-after`th failure in a row,
    /// for `--eject-for`; and when that leaves none of a version other than the default
    /// one in, marks the version unavailable until one is let back in.
    pub(crate) fn failed(self: &Arc<Self>, i: usize, gray: &Gray, ejection: Ejection) {
        let endpoint = &self.endpoints[i];
        if !endpoint.health.failed(ejection) {
            return;
        }
        let secs = ejection.duration.as_secs_f64();
        tracing::warn!(
            version = self.version,
            endpoint = %endpoint.target,
            "no answer from {}, again: taken out for {secs} s",
            endpoint.target,
        );
        self.mark(gray);
        let (upstream, gray) = (Arc::clone(self), gray.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ejection.duration).await;
            let endpoint = &upstream.endpoints[i];
            endpoint.health.readmit(ejection);
            tracing::info!(version = upstream.version, endpoint = %endpoint.target, "{} let back in", endpoint.target);
            upstream.mark(&gray);
        });
    }

    /// An active check of endpoint `i` passed or failed.
    pub(crate) fn checked(&self, i: usize, healthy: bool, gray: &Gray) {
        let endpoint = &self.endpoints[i];
        if endpoint.health.checked(healthy) {
            match healthy {
                true => {
                    tracing::info!(version = self.version, endpoint = %endpoint.target, "{}: health check passes, in again", endpoint.target)
                }
                false => {
                    tracing::warn!(version = self.version, endpoint = %endpoint.target, "{}: health check fails, taken out", endpoint.target)
                }
            }
            self.mark(gray);
        }
    }

    /// The version unavailable in `gray` when all its endpoints are out, available when
    /// one is in. The default version is never marked.
    fn mark(&self, gray: &Gray) {
        if gray
            .config()
            .versions
            .first()
            .is_some_and(|d| *d == self.version)
        {
            return;
        }
        let out = self.all_out();
        gray.set_available(&self.version, !out);
        if out {
            tracing::warn!(
                version = self.version,
                "every endpoint of {} is out: its requests go to the default version",
                self.version
            );
        }
    }
}

/// A random number, cheap: xorshift on a per-thread state seeded by the standard
/// library's hasher keys.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(0u8) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}
