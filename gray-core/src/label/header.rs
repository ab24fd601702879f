//! The label header: its default name, and how long a label may be.

/// The default label header, `x-gray-version`.
pub const DEFAULT_LABEL_HEADER: &str = "x-gray-version";

/// Longest incoming label that is even looked at; longer ones are rejected unread.
pub const MAX_LABEL_LEN: usize = 64;
