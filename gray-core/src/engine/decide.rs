//! `decide`: a request's version from the compiled rules — no lock, no allocation, each
//! request value read at most once.

use super::compiled::{Action, Condition, Engine, Outcome, Source};
use super::request::RequestView;
use super::set_cookie;
use super::values::Values;
use crate::context::GrayContext;
use crate::label::{self, BAGGAGE_KEY, Label, MAX_BAGGAGE_LEN, MAX_LABEL_LEN};

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

    /// Decides a request. Reads each request value at most once. A version marked
    /// unavailable gives way to the default version.
    #[inline]
    pub(crate) fn decide<R: RequestView + ?Sized>(&self, req: &R) -> Outcome {
        let mut values = Values::new(req, &self.reads);
        // Scanned here, not in `new`: the caller's `values` is filled in place, never moved.
        if !self.reads.header_names.is_empty() {
            values.scan(&self.reads.header_names);
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
    /// ([`baggage_relabeled`](crate::label::baggage_relabeled)).
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
            || value.len() > MAX_BAGGAGE_LEN
            || label::label_in([value], version) == Label::Other
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
        let label = label::member(baggage, BAGGAGE_KEY)?;
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
    pub(super) fn holds<R: RequestView + ?Sized>(&self, values: &mut Values<'_, R>) -> bool {
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
