//! The label on the wire: the header that carries the decided version between services
//! (`x-gray-version` by default), and the `gray` member of W3C `baggage` that carries it
//! beside OpenTelemetry's context. For code that reads or writes labels itself; the
//! adapters do it for every request.
//!
//! ```
//! use gray_core::label::{baggage_member, baggage_with, BAGGAGE_KEY, DEFAULT_LABEL_HEADER};
//!
//! assert_eq!(DEFAULT_LABEL_HEADER, "x-gray-version");
//! let header = baggage_with(Some("userId=alice"), BAGGAGE_KEY, "canary");
//! assert_eq!(header, "userId=alice,gray=canary");
//! assert_eq!(baggage_member(header.as_bytes(), BAGGAGE_KEY), Some(&b"canary"[..]));
//! ```

mod baggage;
mod header;
mod headers;

pub use baggage::{
    BAGGAGE_HEADER, BAGGAGE_KEY, MAX_BAGGAGE_LEN, baggage_member, baggage_relabeled, baggage_with,
    relabel_baggage,
};
pub(crate) use baggage::{Label, label_in, member};
pub use header::{DEFAULT_LABEL_HEADER, MAX_LABEL_LEN};
pub use headers::Headers;
