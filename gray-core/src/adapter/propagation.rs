//! [`Propagation`]: how a request's label is written on an outbound call.

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::GrayContext;
use crate::label::{
    BAGGAGE_HEADER, BAGGAGE_KEY, DEFAULT_LABEL_HEADER, Label, baggage_with, label_in,
};

/// How the label of a [`GrayContext`] is written on an outbound request: the label header
/// (default `x-gray-version`) and, unless turned off, the `gray=<version>` member of the
/// W3C `baggage` header, merged with the members already there.
///
/// The client adapters (`gray_reqwest::GrayPropagation`, `gray_tower::GrayPropagationLayer`)
/// apply one to every call; use [`apply`](Self::apply) directly with any other client.
///
/// ```
/// use gray_core::GrayContext;
/// use gray_core::adapter::Propagation;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "userId=alice,gray=stable;p=1".parse()?);
/// Propagation::default().apply(&GrayContext::new("canary"), &mut headers);
/// assert_eq!(headers["x-gray-version"], "canary");
/// assert_eq!(headers["baggage"], "userId=alice,gray=canary"); // merged, old member replaced
///
/// let mut headers = http::HeaderMap::new();
/// Propagation::new().baggage(false).apply(&GrayContext::new("v2"), &mut headers);
/// assert_eq!(headers["x-gray-version"], "v2");
/// assert!(headers.get("baggage").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Propagation {
    header: Option<HeaderName>,
    baggage: bool,
}

impl Default for Propagation {
    fn default() -> Self {
        Self {
            header: Some(HeaderName::from_static(DEFAULT_LABEL_HEADER)),
            baggage: true,
        }
    }
}

impl Propagation {
    /// The label in `x-gray-version` and in `baggage`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the label to `header` instead of `x-gray-version` (use the same name as the
    /// receiving service's `label.header`; `gray.label_header()` gives a service's own).
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = Some(header);
        self
    }

    /// Writes no label header, only `baggage` (for chains that carry context in W3C
    /// baggage alone, as OpenTelemetry does).
    pub fn baggage_only(mut self) -> Self {
        self.header = None;
        self.baggage = true;
        self
    }

    /// Whether to also write the `gray` member of W3C `baggage` (default `true`).
    pub fn baggage(mut self, baggage: bool) -> Self {
        self.baggage = baggage;
        self
    }

    /// Sets the label of `ctx` on `headers`. Existing `baggage` members are kept (values
    /// that are not visible ASCII, which W3C baggage forbids, are dropped); an old `gray`
    /// member is replaced. A version that is no valid header value writes nothing.
    ///
    /// With a context the engine decided and no `baggage` on the request yet, nothing is
    /// allocated: both values are prebuilt; `baggage` whose one `gray` member already names
    /// the version is left as it is, nothing rebuilt either.
    pub fn apply(&self, ctx: &GrayContext, headers: &mut HeaderMap) {
        if let Some(header) = &self.header {
            let Some(value) = ctx.label_value() else {
                return; // not a header value: no label rather than a broken one
            };
            headers.insert(header.clone(), value);
        }
        if !self.baggage {
            return;
        }
        // One lookup of `baggage`, whether it is there or not.
        match headers.entry(BAGGAGE_HEADER) {
            Entry::Vacant(slot) => {
                if let Some(member) = ctx.baggage_value() {
                    slot.insert(member);
                }
            }
            Entry::Occupied(mut slot) => {
                let version = ctx.version();
                let values = slot.iter().map(HeaderValue::as_bytes);
                if label_in(values, version) == Label::Exactly {
                    return; // already says so, once: nothing to rebuild
                }
                let existing = slot
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(",");
                let existing = (!existing.is_empty()).then_some(existing.as_str());
                let merged = baggage_with(existing, BAGGAGE_KEY, version);
                if let Ok(merged) = HeaderValue::from_str(&merged) {
                    slot.insert(merged);
                }
            }
        }
    }
}
