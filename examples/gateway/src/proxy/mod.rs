//! The proxy: each request, decided by `GrayLayer`, sent on to an endpoint of its version.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gray_core::adapter::Propagation;
use gray_core::rollout::RolloutHandle;
use gray_core::{Gray, GrayContext, Mirror};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;

use crate::server::{Limits, Tls};
use crate::upstream::{
    Attempts, Carried, Deadlines, Ejection, Endpoint, Failed, HealthCheck, PoolError, PooledBody,
    ReadBody, Target, Upstream, UpstreamTls, Upstreams,
};

pub(crate) mod access;
pub(crate) mod hop;
pub(crate) mod mirror;

use mirror::{MirrorStats, Outgoing};

/// A response body: the upstream's, streamed, or one the gateway writes itself.
pub(crate) type ProxyBody = Either<PooledBody, Full<Bytes>>;

/// What every connection of the gateway shares: the rules, the upstreams, and how
/// requests go to them.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) gray: Gray,
    pub(crate) upstreams: Upstreams,
    pub(crate) timeout: Duration,
    /// Requests waiting for an upstream's response head, with their `timeout`.
    pub(crate) deadlines: Arc<Deadlines>,
    /// The `--rollout`, driven by its own task: its status for `/gray/status`, an
    /// operator's `POST /gray/rollout/…` to it.
    pub(crate) rollout: OnceLock<RolloutHandle>,
    /// What became of the copies of mirrored requests.
    pub(crate) mirrored: Arc<MirrorStats>,
    /// How the label goes into the `baggage` of a request sent on (the label header is
    /// GrayLayer's): the `gray` member, merged with the members already there.
    pub(crate) baggage: Propagation,
    /// When an endpoint that stops answering is taken out (`--eject-after`,
    /// `--eject-for`).
    pub(crate) ejection: Ejection,
    /// `--preserve-host`: the client's `Host` goes on as it came.
    pub(crate) preserve_host: bool,
    /// `--health-check`: started with the listeners.
    pub(crate) health_check: Option<HealthCheck>,
    /// `--access-log`.
    pub(crate) access_log: Option<access::AccessLog>,
    /// What clients may ask of the listener.
    pub(crate) limits: Limits,
    /// `--tls-cert`, `--tls-key`: the listener speaks HTTPS.
    pub(crate) tls: Option<Arc<Tls>>,
}

impl Proxy {
    /// A proxy for `gray`'s rules to `upstreams` (a version named more than once has that
    /// many endpoints), waiting `timeout` at most for an upstream's response head.
    pub fn new(gray: Gray, upstreams: Vec<(String, Target)>, timeout: Duration) -> Self {
        Self {
            gray,
            upstreams: Upstreams::new(upstreams, None),
            timeout,
            deadlines: Arc::default(),
            rollout: OnceLock::new(),
            mirrored: Arc::default(),
            baggage: Propagation::new().baggage_only(),
            ejection: Ejection::default(),
            preserve_host: false,
            health_check: None,
            access_log: None,
            limits: Limits::default(),
            tls: None,
        }
    }

