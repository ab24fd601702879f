//! Config → [`Engine`]: every check that can refuse a config, naming the route and field.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use crate::bucket::{BUCKETS, Weighted};
use crate::client_ip::{Networks, RealIp, RealIpConfig};
use crate::config::{Config, Inherit, Match, MirrorConfig, Route, Split, ValueMatch};
use crate::context::GrayContext;
use crate::engine::{Action, CompiledRoute, Condition, Engine, MAX_LABEL_LEN};
use crate::error::{Invalid, Problem, Problems};
use crate::matcher::Pattern;
use crate::mirror::CompiledMirror;
use crate::set_cookie::AssignCookie;
use crate::split_key::{SplitKey, cookie_name};
use crate::values::{Field, Fields, HeaderNames};

/// Most versions a config may declare (they are indexed by a byte).
pub const MAX_VERSIONS: usize = 256;
const MAX_ROUTE_NAME: usize = 128;
const MAX_NAME: usize = 256;
const VALUE_MATCHERS: &str = "`exact`, `prefix`, `regex`, `present`";
const PATH_MATCHERS: &str = "`exact`, `prefix`, `regex`";

impl Engine {
    /// Validates and compiles a config. Every problem found is returned, in the config's
    /// order: problems with `versions`, which every route refers to, alone; else those of
    /// `label`, `real_ip`, then each route's (see `compile_route`).
    pub(crate) fn compile(config: Config) -> Result<Self, Problems> {
        let versions = compile_versions(&config.versions)?;
        let version_values = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let value = http::HeaderValue::from_str(v).map(|value| {
                    // Interned: cloning it per request copies a pointer. Past the interner's
                    // cap, a shared buffer: cloned once here, because `bytes` turns a fresh
                    // buffer into a shared one on its first clone (one allocation), so
                    // clones per request never allocate.
                    crate::intern::header_value(v).unwrap_or_else(|| {
                        drop(value.clone());
                        value
                    })
                });
                value.map_err(|_| {
                    Invalid::new(
                        None,
                        format!("versions[{i}]"),
                        Problem::BadVersionName(v.to_string()),
                    )
                })
            })
            .collect::<Result<Box<[_]>, _>>()?;
        // Given by the `Gray` that adopts the engine.
        let metric_slots = vec![None; versions.len()].into();
        // Outside routes (`label`, `real_ip`), and the routes'.
        let (mut problems, mut route_problems) = (Vec::new(), Vec::new());
        // Static (the default name, or interned): adapters clone it per request for free.
        let label_header = if config.label.header == crate::DEFAULT_LABEL_HEADER {
            HeaderName::from_static(crate::DEFAULT_LABEL_HEADER)
        } else {
            match header_name(&config.label.header).and_then(label_header_name) {
                Ok(parsed) => crate::intern::header_name(&parsed).unwrap_or(parsed),
                Err(p) => {
                    // Refused below; the default stands in while the routes are checked.
                    problems.push(Invalid::new(None, "label.header", p));
                    HeaderName::from_static(crate::DEFAULT_LABEL_HEADER)
                }
            }
        };
        let inherit = config.label.inherit == Inherit::Always;
        let label_from = match &config.label.from {
            None => None,
            Some(_) if !inherit => {
                problems.push(Invalid::new(None, "label.from", Problem::LabelFromAtEdge));
                None
            }
            Some(list) => Networks::compile(list)
                .map_err(|(i, p)| problems.push(Invalid::new(None, list_at("label.from", i), p)))
                .ok(),
        };
        let mut fields = Fields::default();

        let mut names = HashMap::with_capacity(config.routes.len());
        let mut routes = Vec::with_capacity(config.routes.len());
        for (index, route) in config.routes.iter().enumerate() {
            // A route without a usable name (empty, or too long to repeat in every
            // message) is told by its place in `routes`.
            let bad_name = route.name.is_empty() || route.name.len() > MAX_ROUTE_NAME;
            let id = if bad_name {
                format!("#{index}")
            } else {
                route.name.clone()
            };
            let err = |field: &str, problem| Invalid::new(Some(&id), field, problem);
            // A bad or repeated name is told first; the route's body is checked all the
            // same, so that one refusal tells every problem, the body's included.
            if bad_name {
                route_problems.push(err("name", Problem::BadRouteName));
            } else if let Some(&first) = names.get(route.name.as_str()) {
                route_problems.push(err("name", Problem::DuplicateRoute { first }));
            } else {
                names.insert(route.name.as_str(), index);
            }
            match compile_route(route, &config.versions, &mut fields) {
                // Kept even under a refused name: any problem refuses the whole config.
                Ok(compiled) => routes.push(compiled),
                Err(problems) => route_problems.extend(
                    problems
                        .into_iter()
                        .map(|(field, problem)| err(&field, problem)),
                ),
            }
        }
        // Incoming labels are looked at to honour them (`inherit: always`), and at an edge
        // to count them as refused — unless a route reads the label header itself (say, to
        // let testers force a version): there it is a rule's input, not a refused label.
        let label_field = Field::Header(label_header.clone());
        let label = (inherit || !fields.contains(&label_field)).then(|| fields.intern(label_field));
        // Read for an incoming label where labels are looked at, and everywhere for a
        // `gray` member that contradicts the decision (the adapters rewrite it).
        let baggage = config
            .label
            .baggage
            .then(|| fields.intern(Field::Header(crate::BAGGAGE_HEADER)));
        let routes_read_client_ip = reads_client_ip(&routes);
        let real_ip = match &config.real_ip {
            Some(real) => {
                compile_real_ip(real, routes_read_client_ip, &mut fields).unwrap_or_else(|e| {
                    problems.push(e);
                    None
                })
            }
            None => None,
        };
        problems.append(&mut route_problems);
        if !problems.is_empty() {
            let first = problems.remove(0);
            return Err(Problems(first, problems));
        }
        // Only now, for rules that are taken: the contexts' names are interned for the life
        // of the process, and a refused config's (a route name of any length) would use up
        // the interner's room for nothing.
        for route in &mut routes {
            let name = Some(Arc::clone(&route.name));
            let context = |v: &Arc<str>| GrayContext::from_parts(Arc::clone(v), name.clone());
            route.contexts = match route.action {
                Action::To(v) => Box::new([context(&versions[usize::from(v)])]),
                Action::Split { .. } => versions.iter().map(context).collect(),
            };
            if let Some(mirror) = &mut route.mirror {
                mirror.context = context(&versions[usize::from(mirror.version)]);
            }
        }
        let unrouted = versions
            .iter()
            .map(|v| GrayContext::from_parts(Arc::clone(v), None))
            .collect();
        let (fields, slots) = fields.finish();
        let header_names = HeaderNames::new(&fields);
        Ok(Self {
            versions,
            version_values,
            metric_slots,
            unrouted,
            label_header,
            label,
            label_bits: label
                .into_iter()
                .chain(baggage)
                .fold(0, |bits, field| bits | crate::values::field_bit(field)),
            inherit,
            baggage_bit: baggage.map_or(0, crate::values::field_bit),
            baggage,
            fields,
            slots,
            header_names,
            unavailable: Default::default(),
            routes: routes.into(),
            real_ip,
            reads_peer: routes_read_client_ip || label_from.is_some(),
            label_from,
            config: Arc::new(config),
        })
    }
}

