//! Where an endpoint is and how to talk to it: an upstream URL, checked.

use std::fmt;
use std::str::FromStr;

use http::{HeaderValue, Uri};

/// How the gateway talks to an endpoint, from its URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `http://`: HTTP/1.1 on pooled keep-alive connections.
    Http,
    /// `h2c://`: HTTP/2 in clear text with prior knowledge, every request on one
    /// multiplexed connection (what gRPC servers speak).
    H2c,
    /// `https://`: TLS, then HTTP/2 on one multiplexed connection if the endpoint agrees
    /// to it by ALPN, else HTTP/1.1 on pooled keep-alive connections.
    Https,
}

/// One endpoint's URL: `http://`, `h2c://` or `https://`, then `host[:port][/prefix]`. Its path, if any, is put before the
/// path of every request sent to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    scheme: Scheme,
    uri: Uri,
    /// `host:port`, the port filled in.
    addr: String,
    /// The URL's authority, as written.
    authority: http::uri::Authority,
    /// For `https://`, the name its certificate must have.
    server_name: Option<rustls::pki_types::ServerName<'static>>,
}

impl Target {
    /// How to talk to it.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The URL as given.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `host:port` to connect to (the scheme's port when the URL names none).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The path put before every request's, without a trailing `/` (empty for none).
    pub(crate) fn base_path(&self) -> &str {
        self.uri.path().trim_end_matches('/')
    }

    /// For `https://`, the name its certificate must have.
    pub(crate) fn server_name(&self) -> Option<&rustls::pki_types::ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The URL's authority.
    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// The URL's authority, as a `Host` value.
    pub(crate) fn host(&self) -> Option<HeaderValue> {
        self.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let (scheme, port) = match uri.scheme_str() {
            Some("http") => (Scheme::Http, 80),
            Some("h2c") => (Scheme::H2c, 80),
            Some("https") => (Scheme::Https, 443),
            _ => {
                return Err(format!(
                    "{url:?} is not an http://, h2c:// or https://host:port URL"
                ));
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("{url:?} names no host"));
        };
        if uri.query().is_some() {
            return Err(format!("{url:?}: an upstream has no query"));
        }
        if authority.as_str().contains('@') {
            return Err(format!("{url:?}: an upstream has no user or password"));
        }
        let addr = match uri.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:{port}", authority.host()),
        };
        let server_name = match scheme {
            Scheme::Https => {
                let host = authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("{url:?}: {host:?} is not a name TLS can check: {e}"))?;
                Some(name)
            }
            Scheme::Http | Scheme::H2c => None,
        };
        let authority = authority.clone();
        Ok(Self {
            scheme,
            uri,
            addr,
            authority,
            server_name,
        })
    }
}
