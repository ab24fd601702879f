//! Interned names: the contexts, label values and (non-default) label header name the
//! engine hands out per request are built from `'static` data, so handing one out copies a
//! pointer — no reference count touched per request, on any core.
//!
//! Each distinct (version, route) pair, version name and header name is stored once for
//! the life of the process, however many times the rules are reloaded; the store is capped
//! ([`MAX_INTERNED_BYTES`]), and past the cap the engine builds reference-counted values
//! instead (correct, a few nanoseconds slower per request).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::label::BAGGAGE_KEY;

/// A context's names.
#[derive(Debug)]
pub(super) struct Names {
    pub(super) version: Arc<str>,
    pub(super) route: Option<Arc<str>>,
    /// Interned contexts only: the version as a header value, and as the `gray` member of
    /// W3C baggage, with `'static` bytes, for outbound calls to write without allocating.
    pub(super) label: Option<HeaderValue>,
    pub(super) baggage: Option<HeaderValue>,
}

/// Most bytes the interner keeps (names, plus a fixed charge per entry for bookkeeping).
pub(crate) const MAX_INTERNED_BYTES: usize = 1 << 20;

/// What one entry is charged beyond its names' bytes.
const ENTRY_OVERHEAD: usize = 64;

type ContextKey = (Box<str>, Option<Box<str>>);

#[derive(Default)]
struct Store {
    bytes: usize,
    contexts: HashMap<ContextKey, &'static Names>,
    values: HashMap<Box<str>, HeaderValue>,
    names: HashMap<Box<str>, HeaderName>,
}

/// What keeping names of `bytes` bytes in one entry is charged: the fixed overhead, and
/// the bytes twice (kept as the map's key and in what it hands out).
const fn entry_cost(bytes: usize) -> usize {
    ENTRY_OVERHEAD + 2 * bytes
}

impl Store {
    /// `text` as a header value whose bytes are `'static`, kept once; `None` when it is no
    /// valid header value or the store is full.
    fn value(&mut self, text: &str) -> Option<HeaderValue> {
        if let Some(value) = self.values.get(text) {
            return Some(value.clone());
        }
        // Checked before anything is kept.
        HeaderValue::from_str(text).ok()?;
        if !self.charge(entry_cost(text.len())) {
            return None;
        }
        let bytes: &'static [u8] = Box::leak(Box::<[u8]>::from(text.as_bytes()));
        let value = HeaderValue::from_maybe_shared(Bytes::from_static(bytes)).ok()?;
        self.values.insert(text.into(), value.clone());
        Some(value)
    }

    /// The names of a context for `version`, decided by `route`, kept once (with its label
    /// and baggage values); `None` when the store is full.
    fn context(&mut self, version: &Arc<str>, route: Option<&Arc<str>>) -> Option<&'static Names> {
        let key: ContextKey = (version.as_ref().into(), route.map(|r| r.as_ref().into()));
        if let Some(&names) = self.contexts.get(&key) {
            return Some(names);
        }
        if !self.charge(entry_cost(version.len() + route.map_or(0, |r| r.len()))) {
            return None;
        }
        let label = self.value(version);
        let baggage = label
            .as_ref()
            .and_then(|_| self.value(&format!("{BAGGAGE_KEY}={version}")));
        let names: &'static Names = Box::leak(Box::new(Names {
            version: Arc::clone(version),
            route: route.cloned(),
            label,
            baggage,
        }));
        self.contexts.insert(key, names);
        Some(names)
    }

    /// `name` with its bytes `'static`, kept once; `None` when the store is full.
    fn name(&mut self, name: &HeaderName) -> Option<HeaderName> {
        let name = name.as_str();
        if let Some(interned) = self.names.get(name) {
            return Some(interned.clone());
        }
        if !self.charge(entry_cost(name.len())) {
            return None;
        }
        let leaked: &'static str = Box::leak(Box::<str>::from(name));
        // A parsed `HeaderName`'s text is a valid, lowercase name; checked again rather
        // than trusted (`from_static` would panic on an invalid one).
        let interned = HeaderName::from_lowercase(leaked.as_bytes())
            .ok()
            .map(|_| HeaderName::from_static(leaked))?;
        self.names.insert(name.into(), interned.clone());
        Some(interned)
    }

    /// Charges `cost` bytes, or refuses when that would pass the cap.
    fn charge(&mut self, cost: usize) -> bool {
        match self.bytes.checked_add(cost) {
            Some(total) if total <= MAX_INTERNED_BYTES => {
                self.bytes = total;
                true
            }
            _ => false,
        }
    }
}

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(Mutex::default);