type FieldError = (String, Problem);

/// `real_ip:`, checked; kept (its header read on every request) only when a rule reads the
/// client's address.
fn compile_real_ip(
    real: &RealIpConfig,
    reads_client_ip: bool,
    fields: &mut Fields,
) -> Result<Option<RealIp>, Invalid> {
    let header = header_name(&real.header).map_err(|p| Invalid::new(None, "real_ip.header", p))?;
    let trusted = Networks::compile(&real.trusted)
        .map_err(|(i, p)| Invalid::new(None, list_at("real_ip.trusted", i), p))?;
    if !reads_client_ip {
        return Ok(None);
    }
    let field = fields.intern(Field::Header(header.clone()));
    Ok(Some(RealIp::new(field, header, trusted)))
}

/// Whether a route matches on the client's address or splits by it.
fn reads_client_ip(routes: &[CompiledRoute]) -> bool {
    routes.iter().any(|route| {
        matches!(
            &route.action,
            Action::Split { key: Some(key), .. } if key.reads_client_ip()
        ) || route
            .conditions
            .iter()
            .any(|c| matches!(c, Condition::ClientIp { .. }))
    })
}

/// `list`, or its entry `index`.
fn list_at(list: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{list}[{i}]"),
        None => list.to_owned(),
    }
}

