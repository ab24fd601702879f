//! [`Telemetry`]: what a server adapter records about one request, as asked.

use crate::context::GrayContext;
use crate::decision::Decision;
use crate::metrics::Measure;

/// What a server adapter records about one request: its per-version metrics
/// ([`Measure`], when asked to count) and its `tracing` span ([`GrayContext::span`], when
/// asked to trace). Made when the version is decided, kept in the response future, ended
/// with the response status. Empty (and free) when neither is asked for.
///
/// ```
/// use gray_core::{Config, Gray, Telemetry};
///
/// let gray = Gray::new(Config::from_yaml("versions: [stable]\n")?)?;
/// let req = http::Request::get("/").body(())?;
/// let decision = gray.decide(&req);
/// let ctx = decision.context();
/// let mut telemetry = Telemetry::new(&decision, &ctx, true, true);
/// let response = telemetry.in_scope(|| 200); // call the inner service here
/// {
///     let _entered = telemetry.enter(); // around each poll of its future
/// }
/// telemetry.finish(response);
/// assert_eq!(gray.metrics().version("stable").map(|v| v.total()), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Telemetry {
    measure: Option<Measure>,
    span: Option<tracing::Span>,
}

impl Telemetry {
    /// Starts what is asked for: the metrics clock (`metrics`) and the span (`trace`).
    #[inline]
    pub fn new(decision: &Decision, ctx: &GrayContext, metrics: bool, trace: bool) -> Self {
        Self {
            measure: metrics.then(|| decision.measure()).flatten(),
            span: trace.then(|| ctx.span()),
        }
    }

    /// Runs `f` inside the span, if there is one: call the inner service with it.
    #[inline]
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.span {
            Some(span) => span.in_scope(f),
            None => f(),
        }
    }

    /// Enters the span, if there is one, until the guard is dropped: hold it across each
    /// poll of the response future.
    #[inline]
    pub fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        self.span.as_ref().map(tracing::Span::enter)
    }

    /// Counts the request with its response `status`, once (later calls do nothing).
    #[inline]
    pub fn finish(&mut self, status: u16) {
        if let Some(measure) = self.measure.take() {
            measure.finish(status);
        }
    }
}
