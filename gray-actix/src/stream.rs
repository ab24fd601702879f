//! [`GrayStream`]: a streamed response produced inside the request's [`GrayContext`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use gray_core::GrayContext;
use pin_project_lite::pin_project;

pin_project! {
    /// A stream whose items are produced with the request's [`GrayContext`] as the current
    /// one, and inside the `tracing` span that was current when it was made (the request's
    /// `gray` span under [`GrayMiddleware::trace`](crate::GrayMiddleware::trace)).
    ///
    /// [`GrayMiddleware`](crate::GrayMiddleware) runs the handler inside the request's
    /// context, but the stream of `HttpResponse::streaming` is polled by actix after the
    /// handler returns, outside it: an outbound call made while producing an item would
    /// carry no label, and a log line no version. Wrapped, every item sees both.
    ///
    /// ```
    /// use actix_web::{HttpResponse, web};
    /// use gray_actix::{GrayVersion, GrayStream};
    ///
    /// # struct Items;
    /// # impl futures_core::Stream for Items {
    /// #     type Item = Result<web::Bytes, std::io::Error>;
    /// #     fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
    /// #         -> std::task::Poll<Option<Self::Item>> { std::task::Poll::Ready(None) }
    /// # }
    /// # fn items() -> Items { Items }
    /// async fn events(GrayVersion(ctx): GrayVersion) -> HttpResponse {
    ///     // `items()`: a stream produced lazily, item by item.
    ///     HttpResponse::Ok().streaming(GrayStream::new(ctx, items()))
    /// }
    /// ```
    #[derive(Debug)]
    pub struct GrayStream<S> {
        #[pin]
        inner: S,
        ctx: GrayContext,
        span: tracing::Span,
    }
}

impl<S> GrayStream<S> {
    /// `inner`, polled with `ctx` as the current context, in the current `tracing` span.
    pub fn new(ctx: GrayContext, inner: S) -> Self {
        Self {
            inner,
            ctx,
            span: tracing::Span::current(),
        }
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Stream> Stream for GrayStream<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _entered = this.span.enter();
        // An engine's context is a pointer: the clone copies it.
        GrayContext::sync_scope(this.ctx.clone(), || this.inner.poll_next(cx))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
