//! The compiled rules and `decide`: no lock, no allocation, each request value read once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};

use crate::bucket::Weighted;
use crate::config::Config;
use crate::context::GrayContext;
use crate::matcher::Pattern;
use crate::request::RequestView;

/// Longest incoming label that is even looked at; longer ones are rejected unread.
pub const MAX_LABEL_LEN: usize = 64;

/// Request values that are read more than once per decision get one of these cache slots.
pub(crate) const SLOTS: usize = 8;
pub(crate) const NO_SLOT: u8 = u8::MAX;

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
    pub(crate) metric_slots: Box<[Option<u32>]>,
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
    /// One bit per version (by index): set when the version is marked unavailable.
    pub(crate) unavailable: [AtomicU64; 4],
}

/// Most rule headers one request can carry before the engine falls back to lookups.
pub(crate) const FOUND: usize = 8;

/// Header name → field, for the one pass over a request's headers.
#[derive(Debug)]
pub(crate) struct HeaderNames {
    /// Bit `n` is set when a rule header name is `n` bytes long (bit 63: 63 or more), so
    /// most request headers are passed over with one bit test.
    pub(crate) lengths: u64,
    pub(crate) lookup: NameLookup,
    /// The `host` header's field when a rule reads it, else `u32::MAX`: HTTP/2 sends the
    /// host in the URI's authority, not as a header, so it is asked for by name when the
    /// pass over the headers did not meet it.
    pub(crate) host: u32,
}

/// How a header name whose length matched is looked up.
#[derive(Debug)]
pub(crate) enum NameLookup {
    /// Few names: compared one by one.
    Linear(Box<[(Box<str>, u32)]>),
    /// Many names (a config with many routes on many headers).
    Hashed(std::collections::HashMap<Box<str>, u32>),
}

impl HeaderNames {
    /// The bit of `lengths` for a name of `len` bytes.
    #[inline]
    pub(crate) fn length_bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    #[inline]
    fn field(&self, name: &str) -> Option<u32> {
        if self.lengths & Self::length_bit(name.len()) == 0 {
            return None;
        }
        match &self.lookup {
            NameLookup::Linear(names) => names
                .iter()
                .find(|(n, _)| n.len() == name.len() && **n == *name)
                .map(|&(_, f)| f),
            NameLookup::Hashed(names) => names.get(name).copied(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lengths == 0
    }
}

/// Field `field`'s bit in a decision's set of headers present (fields past 63 share bits:
/// a set bit means "maybe present", a clear one "absent").
#[inline(always)]
pub(crate) fn field_bit(field: u32) -> u64 {
    1 << (field & 63)
}

/// A request value that rules read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Header(HeaderName),
    Cookie(Box<str>),
    Query(Box<str>),
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
}

#[derive(Debug)]
pub(crate) enum Action {
    To(u8),
    Split {
        key: Option<u32>,
        weighted: Box<Weighted>,
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
            || crate::baggage::label_differs([value], version)
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
                    };
                    return self.available_or_default(outcome);
                }
                None => label_rejected = true,
            }
        }
        for (index, route) in self.routes.iter().enumerate() {
            if route.conditions.iter().all(|c| c.holds(values)) {
                let version = match &route.action {
                    Action::To(version) => *version,
                    Action::Split { key, weighted } => match key.and_then(|k| values.get(k)) {
                        Some(key) if !key.is_empty() => weighted.keyed(key),
                        _ => weighted.next(),
                    },
                };
                // Route count is bounded by u32 at compile time.
                let outcome = Outcome {
                    version,
                    route: Some(index as u32),
                    source: Source::Route,
                    label_rejected,
                    label_in_place: false,
                    baggage_stale: false,
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
        }
    }
}

/// For a `host` header the request does not have, its URI's authority (HTTP/2 sends the
/// host there): what a view that cannot list its headers is asked after a miss. Out of
/// line: rare.
#[cold]
#[inline(never)]
fn authority_as_host<'r, R: RequestView + ?Sized>(
    req: &'r R,
    name: &HeaderName,
) -> Option<&'r [u8]> {
    (*name == http::header::HOST)
        .then(|| req.authority())
        .flatten()
        .map(str::as_bytes)
}

