//! [`Decision`]: the version [`Gray::decide`](crate::Gray::decide) chose for a request,
//! why, and what the adapters write on the request because of it.

use std::fmt;
use std::sync::Arc;

use arc_swap::Guard;
use http::{HeaderName, HeaderValue};

use crate::context::GrayContext;
use crate::engine::{Engine, Mirror, Outcome, Source};
use crate::metrics::Measure;

/// The outcome of [`Gray::decide`](crate::Gray::decide): the version, and why.
pub struct Decision {
    engine: Guard<Arc<Engine>>,
    outcome: Outcome,
}

impl Decision {
    #[inline]
    pub(crate) fn new(engine: Guard<Arc<Engine>>, outcome: Outcome) -> Self {
        Self { engine, outcome }
    }

    /// The version that serves the request, e.g. `"canary"`.
    #[inline]
    pub fn version(&self) -> &str {
        self.engine.version_name(self.outcome.version())
    }

    /// The route that decided, or `None` for an inherited label or the default version.
    #[inline]
    pub fn route(&self) -> Option<&str> {
        self.outcome.route().map(|i| self.engine.route_name(i))
    }

    /// How the version was chosen.
    #[inline]
    pub fn source(&self) -> Source {
        self.outcome.source()
    }

    /// Whether the request carried a label (in the label header, or the `gray` member of
    /// `baggage`) that was refused: any label at an edge (`inherit: never`), whose rules
    /// do not read the label header themselves; an undeclared or too long one under
    /// `inherit: always`. Counted in [`Gray::rejected_labels`](crate::Gray::rejected_labels).
    #[inline]
    pub fn label_rejected(&self) -> bool {
        self.outcome.label_rejected()
    }

    /// Whether the request's label header already holds exactly this decision's version,
    /// once: an inherited label, honoured as it came. Adapters then leave the header as it
    /// is instead of setting it again. `false` whenever that is not certain (a label read
    /// from `baggage`, a repeated header, a fallback, any routed decision).
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml(
    ///     "label: { inherit: always }\nversions: [stable, canary]\n",
    /// )?)?;
    /// let labelled = http::Request::get("/").header("x-gray-version", "canary").body(())?;
    /// assert!(gray.decide(&labelled).label_in_place());
    ///
    /// let twice = http::Request::get("/")
    ///     .header("x-gray-version", "canary")
    ///     .header("x-gray-version", "stable")
    ///     .body(())?;
    /// let d = gray.decide(&twice);
    /// assert_eq!(d.version(), "canary"); // the first value counts…
    /// assert!(!d.label_in_place()); // …and the header is set again, to that one value
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn label_in_place(&self) -> bool {
        self.outcome.label_in_place()
    }

    /// Whether the request's W3C `baggage` may carry a `gray` member other than this
    /// decision's version (with `label.baggage` on): a label refused at an edge, one that
    /// lost to the label header or to a fallback. Adapters then rewrite it with
    /// [`relabel_baggage`](crate::label::relabel_baggage), as they set the label header, so a
    /// proxy forwards no contradicting label — services that pass `baggage` on but not the
    /// label header (OpenTelemetry) would carry it to one that trusts it. `false` for
    /// almost every request (no `baggage`, or no `gray` member in it): one bit test.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let edge = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let spoofed = http::Request::get("/").header("baggage", "gray=canary").body(())?;
    /// let d = edge.decide(&spoofed);
    /// assert_eq!(d.version(), "stable");
    /// assert!(d.baggage_stale());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn baggage_stale(&self) -> bool {
        self.outcome.baggage_stale()
    }

    /// The header that carries the label, from the same rules as the decision. Its name
    /// is `'static` (the default, or interned when the rules were compiled): cloning it
    /// copies a pointer.
    #[inline]
    pub fn label_header(&self) -> &HeaderName {
        self.engine.label_header()
    }

    /// The version as a header value, built when the rules were compiled over bytes kept
    /// for the life of the process: cloning it copies a pointer, so adapters set the label
    /// header without allocating or touching a shared reference count.
    #[inline]
    pub fn label_value(&self) -> &HeaderValue {
        self.engine.label_value(self.outcome.version())
    }

    /// Starts measuring the request for the per-version [`Metrics`](crate::metrics::Metrics) (reads
    /// the clock); end it with [`Measure::finish`] and the response status. `None` when
    /// the version got no counter slot: a process meters at most
    /// [`MAX_METERED_VERSIONS`](crate::metrics::MAX_METERED_VERSIONS) (`Gray`, version) pairs at
    /// once.
    #[inline]
    pub fn measure(&self) -> Option<Measure> {
        self.engine
            .metric_slot(self.outcome.version())
            .map(Measure::start)
    }

    /// Whether a copy of the request also goes to another version (the deciding route's
    /// `mirror:` drew it), and under which context; `None` for almost every request (one
    /// bit test). Never for a request the route already sends to the mirror version, nor
    /// while the mirror version is marked unavailable. Server adapters put it in the request
    /// extensions; see [`Mirror`].
    #[inline]
    pub fn mirror(&self) -> Option<Mirror> {
        self.engine.mirror(&self.outcome)
    }

    /// The `Set-Cookie` value for a client that came without the deciding split's cookie,
    /// when the split has `set_cookie:`: the key it was placed by, for the client to send
    /// from now on. `None` for every other request (one test of an `Option`), and for a
    /// fallback (the client then gets a key on a later request). Adapters append it to the
    /// response; building it allocates, once per new client.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: visitors
    ///     split:
    ///       by: { cookie: gray-uid }
    ///       weights: { stable: 50, canary: 50 }
    ///       set_cookie: {}
    /// "#)?)?;
    /// let first = gray.decide(&http::Request::get("/").body(())?);
    /// let cookie = first.set_cookie().expect("a new client gets a key");
    /// let cookie = cookie.to_str()?;
    /// assert!(cookie.ends_with("; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"));
    ///
    /// // Sent back, the key places the client where its first request went, for good.
    /// let key = cookie.split(';').next().unwrap_or_default();
    /// let again = gray.decide(&http::Request::get("/").header("cookie", key).body(())?);
    /// assert_eq!(again.version(), first.version());
    /// assert!(again.set_cookie().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        self.engine.set_cookie(&self.outcome)
    }

    /// An owned, cheap-to-clone context for the request, to put in request extensions and
    /// task-local scope. Built with the rules from interned names, so this copies a
    /// pointer: no allocation, and no reference count that every core would contend on.
    #[inline]
    pub fn context(&self) -> GrayContext {
        self.engine.context(&self.outcome).clone()
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("version", &self.version())
            .field("route", &self.route())
            .field("source", &self.source())
            .field("label_rejected", &self.label_rejected())
            .field("label_in_place", &self.label_in_place())
            .field("baggage_stale", &self.baggage_stale())
            .field("mirror", &self.mirror())
            .field("set_cookie", &self.outcome.has_new_key())
            .finish()
    }
}
