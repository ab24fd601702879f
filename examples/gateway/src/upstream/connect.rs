//! Opening a connection to an endpoint: TCP, and TLS for `https://` ones, where ALPN
//! says whether it speaks HTTP/2 or HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::pool::PoolError;
use super::target::Target;

/// Whom the gateway trusts for `https://` endpoints: the system's roots by default, or the
/// CA certificates of `--upstream-ca`.
///
/// ```no_run
/// use gray_gateway::upstream::UpstreamTls;
///
/// let tls = UpstreamTls::from_ca_file("/etc/gray/upstream-ca.pem")?;
/// // ... `Proxy::upstream_tls(tls)` ...
/// # Ok::<(), gray_gateway::upstream::UpstreamTlsError>(())
/// ```
#[derive(Clone)]
pub struct UpstreamTls(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("alpn", &self.0.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// Why the roots for `https://` endpoints could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTlsError {
    /// The CA file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("{}: no usable PEM certificate in it ({message})", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

impl UpstreamTls {
    /// Trusts the system's root certificates (`/etc/ssl/certs` and the like; the
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` variables are honoured). Roots that cannot be
    /// read are skipped, with a warning.
    pub fn system() -> Result<Self, UpstreamTlsError> {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("system root certificates: {e}");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, skipped) = roots.add_parsable_certificates(found.certs);
        if skipped > 0 {
            tracing::warn!("system root certificates: {skipped} not usable, skipped");
        }
        Self::with_roots(roots)
    }

    /// Trusts only the CA certificates in `path` (PEM, one or more).
    pub fn from_ca_file(path: impl AsRef<Path>) -> Result<Self, UpstreamTlsError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| UpstreamTlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |message: String| UpstreamTlsError::Certificate {
            path: path.to_owned(),
            message,
        };
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no CERTIFICATE block".to_owned()));
        }
        Self::with_roots(roots)
    }

    fn with_roots(roots: rustls::RootCertStore) -> Result<Self, UpstreamTlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self(Arc::new(config)))
    }

    /// The system's roots, read once, for endpoints given no other.
    fn shared_system() -> Option<Self> {
        static SYSTEM: OnceLock<Option<UpstreamTls>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| match Self::system() {
                Ok(tls) => Some(tls),
                Err(e) => {
                    tracing::error!("https:// upstreams: {e}");
                    None
                }
            })
            .clone()
    }
}

/// A connection just opened.
pub(crate) enum Connected {
    Plain(TcpStream),
    /// TLS, and whether ALPN agreed on HTTP/2.
    Tls(Box<TlsStream<TcpStream>>, bool),
}

/// How to open a connection to one endpoint.
#[derive(Debug)]
pub(crate) struct Connector {
    addr: String,
    /// For `https://`: the name the certificate must have, and whom to trust (`None`: the
    /// system's roots).
    tls: Option<(ServerName<'static>, Option<UpstreamTls>)>,
}

impl Connector {
    pub(crate) fn new(target: &Target, tls: Option<&UpstreamTls>) -> Self {
        let tls = target
            .server_name()
            .map(|name| (name.clone(), tls.cloned()));
        Self {
            addr: target.addr().to_owned(),
            tls,
        }
    }

    pub(crate) async fn connect(&self) -> Result<Connected, PoolError> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(PoolError::Connect)?;
        let _ = stream.set_nodelay(true);
        let Some((name, tls)) = &self.tls else {
            return Ok(Connected::Plain(stream));
        };
        let Some(tls) = tls.clone().or_else(UpstreamTls::shared_system) else {
            let none = std::io::Error::other("no root certificates to check it by");
            return Err(PoolError::Connect(none));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.0);
        let stream = connector
            .connect(name.clone(), stream)
            .await
            .map_err(PoolError::Tls)?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(Connected::Tls(Box::new(stream), h2))
    }
}