/// The versions, or their problems: none declared, too many, or each name that is bad or
/// declared twice.
fn compile_versions(versions: &[String]) -> Result<Box<[Arc<str>]>, Problems> {
    let err = |field: String, problem| Invalid::new(None, field, problem);
    if versions.is_empty() {
        return Err(err("versions".into(), Problem::NoVersions).into());
    }
    if versions.len() > MAX_VERSIONS {
        return Err(err(
            "versions".into(),
            Problem::TooManyVersions {
                count: versions.len(),
                max: MAX_VERSIONS,
            },
        )
        .into());
    }
    let mut problems = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let valid = (1..=MAX_LABEL_LEN).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            let problem = Problem::BadVersionName(v.clone());
            problems.push(err(format!("versions[{i}]"), problem));
        } else if versions[..i].contains(v) {
            let problem = Problem::DuplicateVersion(v.clone());
            problems.push(err(format!("versions[{i}]"), problem));
        }
    }
    if !problems.is_empty() {
        let first = problems.remove(0);
        return Err(Problems(first, problems));
    }
    Ok(versions.iter().map(|v| Arc::from(v.as_str())).collect())
}

/// A route, or its problems: each of its match's conditions, each part of its action
/// (`to`, or a split's weights, key, salt and cookie), its mirror (checked once the action
/// is sound: it is checked against it).
fn compile_route(
    route: &Route,
    versions: &[String],
    fields: &mut Fields,
) -> Result<CompiledRoute, Vec<FieldError>> {
    let mut problems = Vec::new();
    let conditions = match &route.matches {
        Some(m) => compile_match(m, fields)
            .map_err(|found| problems.extend(found))
            .ok(),
        None => Some(Default::default()),
    };
    let action = match (&route.to, &route.split) {
        (Some(to), None) => version_index(versions, to)
            .map(Action::To)
            .map_err(|p| vec![("to".to_owned(), p)]),
        (None, Some(split)) => compile_split(split, &route.name, versions, fields),
        _ => Err(vec![("to".into(), Problem::RouteAction)]),
    };
    let action = action.map_err(|found| problems.extend(found)).ok();
    let name: Arc<str> = Arc::from(route.name.as_str());
    let mirror = match (&route.mirror, &action) {
        (Some(mirror), Some(action)) => compile_mirror(mirror, action, versions)
            .map_err(|found| problems.extend(found))
            .ok(),
        (Some(_), None) | (None, _) => Some(None),
    };
    match (conditions, action, mirror) {
        (Some((conditions, condition_paths)), Some(action), Some(mirror)) => Ok(CompiledRoute {
            name,
            conditions,
            condition_paths,
            action,
            contexts: Box::default(),
            mirror,
        }),
        _ => Err(problems),
    }
}

/// `part` compiled, or `None` with its problem kept in `problems`.
fn checked<T>(part: Result<T, FieldError>, problems: &mut Vec<FieldError>) -> Option<T> {
    part.map_err(|problem| problems.push(problem)).ok()
}

/// A route's `mirror:`; `None` when it copies nothing (0%). Its `to` and its `percent`
/// are checked apart: both may be told.
fn compile_mirror(
    mirror: &MirrorConfig,
    action: &Action,
    versions: &[String],
) -> Result<Option<CompiledMirror>, Vec<FieldError>> {
    let version = version_index(versions, &mirror.to).and_then(|version| {
        if matches!(action, Action::To(to) if *to == version) {
            Err(Problem::MirrorToSelf(mirror.to.clone()))
        } else {
            Ok(version)
        }
    });
    let bp = basis_points(mirror.percent);
    let (version, bp) = match (version, bp) {
        (Ok(version), Ok(bp)) => (version, bp),
        (version, bp) => {
            let to = version.err().map(|p| ("mirror.to".to_owned(), p));
            let percent = bp.err().map(|_| {
                let problem = Problem::MirrorPercent(mirror.percent);
                ("mirror.percent".to_owned(), problem)
            });
            return Err(to.into_iter().chain(percent).collect());
        }
    };
    if bp == 0 {
        return Ok(None);
    }
    // A stand-in: its interned context (the mirror version, this route) is given once the
    // whole config is taken.
    let context = GrayContext::new(versions[usize::from(version)].as_str());
    Ok(Some(CompiledMirror::new(version, bp, context)))
}

