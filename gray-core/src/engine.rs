//! The compiled rules and `decide`: no lock, no allocation, each request value read once.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};

use crate::bucket::Weighted;
use crate::client_ip::{Networks, RealIp};
use crate::config::Config;
use crate::context::GrayContext;
use crate::matcher::Pattern;
use crate::metrics::Slot;
use crate::mirror::CompiledMirror;
use crate::request::RequestView;
use crate::set_cookie::{self, AssignCookie};
use crate::split_key::SplitKey;
use crate::values::{Field, HeaderNames, Values};

/// Longest incoming label that is even looked at; longer ones are rejected unread.
pub const MAX_LABEL_LEN: usize = 64;

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
    pub(crate) version: u8,
    pub(crate) route: Option<u32>,
    pub(crate) source: Source,
    pub(crate) label_rejected: bool,
    /// The request's label header already says exactly this version, once.
    pub(crate) label_in_place: bool,
    /// The request's `baggage` may carry a `gray` member other than this version.
    pub(crate) baggage_stale: bool,
    /// A copy goes to the route's mirror version too.
    pub(crate) mirror: bool,
    /// The key drawn for a client that came without the split's cookie (`set_cookie`).
    pub(crate) new_key: Option<NonZeroU64>,
}

/// A compiled config. Immutable once built, but for the unkeyed sequence counters and the
/// availability marks.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) config: Arc<Config>,
    pub(crate) versions: Box<[Arc<str>]>,
    /// Each version's context when no route decided (inherited label, default version).
    pub(crate) unrouted: Box<[GrayContext]>,
    /// Each version as a header value, built once (cloning one does not allocate).
    pub(crate) version_values: Box<[HeaderValue]>,
    /// Each version's counter slot in the per-version metrics, if it has one.
    pub(crate) metric_slots: Box<[Option<Slot>]>,
    pub(crate) label_header: HeaderName,
    /// The label header's field, when incoming labels are looked at: to honour them
    /// (`inherit: always`), or to count them at an edge whose rules do not read that header.
    pub(crate) label: Option<u32>,
    /// The bits of `label` and `baggage` in a decision's set of headers present.
    pub(crate) label_bits: u64,
    /// `inherit: always`: a declared incoming label decides.
    pub(crate) inherit: bool,
    /// The `baggage` header's field, when `label.baggage` is on: read for an incoming
    /// label when labels are looked at, and for a `gray` member to rewrite.
    pub(crate) baggage: Option<u32>,
    /// The bit of `baggage` in a decision's set of headers present (0 without it).
    pub(crate) baggage_bit: u64,
    pub(crate) fields: Box<[Field]>,
    /// Cache slot of each field (`NO_SLOT`: read at most once, so not cached).
    pub(crate) slots: Box<[u8]>,
    /// The header fields by name, for the one-pass read of a request's headers.
    pub(crate) header_names: HeaderNames,
    pub(crate) routes: Box<[CompiledRoute]>,
    /// `real_ip:`: whose forwarding header names the client.
    pub(crate) real_ip: Option<RealIp>,
    /// `label.from`: the peers an incoming label is honoured from.
    pub(crate) label_from: Option<Networks>,
    /// A route reads the client's address, or `label.from` the peer's.
    pub(crate) reads_peer: bool,
    /// One bit per version (by index): set when the version is marked unavailable.
    pub(crate) unavailable: [AtomicU64; 4],
}

#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) name: Arc<str>,
    pub(crate) conditions: Box<[Condition]>,
    /// Where each condition is in the config (`match.headers[0]`), for explanations.
    pub(crate) condition_paths: Box<[Box<str>]>,
    pub(crate) action: Action,
    /// The contexts this route hands out: one for `to`, one per version for a split.
    pub(crate) contexts: Box<[GrayContext]>,
    /// Which requests are also copied to another version, if any.
    pub(crate) mirror: Option<CompiledMirror>,
}

