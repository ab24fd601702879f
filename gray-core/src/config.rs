//! The rules file: a serde model that YAML, TOML and JSON all load the same way.
//!
//! A `Config` is only parsed here; it is checked (and compiled) by [`Gray::new`],
//! [`Gray::reload`] or [`Config::validate`], which name the route and the field at fault.
//!
//! [`Gray::new`]: crate::Gray::new
//! [`Gray::reload`]: crate::Gray::reload

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::client_ip::{ClientIpMatch, RealIpConfig};
use crate::error::Error;

/// The whole rules file.
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: testers
///     match:
///       headers: [{ name: x-app-version, exact: beta }]
///     to: canary
/// "#)?;
/// assert_eq!(config.versions, ["stable", "canary"]);
/// assert_eq!(config.label.header, "x-gray-version");
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How the version label travels between services.
    #[serde(default)]
    pub label: LabelConfig,
    /// The proxies whose header naming the client is believed, for `match.client_ip` and
    /// `split.by: client_ip`; absent: the client is the connection's peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_ip: Option<RealIpConfig>,
    /// The declared versions (labels). The first one is the default version.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub versions: Vec<String>,
    /// Routes, evaluated in order: the first whose `match` holds decides.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// `label:` — the header that carries the version between services, and whether to trust it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// Header name that carries the label (default `x-gray-version`). A header of its
    /// own: one that HTTP, cookies, credentials or trace context use (`host`,
    /// `content-length`, `cookie`, `authorization`, `baggage`, `traceparent` …) is refused
    /// ([`Problem::ReservedLabelHeader`](crate::Problem::ReservedLabelHeader)), since the
    /// adapters overwrite the label header on every request.
    #[serde(default = "default_label_header")]
    pub header: String,
    /// Whether an incoming label is honoured (default [`Inherit::Never`]).
    #[serde(default)]
    pub inherit: Inherit,
    /// With `inherit: always`, also read the label from the `gray` member of a W3C
    /// `baggage` header when the label header is absent (default `true`), so services
    /// instrumented with OpenTelemetry interoperate. The same rules apply to it. With it
    /// on, the adapters also rewrite a `gray` member that contradicts the decision
    /// ([`Decision::baggage_stale`](crate::Decision::baggage_stale)); off, `baggage` is
    /// left alone.
    #[serde(default = "default_true")]
    pub baggage: bool,
    /// With `inherit: always`, honour an incoming label only from a peer in one of these
    /// networks (CIDR, or single addresses, as in `match.client_ip`): the other services
    /// of the system, say, and not a client that reaches this one past the edge. The peer
    /// is the connection's other end — the caller that wrote the label — never an address
    /// a forwarding header names. A label from any other peer, or from a server that does
    /// not tell the peer's address, is refused and counted as an edge counts them
    /// ([`Gray::rejected_labels`](crate::Gray::rejected_labels)), and the request decided
    /// here. Unset (the default), a label is honoured from any peer.
    ///
    /// A proxy that passes its clients' headers on (an ingress) is a peer too: send it to
    /// an edge that decides (`inherit: never`), or leave its addresses out.
    ///
    /// ```
    /// let config = gray_core::Config::from_yaml(r#"
    /// label: { inherit: always, from: [10.0.0.0/8, "fd00::/8"] }
    /// versions: [stable, canary]
    /// "#)?;
    /// assert_eq!(config.label.from.map(|from| from.len()), Some(2));
    /// # Ok::<(), gray_core::Error>(())
    /// ```
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub from: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

fn default_label_header() -> String {
    crate::DEFAULT_LABEL_HEADER.to_owned()
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            header: default_label_header(),
            inherit: Inherit::Never,
            baggage: true,
            from: None,
        }
    }
}

/// Whether a label arriving with the request is trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Inherit {
    /// Decide here and overwrite any incoming label: the edge of the system (default).
    /// An incoming label is counted as refused (`Gray::rejected_labels`), unless a route
    /// reads the label header itself.
    #[default]
    Never,
    /// Honour an incoming label when it names a declared version (at most 64 bytes);
    /// otherwise ignore it and decide here. For services behind a trusted edge.
    Always,
}

