//! [`GraySplit`]: one service per version behind one listener.

use std::task::{Context, Poll};

use gray_core::GrayContext;
use http::Request;
use tower_service::Service;

/// A service that sends each request to the service registered for its version.
///
/// The version is the request's [`GrayContext`] (from its extensions, as [`GrayLayer`](crate::GrayLayer)
/// puts it there, else [`GrayContext::current`]); a request with no context, or with a
/// version that has no service of its own, goes to the default service. Put
/// [`GrayLayer`](crate::GrayLayer) in front, so that every request has been decided:
///
/// ```
/// use axum::{Router, routing::get};
/// use gray_core::{Config, Gray};
/// use gray_tower::{GrayLayer, GraySplit};
/// use tower_layer::Layer;
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: users
///     split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } }
/// "#)?)?;
///
/// let stable: Router = Router::new().route("/", get(|| async { "v1" }));
/// let canary: Router = Router::new().route("/", get(|| async { "v2" }));
///
/// // Both versions of the app in one binary, behind one listener.
/// let split = GraySplit::new(stable).version("canary", canary);
/// let app: Router = Router::new().fallback_service(GrayLayer::new(gray).layer(split));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// All the services have one type `S`: routers are, and services of different types can
/// be made one with `tower::util::BoxCloneService` or `tower::util::Either`.
///
/// # On the client side: one upstream per version
/// Where each version of the next service has its own address (full-link gray), make one
/// client per version — a tonic `Channel`, a hyper-util client bound to one host — and
/// split them: inside a request, each call goes to the current version's upstream, and
/// with [`GrayPropagationLayer`](crate::GrayPropagationLayer) in front it carries the
/// label too (`tests/grpc.rs` runs this with tonic channels).
///
/// ```
/// use gray_core::GrayContext;
/// use gray_tower::{GrayPropagationLayer, GraySplit};
/// use http::{Request, Response};
/// use tower::{ServiceExt, service_fn, util::BoxCloneService};
/// use tower_layer::Layer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Stand-ins for two clients, each bound to one version's address.
/// let upstream = |name: &'static str| {
///     BoxCloneService::new(service_fn(move |_: Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(Response::new(name))
///     }))
/// };
/// let clients = GraySplit::new(upstream("stable.shop.svc"))
///     .version("canary", upstream("canary.shop.svc"));
/// let client = GrayPropagationLayer::default().layer(clients);
///
/// let call = client.clone().oneshot(Request::new(()));
/// let res = GrayContext::scope(GrayContext::new("canary"), call).await?;
/// assert_eq!(*res.body(), "canary.shop.svc");
/// let res = client.oneshot(Request::new(())).await?; // outside a request: the default
/// assert_eq!(*res.body(), "stable.shop.svc");
/// # Ok(())
/// # }
/// ```
///
/// # Readiness
/// Which service a request goes to is only known in `call`, so `poll_ready` polls every
/// service and is ready when all of them are (as `tower::steer::Steer` does). An axum
/// `Router` is always ready, so this costs nothing there; a service that applies
/// backpressure holds back every version while it is not ready.
#[derive(Clone, Debug)]
pub struct GraySplit<S> {
    default: S,
    versions: Vec<(Box<str>, S)>,
}

impl<S> GraySplit<S> {
    /// A split sending every request to `default` until versions are added.
    pub fn new(default: S) -> Self {
        Self {
            default,
            versions: Vec::new(),
        }
    }

    /// Sends requests decided for `version` to `service` (replacing an earlier one).
    pub fn version(mut self, version: impl Into<Box<str>>, service: S) -> Self {
        let version = version.into();
        self.versions.retain(|(v, _)| *v != version);
        self.versions.push((version, service));
        self
    }

    /// The service that serves `version`.
    pub fn service_for(&self, version: &str) -> &S {
        self.position(version)
            .map_or(&self.default, |i| &self.versions[i].1)
    }

    /// Where `version`'s service sits in `versions`, if it has one.
    fn position(&self, version: &str) -> Option<usize> {
        self.versions.iter().position(|(v, _)| &**v == version)
    }
}

impl<S, B> Service<Request<B>> for GraySplit<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut ready = self.default.poll_ready(cx)?.is_ready();
        for (_, service) in &mut self.versions {
            ready &= service.poll_ready(cx)?.is_ready();
        }
        if ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let index = match req.extensions().get::<GrayContext>() {
            Some(ctx) => self.position(ctx.version()),
            None => GrayContext::current().and_then(|ctx| self.position(ctx.version())),
        };
        match index {
            Some(i) => self.versions[i].1.call(req),
            None => self.default.call(req),
        }
    }
}
