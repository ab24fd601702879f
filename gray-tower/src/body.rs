//! [`GrayBody`] and [`GrayBodyLayer`]: response bodies produced inside the request's
//! [`GrayContext`], also when the server polls them after the handler has returned.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gray_core::GrayContext;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pin_project! {
    /// A body whose frames are produced with the request's [`GrayContext`] as the current
    /// one, and inside the `tracing` span that was current when it was made (the request's
    /// `gray` span under [`GrayLayer::trace`](crate::GrayLayer::trace)).
    ///
    /// [`GrayLayer`](crate::GrayLayer) runs the handler inside the request's context, but a
    /// body streamed after the handler returns — server-sent events, a body built from a
    /// stream, a gRPC server stream — is polled by the server afterwards, outside it: an
    /// outbound call made while producing a frame would carry no label. Wrapped, every
    /// frame sees the context. A body that is all there when the handler returns (a
    /// string, JSON) needs nothing. Wrap one body with [`GrayBody::new`], or every response
    /// with [`GrayBodyLayer`].
    ///
    /// ```
    /// use axum::{Extension, Router, body::Body, routing::get};
    /// use gray_core::GrayContext;
    /// use gray_tower::GrayBody;
    ///
    /// # fn events() -> Body { Body::empty() }
    /// let app: Router = Router::new().route(
    ///     "/events",
    ///     // `events()`: a body produced lazily, frame by frame.
    ///     get(|Extension(ctx): Extension<GrayContext>| async move {
    ///         Body::new(GrayBody::new(ctx, events()))
    ///     }),
    /// );
    /// ```
    #[derive(Debug)]
    pub struct GrayBody<B> {
        #[pin]
        inner: B,
        ctx: Option<GrayContext>,
        span: tracing::Span,
    }
}

impl<B> GrayBody<B> {
    /// `inner`, polled with `ctx` as the current context, in the current `tracing` span.
    pub fn new(ctx: GrayContext, inner: B) -> Self {
        Self {
            inner,
            ctx: Some(ctx),
            span: tracing::Span::current(),
        }
    }

    /// The context the frames are produced in; `None` for a response whose request had
    /// none (no [`GrayLayer`](crate::GrayLayer) before [`GrayBodyLayer`]).
    pub fn context(&self) -> Option<&GrayContext> {
        self.ctx.as_ref()
    }

    /// Unwraps the body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for GrayBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        match this.ctx {
            // An engine's context is a pointer: the clone copies it.
            Some(ctx) => GrayContext::sync_scope(ctx.clone(), || this.inner.poll_frame(cx)),
            None => this.inner.poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Applies [`GrayBodyService`]: every response body becomes a [`GrayBody`] in the
/// request's context, so that bodies streamed after the handler returns — a gRPC server
/// stream above all, where tonic builds the body — keep the label on the calls made while
/// producing them, and their log lines the request's `gray` span.
///
/// Put it inside [`GrayLayer`](crate::GrayLayer), which puts the context in the request
/// extensions this layer reads. Each frame costs a task-local swap, which is why it is a
/// layer of its own rather than part of `GrayLayer`.
///
/// ```
/// use axum::{Router, routing::get};
/// use gray_core::{Config, Gray};
/// use gray_tower::{GrayBodyLayer, GrayLayer};
/// use tower::ServiceBuilder;
///
/// # let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
/// let app: Router = Router::new()
///     .route("/events", get(|| async { "streamed, say" }))
///     .layer(ServiceBuilder::new().layer(GrayLayer::new(gray)).layer(GrayBodyLayer));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GrayBodyLayer;

impl<S> Layer<S> for GrayBodyLayer {
    type Service = GrayBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrayBodyService { inner }
    }
}

/// The middleware made by [`GrayBodyLayer`]; see there.
#[derive(Clone, Debug)]
pub struct GrayBodyService<S> {
    inner: S,
}

impl<S> GrayBodyService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for GrayBodyService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GrayBody<ResBody>>;
    type Error = S::Error;
    type Future = GrayBodyFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let ctx = GrayContext::from_extensions(req.extensions());
        GrayBodyFuture {
            inner: self.inner.call(req),
            ctx,
            // `GrayLayer` calls inward inside its span, when it has one.
            span: tracing::Span::current(),
        }
    }
}

pin_project! {
    /// The response future of [`GrayBodyService`]: the inner one's, its body wrapped.
    #[derive(Debug)]
    pub struct GrayBodyFuture<F> {
        #[pin]
        inner: F,
        ctx: Option<GrayContext>,
        span: tracing::Span,
    }
}

impl<F, ResBody, E> Future for GrayBodyFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<GrayBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let (ctx, span) = (
            this.ctx.take(),
            std::mem::replace(this.span, tracing::Span::none()),
        );
        Poll::Ready(Ok(res.map(|inner| GrayBody { inner, ctx, span })))
    }
}
