//! Names in the rules: header names, cookie and query parameter names, and which headers
//! the label may not take over.

use http::HeaderName;

use super::error::Problem;

/// Longest cookie or query parameter name, or split salt.
pub(crate) const MAX_NAME: usize = 256;

/// A header name as HTTP allows it, or why not.
pub(crate) fn header_name(name: &str) -> Result<HeaderName, Problem> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| Problem::BadHeaderName(name.to_owned()))
}

/// Headers the label must not take over: the adapters overwrite the label header on every
/// request, and these carry HTTP's framing, routing, state and credentials, or trace
/// context (`baggage` carries the label beside other members, never as a whole header).
const RESERVED_LABEL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "baggage",
    "traceparent",
    "tracestate",
];

pub(crate) fn label_header_name(name: HeaderName) -> Result<HeaderName, Problem> {
    if RESERVED_LABEL_HEADERS.contains(&name.as_str()) {
        return Err(Problem::ReservedLabelHeader(name.as_str().to_owned()));
    }
    Ok(name)
}

/// Bytes a cookie name cannot hold: they separate cookies, names and values.
pub(crate) const COOKIE_SEPARATORS: &[u8] = b";=, \t\"";
/// Bytes a query parameter name cannot hold.
pub(crate) const QUERY_SEPARATORS: &[u8] = b"&=#";

pub(crate) fn plain_name(name: &str, forbidden: &[u8]) -> Result<Box<str>, Problem> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
        && !name.bytes().any(|b| forbidden.contains(&b));
    if ok {
        Ok(name.into())
    } else {
        Err(Problem::BadName(name.to_owned()))
    }
}
