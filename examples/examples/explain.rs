//! `explain`: a dry run of a rules file, before you ship it.
//!
//! ```text
//! cargo run -p examples --example explain -- --config examples/rules.yaml -H 'x-app-version: beta'
//! version: canary
//! route:   testers
//!
//! cargo run -p examples --example explain -- --config examples/rules.yaml --sample 10000
//! 10000 simulated users, key header x-user-id:
//!   stable     9035   90.35%
//!   canary      965    9.65%
//! by route:
//!   users             10000
//! ```
//!
//! Options:
//! - `--config FILE` — the rules (YAML, TOML or JSON, by extension); an invalid file prints
//!   every problem found (each naming its route and field) and exits with status 1.
//! - `-H 'name: value'` — a request header, repeatable. `--path /p?q=1`, `--method POST`.
//!   `--peer IP` — the address the request's connection comes from (`match.client_ip`,
//!   `split.by: client_ip`; with `real_ip:`, whether its forwarding header is believed;
//!   with `label.from`, whether its label is honoured).
//! - `--sample N [--key-header NAME | --key-cookie NAME | --key-peer]` — simulate N users
//!   (keys `1..=N` in the key header, `x-user-id` by default, or in a cookie; or each from
//!   its own address, `1.0.0.1` on, as the peer) on top of the other headers and print
//!   each version's share.
//! - A route with `mirror:` says what it copies (`mirror:  10% of these requests are
//!   copied to canary as well`); `--sample` counts the copies per version.
//! - A split with `set_cookie:`, for a request without its cookie, shows the cookie a new
//!   client gets (`cookie:  a new client, placed by a key drawn for it: Set-Cookie: …`);
//!   the version is that random key's.
//! - `--fingerprint` — print only the rules' fingerprint (16 hex digits): the one
//!   `gray_config_info{fingerprint}` shows for a process whose rules in force are this file,
//!   to tell which replicas run it.
//! - `--why` — also list the routes tried, in order, each with the first of its conditions
//!   that failed (`Gray::explain`):
//!
//! ```text
//! cargo run -p examples --example explain -- --config examples/rules.yaml --why \
//!     -H 'x-user-tier: premium' -H 'x-activity-level: low'
//! version: stable
//! route:   users
//! why:
//!   testers          no: match.headers[0] {"name":"x-app-version","exact":"beta"}
//!   premium-active   no: match.headers[1] {"name":"x-activity-level","regex":"^high"}
//!   users            yes
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use gray_core::rules::Inherit;
use gray_core::{Config, Gray, PeerAddr, Source};

const USAGE: &str = "usage: explain --config FILE [-H 'name: value']... [--path PATH] \
[--method METHOD] [--peer IP] [--why] [--fingerprint] [--sample N [--key-header NAME | --key-cookie NAME | --key-peer]]";