fn with_store<T>(f: impl FnOnce(&mut Store) -> T) -> T {
    // A poisoned lock only means a panic elsewhere; the maps are always whole.
    f(&mut STORE.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The interned names of a context for `version`, decided by `route`; `None` once the
/// store is full.
pub(super) fn context(version: &Arc<str>, route: Option<&Arc<str>>) -> Option<&'static Names> {
    with_store(|store| store.context(version, route))
}

/// `version` as a header value whose bytes are `'static` (cloning it copies a pointer);
/// `None` when `version` is no valid header value or the store is full.
pub(crate) fn header_value(version: &str) -> Option<HeaderValue> {
    with_store(|store| store.value(version))
}

/// `name` with its bytes `'static` (cloning it copies a pointer); `None` when the store
/// is full.
pub(crate) fn header_name(name: &HeaderName) -> Option<HeaderName> {
    with_store(|store| store.name(name))
}

/// The bytes the store has been charged so far, for tests of what compiling keeps.
#[cfg(test)]
pub(crate) fn charged() -> usize {
    with_store(|store| store.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_names_are_interned_once() {
        let version: Arc<str> = "intern-test-canary".into();
        let route: Arc<str> = "intern-test-route".into();
        let a = context(&version, Some(&route));
        let b = context(
            &"intern-test-canary".into(),
            Some(&"intern-test-route".into()),
        );
        assert!(matches!((a, b), (Some(a), Some(b)) if std::ptr::eq(a, b)));
        let unrouted = context(&version, None);
        assert!(matches!((a, unrouted), (Some(a), Some(u)) if !std::ptr::eq(a, u)));

        let v1 = header_value("intern-test-canary");
        let v2 = header_value("intern-test-canary");
        assert_eq!(v1, v2);
        assert!(
            matches!((&v1, &v2), (Some(a), Some(b)) if a.as_bytes().as_ptr() == b.as_bytes().as_ptr())
        );
        assert_eq!(header_value("bad\nvalue"), None);

        let parsed = HeaderName::from_static("x-intern-test-label");
        let n1 = header_name(&parsed);
        let n2 = header_name(&HeaderName::from_static("x-intern-test-label"));
        assert_eq!(n1.as_ref(), Some(&parsed));
        assert!(
            matches!((&n1, &n2), (Some(a), Some(b)) if a.as_str().as_ptr() == b.as_str().as_ptr())
        );
    }

    /// Each entry is charged its names' bytes twice and the overhead, once: what is found
    /// again is not charged again.
    #[test]
    fn entries_are_charged_once_each() {
        let mut store = Store::default();
        store.value("canary").expect("a header value");
        assert_eq!(store.bytes, ENTRY_OVERHEAD + 2 * 6);
        store.value("canary").expect("found again");
        assert_eq!(store.bytes, ENTRY_OVERHEAD + 2 * 6);
        assert_eq!(store.value("bad\nvalue"), None);
        assert_eq!(
            store.bytes,
            ENTRY_OVERHEAD + 2 * 6,
            "refused before it is charged"
        );

        // A context: its names, and its baggage value (its label value is "canary", kept).
        let mut store = Store::default();
        let names = store
            .context(&"canary".into(), Some(&"users".into()))
            .expect("a context");
        assert_eq!(
            names.label.as_ref().map(HeaderValue::as_bytes),
            Some(&b"canary"[..])
        );
        assert_eq!(
            names.baggage.as_ref().map(HeaderValue::as_bytes),
            Some(&b"gray=canary"[..])
        );
        let context = ENTRY_OVERHEAD + 2 * ("canary".len() + "users".len());
        let values = 2 * ENTRY_OVERHEAD + 2 * ("canary".len() + "gray=canary".len());
        assert_eq!(store.bytes, context + values);
        store.context(&"canary".into(), Some(&"users".into()));
        assert_eq!(store.bytes, context + values);

        let mut store = Store::default();
        store.name(&HeaderName::from_static("x-gray-version"));
        store.name(&HeaderName::from_static("x-gray-version"));
        assert_eq!(store.bytes, ENTRY_OVERHEAD + 2 * "x-gray-version".len());
    }

    /// Past the cap nothing more is kept, and what was kept is still found.
    #[test]
    fn a_full_store_keeps_nothing_more() {
        let mut store = Store::default();
        store.value("canary").expect("a header value");
        store.bytes = MAX_INTERNED_BYTES - entry_cost(2) + 1;
        assert_eq!(store.value("v2"), None);
        assert_eq!(store.name(&HeaderName::from_static("x2")), None);
        assert!(store.context(&"v2".into(), None).is_none());
        assert!(store.value("canary").is_some());
        store.bytes -= 1;
        assert!(
            store.value("v2").is_some(),
            "exactly at the cap is still within it"
        );
    }

    #[test]
    fn the_store_is_capped() {
        let mut store = Store::default();
        assert!(store.charge(MAX_INTERNED_BYTES));
        assert!(!store.charge(1));
        assert!(!store.charge(usize::MAX));
    }
}
