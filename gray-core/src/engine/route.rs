//! One route compiled: its match's conditions, its action (`to`, or a split's weights,
//! key, salt and cookie) and its mirror — or every problem found in them.

use std::sync::Arc;

use super::bucket::{BUCKETS, Weighted};
use super::client_ip::Networks;
use super::compiled::{Action, CompiledRoute, Condition};
use super::matcher::Pattern;
use super::mirror::CompiledMirror;
use super::set_cookie::AssignCookie;
use super::split_key::{SplitKey, cookie_name};
use super::values::{Field, Fields};
use crate::context::GrayContext;
use crate::rules::names::{COOKIE_SEPARATORS, MAX_NAME, QUERY_SEPARATORS, header_name, plain_name};
use crate::rules::{Match, MirrorConfig, Problem, Route, Split, ValueMatch};

const VALUE_MATCHERS: &str = "`exact`, `prefix`, `regex`, `present`";
const PATH_MATCHERS: &str = "`exact`, `prefix`, `regex`";

/// A problem and the field it is in, under the route.
pub(super) type FieldError = (String, Problem);

/// `list`, or its entry `index`.
pub(super) fn list_at(list: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{list}[{i}]"),
        None => list.to_owned(),
    }
}

/// A route, or its problems: each of its match's conditions, each part of its action
/// (`to`, or a split's weights, key, salt and cookie), its mirror (checked once the action
/// is sound: it is checked against it).
pub(super) fn compile_route(
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