fn main() -> ExitCode {
    let code = run(
        std::env::args_os().skip(1),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    );
    ExitCode::from(code)
}

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    config: Option<OsString>,
    headers: Vec<(String, String)>,
    path: Option<String>,
    method: Option<String>,
    sample: Option<u64>,
    key_header: Option<String>,
    key_cookie: Option<String>,
    key_peer: bool,
    peer: Option<IpAddr>,
    why: bool,
    fingerprint: bool,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut args = Args::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = Some(parser.value()?),
            Short('H') | Long("header") => {
                let raw = parser.value()?.string()?;
                let (name, value) = raw.split_once(':').ok_or_else(|| {
                    lexopt::Error::Custom(format!("header {raw:?} is not 'name: value'").into())
                })?;
                args.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
            Long("path") => args.path = Some(parser.value()?.string()?),
            Long("method") => args.method = Some(parser.value()?.string()?),
            Long("sample") => args.sample = Some(parser.value()?.parse()?),
            Long("key-header") => args.key_header = Some(parser.value()?.string()?),
            Long("key-cookie") => args.key_cookie = Some(parser.value()?.string()?),
            Long("key-peer") => args.key_peer = true,
            Long("peer") => args.peer = Some(parser.value()?.parse()?),
            Long("why") => args.why = true,
            Long("fingerprint") => args.fingerprint = true,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

/// Runs the tool; returns the exit status (0 ok, 1 invalid rules, 2 bad usage).
pub(crate) fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = writeln!(err, "explain: {e}\n{USAGE}");
            return 2;
        }
    };
    let Some(config) = &args.config else {
        let _ = writeln!(err, "explain: --config is required\n{USAGE}");
        return 2;
    };
    let gray = match Gray::from_path(config) {
        Ok(gray) => gray,
        Err(e) => {
            let _ = writeln!(err, "invalid rules: {e}");
            return 1;
        }
    };
    if args.fingerprint {
        return match writeln!(out, "{}", gray.reloads().fingerprint_hex()) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "explain: {e}");
                2
            }
        };
    }
    let request = |extra: Option<(&str, &str)>, peer: Option<IpAddr>| {
        let mut builder = http::Request::builder()
            .method(args.method.as_deref().unwrap_or("GET"))
            .uri(args.path.as_deref().unwrap_or("/"));
        if let Some(ip) = peer.or(args.peer) {
            builder = builder.extension(PeerAddr(SocketAddr::new(ip, 0)));
        }
        for (name, value) in &args.headers {
            builder = builder.header(name, value);
        }
        if let Some((name, value)) = extra {
            builder = builder.header(name, value);
        }
        builder.body(())
    };
    if let Err(e) = request(None, None) {
        let _ = writeln!(err, "explain: bad request: {e}\n{USAGE}");
        return 2;
    }
    let written = match args.sample {
        None => request(None, None)
            .map_err(io::Error::other)
            .and_then(|req| explain_one(&gray, &req, args.why, out)),
        Some(n) => match (&args.key_header, &args.key_cookie, args.key_peer) {
            (Some(_), Some(_), _) | (Some(_), _, true) | (_, Some(_), true) => {
                let _ = writeln!(
                    err,
                    "explain: a sample's key is a header, a cookie or the peer\n{USAGE}"
                );
                return 2;
            }
            (_, Some(cookie), _) => sample(&gray, n, &format!("key cookie {cookie}"), out, |id| {
                request(Some(("cookie", &format!("{cookie}={id}"))), None).ok()
            }),
            (_, _, true) => sample(&gray, n, "each from its own address", out, |id| {
                let id: u32 = id.parse().ok()?;
                let ip = Ipv4Addr::from(0x0100_0000u32.checked_add(id)?);
                request(None, Some(IpAddr::V4(ip))).ok()
            }),
            (header, None, false) => {
                let header = header.as_deref().unwrap_or("x-user-id");
                let what = format!("key header {header}");
                sample(&gray, n, &what, out, |id| {
                    request(Some((header, id)), None).ok()
                })
            }
        },
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "explain: {e}");
            2
        }
    }
}