    /// Serves HTTPS with `tls` (HTTP/2 or HTTP/1.1 by ALPN), its files reloaded when they
    /// change; plain HTTP (HTTP/1.1 or h2c) with `None`.
    pub fn tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls.map(Arc::new);
        self
    }

    /// Trusts `tls`'s roots for `https://` endpoints instead of the system's
    /// (`--upstream-ca`).
    pub fn upstream_tls(mut self, tls: &UpstreamTls) -> Self {
        self.upstreams = Upstreams::new(self.upstreams.targets(), Some(tls));
        self
    }

    /// Serves clients within `limits` (see [`Limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Writes a JSON line per request proxied to `target`: `-` for standard output, else
    /// a file appended to.
    pub fn access_log(mut self, target: Option<&str>) -> std::io::Result<Self> {
        self.access_log = target.map(access::AccessLog::open).transpose()?;
        Ok(self)
    }

    /// Checks every endpoint actively, as `check` says, once serving.
    pub fn health_check(mut self, check: Option<HealthCheck>) -> Self {
        self.health_check = check;
        self
    }

    /// Takes an endpoint out when it fails `ejection.after` requests in a row (see
    /// [`Ejection`]); by default after 5, for 10 s.
    pub fn with_ejection(mut self, ejection: Ejection) -> Self {
        self.ejection = ejection;
        self
    }

    /// Sends the client's `Host` on as it came, instead of the endpoint's (nginx's
    /// `proxy_set_header Host $host`).
    pub fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }

    /// The rules it routes by.
    pub fn gray(&self) -> &Gray {
        &self.gray
    }

    /// The `--rollout`'s handle, once one is started.
    pub fn rollout(&self) -> Option<&RolloutHandle> {
        self.rollout.get()
    }

    /// The endpoints of `version`, else the default version's.
    fn upstream(&self, version: &str) -> Option<&Arc<Upstream>> {
        self.upstreams
            .get(version)
            .or_else(|| self.upstreams.get(self.gray.config().versions.first()?))
    }

    /// The default version's endpoints.
    fn default_upstream(&self) -> Option<&Arc<Upstream>> {
        self.upstreams.get(self.gray.config().versions.first()?)
    }

    /// Forwards a request (see [`forward_to`](Self::forward_to)), and logs it when
    /// `--access-log` asks.
    async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let Some(log) = &self.access_log else {
            return self.forward_to(req, &mut None).await;
        };
        let start = std::time::Instant::now();
        let time = access::now();
        let client = req
            .extensions()
            .get::<gray_core::PeerAddr>()
            .map(|peer| peer.0.ip().to_string());
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let ctx = req.extensions().get::<GrayContext>().cloned();
        let mut sent = Some((None, false));
        let mut res = self.forward_to(req, &mut sent).await;
        let (endpoint, retried) = sent.unwrap_or_default();
        let record = access::Record {
            log: log.clone(),
            start,
            time,
            client,
            method,
            path,
            status: res.status().as_u16(),
            grpc_status: access::grpc_status(res.headers()),
            version: ctx.as_ref().map(|c| c.version().to_owned()),
            route: ctx.as_ref().and_then(GrayContext::route).map(str::to_owned),
            endpoint,
            retried,
        };
        match res.body_mut() {
            // The upstream's body: logged once it has ended.
            Either::Left(body) => body.on_end(Box::new(move |trailers| record.finish(trailers))),
            Either::Right(_) => record.finish(None),
        }
        res
    }

    /// Forwards a request to an endpoint of its version, bodies streamed both ways; a
    /// switch of protocols (WebSocket) on a connection of its own, then tunnelled. With
    /// `sent`, says there which endpoint it went to last, and whether it was retried.
    async fn forward_to(
        &self,
        mut req: Request<Incoming>,
        sent_to: &mut Option<(Option<String>, bool)>,
    ) -> Response<ProxyBody> {
        let Some(ctx) = req.extensions().get::<GrayContext>().cloned() else {
            return text(
                StatusCode::BAD_GATEWAY,
                "gray: no version decided\n".to_owned(),
            );
        };
        let version = ctx.version();
        let Some(upstream) = self.upstream(version) else {
            return bad_gateway(format!("gray: no upstream for version {version}\n"));
        };
        // hyper hands over the connection of a request with `Upgrade`; Front kept that
        // header only if `Connection` asked for the switch.
        let client_upgrade = req
            .extensions_mut()
            .remove::<OnUpgrade>()
            .filter(|_| req.headers().contains_key(header::UPGRADE));
        let (mut parts, body) = req.into_parts();
        // A route's `mirror:` drew the request (never a switch of protocols): a copy goes
        // to the mirror version's upstream as well, when the body can be read whole.
        let mirror = match client_upgrade {
            None => parts.extensions.remove::<Mirror>(),
            Some(_) => None,
        };
        let body = match mirror {
            None => Outgoing::Streamed(body),
            // Boxed: the common path's future stays as small as it was.
            Some(mirror) => match Box::pin(self.copy(mirror, &parts, body)).await {
                Ok(body) => body,
                Err(res) => return res,
            },
        };
        // GrayLayer set the label header; the label goes in W3C baggage too, as the clients'
        // propagation writes it, so it crosses services that pass baggage on and drop
        // other headers (OpenTelemetry's).
        self.baggage.apply(&ctx, &mut parts.headers);
        parts.version = http::Version::HTTP_11;
        let mut attempts = Attempts::new(upstream, self.default_upstream());
        // The endpoint being tried, when the deadline passes.
        let mut trying = None;
        let sent = match (client_upgrade, body) {
            // No body (a `GET`, say): sent as one read whole, which can be sent again
            // if a keep-alive connection closes under it.
            (None, Outgoing::Streamed(body)) if body.is_end_stream() => {
                let req = Request::from_parts(parts, ReadBody::new(Bytes::new()));
                let send = self.send(req, &mut attempts, &mut trying);
                self.deadlines.within(self.timeout, send).await
            }
            (None, Outgoing::Streamed(body)) => {
                let req = Request::from_parts(parts, body);
                let send = self.send(req, &mut attempts, &mut trying);
                self.deadlines.within(self.timeout, send).await
            }
            (_, Outgoing::Read(body)) => {
                // Boxed, as below.
                let req = Request::from_parts(parts, ReadBody::new(body));
                let send = Box::pin(self.send(req, &mut attempts, &mut trying));
                self.deadlines.within(self.timeout, send).await
            }
            (Some(client), Outgoing::Streamed(body)) => {
                let req = Request::from_parts(parts, body);
                // Boxed: the common path's future stays as small as it was.
                let call = Box::pin(self.send_upgrade(req, &mut attempts, &mut trying));
                let mut sent = self.deadlines.within(self.timeout, call).await;
                if let Ok(Ok(res)) = &mut sent
                    && res.status() == StatusCode::SWITCHING_PROTOCOLS
                {
                    hop::tunnel(client, hyper::upgrade::on(res), version.to_owned());
                }
                sent
            }
        };
        if let Some(sent_to) = sent_to {
            let last = attempts.last();
            sent_to.0 = last.map(|(upstream, i)| upstream.endpoints()[i].target().to_string());
            sent_to.1 = attempts.retried();
        }
        match sent {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                // A switch of protocols keeps its `Upgrade` and `Connection: upgrade`.
                let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
                hop::strip(&mut parts.headers, switched);
                Response::from_parts(parts, Either::Left(body))
            }
            Ok(Err(e)) => {
                tracing::warn!(version, "upstream error: {e}");
                bad_gateway(format!("gray: upstream {version} unavailable\n"))
            }
            Err(_) => {
                if let Some((upstream, i)) = trying {
                    Arc::clone(upstream).failed(i, &self.gray, self.ejection);
                }
                gateway_timeout(format!("gray: upstream {version} timed out\n"))
            }
        }
    }

    /// Sends `req` to the endpoints `attempts` gives, one after another while each fails
    /// before any of the request reached it; `trying` is the one in use.
    async fn send<'a, B: Carried>(
        &self,
        req: Request<B>,
        attempts: &mut Attempts<'a>,
        trying: &mut Option<(&'a Arc<Upstream>, usize)>,
    ) -> Result<Response<PooledBody>, PoolError>
    where
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.send_by(req, attempts, trying, async |endpoint, req| {
            endpoint.send(req).await
        })
        .await
    }

    /// Sends `req`, a request to switch protocols, as [`send`](Self::send) does, on a
    /// connection of its own.
    async fn send_upgrade<'a>(
        &self,
        req: Request<Incoming>,
        attempts: &mut Attempts<'a>,
        trying: &mut Option<(&'a Arc<Upstream>, usize)>,
    ) -> Result<Response<PooledBody>, PoolError> {
        self.send_by(req, attempts, trying, async |endpoint, req| {
            endpoint.send_upgrade(req).await
        })
        .await
    }

    /// The attempts of [`send`](Self::send), each made by `call`.
    async fn send_by<'a, B>(
        &self,
        mut req: Request<B>,
        attempts: &mut Attempts<'a>,
        trying: &mut Option<(&'a Arc<Upstream>, usize)>,
        call: impl AsyncFn(&Endpoint, Request<B>) -> Result<Response<PooledBody>, Failed<B>>,
    ) -> Result<Response<PooledBody>, PoolError> {
        // The URI as it came, kept only once an endpoint's path has changed it.
        let mut original = None;
        let mut last = None;
        loop {
            let (upstream, i) = self.next_endpoint(&mut req, &mut original, attempts, last)?;
            let endpoint = &upstream.endpoints()[i];
            *trying = Some((upstream, i));
            let sent = call(endpoint, req).await;
            *trying = None;
            match sent {
                Ok(res) => {
                    endpoint.answered();
                    return Ok(res);
                }
                Err(failed) => {
                    Arc::clone(upstream).failed(i, &self.gray, self.ejection);
                    let Some(unsent) = failed.unsent else {
                        return Err(failed.error);
                    };
                    tracing::debug!(
                        version = upstream.version(),
                        endpoint = %endpoint.target(),
                        "{}, sent elsewhere: {}", endpoint.target(), failed.error
                    );
                    upstream.retried();
                    req = unsent;
                    last = Some(failed.error);
                }
            }
        }
    }

    /// The next endpoint for `req`, which is addressed to it (and labelled with the
    /// default version when that version's endpoints stand in for its own); the last
    /// failure when none is left. `original` keeps the URI as it came once an endpoint's
    /// path has been put before it.
    fn next_endpoint<'a, B>(
        &self,
        req: &mut Request<B>,
        original: &mut Option<Uri>,
        attempts: &mut Attempts<'a>,
        last: Option<PoolError>,
    ) -> Result<(&'a Arc<Upstream>, usize), PoolError> {
        let Some((upstream, i, fallback)) = attempts.next() else {
            return Err(last.unwrap_or(PoolError::NoEndpoint));
        };
        let endpoint = &upstream.endpoints()[i];
        let came = original.as_ref().unwrap_or(req.uri());
        match endpoint.uri_for(came).map_err(PoolError::Address)? {
            Some(uri) => {
                let came = std::mem::replace(req.uri_mut(), uri);
                original.get_or_insert(came);
            }
            None => {
                if let Some(came) = original.take() {
                    *req.uri_mut() = came;
                }
            }
        }
        endpoint.set_host(req.headers_mut(), self.preserve_host);
        if fallback {
            Propagation::new()
                .header(self.gray.label_header())
                .apply(&GrayContext::new(upstream.version()), req.headers_mut());
        }
        Ok((upstream, i))
    }
}

/// A `200` with a JSON body.
pub(crate) fn json(body: String) -> Response<ProxyBody> {
    let mut res = text(StatusCode::OK, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(crate) fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    res
}

pub(crate) fn bad_gateway(body: String) -> Response<ProxyBody> {
    text(StatusCode::BAD_GATEWAY, body)
}

pub(crate) fn gateway_timeout(body: String) -> Response<ProxyBody> {
    text(StatusCode::GATEWAY_TIMEOUT, body)
}

/// The gateway as a tower service (behind `GrayLayer`, which decides the version).
#[derive(Clone, Debug)]
pub(crate) struct ProxyService(pub(crate) Arc<Proxy>);

impl tower_service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.0);
        Box::pin(async move { Ok(proxy.forward(req).await) })
    }
}
