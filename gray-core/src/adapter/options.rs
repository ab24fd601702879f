//! [`Options`]: what a server adapter does besides the contract — echo, metrics, trace.

/// What a server adapter was asked to do besides deciding and labelling each request: all
/// off by default. The adapters' own builders (`GrayLayer::metrics`,
/// `GrayMiddleware::trace`, …) set these.
///
/// ```
/// use gray_core::adapter::Options;
///
/// let options = Options::new().metrics(true).trace(true);
/// assert!(options.metrics_on() && options.trace_on() && !options.echo_on());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    echo: bool,
    metrics: bool,
    trace: bool,
}

impl Options {
    /// Everything off.
    pub const fn new() -> Self {
        Self {
            echo: false,
            metrics: false,
            trace: false,
        }
    }

    /// Set the label header on the response too, echoing the version that served it (it
    /// tells clients which version they are on).
    pub const fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Count every request under its version in the `Gray`'s per-version metrics: its
    /// status class and the time from the decision to the response (it reads the clock
    /// twice per request).
    pub const fn metrics(mut self, metrics: bool) -> Self {
        self.metrics = metrics;
        self
    }

    /// Serve each request inside a `tracing` span `gray` with the decided `version` and
    /// `route` ([`GrayContext::span`](crate::GrayContext::span)).
    pub const fn trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// Whether the version is echoed on the response.
    pub const fn echo_on(&self) -> bool {
        self.echo
    }

    /// Whether requests are counted in the metrics.
    pub const fn metrics_on(&self) -> bool {
        self.metrics
    }

    /// Whether requests are served in a span.
    pub const fn trace_on(&self) -> bool {
        self.trace
    }
}
