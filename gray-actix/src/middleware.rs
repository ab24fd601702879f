//! [`GrayMiddleware`]: decide each request's version in actix-web.

use std::cell::RefCell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue, SET_COOKIE};
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use gray_core::{Gray, GrayContext, Telemetry};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::view::ActixRequest;

/// actix-web middleware that decides the version of every request with a [`Gray`].
///
/// For each request it decides once (honouring `label.inherit`); inserts the
/// [`GrayContext`] into the request extensions (read it with the [`Gray`](crate::Gray)
/// extractor, `web::ReqData<GrayContext>` or `req.extensions().get::<GrayContext>()`), and
/// a [`Mirror`](gray_core::Mirror) beside it when the deciding route's `mirror:` copies the
/// request; sets the label header on the request to the decided version (and a `gray`
/// member of W3C `baggage` that says otherwise, see
/// [`Decision::baggage_stale`](gray_core::Decision::baggage_stale)); and runs the rest of
/// the chain inside [`GrayContext::scope`], so a `gray_reqwest::GrayPropagation` client
/// called from a handler carries the label on. The next service is called exactly once. A
/// client that came without the deciding split's cookie, when the split has `set_cookie:`,
/// gets it on the response ([`Decision::set_cookie`](gray_core::Decision::set_cookie)).
/// Rules on the client's address (`match.client_ip`, `split.by: client_ip`) and on the
/// peer a label comes from (`label.from`) read the connection's peer, and behind proxies
/// the client's address from their header when the rules' `real_ip:` trusts them (not
/// actix-web's `realip_remote_addr`, which believes any client's `Forwarded` or
/// `X-Forwarded-For`).
///
/// ```
/// use actix_web::{App, web};
/// use gray_actix::{Gray, GrayMiddleware};
///
/// # fn app(gray: gray_core::Gray) {
/// let app = App::new()
///     .wrap(GrayMiddleware::new(gray).echo_version(true))
///     .route("/ping", web::get().to(|Gray(ctx): Gray| async move {
///         format!("pong from {}", ctx.version())
///     }));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GrayMiddleware {
    gray: Gray,
    echo: bool,
    metrics: bool,
    trace: bool,
}

impl GrayMiddleware {
    /// Middleware deciding with `gray`; header names come from its rules.
    pub fn new(gray: Gray) -> Self {
        Self {
            gray,
            echo: false,
            metrics: false,
            trace: false,
        }
    }

    /// Also serve each request inside a `tracing` span `gray` with the decided `version`
    /// and `route` ([`GrayContext::span`]), so every event logged while serving it carries
    /// the version (off by default).
    pub fn trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// Also set the label header on the response (off by default).
    pub fn echo_version(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Also count every request under its version in the `Gray`'s per-version metrics
    /// ([`Gray::metrics`]): the status class of its response (of the error's response when
    /// the chain fails) and the time from the decision to the response (off by default: it
    /// reads the clock twice per request). Serve
    /// [`Metrics::prometheus`](gray_core::Metrics::prometheus) on a route to scrape them.
    pub fn metrics(mut self, record: bool) -> Self {
        self.metrics = record;
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for GrayMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = GrayMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GrayMiddlewareService {
            service,
            gray: self.gray.clone(),
            echo: self.echo,
            metrics: self.metrics,
            trace: self.trace,
            labels: Rc::default(),
        }))
    }
}

/// The service made by [`GrayMiddleware`]; see there.
#[derive(Debug)]
pub struct GrayMiddlewareService<S> {
    service: S,
    gray: Gray,
    echo: bool,
    metrics: bool,
    trace: bool,
    labels: Rc<RefCell<Labels>>,
}

/// The label header and values in actix's `http` 0.2 types, built once per worker. The
/// default header name and the engine's versions are built on `'static` bytes, so cloning
/// them per request copies a pointer (no reference count).
#[derive(Debug, Default)]
struct Labels {
    name: Option<(gray_core::http::HeaderName, HeaderName)>,
    values: Vec<(Box<str>, HeaderValue)>,
}

