//! [`Mirror`]: a request to copy to another version, whose answer nobody waits for
//! (traffic shadowing, Istio's `mirror`).

use std::fmt;

use super::bucket::{BUCKETS, Weighted};
use crate::context::GrayContext;
use crate::metrics::{Measure, Slot};

/// A copy of the request is to go to another version as well ([`Decision::mirror`]): a
/// route's `mirror:` drew this request. Server adapters put it in the request extensions
/// beside the [`GrayContext`]; whatever forwards the request sends the copy, under this
/// context, and discards the answer.
///
/// The copy's side effects are real: it reaches the mirror version labelled as such, and
/// the services it calls in turn see that label. The `gateway` example marks each copy
/// with `x-gray-shadow: true` so a service can tell and not write.
///
/// [`measure`](Self::measure) counts the copy under the mirror version in the per-version
/// [`Metrics`](crate::metrics::Metrics), as that version's own service counts it: the canary's
/// error rate and latency on production traffic show before it serves anyone, and a
/// [`Rollout`](crate::rollout::Rollout) of it judges the copies with the requests it serves
/// (Flagger's traffic mirroring).
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
pub struct Mirror {
    context: GrayContext,
    /// The mirror version's counter slot in the per-version metrics, if it has one.
    slot: Option<Slot>,
}

impl Mirror {
    /// The version the copy goes to.
    #[inline]
    pub fn version(&self) -> &str {
        self.context.version()
    }

    /// The copy's context: the mirror version, and the route that copied it.
    #[inline]
    pub fn context(&self) -> &GrayContext {
        &self.context
    }

    /// Starts measuring the copy (reads the clock), as
    /// [`Decision::measure`](crate::Decision::measure) does a request: end it with
    /// [`Measure::finish`] and the copy's status, to count it under the mirror version.
    /// `None` when that version got no counter slot.
    #[inline]
    pub fn measure(&self) -> Option<Measure> {
        self.slot.map(Measure::start)
    }
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mirror").field(&self.version()).finish()
    }
}

/// A route's compiled `mirror:`.
#[derive(Debug)]
pub(super) struct CompiledMirror {
    /// The mirror version's index.
    pub(super) version: u8,
    /// Which requests are copied: `None` for all of them; else a two-way sequence, 1 for
    /// "copy".
    draw: Option<Weighted>,
    /// The copies' context: the mirror version, and the route.
    pub(super) context: GrayContext,
}

impl CompiledMirror {
    /// A mirror to `version` of `percent_bp` basis points (1..=10_000) of the requests,
    /// copied under `context`.
    pub(super) fn new(version: u8, percent_bp: u16, context: GrayContext) -> Self {
        let draw =
            (percent_bp < BUCKETS).then(|| Weighted::new("", &[BUCKETS - percent_bp, percent_bp]));
        Self {
            version,
            draw,
            context,
        }
    }

    /// Whether a request that the route sends to `served` is copied.
    #[inline]
    pub(super) fn copies(&self, served: u8) -> bool {
        served != self.version && self.draw.as_ref().is_none_or(|d| d.next() == 1)
    }

    /// The mirror version's index.
    #[inline]
    pub(super) fn version(&self) -> u8 {
        self.version
    }

    /// A copy of a request it drew, counted in `slot` (the mirror version's).
    #[inline]
    pub(super) fn copy(&self, slot: Option<Slot>) -> Mirror {
        Mirror {
            context: self.context.clone(),
            slot,
        }
    }
}
