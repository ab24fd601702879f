//! What a client may ask of the gateway's listener: how many connections, how long its
//! headers may take, how large they may be.

use std::time::Duration;

/// Bounds on clients, for slow or hostile ones: beyond them a connection is refused
/// (`max_connections`: no more are accepted until one closes), cut off (`header_timeout`,
/// `idle_timeout`) or answered `431 Request Header Fields Too Large` (`max_header_bytes`, `max_headers`).
///
/// ```
/// use std::time::Duration;
/// use gray_gateway::Limits;
///
/// let limits = Limits::default()
///     .max_connections(1_000)
///     .header_timeout(Duration::from_secs(5));
/// assert_eq!(limits.max_header_bytes, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Client connections open at once; past it the listener waits for one to close
    /// (the kernel's backlog holds the new ones). Default 16,384.
    pub max_connections: usize,
    /// The time a client has to send a request's headers, counted from when the gateway
    /// starts waiting for them: on a new connection, from its accept; on a kept-alive
    /// HTTP/1.1 one, from the end of the previous response, so it is also how long such
    /// a connection may stay idle. A client sending its headers a byte at a time is cut
    /// off when it runs out. Default 30 s.
    pub header_timeout: Duration,
    /// The bytes a request's head may take (request line and headers; for HTTP/2, the
    /// header list as RFC 9113 counts it). Default 64 KiB; at least 8 KiB.
    pub max_header_bytes: usize,
    /// Headers a request may have (HTTP/1.1). Default 100.
    pub max_headers: usize,
    /// How long a connection may have no request in flight before it is closed (HTTP/2:
    /// with a `GOAWAY`), give or take a quarter of it; on HTTP/1.1 a shorter
    /// `header_timeout` closes it first. Default 60 s.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The smallest `max_header_bytes` (hyper reads a head in buffers of this size).
    pub const MIN_HEADER_BYTES: usize = 8 * 1024;

    /// With `max` client connections at once (at least one).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// With `timeout` for a request's headers.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// With `max` bytes for a request's head (at least [`MIN_HEADER_BYTES`](Self::MIN_HEADER_BYTES)).
    pub fn max_header_bytes(mut self, max: usize) -> Self {
        self.max_header_bytes = max.max(Self::MIN_HEADER_BYTES);
        self
    }

    /// With `timeout` for a connection with no request in flight.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// With `max` headers per request.
    pub fn max_headers(mut self, max: usize) -> Self {
        self.max_headers = max;
        self
    }
}