#[derive(Debug)]
pub(crate) enum Condition {
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
pub(crate) enum Action {
    To(u8),
    Split {
        key: Option<SplitKey>,
        weighted: Box<Weighted>,
        /// `set_cookie`: a client without the key gets a new one.
        assign: Option<Box<AssignCookie>>,
    },
}

impl Engine {
    /// `outcome`, or the default version when the version chosen is marked unavailable.
    #[inline]
    fn available_or_default(&self, outcome: Outcome) -> Outcome {
        if outcome.version == 0 || !self.is_unavailable(outcome.version) {
            return outcome;
        }
        Outcome {
            version: 0,
            route: None,
            source: Source::Fallback,
            label_rejected: outcome.label_rejected,
            label_in_place: false,
            baggage_stale: false,
            mirror: false,
            new_key: None,
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

    /// Decides a request. Reads each request value at most once. A version marked
    /// unavailable gives way to the default version.
    #[inline]
    pub(crate) fn decide<R: RequestView + ?Sized>(&self, req: &R) -> Outcome {
        let mut values = Values::new(req, self);
        // Scanned here, not in `new`: the caller's `values` is filled in place, never moved.
        if !self.header_names.is_empty() {
            values.scan(&self.header_names);
        }
        let mut outcome = self.decide_values(&mut values);
        // Most requests carry no baggage: one bit test.
        if values.present & self.baggage_bit != 0 || !values.scanned {
            outcome.baggage_stale = self.baggage_stale(&mut values, outcome.version);
        }
        outcome
    }

    /// Whether the request's `baggage` may carry a `gray` member that is not `version`:
    /// its first value names another (or more than one), or it is repeated or too long to
    /// be read here — the adapters then look at every value
    /// ([`baggage_relabeled`](crate::baggage_relabeled)).
    #[cold]
    #[inline(never)]
    fn baggage_stale<R: RequestView + ?Sized>(
        &self,
        values: &mut Values<'_, R>,
        version: u8,
    ) -> bool {
        let Some(baggage) = self.baggage else {
            return false;
        };
        let Some(value) = values.get(baggage) else {
            return false;
        };
        let version = self.versions.get(usize::from(version)).map_or("", |v| v);
        !values.only_once(baggage)
            || value.len() > crate::baggage::MAX_BAGGAGE_LEN
            || crate::baggage::label_in([value], version) == crate::baggage::Label::Other
    }

    /// [`decide`](Self::decide) on the request's values, scanned or not.
    #[inline(always)]
    fn decide_values<R: RequestView + ?Sized>(&self, values: &mut Values<'_, R>) -> Outcome {
        let mut label_rejected = false;
        if let Some((label, in_header)) = self.incoming_label(values) {
            // At an edge (`inherit: never`) every incoming label is refused: the adapters
            // overwrite it.
            let honoured = if self.inherit {
                self.version_index(label)
                    .filter(|_| self.label_from_trusted(values))
            } else {
                None
            };
            match honoured {
                Some(version) => {
                    let outcome = Outcome {
                        version,
                        route: None,
                        source: Source::Inherited,
                        label_rejected,
                        label_in_place: in_header,
                        baggage_stale: false,
                        mirror: false,
                        new_key: None,
                    };
                    return self.available_or_default(outcome);
                }
                None => label_rejected = true,
            }
        }
        for (index, route) in self.routes.iter().enumerate() {
            if route.conditions.iter().all(|c| c.holds(values)) {
                let mut new_key = None;
                let version = match &route.action {
                    Action::To(version) => *version,
                    Action::Split {
                        key,
                        weighted,
                        assign,
                    } => {
                        let mut ip = [0; 16];
                        // Never empty: an empty value is no key.
                        let key = key.as_ref().and_then(|key| key.read(values, &mut ip));
                        match key {
                            Some(key) => weighted.keyed(key),
                            _ if assign.is_some() => {
                                let key = set_cookie::new_key();
                                new_key = Some(key);
                                weighted.keyed(&set_cookie::key_text(key.get()))
                            }
                            _ => weighted.next(),
                        }
                    }
                };
                // Most routes copy nothing: one test of an `Option`.
                let mirror = route
                    .mirror
                    .as_ref()
                    .is_some_and(|m| !self.is_unavailable(m.version) && m.copies(version));
                // Route count is bounded by u32 at compile time.
                let outcome = Outcome {
                    version,
                    route: Some(index as u32),
                    source: Source::Route,
                    label_rejected,
                    label_in_place: false,
                    baggage_stale: false,
                    mirror,
                    new_key,
                };
                return self.available_or_default(outcome);
            }
        }
        Outcome {
            version: 0,
            route: None,
            source: Source::Default,
            label_rejected,
            label_in_place: false,
            baggage_stale: false,
            mirror: false,
            new_key: None,
        }
    }

    /// The incoming label, when labels are looked at: the label header, else the `gray`
    /// member of a W3C `baggage` header (when `label.baggage` is on). With it, whether it is
    /// the label header's one and only value (known when the headers were read in one pass).
    #[inline]
    fn incoming_label<'r, R: RequestView + ?Sized>(
        &self,
        values: &mut Values<'r, R>,
    ) -> Option<(&'r [u8], bool)> {
        let field = self.label?;
        // Most requests carry no label: one bit test.
        if values.scanned && values.present & self.label_bits == 0 {
            return None;
        }
        if let Some(label) = values.get(field) {
            return Some((label, values.only_once(field)));
        }
        let baggage = values.get(self.baggage?)?;
        let label = crate::baggage::member(baggage, crate::baggage::BAGGAGE_KEY)?;
        Some((label, false))
    }

    /// Whether the peer may hand this service a label (`label.from`; unset, any peer).
    /// Read only for a request that brings a declared label.
    #[inline]
    fn label_from_trusted<R: RequestView + ?Sized>(&self, values: &mut Values<'_, R>) -> bool {
        match &self.label_from {
            None => true,
            Some(from) => from.trusts(values.peer_ip()),
        }
    }

    /// The prebuilt context of an outcome.
    #[inline]
    pub(crate) fn context(&self, outcome: &Outcome) -> &GrayContext {
        let version = usize::from(outcome.version);
        let route = outcome.route.and_then(|i| self.routes.get(i as usize));
        let prebuilt = match route {
            Some(route) => match route.action {
                Action::To(_) => route.contexts.first(),
                Action::Split { .. } => route.contexts.get(version),
            },
            None => self.unrouted.get(version),
        };
        // Every outcome's context is built at compile time; `unrouted` has one per version.
        prebuilt.unwrap_or(&self.unrouted[0])
    }

    /// The declared version a label names, if it is one.
    pub(crate) fn version_index(&self, label: &[u8]) -> Option<u8> {
        if label.len() > MAX_LABEL_LEN {
            return None;
        }
        // At most 256 versions, validated at compile time.
        self.versions
            .iter()
            .position(|v| v.as_bytes() == label)
            .map(|i| i as u8)
    }
}

impl Condition {
    #[inline]
    pub(crate) fn holds<R: RequestView + ?Sized>(&self, values: &mut Values<'_, R>) -> bool {
        match self {
            Self::Value {
                field,
                pattern,
                invert,
            } => pattern.test(values.get(*field)) != *invert,
            Self::Path { pattern, invert } => {
                pattern.test(Some(values.req.path().as_bytes())) != *invert
            }
            Self::Method(method) => values.req.method() == &**method,
            Self::ClientIp { networks, invert } => {
                values.client_ip().is_some_and(|ip| networks.contains(ip)) != *invert
            }
        }
    }
}
