//! The command line: every flag, its environment variable, and the checks on its value.
//!
//! ```
//! let options = gray_gateway::cli::parse(["--listen", "127.0.0.1:9000", "--eject-after", "3"])
//!     .expect("valid flags");
//! assert_eq!(options.listen.port(), 9000);
//! assert_eq!(options.ejection.after, 3);
//! // A bad value is refused naming the flag.
//! let err = gray_gateway::cli::parse(["--threads", "0"]).unwrap_err();
//! assert!(err.to_string().contains("--threads"));
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gray_core::Gray;
use gray_core::rollout::{Analysis, Rollout, RolloutError};

use crate::server::Limits;
use crate::upstream::{Ejection, HealthCheck, Target};

/// The gateway's settings, as the command line and the environment give them.
#[derive(Debug)]
#[non_exhaustive]
pub struct Options {
    /// `--config FILE`: the rules file, watched and hot-reloaded.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`: the proxy's address.
    pub listen: SocketAddr,
    /// `--upstream VERSION=URL`, in the order given: a version named more than once has
    /// that many endpoints.
    pub upstreams: Vec<(String, Target)>,
    /// `--threads N`: worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// `--timeout SECS`: how long to wait for an upstream's response head.
    pub timeout: Duration,
    /// `--rollout ROUTE:CANARY:STAGES`.
    pub rollout: Option<RolloutSpec>,
    /// `--rollout-every SECS`: how often the rollout is judged.
    pub rollout_every: Duration,
    /// `--rollout-min-stage SECS`: how long each stage serves, at least, before it passes.
    pub rollout_min_stage: Duration,
    /// `--rollout-failure-limit N`: failing judgements a stage tolerates.
    pub rollout_failure_limit: u32,
    /// `--rollout-min-requests N`, `--rollout-max-latency MS`: how stages are judged.
    pub rollout_analysis: Analysis,
    /// `--admin ADDR`: where the gateway's own endpoints are served instead of the proxy's
    /// port.
    pub admin: Option<SocketAddr>,
    /// `--eject-after N`, `--eject-for SECS`.
    pub ejection: Ejection,
    /// `--preserve-host`: the client's `Host` goes on as it came.
    pub preserve_host: bool,
    /// `--health-check PATH`, `--health-every SECS`.
    pub health_check: Option<HealthCheck>,
    /// `--access-log -|FILE`.
    pub access_log: Option<String>,
    /// `--tls-cert FILE`, `--tls-key FILE`: the certificate chain and its key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--upstream-ca FILE`: the CA certificates `https://` endpoints are checked by,
    /// instead of the system's roots.
    pub upstream_ca: Option<PathBuf>,
    /// `--max-connections N`, `--header-timeout SECS`, `--idle-timeout SECS`,
    /// `--max-header-size BYTES`, `--max-headers N`.
    pub limits: Limits,
}

impl Options {
    /// The `--rollout` of `gray`'s rules as the flags set it up (not started); `None`
    /// without one.
    pub fn rollout(&self, gray: &Gray) -> Option<Result<Rollout, RolloutError>> {
        let spec = self.rollout.as_ref()?;
        let stages = spec.stages.iter().copied();
        let rollout = Rollout::new(gray.clone(), &spec.route, &spec.canary, stages);
        Some(rollout.map(|r| {
            r.min_stage_duration(self.rollout_min_stage)
                .failure_limit(self.rollout_failure_limit)
                .analysis(self.rollout_analysis.clone())
        }))
    }
}

/// `--rollout ROUTE:CANARY:STAGE,STAGE…`: a staged rollout of `CANARY` in split route
/// `ROUTE`, stages in percent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RolloutSpec {
    /// The split route whose weights move.
    pub route: String,
    /// The version rolled out.
    pub canary: String,
    /// Its weight at each stage, in percent.
    pub stages: Vec<f64>,
}

