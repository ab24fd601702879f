//! [`GrayContext`]: the decided version, carried with the request.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::HeaderValue;
use tokio::task::futures::TaskLocalFuture;

use crate::label::BAGGAGE_KEY;

pub(crate) mod intern;

use intern::Names;

tokio::task_local! {
    static CURRENT: GrayContext;
}

/// The version (and route) decided for a request, owned and cheap to clone.
///
/// Server adapters put it in the request's extensions and run the handler inside
/// [`GrayContext::scope`], so that anything the handler awaits — an outbound HTTP client
/// above all — can read it with [`GrayContext::current`].
///
/// ```
/// use gray_core::GrayContext;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(GrayContext::current().is_none()); // outside any request
///
/// let seen = GrayContext::scope(GrayContext::new("canary"), async {
///     GrayContext::current().map(|ctx| ctx.version().to_owned())
/// })
/// .await;
/// assert_eq!(seen.as_deref(), Some("canary"));
/// # });
/// ```
///
/// A task-local is not inherited by `tokio::spawn`ed tasks: pass the context on explicitly.
///
/// ```
/// # use gray_core::GrayContext;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # GrayContext::scope(GrayContext::new("canary"), async {
/// let ctx = GrayContext::current();
/// let task = tokio::spawn(async move {
///     match ctx {
///         Some(ctx) => GrayContext::scope(ctx, async { /* calls carry the label */ }).await,
///         None => {}
///     }
/// });
/// # task.await.unwrap();
/// # }).await;
/// # });
/// ```
///
/// The engine builds one context per route and version when it compiles the rules, from
/// names it keeps for the life of the process, so handing one to a request copies a
/// pointer: no allocation, no reference count. A context made with [`GrayContext::new`] is
/// reference-counted. Contexts compare by version and route.
#[derive(Clone)]
pub struct GrayContext(Repr);

#[derive(Clone)]
enum Repr {
    /// Built by the engine from interned names.
    Interned(&'static Names),
    Shared(Arc<Names>),
}

impl GrayContext {
    /// A context for `version`, decided by no route (an explicit choice, a test).
    ///
    /// Reference-counted, never interned: the names it is given — from a caller, a test,
    /// a message — must not use up the room the engine's own contexts are interned in.
    pub fn new(version: impl Into<Arc<str>>) -> Self {
        Self::shared(version.into(), None)
    }

    fn shared(version: Arc<str>, route: Option<Arc<str>>) -> Self {
        Self(Repr::Shared(Arc::new(Names {
            version,
            route,
            label: None,
            baggage: None,
        })))
    }

    /// The engine's context for `version` decided by `route`: interned when the interner
    /// has room, else reference-counted.
    pub(crate) fn from_parts(version: Arc<str>, route: Option<Arc<str>>) -> Self {
        match intern::context(&version, route.as_ref()) {
            Some(names) => Self(Repr::Interned(names)),
            None => Self::shared(version, route),
        }
    }

    #[inline]
    fn names(&self) -> &Names {
        match &self.0 {
            Repr::Interned(names) => names,
            Repr::Shared(names) => names,
        }
    }

    /// The version, e.g. `"canary"`.
    #[inline]
    pub fn version(&self) -> &str {
        &self.names().version
    }

    /// The route that decided, if a route did.
    #[inline]
    pub fn route(&self) -> Option<&str> {
        self.names().route.as_deref()
    }

    /// The version as a `&'static str`, when this is one of the engine's contexts (built
    /// from names interned for the life of the process); `None` for one made with
    /// [`GrayContext::new`]. For adapters that build header values of their own types
    /// without copying the bytes or counting references per request.
    ///
    /// ```
    /// use gray_core::{Config, Gray, GrayContext};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let ctx = gray.decide(&http::Request::get("/").body(())?).context();
    /// assert_eq!(ctx.static_version(), Some("stable"));
    /// assert_eq!(GrayContext::new("canary").static_version(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn static_version(&self) -> Option<&'static str> {
        match &self.0 {
            Repr::Interned(names) => Some(&names.version),
            Repr::Shared(_) => None,
        }
    }

    /// The version as a label header value; `None` when it is no valid header value.
    /// Prebuilt for the engine's contexts (a clone copies a pointer).
    pub(crate) fn label_value(&self) -> Option<HeaderValue> {
        let names = self.names();
        match &names.label {
            Some(value) => Some(value.clone()),
            None => HeaderValue::from_str(&names.version).ok(),
        }
    }

    /// `gray=<version>`, the context's W3C baggage member, prebuilt for the engine's
    /// contexts.
    pub(crate) fn baggage_value(&self) -> Option<HeaderValue> {
        let names = self.names();
        match &names.baggage {
            Some(value) => Some(value.clone()),
            None => HeaderValue::from_str(&format!("{BAGGAGE_KEY}={}", names.version)).ok(),
        }
    }

    /// A `tracing` span named `gray`, at `INFO`, with fields `version` and `route`: adapters
    /// asked to (`GrayLayer::trace`, `GrayMiddleware::trace`) serve the request inside it,
    /// so every event logged while serving it carries the version.
    ///
    /// ```
    /// let span = gray_core::GrayContext::new("canary").span();
    /// let _entered = span.enter();
    /// tracing::info!("this event is in span `gray`, version canary");
    /// ```
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("gray", version = self.version(), route = self.route())
    }

    /// The context of the request being served by the current task, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Self::clone).ok()
    }

    /// The context in `extensions` — where server adapters put it on a request, and where a
    /// caller puts one for an outbound call — else [`current`](Self::current).
    ///
    /// ```
    /// use gray_core::GrayContext;
    ///
    /// let mut extensions = http::Extensions::new();
    /// assert!(GrayContext::from_extensions(&extensions).is_none());
    /// extensions.insert(GrayContext::new("canary"));
    /// let ctx = GrayContext::from_extensions(&extensions);
    /// assert_eq!(ctx.as_ref().map(GrayContext::version), Some("canary"));
    /// ```
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        extensions.get::<Self>().cloned().or_else(Self::current)
    }

    /// Runs `future` with `ctx` as the current context. The returned future is
    /// [`TaskLocalFuture`], a nameable type: no boxing.
    pub fn scope<F: Future>(ctx: Self, future: F) -> TaskLocalFuture<Self, F> {
        CURRENT.scope(ctx, future)
    }

    /// Runs `f` synchronously with `ctx` as the current context.
    pub fn sync_scope<T>(ctx: Self, f: impl FnOnce() -> T) -> T {
        CURRENT.sync_scope(ctx, f)
    }
}

impl fmt::Debug for GrayContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrayContext")
            .field("version", &self.version())
            .field("route", &self.route())
            .finish()
    }
}

impl fmt::Display for GrayContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.version())
    }
}

impl PartialEq for GrayContext {
    fn eq(&self, other: &Self) -> bool {
        self.version() == other.version() && self.route() == other.route()
    }
}

impl Eq for GrayContext {}

impl Hash for GrayContext {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.version().hash(state);
        self.route().hash(state);
    }
}
