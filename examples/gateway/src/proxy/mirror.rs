//! Traffic shadowing: a copy of each request a route's `mirror:` drew goes to the mirror
//! version's upstream as well, labelled with that version and marked `x-gray-shadow:
//! true`; its answer is read and dropped, and the client never waits for it. Each copy is
//! counted under the mirror version in the per-version metrics (its status, or 502 when
//! none came), so a `--rollout` of that version judges the copies too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use gray_core::Mirror;
use gray_core::adapter::Propagation;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use super::{Proxy, ProxyBody, text};
use crate::upstream::{Endpoint, PoolError, ReadBody};

/// Marks a copy, so the service it reaches can tell it from a request it must act on (as
/// the `-shadow` suffix of the `Host` does behind Istio).
pub(crate) const SHADOW_HEADER: HeaderName = HeaderName::from_static(SHADOW);

/// [`SHADOW_HEADER`]'s name.
pub(crate) const SHADOW: &str = "x-gray-shadow";

/// Largest request body read whole to be copied. A longer one, or one of unknown length
/// (chunked), is streamed to its own version uncopied.
pub(crate) const MAX_COPIED_BODY: u64 = 64 * 1024;

/// Most copies awaiting their answers at once. A mirror version that answers slowly, or
/// not at all, costs at most this many tasks and connections (each for up to the upstream
/// timeout); past it, requests are not copied — a copy must never cost the requests
/// served.
pub const MAX_COPIES_IN_FLIGHT: usize = 256;

/// What became of the copies, for `/gray/status`.
#[derive(Debug, Default)]
pub(crate) struct MirrorStats {
    /// Copies sent.
    sent: AtomicU64,
    /// Copies that failed: no answer, a timeout, or a 5xx.
    failed: AtomicU64,
    /// Requests drawn but not copied: a body too long or of unknown length, no upstream
    /// for the mirror version, or [`MAX_COPIES_IN_FLIGHT`] copies already out.
    skipped: AtomicU64,
    /// Copies awaiting their answers.
    in_flight: AtomicUsize,
}

/// One of the [`MAX_COPIES_IN_FLIGHT`] places, given back when dropped.
struct InFlight(Arc<MirrorStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MirrorStats {
    pub(crate) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// A place for one more copy, if fewer than [`MAX_COPIES_IN_FLIGHT`] are out.
    fn place(self: &Arc<Self>) -> Option<InFlight> {
        let taken = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let place = InFlight(Arc::clone(self));
        (taken < MAX_COPIES_IN_FLIGHT).then_some(place)
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "sent": self.sent.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "skipped": self.skipped.load(Ordering::Relaxed),
        })
    }
}

/// The body a request goes on with.
pub(crate) enum Outgoing {
    /// The client's, streamed.
    Streamed(Incoming),
    /// Read whole: it went to the mirror version too.
    Read(Bytes),
}

/// A request body on its way to being copied.
enum Tee {
    /// Read whole: sent to both versions.
    Read(Bytes),
    /// Too long, or of unknown length: streamed to the request's own version only.
    Streamed(Incoming),
    /// The client did not send it in time, or broke off.
    Failed(StatusCode),
}

impl Proxy {
    /// The body to send on for a request that `mirror` drew, once its copy is on its way:
    /// read whole and copied when it can be, else streamed uncopied. `Err` is the answer
    /// to the client whose body did not come.
    pub(crate) async fn copy(
        &self,
        mirror: Mirror,
        parts: &Parts,
        body: Incoming,
    ) -> Result<Outgoing, Response<ProxyBody>> {
        let (Some(upstream), Some(place)) = (self.mirror_upstream(&mirror), self.mirrored.place())
        else {
            self.mirrored.skip();
            return Ok(Outgoing::Streamed(body));
        };
        match self.tee(body).await {
            Tee::Read(bytes) => {
                self.send_copy(upstream, &mirror, parts, bytes.clone(), place);
                Ok(Outgoing::Read(bytes))
            }
            Tee::Streamed(body) => Ok(Outgoing::Streamed(body)),
            Tee::Failed(status) => Err(text(
                status,
                "gray: the request body did not come\n".to_owned(),
            )),
        }
    }

    /// An endpoint of `mirror`'s version: its own, never the default version's (a copy
    /// sent there would run the request twice on the version that serves it).
    fn mirror_upstream(&self, mirror: &Mirror) -> Option<Arc<Endpoint>> {
        let upstream = self.upstreams.get(mirror.version())?;
        upstream
            .pick_one()
            .map(|i| Arc::clone(&upstream.endpoints()[i]))
    }

    /// Reads `body` whole if it is short enough to copy, within the upstream timeout.
    async fn tee(&self, body: Incoming) -> Tee {
        if body.is_end_stream() {
            return Tee::Read(Bytes::new());
        }
        if body
            .size_hint()
            .exact()
            .is_none_or(|len| len > MAX_COPIED_BODY)
        {
            self.mirrored.skip();
            return Tee::Streamed(body);
        }
        match self.deadlines.within(self.timeout, body.collect()).await {
            Ok(Ok(read)) => Tee::Read(read.to_bytes()),
            Ok(Err(_)) => Tee::Failed(StatusCode::BAD_REQUEST),
            Err(_) => Tee::Failed(StatusCode::REQUEST_TIMEOUT),
        }
    }

    /// Sends a copy of the request (`parts` as it came, `body` read whole) to `upstream`
    /// under `mirror`'s context, on a task of its own; its answer is read and dropped.
    fn send_copy(
        &self,
        endpoint: Arc<Endpoint>,
        mirror: &Mirror,
        parts: &Parts,
        body: Bytes,
        place: InFlight,
    ) {
        let mut headers = parts.headers.clone();
        let Ok(uri) = endpoint.address(&parts.uri, &mut headers, self.preserve_host) else {
            self.mirrored.skip();
            return;
        };
        Propagation::new()
            .header(self.gray.label_header())
            .apply(mirror.context(), &mut headers);
        headers.insert(SHADOW_HEADER, HeaderValue::from_static("true"));
        let mut copy = Request::new(ReadBody::new(body));
        *copy.method_mut() = parts.method.clone();
        *copy.uri_mut() = uri;
        *copy.headers_mut() = headers;
        let deadlines = Arc::clone(&self.deadlines);
        let stats = Arc::clone(&self.mirrored);
        let timeout = self.timeout;
        // Counted under the mirror version, as its own service counts it.
        let measure = mirror.measure();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _place = place; // given back once the answer is in, or given up on
            let exchange = async {
                let res = endpoint.send(copy).await.map_err(|failed| failed.error)?;
                let status = res.status();
                // Read to the end, frame by frame, so the connection goes back to the pool.
                let mut body = res.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(PoolError::Http)?;
                }
                Ok::<_, PoolError>(status)
            };
            // No answer counts as the gateway answers a request whose upstream gave none.
            let status = match deadlines.within(timeout, exchange).await {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => {
                    tracing::debug!("mirror copy: {e}");
                    StatusCode::BAD_GATEWAY
                }
                Err(_) => StatusCode::BAD_GATEWAY,
            };
            if let Some(measure) = measure {
                measure.finish(status.as_u16());
            }
            if status.is_server_error() {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
