//! The response future of [`GrayService`](crate::GrayService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gray_core::GrayContext;
use gray_core::adapter::Finish;
use http::Response;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

pin_project! {
    /// Runs the inner service's future with the request's [`GrayContext`] as the current
    /// one (and in its `tracing` span when asked to), then finishes the response as the
    /// contract says ([`Finish`]: metrics, echo, a new client's split cookie). Not boxed.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: TaskLocalFuture<GrayContext, F>,
        finish: Finish,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: TaskLocalFuture<GrayContext, F>, finish: Finish) -> Self {
        Self { inner, finish }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.finish.enter();
            ready!(this.inner.poll(cx))
        };
        match result {
            Ok(mut res) => {
                this.finish
                    .response(res.status().as_u16(), res.headers_mut());
                Poll::Ready(Ok(res))
            }
            Err(e) => {
                // An error from the inner service becomes a 500 for the client.
                this.finish.failed(500);
                Poll::Ready(Err(e))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("finish", &self.finish)
            .finish_non_exhaustive()
    }
}
