//! Config → [`Engine`]: every check that can refuse a config, naming the route and field;
//! the routes themselves are compiled in `route`.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use super::client_ip::Networks;
use super::compiled::{Action, CompiledRoute, Condition, Engine};
use super::real_ip::RealIp;
use super::route::{compile_route, list_at};
use super::values::{Field, Fields, Reads, field_bit};
use crate::context::{GrayContext, intern};
use crate::label::{BAGGAGE_HEADER, DEFAULT_LABEL_HEADER, MAX_LABEL_LEN};
use crate::rules::names::{header_name, label_header_name};
use crate::rules::{
    Config, Error, Inherit, Invalid, MAX_VERSIONS, Problem, Problems, RealIpConfig,
};

const MAX_ROUTE_NAME: usize = 128;

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
                    intern::header_value(v).unwrap_or_else(|| {
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
        let label_header = if config.label.header == DEFAULT_LABEL_HEADER {
            HeaderName::from_static(DEFAULT_LABEL_HEADER)
        } else {
            match header_name(&config.label.header).and_then(label_header_name) {
                Ok(parsed) => intern::header_name(&parsed).unwrap_or(parsed),
                Err(p) => {
                    // Refused below; the default stands in while the routes are checked.
                    problems.push(Invalid::new(None, "label.header", p));
                    HeaderName::from_static(DEFAULT_LABEL_HEADER)
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
            .then(|| fields.intern(Field::Header(BAGGAGE_HEADER)));
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
                .fold(0, |bits, field| bits | field_bit(field)),
            inherit,
            baggage_bit: baggage.map_or(0, field_bit),
            baggage,
            reads: Reads::new(fields, real_ip),
            unavailable: Default::default(),
            routes: routes.into(),
            reads_peer: routes_read_client_ip || label_from.is_some(),
            label_from,
            config: Arc::new(config),
        })
    }
}

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

impl Config {
    /// Checks the config exactly as [`Gray::new`](crate::Gray::new) would, without keeping
    /// the compiled rules: the same errors, naming the route and the field.
    pub fn validate(&self) -> Result<(), Error> {
        Engine::compile(self.clone()).map(drop).map_err(Error::from)
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
        let before = intern::charged();
        assert!(Engine::compile(config).is_err());
        // Other tests of this binary may intern a little meanwhile; these names are
        // 400 KB and more.
        let kept = intern::charged() - before;
        assert!(kept < 10_000, "{kept} bytes kept for a refused config");
    }
}
