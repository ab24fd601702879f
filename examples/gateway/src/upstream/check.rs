//! Active health checks (`--health-check PATH --health-every SECS`): every endpoint is
//! sent `GET PATH` that often; an answer other than 2xx, or none within the interval,
//! takes it out of its version's balancing until a check passes again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gray_core::Gray;
use http::{Request, Uri};
use http_body_util::BodyExt;

use super::pool::ReadBody;
use super::version::Upstream;

/// What to check and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path sent `GET`, e.g. `/healthz`.
    pub path: String,
    /// How often each endpoint is checked; an answer must come within it too.
    pub every: Duration,
}

impl HealthCheck {
    /// Checks every endpoint of `upstream`, each on a task of its own, while `gray` has
    /// other owners (the tasks end when the gateway is dropped).
    pub(crate) fn start(&self, upstream: &Arc<Upstream>, gray: &Gray) {
        for i in 0..upstream.endpoints().len() {
            let (check, upstream, gray) = (self.clone(), Arc::clone(upstream), gray.clone());
            let weak = Arc::downgrade(&upstream);
            drop(upstream);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(check.every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(upstream) = weak.upgrade() else {
                        break;
                    };
                    let healthy = check.once(&upstream, i).await;
                    upstream.checked(i, healthy, &gray);
                }
            });
        }
    }

    /// One check of endpoint `i`: a 2xx within [`every`](Self::every).
    async fn once(&self, upstream: &Upstream, i: usize) -> bool {
        let endpoint = &upstream.endpoints()[i];
        let Ok(path) = self.path.parse::<Uri>() else {
            return false;
        };
        let mut req = Request::new(ReadBody::new(Bytes::new()));
        let Ok(uri) = endpoint.address(&path, req.headers_mut(), false) else {
            return false;
        };
        *req.uri_mut() = uri;
        let exchange = async {
            let res = endpoint.read_pool.send(req).await.ok()?;
            let ok = res.status().is_success();
            // Read to the end, so the connection goes back to the pool.
            res.into_body().collect().await.ok()?;
            Some(ok)
        };
        matches!(
            tokio::time::timeout(self.every, exchange).await,
            Ok(Some(true))
        )
    }
}
