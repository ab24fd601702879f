//! Typed errors: loading a rules file, and the validation that names the route and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::Format;

/// Why a rules file could not be loaded or a config was refused.
///
/// A refused config never replaces the rules in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file's extension names no known format.
    #[error("{}: unknown rules file format (expected .yaml, .yml, .toml or .json)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The text is not valid for its format, or does not fit the schema (an unknown field,
    /// a wrong type). The message carries the parser's position, and the error names the
    /// field at fault when there is one.
    ///
    /// ```
    /// use gray_core::{Config, Error};
    ///
    /// let err = Config::from_yaml("versions: [stable, canary]\nroutes:\n  - { name: a, to: [canary] }")
    ///     .unwrap_err();
    /// assert!(matches!(&err, Error::Parse { field: Some(f), .. } if f == "routes[0].to"));
    /// assert!(err.to_string().starts_with("invalid YAML at `routes[0].to`: "));
    /// ```
    #[error(
        "{}invalid {format}{}: {message}",
        file_prefix(path.as_deref()),
        field_suffix(field.as_deref())
    )]
    Parse {
        /// The format that was being parsed.
        format: Format,
        /// The file, when loading from one.
        path: Option<PathBuf>,
        /// Where in the rules the parser stopped, as validation names fields (`versions`,
        /// `routes[0].match.headers`, `label.inherit`), when it stopped inside a field: not
        /// for a syntax error before any field is read, nor for a field missing from the
        /// top level.
        field: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// The rules file cannot be watched (feature `watch`).
    #[error("cannot watch {}: {message}", path.display())]
    Watch {
        /// The file.
        path: PathBuf,
        /// What the file watcher said.
        message: String,
    },
    /// The config parsed but breaks rules: see [`Invalid`]. Every problem found is
    /// listed ([`problems`](Self::problems)), each starting a line of its own: those
    /// outside routes, and a route's — its name (empty, too long or repeated; the rest of
    /// the route is checked all the same), each of its match's conditions, its `to` or each
    /// part of its `split` (a weight, the weights' sum once each is sound, the key or each
    /// key of its `first_of`, the salt, the cookie), its mirror (checked once the route's
    /// action is sound). Problems with `versions`, which every route refers to, are told
    /// alone.
    #[error("{}", invalid_lines(path.as_deref(), problems))]
    Invalid {
        /// What is wrong, and where: every problem found — those outside routes, then the
        /// routes' in their order; at least one.
        problems: Box<[Invalid]>,
        /// The file, when loading from one.
        path: Option<PathBuf>,
    },
}

fn field_suffix(field: Option<&str>) -> String {
    field.map(|f| format!(" at `{f}`")).unwrap_or_default()
}

fn file_prefix(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// Each problem starting a line of its own, naming the file.
fn invalid_lines(path: Option<&Path>, problems: &[Invalid]) -> String {
    let file = file_prefix(path);
    let lines: Vec<String> = problems.iter().map(|p| format!("{file}{p}")).collect();
    lines.join("\n")
}

impl Error {
    pub(crate) fn parse(format: Format, err: impl fmt::Display) -> Self {
        Self::parse_at(format, None, err)
    }

    /// A parse error inside `field` (`None` at the top level).
    pub(crate) fn parse_at(format: Format, field: Option<String>, err: impl fmt::Display) -> Self {
        Self::Parse {
            format,
            path: None,
            field,
            message: err.to_string(),
        }
    }

    /// Attaches the file the error came from.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            Self::Parse {
                format,
                field,
                message,
                ..
            } => Self::Parse {
                format,
                path: Some(file.to_path_buf()),
                field,
                message,
            },
            Self::Invalid { problems, .. } => Self::Invalid {
                problems,
                path: Some(file.to_path_buf()),
            },
            other => other,
        }
    }

    /// The validation failure, when that is what this is: its first problem (see
    /// [`problems`](Self::problems)).
    pub fn invalid(&self) -> Option<&Invalid> {
        match self {
            Self::Invalid { problems, .. } => problems.first(),
            _ => None,
        }
    }

    /// Every problem of a validation failure — those outside routes (`label`, `real_ip`),
    /// then the routes' in their order — and none for other errors.
    ///
    /// ```
    /// use gray_core::Config;
    /// use gray_core::rules::Problem;
    ///
    /// let config = Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - { name: testers, to: beta }
    ///   - { name: users, split: { weights: { stable: 90, canary: 20 } } }
    /// "#)?;
    /// let err = config.validate().unwrap_err();
    /// let fields: Vec<_> = err.problems().map(|p| (p.route.as_deref(), p.field.as_str())).collect();
    /// assert_eq!(fields, [(Some("testers"), "to"), (Some("users"), "split.weights")]);
    /// assert_eq!(err.to_string(), "route \"testers\": to: unknown version \"beta\" (not in `versions`)\n\
    ///                              route \"users\": split.weights: weights sum to 110, not 100");
    /// # Ok::<(), gray_core::Error>(())
    /// ```
    pub fn problems(&self) -> impl Iterator<Item = &Invalid> {
        let problems = match self {
            Self::Invalid { problems, .. } => &problems[..],
            _ => &[],
        };
        problems.iter()
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid {
            problems: Box::new([invalid]),
            path: None,
        }
    }
}

