//! The order in which a request tries endpoints: its version's, not out and not tried
//! yet, picked by the power of two choices; then the default version's; last, the
//! default version's that are out (there is nowhere else to go).

use std::sync::Arc;

use super::version::{Tried, Upstream};

/// The endpoints a request may still try.
#[derive(Debug)]
pub(crate) struct Attempts<'a> {
    own: &'a Arc<Upstream>,
    /// The default version's, when it is not `own`.
    default: Option<&'a Arc<Upstream>>,
    own_tried: Tried,
    default_tried: Tried,
    stage: u8,
    /// The endpoint given last, and how many were given.
    last: Option<(&'a Arc<Upstream>, usize)>,
    given: u32,
}

impl<'a> Attempts<'a> {
    /// For a request to `own` (its version's endpoints, or the default version's when its
    /// version has none), with `default` the default version's.
    pub(crate) fn new(own: &'a Arc<Upstream>, default: Option<&'a Arc<Upstream>>) -> Self {
        Self {
            own,
            default: default.filter(|d| !Arc::ptr_eq(d, own)),
            own_tried: Tried::default(),
            default_tried: Tried::default(),
            stage: 0,
            last: None,
            given: 0,
        }
    }

    /// The next endpoint to try, and whether it is the default version's standing in for
    /// the request's own (`own` had endpoints, and none is left).
    pub(crate) fn next(&mut self) -> Option<(&'a Arc<Upstream>, usize, bool)> {
        loop {
            let (upstream, tried, even_out, fallback) = match (self.stage, self.default) {
                (0, _) => (self.own, &mut self.own_tried, false, false),
                (1, Some(default)) => (default, &mut self.default_tried, false, true),
                (2, Some(default)) => (default, &mut self.default_tried, true, true),
                (2, None) => (self.own, &mut self.own_tried, true, false),
                (1, None) => {
                    self.stage = 2;
                    continue;
                }
                _ => return None,
            };
            match upstream.pick(*tried, even_out) {
                Some(i) => {
                    tried.add(i);
                    self.last = Some((upstream, i));
                    self.given += 1;
                    return Some((upstream, i, fallback));
                }
                None => self.stage += 1,
            }
        }
    }

    /// The endpoint given last: the one that answered, when one did.
    pub(crate) fn last(&self) -> Option<(&'a Arc<Upstream>, usize)> {
        self.last
    }

    /// Whether more than one endpoint was given: the request was retried.
    pub(crate) fn retried(&self) -> bool {
        self.given > 1
    }
}
