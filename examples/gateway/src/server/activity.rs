//! What a connection is doing, for its timeouts: whether it has begun a request, how many
//! are in flight (until their response bodies end), how many have ended.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::proxy::ProxyBody;

/// One connection's requests.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicBool,
    in_flight: AtomicUsize,
    ended: AtomicU64,
}

impl Activity {
    /// A request begins: in flight until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Whether a request has begun.
    pub(crate) fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Requests in flight, and requests ended so far.
    pub(crate) fn now(&self) -> (usize, u64) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed),
        )
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it ends (or is dropped, the
/// client gone).
#[derive(Debug)]
pub(crate) struct Tracked {
    body: ProxyBody,
    busy: Option<Busy>,
}

impl Tracked {
    pub(crate) fn new(body: ProxyBody, busy: Option<Busy>) -> Self {
        Self { body, busy }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = <ProxyBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
