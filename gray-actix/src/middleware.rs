//! [`GrayMiddleware`]: decide each request's version in actix-web.

use std::cell::RefCell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use gray_core::adapter::{Finish, Headers, Labeling, Options};
use gray_core::{Gray, GrayContext};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::view::ActixRequest;

/// actix-web middleware that decides the version of every request with a [`Gray`].
///
/// For each request it decides once (honouring `label.inherit`); inserts the
/// [`GrayContext`] into the request extensions (read it with the [`GrayVersion`](crate::GrayVersion)
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
/// use gray_actix::{GrayVersion, GrayMiddleware};
///
/// # fn app(gray: gray_core::Gray) {
/// let app = App::new()
///     .wrap(GrayMiddleware::new(gray).echo_version(true))
///     .route("/ping", web::get().to(|GrayVersion(ctx): GrayVersion| async move {
///         format!("pong from {}", ctx.version())
///     }));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GrayMiddleware {
    gray: Gray,
    options: Options,
}

impl GrayMiddleware {
    /// Middleware deciding with `gray`; header names come from its rules.
    pub fn new(gray: Gray) -> Self {
        Self {
            gray,
            options: Options::new(),
        }
    }

    /// Also serve each request inside a `tracing` span `gray` with the decided `version`
    /// and `route` ([`GrayContext::span`]), so every event logged while serving it carries
    /// the version (off by default).
    pub fn trace(mut self, trace: bool) -> Self {
        self.options = self.options.trace(trace);
        self
    }

    /// Also set the label header on the response (off by default).
    pub fn echo_version(mut self, echo: bool) -> Self {
        self.options = self.options.echo(echo);
        self
    }

    /// Also count every request under its version in the `Gray`'s per-version metrics
    /// ([`Gray::metrics`]): the status class of its response (of the error's response when
    /// the chain fails) and the time from the decision to the response (off by default: it
    /// reads the clock twice per request). Serve
    /// [`Metrics::prometheus`](gray_core::metrics::Metrics::prometheus) on a route to scrape them.
    pub fn metrics(mut self, record: bool) -> Self {
        self.options = self.options.metrics(record);
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
            options: self.options,
            labels: Rc::default(),
        }))
    }
}

/// The service made by [`GrayMiddleware`]; see there.
#[derive(Debug)]
pub struct GrayMiddlewareService<S> {
    service: S,
    gray: Gray,
    options: Options,
    labels: Rc<RefCell<Labels>>,
}

/// The label header and values in actix's `http` 0.2 types, built once per worker. The
/// default header name and the engine's versions are built on `'static` bytes, so cloning
/// them per request copies a pointer (no reference count).
#[derive(Debug, Default)]
struct Labels {
    name: Option<(gray_core::http::HeaderName, HeaderName)>,
    values: Vec<(gray_core::http::HeaderValue, HeaderValue)>,
}

impl Labels {
    /// `name` in actix's type.
    fn name(&mut self, name: &gray_core::http::HeaderName) -> Option<HeaderName> {
        match &self.name {
            Some((core, actix)) if core == name => Some(actix.clone()),
            _ => {
                let actix = if name == gray_core::label::DEFAULT_LABEL_HEADER {
                    HeaderName::from_static(gray_core::label::DEFAULT_LABEL_HEADER)
                } else {
                    HeaderName::from_bytes(name.as_str().as_bytes()).ok()?
                };
                self.name = Some((name.clone(), actix.clone()));
                Some(actix)
            }
        }
    }

    /// A label `value` in actix's type; `version` is its text when it is `'static` (the
    /// engine's), so the actix value is built on the same bytes.
    fn value(
        &mut self,
        value: &gray_core::http::HeaderValue,
        version: Option<&'static str>,
    ) -> Option<HeaderValue> {
        if let Some((_, actix)) = self.values.iter().find(|(core, _)| core == value) {
            return Some(actix.clone());
        }
        let actix = match version.filter(|v| v.as_bytes() == value.as_bytes()) {
            Some(version) => HeaderValue::from_maybe_shared(Bytes::from_static(version.as_bytes())),
            None => HeaderValue::from_bytes(value.as_bytes()),
        }
        .ok()?;
        if self.values.len() >= gray_core::rules::MAX_VERSIONS {
            self.values.clear(); // versions changed by reloads: start over
        }
        self.values.push((value.clone(), actix.clone()));
        Some(actix)
    }
}

/// An actix header map as gray-core's [`Headers`]: the label's name and value converted
/// through the worker's [`Labels`], anything else by its bytes.
struct ActixHeaders<'a> {
    map: &'a mut actix_web::http::header::HeaderMap,
    labels: &'a mut Labels,
    /// The version, when `'static`: what a label value is built on.
    version: Option<&'static str>,
}

impl Headers for ActixHeaders<'_> {
    fn get_all<'a>(
        &'a self,
        name: &'a gray_core::http::HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> {
        self.map.get_all(name.as_str()).map(HeaderValue::as_bytes)
    }

    fn insert(&mut self, name: gray_core::http::HeaderName, value: gray_core::http::HeaderValue) {
        let name = self.labels.name(&name);
        let value = self.labels.value(&value, self.version);
        if let (Some(name), Some(value)) = (name, value) {
            self.map.insert(name, value);
        }
    }

    fn append(&mut self, name: gray_core::http::HeaderName, value: gray_core::http::HeaderValue) {
        // `Set-Cookie`: once per new client, not worth a cache.
        let name = HeaderName::from_bytes(name.as_str().as_bytes());
        let value = HeaderValue::from_bytes(value.as_bytes());
        if let (Ok(name), Ok(value)) = (name, value) {
            self.map.append(name, value);
        }
    }

    fn remove(&mut self, name: &gray_core::http::HeaderName) {
        self.map.remove(name.as_str());
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
        let labeling = Labeling::decide(&self.gray, &ActixRequest(req.request()), self.options);
        let version = labeling.context().static_version();
        let (ctx, mirror, finish) = labeling.write(&mut ActixHeaders {
            map: req.headers_mut(),
            labels: &mut self.labels.borrow_mut(),
            version,
        });
        req.extensions_mut().insert(ctx.clone());
        // A route's `mirror:` drew it: for a proxying handler to send a copy.
        if let Some(mirror) = mirror {
            req.extensions_mut().insert(mirror);
        }
        let call = || finish.in_scope(|| self.service.call(req));
        let future = GrayContext::sync_scope(ctx.clone(), call);
        ResponseFuture {
            inner: GrayContext::scope(ctx, future),
            // The response's label header converted through the same worker's values.
            labels: finish.echoes().then(|| Rc::clone(&self.labels)),
            version,
            finish,
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
        finish: Finish,
        labels: Option<Rc<RefCell<Labels>>>,
        version: Option<&'static str>,
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
            let _entered = this.finish.enter();
            ready!(this.inner.poll(cx))
        };
        match result {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let mut labels = this.labels.as_ref().map(|labels| labels.borrow_mut());
                let mut scratch = Labels::default();
                this.finish.response(
                    status,
                    &mut ActixHeaders {
                        map: res.headers_mut(),
                        labels: labels.as_deref_mut().unwrap_or(&mut scratch),
                        version: *this.version,
                    },
                );
                Poll::Ready(Ok(res))
            }
            Err(e) => {
                let status = e.as_response_error().status_code();
                this.finish.failed(status.as_u16());
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
