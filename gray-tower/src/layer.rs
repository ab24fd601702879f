//! [`GrayLayer`] and [`GrayService`]: decide each request's version once, carry it inward.

use std::task::{Context, Poll};

use gray_core::adapter::{Labeling, Options};
use gray_core::{Gray, GrayContext};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::view::TowerRequest;

/// Applies [`GrayService`]: decides the version of every request with a [`Gray`].
///
/// For each request the service
/// 1. decides once, honouring `label.inherit` (an incoming label header, or the `gray` member
///    of W3C `baggage`, is only trusted where the rules say so);
/// 2. puts the [`GrayContext`] in the request extensions (`Extension<GrayContext>` in axum),
///    and a [`Mirror`](gray_core::Mirror) when the deciding route's `mirror:` copies the
///    request — for a proxy behind the layer to send the copy;
/// 3. sets the label header (`x-gray-version` unless the rules name another) to the decided
///    version, overwriting what came in, so a proxy forwards the right one (an honoured
///    label that came once, already the decided version, is left as it is:
///    [`Decision::label_in_place`](gray_core::Decision::label_in_place)); a `gray` member
///    of W3C `baggage` that says otherwise is set to the decided version as well
///    ([`Decision::baggage_stale`](gray_core::Decision::baggage_stale)). A proxy should
///    strip hop-by-hop headers before this layer, not after: a client naming the label
///    header in `Connection` would otherwise have it removed once set (the `gateway`
///    example does it on receipt);
/// 4. calls the inner service exactly once and runs its future inside
///    [`GrayContext::scope`], so the handler and everything it awaits see
///    [`GrayContext::current`] — an outbound client with `gray_reqwest::GrayPropagation`
///    carries the label on. (In the inner service's synchronous `call`, read the context
///    from the request extensions.)
/// 5. appends `Set-Cookie` to the response of a client that came without the deciding
///    split's cookie, when the split has `set_cookie:` — the key it was placed by
///    ([`Decision::set_cookie`](gray_core::Decision::set_cookie)).
///
/// Rules on the client's address (`match.client_ip`, `split.by: client_ip`) and on the
/// peer a label comes from (`label.from`) read the connection's peer from axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`; serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or from a
/// [`PeerAddr`](gray_core::PeerAddr) extension put there by the server (with tonic, from
/// its `TcpConnectInfo`: see the crate docs), and behind proxies the client's address
/// from their header (`real_ip:`). A server that tells neither gives rules no client
/// address, and `label.from` refuses every label.
///
/// Apply it with `Router::layer`, or around the whole router — `GrayLayer::new(gray)
/// .layer(router)`, served with `axum::ServiceExt::<Request>::into_make_service` — which saves axum's
/// per-route layer wrapping (see `benches/README.md`).
///
/// ```
/// use axum::{Router, routing::get};
/// use gray_core::{Config, Gray, GrayContext};
/// use gray_tower::GrayLayer;
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: testers
///     match: { headers: [{ name: x-app-version, exact: beta }] }
///     to: canary
/// "#)?)?;
///
/// let app: Router = Router::new()
///     .route("/ping", get(|| async {
///         let version = GrayContext::current().map(|ctx| ctx.version().to_owned());
///         format!("pong from {}", version.unwrap_or_default())
///     }))
///     .layer(GrayLayer::new(gray).echo_version(true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct GrayLayer {
    gray: Gray,
    options: Options,
}

impl GrayLayer {
    /// A layer deciding with `gray`. Header names come from its rules (`label.header`).
    pub fn new(gray: Gray) -> Self {
        Self {
            gray,
            options: Options::new(),
        }
    }

    /// Also serve each request inside a `tracing` span `gray` with the decided `version`
    /// and `route` ([`GrayContext::span`]), so every event the handler and everything it
    /// awaits logs carries the version (off by default).
    ///
    /// The span is made in `call`, so it is a child of whatever span is entered there: the
    /// request span of tower-http's `TraceLayer` applied after this layer, for one.
    pub fn trace(mut self, trace: bool) -> Self {
        self.options = self.options.trace(trace);
        self
    }

    /// Also count every request under its version in the `Gray`'s per-version metrics
    /// ([`Gray::metrics`]): its status class (an inner service error counts as 5xx) and
    /// the time from the decision to the response. Off by default: it reads the clock
    /// twice per request (≈ 50 ns in `benches/`). A request whose future is dropped before
    /// its response is not counted.
    ///
    /// ```
    /// # use axum::{Router, routing::get};
    /// # use gray_core::{Config, Gray};
    /// use gray_tower::GrayLayer;
    ///
    /// # let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let scrape = gray.clone();
    /// let app: Router = Router::new()
    ///     .route("/ping", get(|| async { "pong" }))
    ///     .route("/metrics", get(move || async move { scrape.metrics().prometheus() }))
    ///     .layer(GrayLayer::new(gray).metrics(true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(mut self, record: bool) -> Self {
        self.options = self.options.metrics(record);
        self
    }

    /// Also set the label header on the response, echoing the version that served it
    /// (off by default: it tells clients which version they are on).
    pub fn echo_version(mut self, echo: bool) -> Self {
        self.options = self.options.echo(echo);
        self
    }
}

impl<S> Layer<S> for GrayLayer {
    type Service = GrayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrayService {
            inner,
            gray: self.gray.clone(),
            options: self.options,
        }
    }
}

/// The middleware made by [`GrayLayer`]; see there.
#[derive(Clone, Debug)]
pub struct GrayService<S> {
    inner: S,
    gray: Gray,
    options: Options,
}

impl<S> GrayService<S> {
    /// Wraps `inner`, deciding with `gray`.
    pub fn new(inner: S, gray: Gray) -> Self {
        GrayLayer::new(gray).layer(inner)
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

impl<S, B, ResBody> Service<Request<B>> for GrayService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The decision (and its snapshot guard) is dropped in `decide`, before any await.
        let labeling = Labeling::decide(&self.gray, &TowerRequest(&req), self.options);
        let (ctx, finish) = labeling.apply(&mut req);
        // The inner `call` finds the context in the extensions; its future, where handlers
        // run, also as `GrayContext::current()`.
        let future = finish.in_scope(|| self.inner.call(req));
        ResponseFuture::new(GrayContext::scope(ctx, future), finish)
    }
}
