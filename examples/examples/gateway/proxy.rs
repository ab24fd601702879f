//! The proxy: each request, decided by `GrayLayer`, sent on to its version's upstream.

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
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::deadline::Deadlines;
use super::eject::{Ejection, Health};
use super::hop;
use super::mirror::{MirrorStats, Outgoing};
use super::pool::{Pool, PooledBody, ReadBody};

/// A response body: the upstream's, streamed, or one the gateway writes itself.
pub(crate) type ProxyBody = Either<PooledBody, Full<Bytes>>;

/// One version's upstream: its base URL, `Host` value, and keep-alive connections.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) version: String,
    pub(crate) base: Uri,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) pool: Arc<Pool>,
    /// Connections for bodies read whole: mirrored requests and their copies.
    pub(crate) read_pool: Arc<Pool<ReadBody>>,
    /// Its failures in a row, to take its version out when it stops answering.
    pub(crate) health: Arc<Health>,
}

impl Upstream {
    /// Addresses a request to this upstream: its URI in origin-form (the connection is
    /// already to the upstream) under the base URL's path, and its `Host`. A URI that
    /// came in origin-form with no base path to add — the usual case — is left as it is,
    /// not parsed again.
    pub(crate) fn address(
        &self,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> Result<(), http::uri::InvalidUri> {
        let base_path = self.base.path().trim_end_matches('/');
        let origin_form = uri.scheme().is_none() && uri.authority().is_none();
        if !(base_path.is_empty() && origin_form) {
            let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
            *uri = Uri::try_from(format!("{base_path}{path}"))?;
        }
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
        Ok(())
    }
}

/// What every connection of the gateway shares.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) gray: Gray,
    pub(crate) upstreams: Vec<Upstream>,
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
    /// When a version whose upstream stops answering is taken out (`--eject-after`,
    /// `--eject-for`).
    pub(crate) ejection: Ejection,
}

impl Proxy {
    pub(crate) fn new(gray: Gray, upstreams: Vec<(String, Uri)>, timeout: Duration) -> Self {
        let upstreams = upstreams
            .into_iter()
            .map(|(version, base)| {
                let authority = base.authority().map_or("", |a| a.as_str());
                let addr = match base.port_u16() {
                    Some(_) => authority.to_owned(),
                    None => format!("{authority}:80"),
                };
                Upstream {
                    host: HeaderValue::from_str(authority).ok(),
                    read_pool: Pool::new(addr.clone()),
                    pool: Pool::new(addr),
                    health: Arc::default(),
                    version,
                    base,
                }
            })
            .collect();
        Self {
            gray,
            upstreams,
            timeout,
            deadlines: Arc::default(),
            rollout: OnceLock::new(),
            mirrored: Arc::default(),
            baggage: Propagation::new().baggage_only(),
            ejection: Ejection::default(),
        }
    }

    /// Takes a version out when its upstream fails `ejection.after` requests in a row (see
    /// `eject`); by default after 5, for 10 s.
    pub(crate) fn with_ejection(mut self, ejection: Ejection) -> Self {
        self.ejection = ejection;
        self
    }

    /// The upstream of `version`, else the default version's.
    fn upstream(&self, version: &str) -> Option<&Upstream> {
        let find = |v: &str| self.upstreams.iter().find(|u| u.version == v);
        find(version).or_else(|| find(self.gray.config().versions.first()?))
    }

    /// Forwards a request to its version's upstream, bodies streamed both ways; a switch
    /// of protocols (WebSocket) on a connection of its own, then tunnelled.
    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
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
        if upstream
            .address(&mut parts.uri, &mut parts.headers)
            .is_err()
        {
            return bad_gateway(format!("gray: cannot build the {version} upstream URL\n"));
        }
        // GrayLayer set the label header; the label goes in W3C baggage too, as the clients'
        // propagation writes it, so it crosses services that pass baggage on and drop
        // other headers (OpenTelemetry's).
        self.baggage.apply(&ctx, &mut parts.headers);
        parts.version = http::Version::HTTP_11;
        let sent = match (client_upgrade, body) {
            (None, Outgoing::Streamed(body)) => {
                let req = Request::from_parts(parts, body);
                self.deadlines
                    .within(self.timeout, upstream.pool.send(req))
                    .await
            }
            (_, Outgoing::Read(body)) => {
                // Boxed, as below.
                let req = Request::from_parts(parts, ReadBody::new(body));
                let call = Box::pin(upstream.read_pool.send(req));
                self.deadlines.within(self.timeout, call).await
            }
            (Some(client), Outgoing::Streamed(body)) => {
                let req = Request::from_parts(parts, body);
                // Boxed: the common path's future stays as small as it was.
                let call = Box::pin(upstream.pool.send_upgrade(req));
                let mut sent = self.deadlines.within(self.timeout, call).await;
                if let Ok(Ok(res)) = &mut sent
                    && res.status() == StatusCode::SWITCHING_PROTOCOLS
                {
                    hop::tunnel(client, hyper::upgrade::on(res), version.to_owned());
                }
                sent
            }
        };
        match sent {
            Ok(Ok(res)) => {
                upstream.health.answered();
                let (mut parts, body) = res.into_parts();
                // A switch of protocols keeps its `Upgrade` and `Connection: upgrade`.
                let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
                hop::strip(&mut parts.headers, switched);
                Response::from_parts(parts, Either::Left(body))
            }
            Ok(Err(e)) => {
                tracing::warn!(version, "upstream error: {e}");
                upstream
                    .health
                    .failed(&self.gray, &upstream.version, self.ejection);
                bad_gateway(format!("gray: upstream {version} unavailable\n"))
            }
            Err(_) => {
                upstream
                    .health
                    .failed(&self.gray, &upstream.version, self.ejection);
                bad_gateway(format!("gray: upstream {version} timed out\n"))
            }
        }
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