fn rollout_spec(raw: &str) -> Result<RolloutSpec, String> {
    let bad = || "not ROUTE:CANARY:STAGE,STAGE… (e.g. users:canary:5,30,100)".to_owned();
    let mut parts = raw.splitn(3, ':');
    let (Some(route), Some(canary), Some(stages)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let stages = stages
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    if route.is_empty() || canary.is_empty() {
        return Err(bad());
    }
    Ok(RolloutSpec {
        route: route.to_owned(),
        canary: canary.to_owned(),
        stages,
    })
}

fn upstream(raw: &str) -> Result<(String, Target), String> {
    let (version, url) = raw
        .split_once('=')
        .ok_or_else(|| "not VERSION=URL (e.g. canary=http://10.0.0.7:8080)".to_owned())?;
    if version.is_empty() {
        return Err("no version before `=`".to_owned());
    }
    Ok((version.to_owned(), url.parse::<Target>()?))
}

/// A count, at least 1.
fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A number of seconds (fractions allowed), above 0.
fn seconds(raw: &str) -> Result<Duration, String> {
    duration(raw, 1.0, false)
}

/// A number of seconds (fractions allowed), 0 or more.
fn seconds_or_zero(raw: &str) -> Result<Duration, String> {
    duration(raw, 1.0, true)
}

/// A number of milliseconds, above 0.
fn milliseconds(raw: &str) -> Result<Duration, String> {
    duration(raw, 0.001, false)
}

fn duration(raw: &str, unit: f64, zero_ok: bool) -> Result<Duration, String> {
    let n: f64 = raw.trim().parse().map_err(|_| "not a number".to_owned())?;
    let bound = if zero_ok { "0 or more" } else { "above 0" };
    Duration::try_from_secs_f64(n * unit)
        .ok()
        .filter(|d| zero_ok || !d.is_zero())
        .ok_or_else(|| format!("must be {bound}"))
}

/// gray-gateway: a reverse proxy that sends each request to a version of your service by
/// gray's rules — header rules, sticky splits by user, staged rollouts — with the version
/// as a label (`x-gray-version` and W3C `baggage`) on every request it sends on.
///
/// With no flags it runs a demo: the example rules and a built-in responder per version.
#[derive(Debug, Parser)]
#[command(name = "gray-gateway", version, max_term_width = 100)]
struct Args {
    /// Rules file (YAML, JSON or TOML), watched and hot-reloaded; a bad edit is refused and
    /// the rules in force stay. Without it: the demo rules.
    #[arg(long, env = "GRAY_GATEWAY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address the proxy listens on.
    #[arg(
        long,
        env = "GRAY_GATEWAY_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,

    /// Where a version's traffic goes; repeat it for every version, and for several
    /// endpoints of one version. URL: http://host:port[/prefix] (HTTP/1.1, pooled
    /// keep-alive connections), h2c://host:port[/prefix] (HTTP/2 with prior knowledge on
    /// one multiplexed connection, as gRPC servers speak) or https://host[:port][/prefix]
    /// (TLS; HTTP/2 if the endpoint agrees by ALPN, else HTTP/1.1). A version without one
    /// goes to the default version's, which must be given. In the environment: a
    /// comma-separated list.
    #[arg(
        long,
        env = "GRAY_GATEWAY_UPSTREAM",
        value_name = "VERSION=URL",
        value_delimiter = ',',
        value_parser = upstream,
    )]
    upstream: Vec<(String, Target)>,

    /// Worker threads [default: one per core].
    #[arg(long, env = "GRAY_GATEWAY_THREADS", value_name = "N", value_parser = at_least_one)]
    threads: Option<usize>,

    /// Seconds to wait for an upstream's response head before answering 504 (checked every
    /// 100 ms).
    #[arg(long, env = "GRAY_GATEWAY_TIMEOUT", value_name = "SECS", default_value = "30", value_parser = seconds)]
    timeout: Duration,

    /// Listener for the gateway's own endpoints (/gray/status, /gray/metrics, /metrics,
    /// and the rollout's orders); without it the read-only ones are on the proxy's port.
    #[arg(long, env = "GRAY_GATEWAY_ADMIN", value_name = "ADDR")]
    admin: Option<SocketAddr>,

    /// A staged rollout of CANARY in split route ROUTE, stages in percent (e.g.
    /// users:canary:5,30,100), judged on the per-version metrics.
    #[arg(long, env = "GRAY_GATEWAY_ROLLOUT", value_name = "ROUTE:CANARY:STAGES", value_parser = rollout_spec)]
    rollout: Option<RolloutSpec>,

    /// Seconds between the rollout's judgements.
    #[arg(long, env = "GRAY_GATEWAY_ROLLOUT_EVERY", value_name = "SECS", default_value = "60", value_parser = seconds)]
    rollout_every: Duration,

    /// Seconds each stage serves, at least, before it passes (a worse canary is still
    /// rolled back at the next judgement).
    #[arg(long, env = "GRAY_GATEWAY_ROLLOUT_MIN_STAGE", value_name = "SECS", default_value = "0", value_parser = seconds_or_zero)]
    rollout_min_stage: Duration,

    /// Failing judgements a stage tolerates (each holds it); it fails at the next.
    #[arg(
        long,
        env = "GRAY_GATEWAY_ROLLOUT_FAILURE_LIMIT",
        value_name = "N",
        default_value_t = 0
    )]
    rollout_failure_limit: u32,

    /// Requests the canary serves in a stage before the stage is judged.
    #[arg(long, env = "GRAY_GATEWAY_ROLLOUT_MIN_REQUESTS", value_name = "N", default_value_t = Analysis::default().min_requests)]
    rollout_min_requests: u64,

    /// A stage fails when the canary's p95 latency is above this many milliseconds.
    #[arg(long, env = "GRAY_GATEWAY_ROLLOUT_MAX_LATENCY", value_name = "MS", value_parser = milliseconds)]
    rollout_max_latency: Option<Duration>,

    /// Failures in a row (no answer: refused, reset or timed out) that take an endpoint
    /// out; 0: never.
    #[arg(long, env = "GRAY_GATEWAY_EJECT_AFTER", value_name = "N", default_value_t = Ejection::default().after)]
    eject_after: u32,

    /// Seconds an endpoint stays out once taken out.
    #[arg(long, env = "GRAY_GATEWAY_EJECT_FOR", value_name = "SECS", default_value = "10", value_parser = seconds)]
    eject_for: Duration,

    /// Send the client's Host header on as it came, instead of the endpoint's host:port.
    #[arg(long, env = "GRAY_GATEWAY_PRESERVE_HOST")]
    preserve_host: bool,

    /// Check every endpoint with GET PATH (e.g. /healthz); one that answers other than
    /// 2xx, or not within --health-every, is out of balancing until a check passes.
    #[arg(long, env = "GRAY_GATEWAY_HEALTH_CHECK", value_name = "PATH", value_parser = health_path)]
    health_check: Option<String>,

    /// Seconds between two active health checks of an endpoint.
    #[arg(long, env = "GRAY_GATEWAY_HEALTH_EVERY", value_name = "SECS", default_value = "5", value_parser = seconds)]
    health_every: Duration,

    /// Write a JSON line per request proxied (time, client, method, path, status,
    /// grpc_status, version, route, endpoint, duration_ms, retried) to FILE, appended, or
    /// to standard output with `-`. Off without it.
    #[arg(long, env = "GRAY_GATEWAY_ACCESS_LOG", value_name = "-|FILE")]
    access_log: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM, the leaf first), HTTP/2 and HTTP/1.1
    /// offered by ALPN; reloaded when the file or the key's changes, a bad new pair
    /// refused (the one in force stays). Needs --tls-key.
    #[arg(
        long,
        env = "GRAY_GATEWAY_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "GRAY_GATEWAY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,

    /// CA certificates (PEM) to check https:// endpoints by, instead of the system's roots.
    #[arg(long, env = "GRAY_GATEWAY_UPSTREAM_CA", value_name = "FILE")]
    upstream_ca: Option<PathBuf>,

    /// Client connections open at once; past it new ones wait in the kernel's backlog
    /// until one closes.
    #[arg(long, env = "GRAY_GATEWAY_MAX_CONNECTIONS", value_name = "N", default_value_t = Limits::default().max_connections, value_parser = at_least_one)]
    max_connections: usize,

    /// Seconds a client has to send a request's headers (on a kept-alive HTTP/1.1
    /// connection, counted from the previous response: also its idle timeout); a
    /// connection that sends none in time is closed.
    #[arg(long, env = "GRAY_GATEWAY_HEADER_TIMEOUT", value_name = "SECS", default_value = "30", value_parser = seconds)]
    header_timeout: Duration,

    /// Seconds a connection may have no request in flight before it is closed (HTTP/2:
    /// with a GOAWAY), give or take a quarter; on HTTP/1.1 a shorter --header-timeout
    /// closes it first.
    #[arg(long, env = "GRAY_GATEWAY_IDLE_TIMEOUT", value_name = "SECS", default_value = "60", value_parser = seconds)]
    idle_timeout: Duration,

    /// Bytes a request's head (request line and headers) may take; beyond, 431. At least
    /// 8192.
    #[arg(long, env = "GRAY_GATEWAY_MAX_HEADER_SIZE", value_name = "BYTES", default_value_t = Limits::default().max_header_bytes, value_parser = header_size)]
    max_header_size: usize,

    /// Headers a request may have; beyond, 431.
    #[arg(long, env = "GRAY_GATEWAY_MAX_HEADERS", value_name = "N", default_value_t = Limits::default().max_headers, value_parser = at_least_one)]
    max_headers: usize,
}