/// One routing rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name, 1 to 128 bytes: reported in decisions, errors and metrics; the default
    /// split salt.
    pub name: String,
    /// Conditions that must all hold (AND). Absent: every request matches.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Match>,
    /// Send every matching request to this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Or split matching requests between versions by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Also send a copy of matching requests to another version, whose answer is
    /// discarded (Istio's `mirror`, traffic shadowing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorConfig>,
}

/// `mirror:` — a copy of a share of the route's requests for another version, whose
/// answer nobody waits for (Istio's `mirror` and `mirrorPercentage`): the canary sees
/// production traffic before it serves any. A request the route already sends to that
/// version is not copied; the share is of the others, drawn as the exact sequence of an
/// unkeyed split (10% is every tenth request on each thread, near enough).
///
/// The engine only decides which requests to copy
/// ([`Decision::mirror`](crate::Decision::mirror)); whatever forwards requests (the
/// `gateway` example, or a proxy of yours) sends the copy.
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: everyone
///     to: stable
///     mirror: { to: canary, percent: 10 }
/// "#)?;
/// let mirror = config.routes[0].mirror.as_ref().unwrap();
/// assert_eq!((mirror.to.as_str(), mirror.percent), ("canary", 10.0));
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The version the copies go to.
    pub to: String,
    /// Percent of the route's requests (not already on `to`) copied; default 100, with at
    /// most two decimals.
    #[serde(default = "hundred", deserialize_with = "crate::percent::one")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub percent: f64,
}

fn hundred() -> f64 {
    100.0
}

/// `match:` — every listed condition must hold. For OR, write two routes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions (values compared as they appear in the URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
    /// Cookie conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<ValueMatch>,
    /// Path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// HTTP method, e.g. `GET` (case-sensitive, as methods are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The client's address is in one of these networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpMatch>,
}

