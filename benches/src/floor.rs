//! [`Floor`]: the least a middleware does to meet `GrayLayer`'s contract.

use std::task::{Context, Poll};

use gray_core::adapter::{Labeling, Options};
use gray_core::{Gray, GrayContext};
use http::Request;
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

/// The four parts of `GrayLayer`'s contract (see `gray_core::adapter`) and nothing else:
/// decide, set the label header to the decided version, put the [`GrayContext`] in the
/// request extensions, and run the inner service's future in [`GrayContext::scope`] — the
/// request side through the same [`Labeling`] every adapter uses, with no response future
/// of its own and none of `GrayLayer`'s options (echo, metrics, tracing, `set_cookie`),
/// whose [`Finish`](gray_core::adapter::Finish) it drops.
///
/// Not for serving: the cost of the contract itself, which any implementation pays, for
/// `GrayLayer` to be measured against (`--bench layer`, `examples/layer_overhead.rs`,
/// `load/instructions.sh`).
#[derive(Clone, Debug)]
pub struct Floor<S> {
    inner: S,
    gray: Gray,
}

impl<S> Floor<S> {
    /// `inner` behind the four parts, deciding with `gray`.
    pub fn new(inner: S, gray: Gray) -> Self {
        Self { inner, gray }
    }
}

impl<S, B> Service<Request<B>> for Floor<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<GrayContext, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let labeling = Labeling::decide(&self.gray, &req, Options::new());
        let (ctx, _finish) = labeling.apply(&mut req);
        GrayContext::scope(ctx, self.inner.call(req))
    }
}