/// The problems found in a config, in the order they are told; at least one.
pub(crate) struct Problems(pub(crate) Invalid, pub(crate) Vec<Invalid>);

impl From<Problems> for Error {
    fn from(Problems(first, more): Problems) -> Self {
        Self::Invalid {
            problems: std::iter::once(first).chain(more).collect(),
            path: None,
        }
    }
}

impl From<Invalid> for Problems {
    fn from(invalid: Invalid) -> Self {
        Self(invalid, Vec::new())
    }
}

/// A config that parsed but breaks a rule, with the route and the field at fault.
///
/// Displays as `route "premium-active": match.headers[1].regex: invalid regex: …`, or
/// `versions: …` for a problem outside any route.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{field}: {problem}", route_prefix(route.as_deref()))]
pub struct Invalid {
    /// The route's name, or `#N` for a route with no usable name (empty, or over 128
    /// bytes): its place in `routes`, counted from 0. `None` outside routes.
    pub route: Option<String>,
    /// The field, as a path from the route (or from the top of the file).
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

fn route_prefix(route: Option<&str>) -> String {
    route
        .map(|r| format!("route \"{r}\": "))
        .unwrap_or_default()
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// `versions` is empty.
    #[error("at least one version must be declared (the first is the default)")]
    NoVersions,
    /// More versions than the engine supports.
    #[error("{count} versions declared; at most {max} are supported")]
    TooManyVersions {
        /// How many were declared.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A version name is declared twice.
    #[error("version \"{0}\" is declared twice")]
    DuplicateVersion(String),
    /// A version name that cannot travel as a label.
    #[error("version {0:?} is not a valid label: use 1 to 64 of the characters A-Z a-z 0-9 . _ -")]
    BadVersionName(String),
    /// `to` or `weights` names a version that is not in `versions`.
    #[error("unknown version \"{0}\" (not in `versions`)")]
    UnknownVersion(String),
    /// Two routes share a name: this one and the one at `first` in `routes` (counted
    /// from 0), which keeps it.
    #[error("duplicate route name (route #{first} has it)")]
    DuplicateRoute {
        /// The place in `routes` of the first route with the name.
        first: usize,
    },
    /// A route name that is empty or too long.
    #[error("route name must be 1 to 128 bytes long")]
    BadRouteName,
    /// A route has neither `to` nor `split`, or both.
    #[error("a route needs exactly one of `to` and `split`")]
    RouteAction,
    /// Weights do not sum to 100.
    #[error("weights sum to {sum}, not 100")]
    WeightSum {
        /// The sum found.
        sum: f64,
    },
    /// A weight is negative, not a number, or over 100.
    #[error("weight {0} is not between 0 and 100")]
    WeightRange(f64),
    /// A weight with more than two decimals.
    #[error("weight {0} is finer than the 0.01% resolution")]
    WeightResolution(f64),
    /// A `mirror.percent` that is not a percentage with at most two decimals.
    #[error("mirror percent {0} is not between 0 and 100 with at most two decimals")]
    MirrorPercent(f64),
    /// A `mirror.to` naming the version the route already sends every request to.
    #[error("the route sends every request to \"{0}\" already: a copy there would run each twice")]
    MirrorToSelf(String),
    /// `split.set_cookie` on a split not keyed by a cookie (`by: { cookie: … }`, or one
    /// among `first_of`).
    #[error(
        "set_cookie needs a split keyed by a cookie: `by: {{ cookie: <name> }}`, or a cookie \
         among `by: {{ first_of: [...] }}`"
    )]
    SetCookieWithoutCookieKey,
    /// A `set_cookie.max_age` of 0, or past the 400 days browsers keep a cookie.
    #[error("max_age {0} is not between 1 and 34560000 seconds (400 days)")]
    CookieMaxAge(u32),
    /// A `set_cookie.path` or `domain` that is not a cookie attribute value.
    #[error(
        "{0:?} is not a valid cookie attribute (a path starts with /; a domain is letters, \
         digits, dots and dashes; neither has spaces, controls or ;)"
    )]
    BadCookieAttribute(String),
    /// A header name that HTTP does not allow.
    #[error("{0:?} is not a valid header name")]
    BadHeaderName(String),
    /// `label.header` names a header that HTTP, cookies, auth or tracing already use: the
    /// middleware overwrites the label header on every request, so the label needs a
    /// header of its own.
    #[error(
        "{0:?} already means something to HTTP or to tracing, and the label header is overwritten \
         on every request: use a header of its own (the default is x-gray-version)"
    )]
    ReservedLabelHeader(String),
    /// A cookie or query parameter name that is empty or has separators in it.
    #[error("{0:?} is not a valid name")]
    BadName(String),
    /// A regex that does not compile.
    #[error("invalid regex: {0}")]
    BadRegex(String),
    /// A regex that compiles to more than the engine's limit for one regex. What makes a
    /// short regex large is a Unicode class (`\w`, `\d`, `\p{L}`, `[\w.-]`) under a
    /// counted repetition: it is compiled once per repetition.
    #[error(
        "the regex compiles to more than {} KiB, the limit for one regex: a Unicode class such as \\w, \\d \
         or \\p{{L}} is compiled once for each repetition of {{m,n}} — use + or * there, a smaller \
         count, or an ASCII class ([A-Za-z0-9_], or (?-u:\\w))",
        limit / 1024
    )]
    RegexTooBig {
        /// The limit, in bytes of compiled program.
        limit: usize,
    },
    /// A condition with none, or more than one, of `exact`, `prefix`, `regex`, `present`.
    #[error("a condition needs exactly one of {0}")]
    MatcherArity(&'static str),
    /// A method name that is not an HTTP token.
    #[error("{0:?} is not a valid HTTP method")]
    BadMethod(String),
    /// A [`Rollout`](crate::rollout::Rollout) holds the canary at a weight that the split's other
    /// versions leave no room for (their weights changed in a reload mid-rollout).
    #[error(
        "a rollout holds {canary:?} at {weight}%, and the other versions' {others}% leave no room \
         for it: keep their weights, or end the rollout first"
    )]
    HeldByRollout {
        /// The rollout's canary.
        canary: String,
        /// Its weight, held.
        weight: f64,
        /// The sum of the other versions' weights (the default version's aside).
        others: f64,
    },
    /// A `cidr` or `trusted` entry that is neither a network (`10.0.0.0/8`) nor an address.
    #[error("{0:?} is not a network (10.0.0.0/8, 2001:db8::/32) or an address")]
    BadNetwork(String),
    /// An empty list of networks.
    #[error("at least one network is needed")]
    NoNetworks,
    /// `label.from` at an edge (`inherit: never`), where no incoming label is honoured.
    #[error(
        "only applies with `inherit: always`: with `inherit: never` no incoming label is honoured, from any peer"
    )]
    LabelFromAtEdge,
    /// `split.by.first_of` lists no key.
    #[error("at least one key is needed")]
    NoKeys,
    /// A `first_of` inside a `first_of`.
    #[error("a first_of cannot list another first_of: list its keys")]
    NestedFirstOf,
    /// A list longer than the engine's limit.
    #[error("{count} entries; at most {max} are allowed")]
    TooMany {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string over the engine's size limit.
    #[error("value is {len} bytes; at most {max} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Invalid {
    pub(crate) fn new(route: Option<&str>, field: impl Into<String>, problem: Problem) -> Self {
        Self {
            route: route.map(str::to_owned),
            field: field.into(),
            problem,
        }
    }
}
