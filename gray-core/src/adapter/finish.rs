//! [`Finish`]: what a server adapter does with a request's response — echo the version,
//! give a new client its split cookie, count the request — and the span it is served in.

use http::header::SET_COOKIE;
use http::{HeaderName, HeaderValue};

use super::options::Options;
use crate::context::GrayContext;
use crate::decision::Decision;
use crate::label::Headers;
use crate::metrics::Measure;

/// The response side of one request's contract, made with its
/// [`Labeling`](super::Labeling): kept in the adapter's response future, it serves each
/// poll in the request's span ([`enter`](Self::enter), when tracing), and when the response
/// is ready ([`response`](Self::response)) counts it under its version (when counting),
/// echoes the version on it (when echoing), and appends the `Set-Cookie` that gives a
/// client without the deciding split's cookie its key (`set_cookie:`). Empty and free when
/// none of that applies.
///
/// ```
/// use gray_core::adapter::{Labeling, Options};
/// use gray_core::{Config, Gray};
///
/// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
/// let mut req = http::Request::get("/").body(())?;
/// let (_ctx, mut finish) = Labeling::decide(&gray, &req, Options::new().metrics(true)).apply(&mut req);
/// let mut res = finish.in_scope(|| http::Response::new(())); // call the inner service here
/// finish.response(res.status().as_u16(), res.headers_mut());
/// assert_eq!(gray.metrics().version("stable").map(|v| v.total()), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Finish {
    echo: Option<(HeaderName, HeaderValue)>,
    // Boxed: rare (a new client's first request), and the future that keeps the finish
    // stays small for every other request.
    set_cookie: Option<Box<HeaderValue>>,
    measure: Option<Measure>,
    span: Option<tracing::Span>,
}

impl Finish {
    /// The finish of `decision`'s request, whose context is `ctx`, as `options` ask; `echo`
    /// is its label, when echoed.
    #[inline]
    pub(super) fn new(
        decision: &Decision,
        ctx: &GrayContext,
        options: Options,
        echo: Option<(HeaderName, HeaderValue)>,
    ) -> Self {
        Self {
            echo,
            set_cookie: decision.set_cookie().map(Box::new),
            measure: options.metrics_on().then(|| decision.measure()).flatten(),
            span: options.trace_on().then(|| ctx.span()),
        }
    }

    /// Runs `f` inside the request's span, if it has one: call the inner service with it.
    #[inline]
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.span {
            Some(span) => span.in_scope(f),
            None => f(),
        }
    }

    /// Enters the request's span, if it has one, until the guard is dropped: hold it
    /// across each poll of the response future.
    #[inline]
    pub fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        self.span.as_ref().map(tracing::Span::enter)
    }

    /// Whether [`response`](Self::response) writes the label header (echo is on).
    #[inline]
    pub fn echoes(&self) -> bool {
        self.echo.is_some()
    }

    /// The response is ready, with `status`: counts the request, then writes on the
    /// response's `headers` — the label header (echo), and `Set-Cookie` appended, so the
    /// inner service's own cookies stay. Once: later calls do nothing.
    #[inline]
    pub fn response<H: Headers + ?Sized>(&mut self, status: u16, headers: &mut H) {
        self.count(status);
        if let Some((name, value)) = self.echo.take() {
            headers.insert(name, value);
        }
        if let Some(cookie) = self.set_cookie.take() {
            headers.append(SET_COOKIE, *cookie);
        }
    }

    /// The inner service failed with no response to write on: counts the request with
    /// `status`, the one its error is answered with (500 where there is none). Once, as
    /// [`response`](Self::response).
    #[inline]
    pub fn failed(&mut self, status: u16) {
        self.count(status);
        self.echo = None;
        self.set_cookie = None;
    }

    #[inline]
    fn count(&mut self, status: u16) {
        if let Some(measure) = self.measure.take() {
            measure.finish(status);
        }
    }
}
