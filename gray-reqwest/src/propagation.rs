//! [`GrayPropagation`]: the request's label on every outbound call.

use gray_core::{
    BAGGAGE_HEADER as BAGGAGE, BAGGAGE_KEY, DEFAULT_LABEL_HEADER, GrayContext, baggage_with,
};
use http::{Extensions, HeaderName, HeaderValue};
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
#[derive(Clone, Debug)]
pub struct GrayPropagation {
    header: Option<HeaderName>,
    baggage: bool,
}

impl Default for GrayPropagation {
    fn default() -> Self {
        Self {
            header: Some(HeaderName::from_static(DEFAULT_LABEL_HEADER)),
            baggage: true,
        }
    }
}

impl GrayPropagation {
    /// Propagation with the label in `x-gray-version` and in `baggage`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the label to `header` instead of `x-gray-version` (use the same name as the
    /// receiving service's `label.header`; `gray.label_header()` gives a service's own).
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = Some(header);
        self
    }

    /// Writes no label header, only `baggage` (for chains that carry context in W3C
    /// baggage alone, as OpenTelemetry does).
    pub fn baggage_only(mut self) -> Self {
        self.header = None;
        self.baggage = true;
        self
    }

    /// Whether to also write the `gray` member of W3C `baggage` (default `true`).
    pub fn baggage(mut self, baggage: bool) -> Self {
        self.baggage = baggage;
        self
    }

    /// Sets the label of `ctx` on `headers`, as the middleware does. Existing `baggage`
    /// members are kept (values that are not visible ASCII, which W3C baggage forbids,
    /// are dropped); an old `gray` member is replaced.
    pub fn apply(&self, ctx: &GrayContext, headers: &mut http::HeaderMap) {
        let Ok(value) = HeaderValue::from_str(ctx.version()) else {
            return; // not a header value: no label rather than a broken one
        };
        if let Some(header) = &self.header {
            headers.insert(header.clone(), value);
        }
        if self.baggage {
            let existing = headers
                .get_all(BAGGAGE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let existing = (!existing.is_empty()).then_some(existing.as_str());
            let merged = baggage_with(existing, BAGGAGE_KEY, ctx.version());
            if let Ok(merged) = HeaderValue::from_str(&merged) {
                headers.insert(BAGGAGE, merged);
            }
        }
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
