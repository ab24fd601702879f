//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::ops::Deref;
use std::path::{Path, PathBuf};

use gray_core::rules::Problem;
use gray_core::{Config, Gray};

/// A fresh, empty directory for one test (unique to this test binary's process), removed
/// with everything in it when dropped — when the test fails as well.
pub fn temp_dir(name: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!("gray-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("create temp dir");
    TempDir(path)
}

/// See [`temp_dir`].
pub struct TempDir(PathBuf);

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `examples/rules.yaml`: the example config, the one README and the benches use.
pub fn rules_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml")
}

pub fn design() -> Gray {
    Gray::from_path(rules_path()).expect("examples/rules.yaml is valid")
}

pub fn gray(yaml: &str) -> Gray {
    Gray::new(Config::from_yaml(yaml).expect("test config parses")).expect("test config is valid")
}

/// A GET request to `uri` with the given headers.
pub fn req(uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test request builds")
}

/// A GET request to `/` from `peer` — an address with or without a port, as a server that
/// tells it puts it in the extensions; none: a server that does not — with the headers.
pub fn from(peer: Option<&str>, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut req = req("/", headers);
    if let Some(peer) = peer {
        let addr = match peer.parse::<std::net::SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                let ip = peer.parse::<std::net::IpAddr>().expect("test peer address");
                std::net::SocketAddr::new(ip, 40_000)
            }
        };
        req.extensions_mut().insert(gray_core::PeerAddr(addr));
    }
    req
}

/// The version `gray` picks for a request carrying `x-user-id: key`.
pub fn version_for_user(gray: &Gray, key: &str) -> String {
    gray.decide(&req("/", &[("x-user-id", key)]))
        .version()
        .to_owned()
}

/// A two-version keyed split on `x-user-id` with `canary` percent on canary.
pub fn keyed_split(canary: f64, salt: Option<&str>) -> Gray {
    let salt = salt.map(|s| format!("salt: {s}")).unwrap_or_default();
    gray(&format!(
        "versions: [stable, canary]
routes:
  - name: users
    split:
      by: {{ header: x-user-id }}
      weights: {{ stable: {}, canary: {canary} }}
      {salt}
",
        100.0 - canary
    ))
}

/// A new client's decision (a request with no cookie): its version and the `name=key` of
/// the cookie it is given, to send back.
pub fn first_visit(g: &Gray) -> (String, String) {
    let d = g.decide(&req("/", &[]));
    let cookie = d
        .set_cookie()
        .expect("a client without the cookie gets one");
    let cookie = cookie.to_str().expect("a cookie is text");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    (d.version().to_owned(), pair)
}

/// The field and problem of a config that parses but is refused, checked to name route
/// `r` and, in its message, the field; `validate` must refuse it as well.
pub fn refused_in_route_r(yaml: &str) -> (String, Problem) {
    let config = Config::from_yaml(yaml).expect("test config parses");
    let err = Gray::new(config.clone()).expect_err(yaml);
    assert!(
        config.validate().is_err(),
        "validate() must agree with Gray::new"
    );
    let invalid = err.invalid().expect("a validation error").clone();
    assert_eq!(invalid.route.as_deref(), Some("r"), "{err}");
    assert!(err.to_string().contains(&invalid.field), "{err}");
    (invalid.field, invalid.problem)
}

/// Where a test's `tracing` subscriber writes: a buffer the test reads.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("a test's logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// A subscriber that writes every event down to `DEBUG` to the returned logs, for
    /// `tracing::subscriber::with_default`.
    ///
    /// `tracing` caches, per line that logs, whether any subscriber wants it, worked out on
    /// the thread that first reaches the line. A test on another thread with no subscriber
    /// of its own would have it cached as unwanted, and this test's subscriber would never
    /// see that line. So the first call also installs a global subscriber that wants the
    /// same and writes nowhere: every thread then has one.
    pub fn subscriber() -> (Self, impl tracing::Subscriber + Send + Sync) {
        static EVERY_THREAD: std::sync::Once = std::sync::Once::new();
        EVERY_THREAD.call_once(|| {
            let nowhere = tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .with_max_level(tracing::Level::DEBUG)
                .finish();
            // Another global one, set by the test itself, does as well.
            let _ = tracing::subscriber::set_global_default(nowhere);
        });
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, subscriber)
    }

    /// The lines that mention `what`.
    pub fn lines_with(&self, what: &str) -> Vec<String> {
        let bytes = self.0.lock().expect("a test's logs").clone();
        let text = String::from_utf8(bytes).expect("logs are UTF-8");
        let lines = text.lines().filter(|l| l.contains(what));
        lines.map(str::to_owned).collect()
    }
}