/// Why a number is no percentage at the 0.01% resolution of weights and mirrors.
enum Percent {
    /// Not within 0..=100 (or not a number).
    OutOfRange,
    /// More than two decimals.
    TooFine,
}

/// `percent` in basis points (0..=10_000).
fn basis_points(percent: f64) -> Result<u16, Percent> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(Percent::OutOfRange);
    }
    let scaled = percent * 100.0;
    if (scaled - scaled.round()).abs() > 1e-6 {
        return Err(Percent::TooFine);
    }
    // In 0..=10_000 after the range check.
    Ok(scaled.round() as u16)
}

/// A match's conditions, in the order written, each with where it is in the config.
type Conditions = (Box<[Condition]>, Box<[Box<str>]>);

/// A match's conditions, or the problem of each condition that has one (a condition's
/// name and its matcher are checked apart: both may be told).
fn compile_match(m: &Match, fields: &mut Fields) -> Result<Conditions, Vec<FieldError>> {
    let mut out = Vec::new();
    let mut paths: Vec<Box<str>> = Vec::new();
    let mut problems = Vec::new();
    for (kind, list) in [
        ("headers", &m.headers),
        ("query", &m.query),
        ("cookies", &m.cookies),
    ] {
        for (i, vm) in list.iter().enumerate() {
            let at = format!("match.{kind}[{i}]");
            let field = match kind {
                "headers" => header_name(&vm.name).map(Field::Header),
                "query" => plain_name(&vm.name, QUERY_SEPARATORS).map(Field::Query),
                _ => plain_name(&vm.name, COOKIE_SEPARATORS).map(Field::Cookie),
            }
            .map_err(|p| (format!("{at}.name"), p));
            let pattern = value_pattern(vm).map_err(|(sub, p)| (join(&at, sub), p));
            match (field, pattern) {
                (Ok(field), Ok((pattern, invert))) => {
                    out.push(Condition::Value {
                        field: fields.intern(field),
                        pattern,
                        invert,
                    });
                    paths.push(at.into());
                }
                (field, pattern) => problems.extend(field.err().into_iter().chain(pattern.err())),
            }
        }
    }
    if let Some(path) = &m.path {
        let compiled = Pattern::compile(
            path.exact.as_deref(),
            path.prefix.as_deref(),
            path.regex.as_deref(),
            None,
            PATH_MATCHERS,
        );
        match compiled {
            Ok((pattern, flip)) => {
                out.push(Condition::Path {
                    pattern,
                    invert: path.invert != flip,
                });
                paths.push("match.path".into());
            }
            Err((sub, p)) => problems.push((join("match.path", sub), p)),
        }
    }
    if let Some(method) = &m.method {
        if http::Method::from_bytes(method.as_bytes()).is_ok() {
            out.push(Condition::Method(method.as_str().into()));
            paths.push("match.method".into());
        } else {
            let problem = Problem::BadMethod(method.clone());
            problems.push(("match.method".to_owned(), problem));
        }
    }
    if let Some(client) = &m.client_ip {
        match Networks::compile(&client.cidr) {
            Ok(networks) => {
                out.push(Condition::ClientIp {
                    networks,
                    invert: client.invert,
                });
                paths.push("match.client_ip".into());
            }
            Err((i, p)) => problems.push((list_at("match.client_ip.cidr", i), p)),
        }
    }
    if problems.is_empty() {
        Ok((out.into(), paths.into()))
    } else {
        Err(problems)
    }
}

fn value_pattern(vm: &ValueMatch) -> Result<(Pattern, bool), (&'static str, Problem)> {
    let (pattern, flip) = Pattern::compile(
        vm.exact.as_deref(),
        vm.prefix.as_deref(),
        vm.regex.as_deref(),
        vm.present,
        VALUE_MATCHERS,
    )?;
    Ok((pattern, vm.invert != flip))
}

