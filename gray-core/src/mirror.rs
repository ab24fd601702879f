//! [`Mirror`]: a request to copy to another version, whose answer nobody waits for
//! (traffic shadowing, Istio's `mirror`).

use std::fmt;

use crate::bucket::{BUCKETS, Weighted};
use crate::context::GrayContext;

/// A copy of the request is to go to another version as well ([`Decision::mirror`]): a
/// route's `mirror:` drew this request. Server adapters put it in the request extensions
/// beside the [`GrayContext`]; whatever forwards the request sends the copy, under this
/// context, and discards the answer.
///
/// The copy's side effects are real: it reaches the mirror version labelled as such, and
/// the services it calls in turn see that label. The `gateway` example marks each copy
/// with `x-gray-shadow: true` so a service can tell and not write.
///
/// ```
/// use gray_core::{Config, Gray};
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: everyone
///     to: stable
///     mirror: { to: canary }
/// "#)?)?;
/// let decision = gray.decide(&http::Request::get("/").body(())?);
/// assert_eq!(decision.version(), "stable");
/// let mirror = decision.mirror().expect("every request is copied");
/// assert_eq!(mirror.version(), "canary");
/// assert_eq!(mirror.context().route(), Some("everyone"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Decision::mirror`]: crate::Decision::mirror
#[derive(Clone, PartialEq)]
pub struct Mirror(GrayContext);

impl Mirror {
    /// The version the copy goes to.
    #[inline]
    pub fn version(&self) -> &str {
        self.0.version()
    }

    /// The copy's context: the mirror version, and the route that copied it.
    #[inline]
    pub fn context(&self) -> &GrayContext {
        &self.0
    }
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mirror").field(&self.version()).finish()
    }
}

/// A route's compiled `mirror:`.
#[derive(Debug)]
pub(crate) struct CompiledMirror {
    /// The mirror version's index.
    pub(crate) version: u8,
    /// Which requests are copied: `None` for all of them; else a two-way sequence, 1 for
    /// "copy".
    draw: Option<Weighted>,
    pub(crate) mirror: Mirror,
}

impl CompiledMirror {
    /// A mirror to `version` of `percent_bp` basis points (1..=10_000) of the requests,
    /// copied under `context`.
    pub(crate) fn new(version: u8, percent_bp: u16, context: GrayContext) -> Self {
        let draw =
            (percent_bp < BUCKETS).then(|| Weighted::new("", &[BUCKETS - percent_bp, percent_bp]));
        Self {
            version,
            draw,
            mirror: Mirror(context),
        }
    }

    /// Whether a request that the route sends to `served` is copied.
    #[inline]
    pub(crate) fn copies(&self, served: u8) -> bool {
        served != self.version && self.draw.as_ref().is_none_or(|d| d.next() == 1)
    }
}