impl Labels {
    fn get(
        &mut self,
        name: &gray_core::http::HeaderName,
        ctx: &GrayContext,
    ) -> Option<(HeaderName, HeaderValue)> {
        let header = match &self.name {
            Some((core, actix)) if core == name => actix.clone(),
            _ => {
                let actix = if name == gray_core::DEFAULT_LABEL_HEADER {
                    HeaderName::from_static(gray_core::DEFAULT_LABEL_HEADER)
                } else {
                    HeaderName::from_bytes(name.as_str().as_bytes()).ok()?
                };
                self.name = Some((name.clone(), actix.clone()));
                actix
            }
        };
        let version = ctx.version();
        let value = match self.values.iter().find(|(v, _)| &**v == version) {
            Some((_, value)) => value.clone(),
            None => {
                let value = match ctx.static_version() {
                    Some(version) => {
                        HeaderValue::from_maybe_shared(Bytes::from_static(version.as_bytes()))
                    }
                    None => HeaderValue::from_str(version),
                }
                .ok()?;
                if self.values.len() >= gray_core::MAX_VERSIONS {
                    self.values.clear(); // versions changed by reloads: start over
                }
                self.values.push((version.into(), value.clone()));
                value
            }
        };
        Some((header, value))
    }
}

impl<S, B> Service<ServiceRequest> for GrayMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let (ctx, label, in_place, stale, mirror, set_cookie, telemetry) = {
            let decision = self.gray.decide(&ActixRequest(req.request()));
            let ctx = decision.context();
            let label = self.labels.borrow_mut().get(decision.label_header(), &ctx);
            let telemetry = Telemetry::new(&decision, &ctx, self.metrics, self.trace);
            let (in_place, stale) = (decision.label_in_place(), decision.baggage_stale());
            // `http` 1's value as actix's (`http` 0.2): the same checked bytes.
            let set_cookie = decision
                .set_cookie()
                .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
                .map(Box::new);
            (
                ctx,
                label,
                in_place,
                stale,
                decision.mirror(),
                set_cookie,
                telemetry,
            )
        };
        if let Some((name, value)) = label.as_ref().filter(|_| !in_place) {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        if stale {
            relabel_baggage(&mut req, ctx.version());
        }
        req.extensions_mut().insert(ctx.clone());
        // A route's `mirror:` drew it: for a proxying handler to send a copy.
        if let Some(mirror) = mirror {
            req.extensions_mut().insert(mirror);
        }
        let call = || telemetry.in_scope(|| self.service.call(req));
        let future = GrayContext::sync_scope(ctx.clone(), call);
        ResponseFuture {
            inner: GrayContext::scope(ctx, future),
            echo: if self.echo { label } else { None },
            set_cookie,
            telemetry,
        }
    }
}

/// [`gray_core::relabel_baggage`] on actix's header map (`http` 0.2).
#[cold]
fn relabel_baggage(req: &mut ServiceRequest, version: &str) {
    let baggage = HeaderName::from_static("baggage");
    let values = req.headers().get_all(&baggage).map(HeaderValue::as_bytes);
    let Some(relabeled) = gray_core::baggage_relabeled(values, version) else {
        return;
    };
    match HeaderValue::from_str(&relabeled) {
        Ok(value) => {
            req.headers_mut().insert(baggage, value);
        }
        Err(_) => {
            req.headers_mut().remove(baggage);
        }
    }
}

pin_project! {
    /// Runs the rest of the chain with the request's [`GrayContext`] as the current one (and
    /// in its `tracing` span when asked to); echoes the version and counts the request in
    /// the metrics when asked to; gives a new client its split key (`set_cookie:`).
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

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.telemetry.enter();
            ready!(this.inner.poll(cx))
        };
        let status = match &result {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        this.telemetry.finish(status.as_u16());
        let mut res = result?;
        if let Some((name, value)) = this.echo.take() {
            res.headers_mut().insert(name, value);
        }
        // Appended: the handler's own cookies stay.
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
