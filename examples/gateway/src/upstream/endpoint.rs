//! One endpoint of a version: its URL, its connections, its health and its load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::{HeaderMap, HeaderValue, Uri, header};

use super::connect::{Connector, UpstreamTls};
use super::eject::Health;
use super::h2::H2Conn;
use super::pool::{Pool, ReadBody};
use super::target::{Scheme, Target};

/// One endpoint: a URL given by `--upstream VERSION=URL`.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(super) target: Target,
    host: Option<HeaderValue>,
    /// Connections for bodies streamed from the client.
    pub(super) pool: Arc<Pool>,
    /// Connections for bodies read whole: mirrored requests and their copies, checks.
    pub(super) read_pool: Arc<Pool<ReadBody>>,
    pub(super) health: Health,
    /// Requests sent to it whose response has not ended, for balancing.
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Requests sent to it since start.
    pub(super) requests: AtomicU64,
}

impl Endpoint {
    pub(super) fn new(target: Target, tls: Option<&UpstreamTls>) -> Self {
        let connector = Arc::new(Connector::new(&target, tls));
        let authority = target.authority().clone();
        let (h2, h2_only) = match target.scheme() {
            Scheme::Http => (None, false),
            Scheme::H2c => (
                Some(H2Conn::new(Arc::clone(&connector), authority, false)),
                true,
            ),
            Scheme::Https => (
                Some(H2Conn::new(Arc::clone(&connector), authority, true)),
                false,
            ),
        };
        let h2 = h2.map(Arc::new);
        Self {
            host: target.host(),
            pool: Pool::new(Arc::clone(&connector), h2.clone(), h2_only),
            read_pool: Pool::new(connector, h2, h2_only),
            health: Health::default(),
            in_flight: Arc::default(),
            requests: AtomicU64::new(0),
            target,
        }
    }

    /// Its URL.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Requests sent to it since start.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Times taken out since start.
    pub(crate) fn ejections(&self) -> u64 {
        self.health.ejections()
    }

    /// Whether it is out of balancing now.
    pub(crate) fn is_out(&self) -> bool {
        self.health.is_out()
    }

    /// Addresses a request to this endpoint: `uri`, the request's as it came, in
    /// origin-form (the connection is already to the endpoint) under the URL's path; and
    /// its `Host` unless `preserve_host`.
    pub(crate) fn address(
        &self,
        uri: &Uri,
        headers: &mut HeaderMap,
        preserve_host: bool,
    ) -> Result<Uri, http::uri::InvalidUri> {
        let addressed = self.uri_for(uri)?.unwrap_or_else(|| uri.clone());
        self.set_host(headers, preserve_host);
        Ok(addressed)
    }

    /// `uri` in origin-form under the URL's path; `None` when it is that already — a
    /// URI that came in origin-form with no base path to add, the usual case, is not
    /// parsed again.
    pub(crate) fn uri_for(&self, uri: &Uri) -> Result<Option<Uri>, http::uri::InvalidUri> {
        let base_path = self.target.base_path();
        let origin_form = uri.scheme().is_none() && uri.authority().is_none();
        if base_path.is_empty() && origin_form {
            return Ok(None);
        }
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::try_from(format!("{base_path}{path}")).map(Some)
    }

    /// The endpoint's `Host` in `headers`, unless `preserve_host`.
    pub(crate) fn set_host(&self, headers: &mut HeaderMap, preserve_host: bool) {
        if !preserve_host && let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
    }
}

/// A request body type, and the pool of an endpoint's connections that carries it.
pub(crate) trait Carried: super::pool::PoolBody
where
    Self::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn pool(endpoint: &Endpoint) -> &Arc<Pool<Self>>;
}

impl Carried for hyper::body::Incoming {
    fn pool(endpoint: &Endpoint) -> &Arc<Pool<Self>> {
        &endpoint.pool
    }
}

impl Carried for ReadBody {
    fn pool(endpoint: &Endpoint) -> &Arc<Pool<Self>> {
        &endpoint.read_pool
    }
}

impl Endpoint {
    /// Sends `req` on one of its connections (see [`Pool::send`]); the response's body
    /// counts as in flight here until it ends.
    pub(crate) async fn send<B: Carried>(
        &self,
        req: http::Request<B>,
    ) -> Result<http::Response<super::pool::PooledBody>, super::pool::Failed<B>>
    where
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let load = super::pool::Load::new(&self.in_flight);
        let res = B::pool(self).send(req).await?;
        Ok(res.map(|body| body.with_load(load)))
    }

    /// Sends `req`, a switch of protocols, on a connection of its own (see
    /// [`Pool::send_upgrade`]).
    pub(crate) async fn send_upgrade(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<super::pool::PooledBody>, super::pool::Failed<hyper::body::Incoming>>
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.pool.send_upgrade(req).await
    }

    /// An answer came: its count of failures in a row starts again.
    #[inline]
    pub(crate) fn answered(&self) {
        self.health.answered();
    }
}