/// The request values of one decision, read lazily; values read twice are cached.
///
/// Headers are read in one pass when the request can list them: each request header
/// whose name a rule uses is kept in `found`, and a header not found is known absent.
pub(crate) struct Values<'r, R: ?Sized> {
    req: &'r R,
    fields: &'r [Field],
    slots: &'r [u8],
    filled: u8,
    cache: [Option<&'r [u8]>; SLOTS],
    /// Whether `found` holds every rule header of the request.
    scanned: bool,
    found_len: u8,
    /// Bit `i` is set when the header of `found[i]` came more than once.
    repeated: u8,
    /// Bit `f % 64` is set for each field `f` in `found`: a clear bit means absent.
    present: u64,
    /// `(field, value)`; `None` only in the unused tail, which keeps the array all zeroes
    /// when it is made (a `memset`, not a copy).
    found: [(u32, Option<&'r [u8]>); FOUND],
}

impl<'r, R: RequestView + ?Sized> Values<'r, R> {
    #[inline(always)]
    pub(crate) fn new(req: &'r R, engine: &'r Engine) -> Self {
        Self {
            req,
            fields: &engine.fields,
            slots: &engine.slots,
            filled: 0,
            cache: [None; SLOTS],
            scanned: false,
            found_len: 0,
            repeated: 0,
            present: 0,
            found: [(0, None); FOUND],
        }
    }

    /// Reads every header a rule uses in one pass over the request's headers.
    #[inline]
    pub(crate) fn scan(&mut self, names: &HeaderNames) {
        let mut len = 0usize;
        let mut overflow = false;
        let mut repeated = 0u8;
        let mut present = 0u64;
        let found = &mut self.found;
        let listed = self.req.for_each_header(|name, value| {
            let Some(field) = names.field(name) else {
                return;
            };
            if let Some(i) = found[..len].iter().position(|&(f, _)| f == field) {
                repeated |= 1 << i; // the first value counts
                return;
            }
            match found.get_mut(len) {
                Some(slot) => {
                    *slot = (field, Some(value));
                    present |= field_bit(field);
                    len += 1;
                }
                None => overflow = true,
            }
        });
        self.scanned = listed && !overflow;
        // `len <= FOUND`, which fits in a byte.
        self.found_len = len as u8;
        self.repeated = repeated;
        self.present = present;
        if names.host != u32::MAX {
            self.scan_authority(names.host);
        }
    }

    /// The end of [`scan`](Self::scan) when the rules read `host` (field `host`) and the
    /// request had no `Host` header: the URI's authority as `host` (HTTP/2 sends the host
    /// there). Out of line: rare.
    #[cold]
    #[inline(never)]
    fn scan_authority(&mut self, host: u32) {
        if !self.scanned || self.present & field_bit(host) != 0 {
            return;
        }
        let len = usize::from(self.found_len);
        if let (Some(value), Some(slot)) = (self.req.authority(), self.found.get_mut(len)) {
            *slot = (host, Some(value.as_bytes()));
            self.present |= field_bit(host);
            self.found_len += 1;
        }
    }

    /// Whether header `field` came exactly once; `false` when that is not known (the
    /// headers were not read in one pass).
    #[inline]
    fn only_once(&self, field: u32) -> bool {
        self.scanned
            && self.found[..usize::from(self.found_len)]
                .iter()
                .position(|&(f, _)| f == field)
                .is_some_and(|i| self.repeated & (1 << i) == 0)
    }

    #[inline(always)]
    fn get(&mut self, field: u32) -> Option<&'r [u8]> {
        let index = field as usize;
        let slot = self.slots.get(index).map_or(SLOTS, |&s| usize::from(s));
        if slot < SLOTS && self.filled & (1 << slot) != 0 {
            return self.cache[slot];
        }
        let value = match self.fields.get(index)? {
            Field::Header(_) if self.scanned => {
                if self.present & field_bit(field) == 0 {
                    return None;
                }
                return self.found[..usize::from(self.found_len)]
                    .iter()
                    .find(|&&(f, _)| f == field)
                    .and_then(|&(_, v)| v);
            }
            Field::Header(name) => self
                .req
                .header(name)
                .or_else(|| authority_as_host(self.req, name)),
            Field::Cookie(name) => self.req.cookie(name),
            Field::Query(name) => self.req.query_param(name),
        };
        if slot < SLOTS {
            self.cache[slot] = value;
            self.filled |= 1 << slot;
        }
        value
    }
}
