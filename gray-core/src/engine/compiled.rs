//! The compiled rules: [`Engine`], its routes, their conditions and actions — built by
//! `compile`, read by `decide` and `explain` — and [`Outcome`], a decision as indexes into
//! them. Fields are the engine folder's own; the rest of the crate reads them through the
//! methods here.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};

use super::bucket::Weighted;
use super::client_ip::Networks;
use super::matcher::Pattern;
use super::mirror::{CompiledMirror, Mirror};
use super::set_cookie::AssignCookie;
use super::split_key::SplitKey;
use super::values::Reads;
use crate::context::GrayContext;
use crate::metrics::Slot;
use crate::rules::Config;

/// Why a decision came out the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// An incoming label was honoured (`label.inherit: always`).
    Inherited,
    /// A route matched.
    Route,
    /// No route matched: the default version.
    Default,
    /// The version chosen was marked unavailable ([`Gray::set_available`]): the default
    /// version serves instead.
    ///
    /// [`Gray::set_available`]: crate::Gray::set_available
    Fallback,
}

/// A decision as indexes into the engine that made it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    pub(super) version: u8,
    pub(super) route: Option<u32>,
    pub(super) source: Source,
    pub(super) label_rejected: bool,
    /// The request's label header already says exactly this version, once.
    pub(super) label_in_place: bool,
    /// The request's `baggage` may carry a `gray` member other than this version.
    pub(super) baggage_stale: bool,
    /// A copy goes to the route's mirror version too.
    pub(super) mirror: bool,
    /// The key drawn for a client that came without the split's cookie (`set_cookie`).
    pub(super) new_key: Option<NonZeroU64>,
}

/// A compiled config. Immutable once built, but for the unkeyed sequence counters and the
/// availability marks.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(super) config: Arc<Config>,
    pub(super) versions: Box<[Arc<str>]>,
    /// Each version's context when no route decided (inherited label, default version).
    pub(super) unrouted: Box<[GrayContext]>,
    /// Each version as a header value, built once (cloning one does not allocate).
    pub(super) version_values: Box<[HeaderValue]>,
    /// Each version's counter slot in the per-version metrics, if it has one.
    pub(super) metric_slots: Box<[Option<Slot>]>,
    pub(super) label_header: HeaderName,
    /// The label header's field, when incoming labels are looked at: to honour them
    /// (`inherit: always`), or to count them at an edge whose rules do not read that header.
    pub(super) label: Option<u32>,
    /// The bits of `label` and `baggage` in a decision's set of headers present.
    pub(super) label_bits: u64,
    /// `inherit: always`: a declared incoming label decides.
    pub(super) inherit: bool,
    /// The `baggage` header's field, when `label.baggage` is on: read for an incoming
    /// label when labels are looked at, and for a `gray` member to rewrite.
    pub(super) baggage: Option<u32>,
    /// The bit of `baggage` in a decision's set of headers present (0 without it).
    pub(super) baggage_bit: u64,
    /// What the rules read of a request, and where each value is kept while deciding.
    pub(super) reads: Reads,
    pub(super) routes: Box<[CompiledRoute]>,
    /// `label.from`: the peers an incoming label is honoured from.
    pub(super) label_from: Option<Networks>,
    /// A route reads the client's address, or `label.from` the peer's.
    pub(super) reads_peer: bool,
    /// One bit per version (by index): set when the version is marked unavailable.
    pub(super) unavailable: [AtomicU64; 4],
}

#[derive(Debug)]
pub(super) struct CompiledRoute {
    pub(super) name: Arc<str>,
    pub(super) conditions: Box<[Condition]>,
    /// Where each condition is in the config (`match.headers[0]`), for explanations.
    pub(super) condition_paths: Box<[Box<str>]>,
    pub(super) action: Action,
    /// The contexts this route hands out: one for `to`, one per version for a split.
    pub(super) contexts: Box<[GrayContext]>,
    /// Which requests are also copied to another version, if any.
    pub(super) mirror: Option<CompiledMirror>,
}

#[derive(Debug)]
pub(super) enum Condition {
    Value {
        field: u32,
        pattern: Pattern,
        invert: bool,
    },
    Path {
        pattern: Pattern,
        invert: bool,
    },
    Method(Box<str>),
    ClientIp {
        networks: Networks,
        invert: bool,
    },
}

