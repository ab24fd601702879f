//! [`GrayPropagation`]: the request's label on every outbound call.

use gray_core::GrayContext;
use gray_core::adapter::Propagation;
use http::{Extensions, HeaderName};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

/// A `reqwest_middleware` middleware that puts the request's version label on every
/// outbound call, so the next service keeps the request on the same version.
///
/// The label comes from a [`GrayContext`] in the call's extensions if one is given
/// (`RequestBuilder::with_extension`), else from [`GrayContext::current`] (set by
/// `gray_tower::GrayLayer` or `gray_actix::GrayMiddleware` for the request being served).
/// It is written to the label header (default `x-gray-version`) and, unless turned off,
/// as the `gray=<version>` member of the W3C `baggage` header, merged with the members
/// already there. With no context (outside a request, nothing given) nothing is added.
///
/// Every call the client makes inside a request is labelled, whatever its host. Calls to
/// third parties (a payment API, say) have no use for your version names: make them with
/// a client built without this middleware.
///
/// ```
/// use gray_reqwest::GrayPropagation;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(GrayPropagation::default())
///     .build();
/// // Inside a request handled behind GrayLayer, every call made with `client` carries
/// // `x-gray-version: <the request's version>` and `baggage: gray=<version>`.
/// # drop(client);
/// ```
#[derive(Clone, Debug, Default)]
pub struct GrayPropagation {
    propagation: Propagation,
}

impl From<Propagation> for GrayPropagation {
    fn from(propagation: Propagation) -> Self {
        Self { propagation }
    }
}

impl GrayPropagation {
    /// Propagation with the label in `x-gray-version` and in `baggage`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the label to `header` instead of `x-gray-version` (use the same name as the
    /// receiving service's `label.header`; `gray.label_header()` gives a service's own).
    pub fn header(self, header: HeaderName) -> Self {
        self.propagation.header(header).into()
    }

    /// Writes no label header, only `baggage` (for chains that carry context in W3C
    /// baggage alone, as OpenTelemetry does).
    pub fn baggage_only(self) -> Self {
        self.propagation.baggage_only().into()
    }

    /// Whether to also write the `gray` member of W3C `baggage` (default `true`).
    pub fn baggage(self, baggage: bool) -> Self {
        self.propagation.baggage(baggage).into()
    }

    /// Sets the label of `ctx` on `headers`, as the middleware does
    /// ([`Propagation::apply`]).
    pub fn apply(&self, ctx: &GrayContext, headers: &mut http::HeaderMap) {
        self.propagation.apply(ctx, headers);
    }
}

#[async_trait::async_trait]
impl Middleware for GrayPropagation {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if let Some(ctx) = GrayContext::from_extensions(extensions) {
            self.apply(&ctx, req.headers_mut());
        }
        next.run(req, extensions).await
    }
}
