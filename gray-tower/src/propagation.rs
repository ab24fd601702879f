//! [`GrayPropagationLayer`]: the request's label on every call of a tower HTTP client.

use std::task::{Context, Poll};

use gray_core::GrayContext;
use gray_core::adapter::Propagation;
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

/// Puts the request's version label on every outbound call of a tower HTTP client —
/// hyper-util's `Client`, a tonic `Channel`, anything that is a
/// `Service<http::Request<B>>` — so the next service keeps the request on the same
/// version. The tower counterpart of `gray_reqwest::GrayPropagation`.
///
/// The label comes from a [`GrayContext`] in the outbound request's extensions if one is
/// there, else from [`GrayContext::current`] (set by [`GrayLayer`](crate::GrayLayer) for
/// the request being served). It is written as [`Propagation`] says: by default the
/// `x-gray-version` header and the `gray=<version>` member of W3C `baggage`, merged with
/// the members already there. With no context (outside a request, nothing given) the call
/// goes out unchanged. The inner service's future is returned as it is: nothing happens
/// after the response. Every call is labelled, whatever its host: keep calls to third
/// parties on a client without this layer.
///
/// ```
/// use gray_core::GrayContext;
/// use gray_core::adapter::Propagation;
/// use gray_tower::GrayPropagationLayer;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A stand-in for an HTTP client: answers with the label it was sent.
/// let client = service_fn(|req: Request<()>| async move {
///     let label = req.headers().get("x-gray-version").cloned();
///     Ok::<_, std::convert::Infallible>(Response::new(label))
/// });
/// let client = ServiceBuilder::new()
///     .layer(GrayPropagationLayer::default())
///     .service(client);
///
/// // Inside a request served behind GrayLayer, the context is current:
/// let call = client.clone().oneshot(Request::new(()));
/// let res = GrayContext::scope(GrayContext::new("canary"), call).await?;
/// assert_eq!(res.body().as_ref().map(|v| v.as_bytes()), Some(&b"canary"[..]));
///
/// // Outside a request, nothing is added.
/// let res = client.oneshot(Request::new(())).await?;
/// assert!(res.body().is_none());
///
/// // Another header name, no baggage:
/// let layer = GrayPropagationLayer::from(
///     Propagation::new().header(http::HeaderName::from_static("x-release")).baggage(false),
/// );
/// # drop(layer);
/// # Ok(())
/// # }
/// ```
///
/// Tasks started with `tokio::spawn` do not inherit the request's context; see
/// [`GrayContext::scope`] to carry it along.
#[derive(Clone, Debug, Default)]
pub struct GrayPropagationLayer {
    propagation: Propagation,
}

impl GrayPropagationLayer {
    /// Propagation with the label in `x-gray-version` and in `baggage`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl From<Propagation> for GrayPropagationLayer {
    fn from(propagation: Propagation) -> Self {
        Self { propagation }
    }
}

impl<S> Layer<S> for GrayPropagationLayer {
    type Service = GrayPropagationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrayPropagationService {
            inner,
            propagation: self.propagation.clone(),
        }
    }
}

/// The client middleware made by [`GrayPropagationLayer`]; see there.
#[derive(Clone, Debug)]
pub struct GrayPropagationService<S> {
    inner: S,
    propagation: Propagation,
}

impl<S> GrayPropagationService<S> {
    /// Wraps `inner`, writing the label as `propagation` says.
    pub fn new(inner: S, propagation: Propagation) -> Self {
        Self { inner, propagation }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for GrayPropagationService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(ctx) = GrayContext::from_extensions(req.extensions()) {
            self.propagation.apply(&ctx, req.headers_mut());
        }
        self.inner.call(req)
    }
}