fn header_size(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n >= Limits::MIN_HEADER_BYTES => Ok(n),
        Ok(_) => Err(format!("must be at least {}", Limits::MIN_HEADER_BYTES)),
        Err(e) => Err(e.to_string()),
    }
}

fn health_path(raw: &str) -> Result<String, String> {
    match raw.parse::<http::uri::PathAndQuery>() {
        Ok(_) if raw.starts_with('/') => Ok(raw.to_owned()),
        _ => Err("not a path starting with `/` (e.g. /healthz)".to_owned()),
    }
}

/// Parses the command line (without the program's name), the environment filling in
/// what it does not give. `--help` and `--version` come back as errors whose
/// [`exit`](clap::Error::exit) prints them and exits 0; a bad flag's error names it and
/// exits 2.
pub fn parse<I, T>(args: I) -> Result<Options, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv =
        std::iter::once(OsString::from("gray-gateway")).chain(args.into_iter().map(Into::into));
    let args = Args::try_parse_from(argv)?;
    let mut analysis = Analysis::default();
    analysis.min_requests = args.rollout_min_requests;
    analysis.max_latency = args.rollout_max_latency;
    Ok(Options {
        config: args.config,
        listen: args.listen,
        upstreams: args.upstream,
        threads: args.threads,
        timeout: args.timeout,
        rollout: args.rollout,
        rollout_every: args.rollout_every,
        rollout_min_stage: args.rollout_min_stage,
        rollout_failure_limit: args.rollout_failure_limit,
        rollout_analysis: analysis,
        admin: args.admin,
        ejection: Ejection {
            after: args.eject_after,
            duration: args.eject_for,
        },
        preserve_host: args.preserve_host,
        health_check: args.health_check.map(|path| HealthCheck {
            path,
            every: args.health_every,
        }),
        access_log: args.access_log,
        tls: args.tls_cert.zip(args.tls_key),
        upstream_ca: args.upstream_ca,
        limits: Limits::default()
            .max_connections(args.max_connections)
            .header_timeout(args.header_timeout)
            .idle_timeout(args.idle_timeout)
            .max_header_bytes(args.max_header_size)
            .max_headers(args.max_headers),
    })
}
