//! [`Labeling`]: what one decision asks a server adapter to write on its request.

use http::{HeaderName, HeaderValue};

use super::finish::Finish;
use super::options::Options;
use crate::context::GrayContext;
use crate::decision::Decision;
use crate::engine::{Mirror, RequestView};
use crate::gray::Gray;
use crate::label::{Headers, relabel_baggage};

/// The request side of the contract every server adapter implements, for one request:
///
/// 1. the label header set to the decided version, overwriting what came in — unless an
///    honoured label that came once already says it
///    ([`Decision::label_in_place`](crate::Decision::label_in_place));
/// 2. a `gray` member of W3C `baggage` that says otherwise set to the decided version too
///    ([`Decision::baggage_stale`](crate::Decision::baggage_stale)), other members kept;
/// 3. the [`GrayContext`] in the request's extensions, and a [`Mirror`] beside it when the
///    deciding route's `mirror:` copies the request;
///
/// after which the adapter calls the inner service once, runs its future in
/// [`GrayContext::scope`] and keeps the [`Finish`] for the response.
///
/// ```
/// use gray_core::adapter::{Labeling, Options};
/// use gray_core::{Config, Gray, GrayContext};
///
/// let gray = Gray::new(Config::from_yaml(
///     "versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n",
/// )?)?;
/// let mut req = http::Request::get("/").header("x-gray-version", "spoofed").body(())?;
/// let (ctx, mut finish) = Labeling::decide(&gray, &req, Options::new().echo(true)).apply(&mut req);
/// assert_eq!(req.headers()["x-gray-version"], "canary");
/// assert_eq!(req.extensions().get::<GrayContext>(), Some(&ctx));
///
/// // The inner service, inside the context (an async adapter scopes its future instead).
/// let mut res = GrayContext::sync_scope(ctx, || finish.in_scope(|| http::Response::new(())));
/// finish.response(res.status().as_u16(), res.headers_mut());
/// assert_eq!(res.headers()["x-gray-version"], "canary"); // echoed
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Labeling {
    ctx: GrayContext,
    /// The label to set; `None` when it is in place already.
    label: Option<(HeaderName, HeaderValue)>,
    baggage_stale: bool,
    mirror: Option<Mirror>,
    finish: Finish,
}

impl Labeling {
    /// Decides `req` with `gray` and says what to write, as `options` ask. The decision,
    /// and the snapshot of the rules it holds, is dropped before this returns: nothing is
    /// held across an `.await`.
    #[inline]
    pub fn decide<R: RequestView + ?Sized>(gray: &Gray, req: &R, options: Options) -> Self {
        Self::new(&gray.decide(req), options)
    }

    /// What `decision` asks to be written, as `options` ask.
    #[inline]
    pub fn new(decision: &Decision, options: Options) -> Self {
        let ctx = decision.context();
        let label = (
            decision.label_header().clone(),
            decision.label_value().clone(),
        );
        let echo = options.echo_on().then(|| label.clone());
        Self {
            finish: Finish::new(decision, &ctx, options, echo),
            label: (!decision.label_in_place()).then_some(label),
            baggage_stale: decision.baggage_stale(),
            mirror: decision.mirror(),
            ctx,
        }
    }

    /// The request's context.
    #[inline]
    pub fn context(&self) -> &GrayContext {
        &self.ctx
    }

    /// Writes the label on the request's `headers` (any HTTP library's, through
    /// [`Headers`]), and gives back what goes in the request's extensions — the context and
    /// the mirror, if any — and the response's [`Finish`]. For `http` 1.x requests,
    /// [`apply`](Self::apply) does it all.
    #[inline]
    pub fn write<H: Headers + ?Sized>(
        self,
        headers: &mut H,
    ) -> (GrayContext, Option<Mirror>, Finish) {
        if let Some((name, value)) = self.label {
            headers.insert(name, value);
        }
        if self.baggage_stale {
            relabel_baggage(headers, self.ctx.version());
        }
        (self.ctx, self.mirror, self.finish)
    }

    /// [`write`](Self::write) on an `http` 1.x request, the context and the mirror put in
    /// its extensions; gives back the context, to run the inner service's future in
    /// [`GrayContext::scope`], and the response's [`Finish`].
    #[inline]
    pub fn apply<B>(self, req: &mut http::Request<B>) -> (GrayContext, Finish) {
        let (ctx, mirror, finish) = self.write(req.headers_mut());
        let extensions = req.extensions_mut();
        extensions.insert(ctx.clone());
        // A route's `mirror:` drew it: for whatever forwards the request to send a copy.
        if let Some(mirror) = mirror {
            extensions.insert(mirror);
        }
        (ctx, finish)
    }
}