/// A named value (header, query parameter or cookie) and how to match it: exactly one of
/// `exact`, `prefix`, `regex`, `present`, and an optional `invert`.
///
/// `regex` has the [`regex`](https://docs.rs/regex) crate's syntax and meaning, on bytes
/// as `regex::bytes` (a value need not be UTF-8), run by that crate's linear-time engines;
/// it finds a match anywhere in the value, so anchor it (`^high`, `^beta$`) when you mean
/// the start or the whole value. A regex that is only an anchored literal runs as a string
/// compare. `exact` and `prefix` may be 8 KiB long and a regex 4 KiB, and one regex may
/// compile to at most 2 MiB, which `^[\w.-]{1,64}@example\.com$` (1.1 MiB) does: what
/// outgrows it is a Unicode class (`\w`, `\d`, `\p{L}`) under a large count, `\w{1000}`,
/// and the error says what to write instead.
/// A header sent several times is matched on its first value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// Header, parameter or cookie name. The header `host` is also found in an HTTP/2
    /// request, which carries it as the `:authority` pseudo-header instead.
    pub name: String,
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value matches this regular expression (unanchored unless you anchor it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: the value is present (any value); `false`: it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Invert the condition: it holds when the match above does not (an absent value
    /// then satisfies an inverted `exact`, `prefix` or `regex`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// `path:` — exactly one of `exact`, `prefix` (a plain string prefix, as in Istio), `regex`,
/// and an optional `invert`. The path excludes the query string.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    /// The path equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The path matches this regular expression (unanchored unless you anchor it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Invert the condition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// `split:` — share matching requests between versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// What to hash for a sticky split. Absent: an unkeyed, exact weighted sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<SplitBy>,
    /// Percent per version (versions not listed get 0), as numbers: `10`, not `10%`, each
    /// version once. Must sum to 100, with at most two decimals (0.01% resolution).
    #[serde(deserialize_with = "crate::percent::weights")]
    pub weights: BTreeMap<String, f64>,
    /// Hash salt, at most 256 bytes; defaults to the route name. Two splits with different
    /// salts pick independent sets of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// With `by: { cookie: … }` (or a cookie among `first_of`): give a client that comes
    /// without a key one, in that cookie, holding a new random key, so it stays on one
    /// version from its first request on (Flagger's session affinity, nginx's `sticky
    /// cookie`). Absent: such a client takes the unkeyed sequence, request by request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<SetCookieConfig>,
}

/// `set_cookie:` — the cookie a keyed split gives a client that came without its key
/// (`by: { cookie: … }`, or the first cookie among `first_of` when the request has none of
/// its keys), so that anonymous clients are sticky too. The client is placed by
/// the new key's bucket, as every later request that carries the cookie will be, and the
/// response sets the cookie: `Set-Cookie: <name>=<16 hex digits>; Path=/; Max-Age=86400;
/// HttpOnly; SameSite=Lax` by default. Widening the split keeps every such client that was
/// on the widened version, as for any key.
///
/// Requests a client sends before its first answer arrives (a page's first subresources)
/// each draw a key, and the client keeps the last one set; from then on it is sticky.
/// The key is the client's to send, like any split key: it places a client, it does not
/// authenticate one. The adapters (`GrayLayer`, `GrayMiddleware`) append the cookie to the
/// response; [`Decision::set_cookie`](crate::Decision::set_cookie) gives it to others.
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: visitors
///     split:
///       by: { cookie: gray-uid }
///       weights: { stable: 90, canary: 10 }
///       set_cookie: { max_age: 604800, secure: true }
/// "#)?;
/// let cookie = config.routes[0].split.as_ref().unwrap().set_cookie.as_ref().unwrap();
/// assert_eq!((cookie.max_age, cookie.path.as_str(), cookie.secure), (604_800, "/", true));
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SetCookieConfig {
    /// Seconds the cookie lasts (`Max-Age`): 1 to 34,560,000 (400 days, the most browsers
    /// keep a cookie); default 86,400 (a day).
    #[serde(default = "a_day")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 34_560_000)))]
    pub max_age: u32,
    /// The cookie's `Path`; default `/`.
    #[serde(default = "root")]
    pub path: String,
    /// The cookie's `Domain`, to share it with subdomains; absent: this host only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Send the cookie over HTTPS only (`Secure`); default off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
}

impl Default for SetCookieConfig {
    fn default() -> Self {
        Self {
            max_age: a_day(),
            path: root(),
            domain: None,
            secure: false,
        }
    }
}

fn a_day() -> u32 {
    86_400
}

fn root() -> String {
    "/".to_owned()
}

/// The request value a keyed split hashes. When it is absent or empty, the request takes
/// the unkeyed weighted sequence instead (or, with `set_cookie:`, a new key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SplitBy {
    /// `{ header: x-user-id }`
    Header(String),
    /// `{ cookie: uid }`
    Cookie(String),
    /// `{ query: uid }`
    Query(String),
    /// `client_ip`: the client's address (nginx's `split_clients "${remote_addr}"`), as
    /// `match.client_ip` finds it — behind proxies, set `real_ip:`. Clients behind one
    /// NAT share it, and so a version.
    #[serde(rename = "client_ip")]
    ClientIp,
    /// `{ first_of: [{ header: x-user-id }, { cookie: sid }, client_ip] }`: the first of
    /// these keys the request has, not empty (Unleash's default stickiness: the user id,
    /// else the session, else …). Up to 8, none a `first_of`. A client is placed by the
    /// key it has: one that logs in (a user id where there was only a cookie) can move.
    /// With `set_cookie:`, the first cookie listed is the one given, when the request has
    /// none of the keys.
    #[serde(rename = "first_of")]
    FirstOf(#[cfg_attr(feature = "schema", schemars(length(min = 1, max = 8)))] Vec<SplitBy>),
}

/// A rules-file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        match ext.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "YAML",
            Self::Toml => "TOML",
            Self::Json => "JSON",
        })
    }
}

/// The rules' text, without a leading byte order mark ([`without_bom`]). An empty text (or
/// only white space, or in YAML and TOML only `#` comments) is refused as such, in every
/// format: a file caught half-written, a ConfigMap key with no data or a file whose every
/// line was commented out says so rather than "unexpected end of input" or "missing field
/// `versions`".
fn content(text: &str, format: Format) -> Result<&str, Error> {
    let text = without_bom(text);
    if text.trim().is_empty() {
        return Err(Error::parse(
            format,
            "the rules are empty (a rules file declares at least `versions`)",
        ));
    }
    if format != Format::Json && only_comments(text, format) {
        return Err(Error::parse(
            format,
            "the rules are empty: every line is a comment (a rules file declares at least \
             `versions`)",
        ));
    }
    Ok(text)
}