fn explain_one(
    gray: &Gray,
    req: &http::Request<()>,
    why: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let decision = gray.decide(req);
    writeln!(out, "version: {}", decision.version())?;
    match (decision.route(), decision.source()) {
        (Some(route), _) => writeln!(out, "route:   {route}")?,
        (None, Source::Inherited) => writeln!(out, "route:   (inherited label)")?,
        (None, _) => writeln!(out, "route:   (none matched: the default version)")?,
    }
    // A dry run of one request: what the route copies, rather than one draw of it.
    let config = gray.config();
    let route = decision
        .route()
        .and_then(|r| config.routes.iter().find(|c| c.name == r));
    if let Some(mirror) = route.and_then(|r| r.mirror.as_ref())
        && mirror.to != decision.version()
        && mirror.percent > 0.0
    {
        let (to, percent) = (&mirror.to, mirror.percent);
        writeln!(
            out,
            "mirror:  {percent}% of these requests are copied to {to} as well"
        )?;
    }
    // `set_cookie:` and no key: the version above is the new key's, drawn at random.
    if let Some(cookie) = decision.set_cookie() {
        let cookie = String::from_utf8_lossy(cookie.as_bytes());
        writeln!(
            out,
            "cookie:  a new client, placed by a key drawn for it: Set-Cookie: {cookie}"
        )?;
    }
    if decision.label_rejected() {
        let config = gray.config();
        let reason = match config.label.inherit {
            Inherit::Never => "this service is an edge (`inherit: never`)",
            _ if config.label.from.is_some() => {
                "it names no declared version, is too long, or its peer (`--peer`) is not in `label.from`"
            }
            _ => "it names no declared version, or is too long",
        };
        writeln!(out, "note:    the incoming label was refused: {reason}")?;
    }
    if why {
        let config = gray.config();
        writeln!(out, "why:")?;
        for check in gray.explain(req) {
            match &check.failed {
                None => writeln!(out, "  {:<16} yes", check.route)?,
                Some(at) => {
                    let condition = condition_text(&config, &check.route, at).unwrap_or_default();
                    writeln!(out, "  {:<16} no: {at} {condition}", check.route)?;
                }
            }
        }
    }
    Ok(())
}

/// The condition at `at` (`match.headers[0]`, `match.path` …) of `route`, as written in
/// the rules (JSON).
fn condition_text(config: &Config, route: &str, at: &str) -> Option<String> {
    let m = config
        .routes
        .iter()
        .find(|r| r.name == route)?
        .matches
        .as_ref()?;
    match at.strip_prefix("match.")? {
        "path" => serde_json::to_string(m.path.as_ref()?).ok(),
        "method" => m.method.clone(),
        "client_ip" => serde_json::to_string(m.client_ip.as_ref()?).ok(),
        list => {
            let (kind, index) = list.split_once('[')?;
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            let list = match kind {
                "headers" => &m.headers,
                "query" => &m.query,
                "cookies" => &m.cookies,
                _ => return None,
            };
            serde_json::to_string(list.get(index)?).ok()
        }
    }
}

fn sample(
    gray: &Gray,
    n: u64,
    key: &str, // `key header x-user-id`, `key cookie uid`, `each from its own address`
    out: &mut impl Write,
    request: impl Fn(&str) -> Option<http::Request<()>>,
) -> io::Result<()> {
    let mut versions: BTreeMap<usize, (String, u64)> = gray
        .versions()
        .iter()
        .enumerate()
        .map(|(i, v)| (i, (v.to_string(), 0)))
        .collect();
    let mut routes: BTreeMap<String, u64> = BTreeMap::new();
    let mut copies: BTreeMap<String, u64> = BTreeMap::new();
    for id in 1..=n {
        let Some(req) = request(&id.to_string()) else {
            return Err(io::Error::other(format!(
                "the {key} cannot go in a request"
            )));
        };
        let decision = gray.decide(&req);
        if let Some((_, count)) = versions.values_mut().find(|(v, _)| v == decision.version()) {
            *count += 1;
        }
        *routes
            .entry(decision.route().unwrap_or("(default)").to_owned())
            .or_default() += 1;
        if let Some(mirror) = decision.mirror() {
            *copies.entry(mirror.version().to_owned()).or_default() += 1;
        }
    }
    writeln!(out, "{n} simulated users, {key}:")?;
    let percent = |count: u64| 100.0 * count as f64 / n.max(1) as f64;
    for (version, count) in versions.values() {
        writeln!(out, "  {version:<8} {count:>6}  {:>6.2}%", percent(*count))?;
    }
    writeln!(out, "by route:")?;
    for (route, count) in &routes {
        writeln!(out, "  {route:<16} {count:>6}")?;
    }
    if !copies.is_empty() {
        writeln!(out, "mirrored (a copy as well):")?;
        for (version, count) in &copies {
            writeln!(out, "  {version:<8} {count:>6}  {:>6.2}%", percent(*count))?;
        }
    }
    Ok(())
}
