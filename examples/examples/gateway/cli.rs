//! The gateway's command line.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gray_core::Gray;
use gray_core::rollout::{Analysis, Rollout, RolloutError};
use http::Uri;

use super::eject::Ejection;

/// The command line.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) config: Option<PathBuf>,
    pub(crate) listen: SocketAddr,
    pub(crate) upstreams: Vec<(String, Uri)>,
    pub(crate) threads: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) rollout: Option<RolloutSpec>,
    pub(crate) rollout_every: Duration,
    /// `--rollout-min-stage SECS`: how long each stage serves, at least, before it passes.
    pub(crate) rollout_min_stage: Duration,
    /// `--rollout-failure-limit N`: failing judgements a stage tolerates.
    pub(crate) rollout_failure_limit: u32,
    /// `--rollout-min-requests N`, `--rollout-max-latency MS`: how stages are judged.
    pub(crate) rollout_analysis: Analysis,
    /// Where `/gray/status` and `/gray/metrics` are served instead of the proxy's port.
    pub(crate) admin: Option<SocketAddr>,
    /// `--eject-after N`, `--eject-for SECS`.
    pub(crate) ejection: Ejection,
}

impl Options {
    /// The `--rollout` of `gray`'s rules as the flags set it up (not started); `None`
    /// without one.
    pub(crate) fn rollout(&self, gray: &Gray) -> Option<Result<Rollout, RolloutError>> {
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
#[derive(Debug, PartialEq)]
pub(crate) struct RolloutSpec {
    pub(crate) route: String,
    pub(crate) canary: String,
    pub(crate) stages: Vec<f64>,
}

fn rollout_spec(raw: &str) -> Result<RolloutSpec, String> {
    let bad = || {
        format!("--rollout {raw:?} is not ROUTE:CANARY:STAGE,STAGE… (e.g. users:canary:5,30,100)")
    };
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

pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut options = Options {
        config: None,
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        upstreams: Vec::new(),
        threads: None,
        timeout: Duration::from_secs(30),
        rollout: None,
        rollout_every: Duration::from_secs(60),
        rollout_min_stage: Duration::ZERO,
        rollout_failure_limit: 0,
        rollout_analysis: Analysis::default(),
        admin: None,
        ejection: Ejection::default(),
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") => options.config = Some(parser.value()?.into()),
            Long("listen") => options.listen = parser.value()?.parse()?,
            Long("admin") => options.admin = Some(parser.value()?.parse()?),
            Long("upstream") => {
                let raw = parser.value()?.string()?;
                let (version, url) = raw.split_once('=').ok_or_else(|| {
                    lexopt::Error::Custom(format!("--upstream {raw:?} is not VERSION=URL").into())
                })?;
                let uri = upstream_uri(url).map_err(|e| {
                    lexopt::Error::Custom(format!("--upstream {version}: {e}").into())
                })?;
                options.upstreams.push((version.to_owned(), uri));
            }
            Long("threads") => {
                let threads: usize = parser.value()?.parse()?;
                if threads == 0 {
                    return Err(lexopt::Error::Custom("--threads must be at least 1".into()));
                }
                options.threads = Some(threads);
            }
            Long("timeout") => options.timeout = Duration::from_secs(parser.value()?.parse()?),
            Long("rollout") => {
                let raw = parser.value()?.string()?;
                options.rollout = Some(rollout_spec(&raw).map_err(lexopt::Error::from)?);
            }
            Long("rollout-every") => {
                options.rollout_every = duration(&mut parser, "rollout-every", SECONDS, false)?;
            }
            Long("rollout-min-stage") => {
                options.rollout_min_stage =
                    duration(&mut parser, "rollout-min-stage", SECONDS, true)?;
            }
            Long("rollout-failure-limit") => {
                options.rollout_failure_limit = parser.value()?.parse()?;
            }
            Long("rollout-min-requests") => {
                options.rollout_analysis.min_requests = parser.value()?.parse()?;
            }
            Long("rollout-max-latency") => {
                let max = duration(&mut parser, "rollout-max-latency", MILLISECONDS, false)?;
                options.rollout_analysis.max_latency = Some(max);
            }
            Long("eject-after") => options.ejection.after = parser.value()?.parse()?,
            Long("eject-for") => {
                options.ejection.duration = duration(&mut parser, "eject-for", SECONDS, false)?;
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(options)
}

const SECONDS: f64 = 1.0;
const MILLISECONDS: f64 = 0.001;

/// `--flag`'s value, a number of `unit`s (in seconds: [`SECONDS`], [`MILLISECONDS`]), as a
/// duration: above 0, or 0 too when `zero_ok`.
fn duration(
    parser: &mut lexopt::Parser,
    flag: &str,
    unit: f64,
    zero_ok: bool,
) -> Result<Duration, lexopt::Error> {
    let n: f64 = lexopt::ValueExt::parse(&parser.value()?)?;
    let bound = if zero_ok { "0 or more" } else { "above 0" };
    Duration::try_from_secs_f64(n * unit)
        .ok()
        .filter(|d| zero_ok || !d.is_zero())
        .ok_or_else(|| lexopt::Error::from(format!("--{flag} must be {bound}")))
}

/// An upstream base: `http://host:port[/prefix]`.
fn upstream_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("{url:?} is not an http://host:port URL"));
    }
    if uri.query().is_some() {
        return Err(format!("{url:?}: an upstream has no query"));
    }
    Ok(uri)
}