#[derive(Debug)]
pub(super) enum Action {
    To(u8),
    Split {
        key: Option<SplitKey>,
        weighted: Box<Weighted>,
        /// `set_cookie`: a client without the key gets a new one.
        assign: Option<Box<AssignCookie>>,
    },
}

impl Outcome {
    /// The version's index in the engine's versions.
    #[inline]
    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// The deciding route's index, if a route decided.
    #[inline]
    pub(crate) fn route(&self) -> Option<u32> {
        self.route
    }

    #[inline]
    pub(crate) fn source(&self) -> Source {
        self.source
    }

    #[inline]
    pub(crate) fn label_rejected(&self) -> bool {
        self.label_rejected
    }

    #[inline]
    pub(crate) fn label_in_place(&self) -> bool {
        self.label_in_place
    }

    #[inline]
    pub(crate) fn baggage_stale(&self) -> bool {
        self.baggage_stale
    }

    /// Whether a `set_cookie` split drew a new key for the client.
    #[inline]
    pub(crate) fn has_new_key(&self) -> bool {
        self.new_key.is_some()
    }
}

impl Engine {
    /// The config it was compiled from.
    #[inline]
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The declared versions; the first is the default.
    #[inline]
    pub(crate) fn versions(&self) -> &[Arc<str>] {
        &self.versions
    }

    /// Version `index`'s name (an index from an [`Outcome`] of this engine).
    #[inline]
    pub(crate) fn version_name(&self, index: u8) -> &str {
        &self.versions[usize::from(index)]
    }

    /// Route `index`'s name (an index from an [`Outcome`] of this engine).
    #[inline]
    pub(crate) fn route_name(&self, index: u32) -> &str {
        &self.routes[index as usize].name
    }

    /// How many routes the rules have.
    pub(crate) fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// The header that carries the label.
    #[inline]
    pub(crate) fn label_header(&self) -> &HeaderName {
        &self.label_header
    }

    /// Version `index` as a header value, prebuilt.
    #[inline]
    pub(crate) fn label_value(&self, index: u8) -> &HeaderValue {
        &self.version_values[usize::from(index)]
    }

    /// Version `index`'s counter slot in the per-version metrics, if it has one.
    #[inline]
    pub(crate) fn metric_slot(&self, index: u8) -> Option<Slot> {
        self.metric_slots.get(usize::from(index)).copied().flatten()
    }

    /// Gives each version its counter slot, by index: `slot(name)` for each version.
    pub(crate) fn set_metric_slots(&mut self, slot: impl FnMut(&Arc<str>) -> Option<Slot>) {
        self.metric_slots = self.versions.iter().map(slot).collect();
    }

    /// Whether the rules read the client's address, or `label.from` the peer's.
    pub(crate) fn reads_peer(&self) -> bool {
        self.reads_peer
    }

    /// The copy an outcome sends to the deciding route's mirror version, if it drew one.
    #[inline]
    pub(crate) fn mirror(&self, outcome: &Outcome) -> Option<Mirror> {
        if !outcome.mirror {
            return None;
        }
        let route = self.routes.get(outcome.route? as usize)?;
        let mirror = route.mirror.as_ref()?;
        Some(mirror.copy(self.metric_slot(mirror.version())))
    }

    /// The `Set-Cookie` value giving a new client the key an outcome drew for it.
    #[inline]
    pub(crate) fn set_cookie(&self, outcome: &Outcome) -> Option<HeaderValue> {
        let key = outcome.new_key?;
        let route = self.routes.get(outcome.route? as usize)?;
        match &route.action {
            Action::Split {
                assign: Some(assign),
                ..
            } => assign.header_value(key.get()),
            _ => None,
        }
    }

    /// Whether version `index` is marked unavailable.
    #[inline]
    pub(crate) fn is_unavailable(&self, index: u8) -> bool {
        let word = &self.unavailable[usize::from(index >> 6)];
        word.load(Ordering::Relaxed) & (1 << (index & 63)) != 0
    }

    /// Marks version `index` unavailable or available again.
    pub(crate) fn set_unavailable(&self, index: u8, unavailable: bool) {
        let word = &self.unavailable[usize::from(index >> 6)];
        let bit = 1 << (index & 63);
        if unavailable {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}