/// A split, or every problem of its parts: each weight (the sum only when each is sound),
/// its key, its salt, its cookie.
fn compile_split(
    split: &Split,
    route: &str,
    versions: &[String],
    fields: &mut Fields,
) -> Result<Action, Vec<FieldError>> {
    let mut problems = Vec::new();
    let mut points = vec![0u16; versions.len()];
    let mut sum = 0u32;
    for (name, &weight) in &split.weights {
        let at = || format!("split.weights.{name}");
        let index = version_index(versions, name).map_err(|p| (at(), p));
        let bp = basis_points(weight).map_err(|e| match e {
            Percent::OutOfRange => (at(), Problem::WeightRange(weight)),
            Percent::TooFine => (at(), Problem::WeightResolution(weight)),
        });
        match (index, bp) {
            (Ok(index), Ok(bp)) => {
                points[usize::from(index)] = bp;
                sum += u32::from(bp);
            }
            (index, bp) => problems.extend(index.err().into_iter().chain(bp.err())),
        }
    }
    if problems.is_empty() && sum != u32::from(BUCKETS) {
        let problem = Problem::WeightSum {
            sum: f64::from(sum) / 100.0,
        };
        problems.push(("split.weights".into(), problem));
    }
    let key = match &split.by {
        None => None,
        Some(by) => SplitKey::compile(by, "split.by", fields)
            .map_err(|found| problems.extend(found))
            .ok(),
    };
    let salt = split.salt.as_deref().unwrap_or(route);
    if salt.len() > MAX_NAME {
        let problem = Problem::TooLong {
            len: salt.len(),
            max: MAX_NAME,
        };
        problems.push(("split.salt".into(), problem));
    }
    let assign = match (&split.set_cookie, split.by.as_ref().and_then(cookie_name)) {
        (None, _) => None,
        (Some(cookie), Some(name)) => {
            checked(AssignCookie::compile(cookie, name), &mut problems).map(Box::new)
        }
        (Some(_), None) => {
            let problem = Problem::SetCookieWithoutCookieKey;
            problems.push(("split.set_cookie".into(), problem));
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Action::Split {
        key,
        weighted: Box::new(Weighted::new(salt, &points)),
        assign,
    })
}

fn join(at: &str, sub: &str) -> String {
    if sub.is_empty() {
        at.to_owned()
    } else {
        format!("{at}.{sub}")
    }
}

fn version_index(versions: &[String], name: &str) -> Result<u8, Problem> {
    // Versions are capped at MAX_VERSIONS (256), so the index fits a byte.
    versions
        .iter()
        .position(|v| v == name)
        .map(|i| i as u8)
        .ok_or_else(|| Problem::UnknownVersion(name.to_owned()))
}

pub(crate) fn header_name(name: &str) -> Result<HeaderName, Problem> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| Problem::BadHeaderName(name.to_owned()))
}

/// Headers the label must not take over: the adapters overwrite the label header on every
/// request, and these carry HTTP's framing, routing, state and credentials, or trace
/// context (`baggage` carries the label beside other members, never as a whole header).
const RESERVED_LABEL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "baggage",
    "traceparent",
    "tracestate",
];

fn label_header_name(name: HeaderName) -> Result<HeaderName, Problem> {
    if RESERVED_LABEL_HEADERS.contains(&name.as_str()) {
        return Err(Problem::ReservedLabelHeader(name.as_str().to_owned()));
    }
    Ok(name)
}

/// Bytes a cookie name cannot hold: they separate cookies, names and values.
pub(crate) const COOKIE_SEPARATORS: &[u8] = b";=, \t\"";
/// Bytes a query parameter name cannot hold.
pub(crate) const QUERY_SEPARATORS: &[u8] = b"&=#";

pub(crate) fn plain_name(name: &str, forbidden: &[u8]) -> Result<Box<str>, Problem> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
        && !name.bytes().any(|b| forbidden.contains(&b));
    if ok {
        Ok(name.into())
    } else {
        Err(Problem::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused config keeps nothing for the life of the process: not the names of its
    /// contexts (a route name may be of any length when it is what is refused), nor its
    /// mirror's.
    #[test]
    fn a_refused_config_interns_nothing() {
        let long = "n".repeat(200_000);
        let yaml = format!(
            "versions: [stable, canary]\nroutes:\n  - {{ name: {long}, to: canary, mirror: {{ to: stable }} }}\n  - {{ name: {long}x, split: {{ weights: {{ stable: 50, canary: 50 }} }} }}\n  - {{ name: d, to: nowhere }}\n"
        );
        let config = Config::from_yaml(&yaml).expect("parses");
        let before = crate::intern::charged();
        assert!(Engine::compile(config).is_err());
        // Other tests of this binary may intern a little meanwhile; these names are
        // 400 KB and more.
        let kept = crate::intern::charged() - before;
        assert!(kept < 10_000, "{kept} bytes kept for a refused config");
    }
}
