//! The response future of [`GrayService`](crate::GrayService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gray_core::{GrayContext, Telemetry};
use http::header::SET_COOKIE;
use http::{HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

pin_project! {
    /// Runs the inner service's future with the request's [`GrayContext`] as the current
    /// one (and in its `tracing` span when asked to), echoes the version on the response
    /// and counts the request in the per-version metrics when asked to, and gives a new
    /// client its split key (`set_cookie:`). Not boxed.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: TaskLocalFuture<GrayContext, F>,
        echo: Option<(HeaderName, HeaderValue)>,
        // Boxed: rare (a new client's first request), and the future stays small for
        // every other request.
        set_cookie: Option<Box<HeaderValue>>,
        telemetry: Telemetry,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: TaskLocalFuture<GrayContext, F>,
        echo: Option<(HeaderName, HeaderValue)>,
        set_cookie: Option<Box<HeaderValue>>,
        telemetry: Telemetry,
    ) -> Self {
        Self {
            inner,
            echo,
            set_cookie,
            telemetry,
        }
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
            let _entered = this.telemetry.enter();
            ready!(this.inner.poll(cx))
        };
        // An error from the inner service becomes a 500 for the client.
        this.telemetry
            .finish(result.as_ref().map_or(500, |res| res.status().as_u16()));
        let mut res = result?;
        if let Some((name, value)) = this.echo.take() {
            res.headers_mut().insert(name, value);
        }
        // Appended: the inner service's own cookies stay.
        if let Some(cookie) = this.set_cookie.take() {
            res.headers_mut().append(SET_COOKIE, *cookie);
        }
        Poll::Ready(Ok(res))
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("echo", &self.echo)
            .field("set_cookie", &self.set_cookie)
            .field("telemetry", &self.telemetry)
            .finish_non_exhaustive()
    }
}