/// Whether every line of `text` is blank or a `#` comment (in YAML, also a `---` or `...`
/// document marker, which stands at the start of its line). Such a text holds no value in
/// either format, so no parse is needed to tell: a `#` that begins a line is a comment
/// wherever no value has begun.
fn only_comments(text: &str, format: Format) -> bool {
    text.lines().all(|line| {
        let line = match format {
            Format::Yaml => ["---", "..."]
                .iter()
                .find_map(|marker| {
                    let rest = line.strip_prefix(marker)?;
                    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
                })
                .unwrap_or(line),
            _ => line,
        };
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// `text` without the byte order mark (U+FEFF) some Windows editors write at the start of a
/// UTF-8 file. The YAML and TOML readers skip one and serde_json does not (RFC 8259 lets a
/// reader ignore it), so without this a rules file saved so reads in two formats and in
/// JSON fails with "expected value at line 1 column 1", and an empty or commented-out one
/// is not told as such.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Deserializes a config, and when that fails, where: the field the deserializer was in, as
/// validation names fields (`routes[0].match.headers`), or `None` at the top level (a
/// syntax error before the first field, a missing `versions`). A key with a control
/// character in it (a line break, say) is told escaped, so the error stays one log line.
fn tracked<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Config, (D::Error, Option<String>)> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().iter().next().is_some().then(|| {
            let path = e.path().to_string();
            match path.contains(char::is_control) {
                true => path.escape_debug().to_string(),
                false => path,
            }
        });
        (e.into_inner(), field)
    })
}

/// serde-saphyr's messages for a file's author, with its structural ones in the words of a
/// rules file rather than of a YAML parser's events: "expected sequence start" where a list
/// is wanted and something else was written (`versions: stable`) becomes "expected a list".
struct YamlMessages;

impl serde_saphyr::MessageFormatter for YamlMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
        let wanted = match err {
            serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
                "sequence start" => Some("expected a list (`[a, b]`, or `- item` lines)"),
                "mapping start" => {
                    Some("expected a mapping (`{ key: value }`, or `key: value` lines)")
                }
                "string scalar" => Some("expected a string"),
                _ => None,
            },
            _ => None,
        };
        match wanted {
            Some(text) => Cow::Borrowed(text),
            None => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

impl Config {
    /// Parses a YAML rules file.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Yaml)?;
        // Percentages are read as any value (see `percent`): a `.nan` or `.inf` among them
        // goes on as a number, for validation to refuse naming its route and field, as
        // TOML's `nan` and `inf` do.
        let options = serde_saphyr::options! {
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        // Told in the words of `YamlMessages`, serde-saphyr's for a file's author; its
        // default ones are for the program's ("set DuplicateKeyPolicy in Options", "use
        // from_str_multiple").
        let mut field = None;
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            tracked(de).map_err(|(e, at)| {
                field = at;
                e
            })
        })
        .map_err(|e| Error::parse_at(Format::Yaml, field, e.render_with_formatter(&YamlMessages)))
    }

    /// Parses a TOML rules file.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Toml)?;
        let de = toml::Deserializer::parse(text).map_err(|e| Error::parse(Format::Toml, e))?;
        tracked(de).map_err(|(e, field)| Error::parse_at(Format::Toml, field, e))
    }

    /// Parses a JSON rules file. A byte order mark before it is skipped, as the YAML and
    /// TOML readers skip one, so a file saved by a Windows editor reads in every format.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Json)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let config =
            tracked(&mut de).map_err(|(e, field)| Error::parse_at(Format::Json, field, e))?;
        // What `serde_json::from_str` checks after the value: nothing but white space follows.
        de.end().map_err(|e| Error::parse(Format::Json, e))?;
        Ok(config)
    }

    /// Parses `text` in the given format.
    pub fn from_str_as(text: &str, format: Format) -> Result<Self, Error> {
        match format {
            Format::Yaml => Self::from_yaml(text),
            Format::Toml => Self::from_toml(text),
            Format::Json => Self::from_json(text),
        }
    }

    /// Reads and parses a rules file, choosing the format by extension
    /// (`.yaml`/`.yml`, `.toml`, `.json`).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_as(&text, format).map_err(|e| e.in_file(path))
    }

    /// Checks the config exactly as [`Gray::new`](crate::Gray::new) would, without keeping
    /// the compiled rules: the same errors, naming the route and the field.
    pub fn validate(&self) -> Result<(), Error> {
        crate::engine::Engine::compile(self.clone())
            .map(drop)
            .map_err(Error::from)
    }
}
