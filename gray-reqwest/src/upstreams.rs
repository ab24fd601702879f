//! [`GrayUpstreams`]: full-link gray with an address per version of a downstream service.

use std::fmt;

use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next, Result};

use gray_core::GrayContext;

/// A `base` URL given to [`Upstream`] is not a valid absolute `http(s)` URL.
#[derive(Debug, thiserror::Error)]
#[error("upstream {which} URL {url:?}: {problem}")]
pub struct UpstreamError {
    which: String,
    url: String,
    problem: String,
}

/// One logical downstream service and its address per version.
///
/// ```
/// use gray_reqwest::Upstream;
///
/// let orders = Upstream::new("http://orders", "http://10.0.0.5:8080")?
///     .version("canary", "http://10.0.0.9:8080")?;
/// # Ok::<(), gray_reqwest::UpstreamError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Upstream {
    logical: Url,
    default: Url,
    versions: Vec<(Box<str>, Url)>,
}

fn parse(which: &str, url: &str) -> std::result::Result<Url, UpstreamError> {
    let err = |problem: String| UpstreamError {
        which: which.to_owned(),
        url: url.to_owned(),
        problem,
    };
    let parsed = Url::parse(url).map_err(|e| err(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(err("not an absolute http(s) URL".to_owned()));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err("a base URL has no query or fragment".to_owned()));
    }
    Ok(parsed)
}

impl Upstream {
    /// Calls to URLs under `logical` (same scheme, host and port, path below its path) go
    /// to `default` unless the request's version has its own address.
    pub fn new(logical: &str, default: &str) -> std::result::Result<Self, UpstreamError> {
        Ok(Self {
            logical: parse("logical", logical)?,
            default: parse("default", default)?,
            versions: Vec::new(),
        })
    }

    /// Calls made for requests on `version` go to `base`.
    pub fn version(
        mut self,
        version: &str,
        base: &str,
    ) -> std::result::Result<Self, UpstreamError> {
        let base = parse(version, base)?;
        self.versions.retain(|(v, _)| &**v != version);
        self.versions.push((version.into(), base));
        Ok(self)
    }

    /// The base URL for `version` (the default one when it has none).
    pub fn base_for(&self, version: Option<&str>) -> &Url {
        version
            .and_then(|version| self.versions.iter().find(|(v, _)| &**v == version))
            .map_or(&self.default, |(_, url)| url)
    }

    /// `url` moved onto the base of `version`, if `url` is under the logical base:
    /// same scheme, host and port, and a path at or below the logical path. Its query
    /// goes along, and so do credentials in it unless the base names its own.
    pub fn rewrite(&self, url: &Url, version: Option<&str>) -> Option<Url> {
        let same_origin = url.scheme() == self.logical.scheme()
            && url.host_str() == self.logical.host_str()
            && url.port_or_known_default() == self.logical.port_or_known_default();
        if !same_origin {
            return None;
        }
        let rest = url
            .path()
            .strip_prefix(self.logical.path().trim_end_matches('/'))?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None; // `/orders-archive` is not under `/orders`
        }
        let base = self.base_for(version);
        let mut out = base.clone();
        out.set_path(&format!("{}{rest}", base.path().trim_end_matches('/')));
        out.set_query(url.query());
        if base.username().is_empty() && base.password().is_none() {
            // The call's credentials (reqwest sends them as basic auth) go along; setting
            // them fails only on a URL without a host, which a base never is.
            let _ = out.set_username(url.username());
            let _ = out.set_password(url.password());
        }
        Some(out)
    }
}

/// A `reqwest_middleware` middleware that sends each call to the address of the
/// request's version: full-link gray where each version of a downstream service runs
/// at its own address.
///
/// Calls to a URL under a registered logical base are rewritten onto the base of the
/// current version (as [`GrayPropagation`](crate::GrayPropagation) finds it: a
/// `GrayContext` in the call's extensions, else the request being served), falling back
/// to the default version's address. Other calls pass through untouched. Put it beside
/// `GrayPropagation`, so the downstream also gets the label.
///
/// A rewritten call is sent as a call to its base: reqwest takes the `Host` header from
/// the URL, so the downstream sees the base's host and port, and over `https` the base's
/// host is the name its certificate must carry. A call that sets its own `Host` header
/// keeps it (`.header(HOST, "orders")`), for a downstream behind a proxy that routes on the
/// logical name.
///
/// ```
/// use gray_reqwest::{GrayPropagation, GrayUpstreams, Upstream};
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(GrayUpstreams::new().upstream(
///         Upstream::new("http://orders", "http://10.0.0.5:8080")?
///             .version("canary", "http://10.0.0.9:8080")?,
///     ))
///     .with(GrayPropagation::default())
///     .build();
/// // client.get("http://orders/api/v1/orders?page=2") goes to 10.0.0.9 for canary
/// // requests, to 10.0.0.5 for the others.
/// # drop(client);
/// # Ok::<(), gray_reqwest::UpstreamError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct GrayUpstreams {
    upstreams: Vec<Upstream>,
}

impl GrayUpstreams {
    /// No upstreams yet: every call passes through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a logical service (the first registered that covers a URL wins).
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstreams.push(upstream);
        self
    }

    /// `url` as it is sent for requests on `version`.
    pub fn resolve(&self, url: &Url, version: Option<&str>) -> Option<Url> {
        self.upstreams
            .iter()
            .find_map(|upstream| upstream.rewrite(url, version))
    }
}

#[async_trait::async_trait]
impl Middleware for GrayUpstreams {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let ctx = GrayContext::from_extensions(extensions);
        if let Some(url) = self.resolve(req.url(), ctx.as_ref().map(|c| c.version())) {
            *req.url_mut() = url;
        }
        next.run(req, extensions).await
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.logical, self.default)?;
        for (version, url) in &self.versions {
            write!(f, ", {version}: {url}")?;
        }
        Ok(())
    }
}
