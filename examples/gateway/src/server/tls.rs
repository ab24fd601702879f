//! TLS termination: the listener's certificate and key, from PEM files, reloaded when they
//! change (as cert-manager rotates a Kubernetes secret); a bad new pair is refused and
//! the one in force stays, as for the rules.
//!
//! ```no_run
//! use gray_gateway::Tls;
//!
//! let tls = Tls::load("/etc/gray/tls.crt", "/etc/gray/tls.key")?;
//! // ... `Proxy::tls(Some(tls))`: served as HTTPS, HTTP/2 or HTTP/1.1 by ALPN ...
//! # Ok::<(), gray_gateway::TlsError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key could not be put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("{}: no PEM certificate in it ({message})", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The key file holds no PEM private key, or one TLS cannot sign with.
    #[error("{}: no usable PEM private key in it ({message})", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The key is not the certificate's.
    #[error("{} is not the private key of the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The listener's certificate, swapped whole on a reload: a handshake sees the old pair
/// or the new one, never half of each.
#[derive(Debug)]
struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// TLS for the gateway's listener: a certificate chain and its key (PEM), HTTP/2 and
/// HTTP/1.1 offered by ALPN.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
    /// The files' contents last read, to reload only on a change, and to say once, not
    /// at every look, that a change was refused.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// How often the gateway looks at the files for a change.
    pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Reads the certificate chain in `cert` (PEM, the leaf first) and its private key in
    /// `key` (PEM: PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let files = read(&cert, &key)?;
        let certified = certified_key(&cert, &key, &files)?;
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(certified)));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert,
            key,
            resolver,
            config: Arc::new(config),
            seen: Mutex::new(files),
        })
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// Reads the files again: `Ok(true)` when they changed and the new pair is in force,
    /// `Ok(false)` when they are as last read (a pair refused before is not tried
    /// again until it changes), an error — the pair in force kept — when the new one is
    /// bad (a file missing, broken, or a key that is not the certificate's: also what a
    /// rotation caught between its two writes looks like; the next look sees it whole).
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = read(&self.cert, &self.key)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == files {
            return Ok(false);
        }
        let certified = certified_key(&self.cert, &self.key, &files);
        *seen = files;
        self.resolver.0.store(Arc::new(certified?));
        Ok(true)
    }

    /// Accepts TLS connections with the pair in force.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Looks at the files every `every` and reloads them when they change, logging what
    /// became of it, until the returned task is aborted.
    pub(crate) fn watch(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match tls.reload() {
                    Ok(true) => tracing::info!(cert = %tls.cert.display(), "certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("certificate not reloaded, the one in force stays: {e}")
                    }
                }
            }
        })
    }
}

fn read(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    Ok((read(cert)?, read(key)?))
}

fn certified_key(
    cert: &Path,
    key: &Path,
    (cert_pem, key_pem): &(Vec<u8>, Vec<u8>),
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            message: "no CERTIFICATE block".to_owned(),
        });
    }
    let bad_key = |message: String| TlsError::Key {
        path: key.to_owned(),
        message,
    };
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        Err(e) => Err(TlsError::Config(e)),
    }
}
