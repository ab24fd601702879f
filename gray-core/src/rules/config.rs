//! The rules file: a serde model that YAML, TOML and JSON all load the same way.
//!
//! A `Config` is only parsed here; it is checked (and compiled) by [`Gray::new`],
//! [`Gray::reload`] or [`Config::validate`], which name the route and the field at fault.
//!
//! [`Gray::new`]: crate::Gray::new
//! [`Gray::reload`]: crate::Gray::reload

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::label::DEFAULT_LABEL_HEADER;

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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct LabelConfig {
    /// Header name that carries the label (default `x-gray-version`). A header of its
    /// own: one that HTTP, cookies, credentials or trace context use (`host`,
    /// `content-length`, `cookie`, `authorization`, `baggage`, `traceparent` …) is refused
    /// ([`Problem::ReservedLabelHeader`](crate::rules::Problem::ReservedLabelHeader)), since the
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
    DEFAULT_LABEL_HEADER.to_owned()
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct MirrorConfig {
    /// The version the copies go to.
    pub to: String,
    /// Percent of the route's requests (not already on `to`) copied; default 100, with at
    /// most two decimals.
    #[serde(default = "hundred", deserialize_with = "super::percent::one")]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Split {
    /// What to hash for a sticky split. Absent: an unkeyed, exact weighted sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<SplitBy>,
    /// Percent per version (versions not listed get 0), as numbers: `10`, not `10%`, each
    /// version once. Must sum to 100, with at most two decimals (0.01% resolution).
    #[serde(deserialize_with = "super::percent::weights")]
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
#[non_exhaustive]
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
#[non_exhaustive]
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

/// `match.client_ip:` — the client's address is in one of these networks.
///
/// `cidr` lists networks (`10.0.0.0/8`, `2001:db8::/32`) and single addresses
/// (`192.0.2.7`); IPv4 clients on an IPv6 socket (`::ffff:192.0.2.7`) are matched as the
/// IPv4 address they are. The client's address is the peer's, or the one `real_ip:` finds
/// in a trusted proxy's header ([`RealIpConfig`]). A request whose client address is not
/// known (a server that does not tell it) matches no network; with `invert`, it matches.
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: office
///     match: { client_ip: { cidr: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7] } }
///     to: canary
/// "#)?;
/// let m = config.routes[0].matches.as_ref().unwrap().client_ip.as_ref().unwrap();
/// assert_eq!(m.cidr.len(), 3);
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientIpMatch {
    /// Networks in CIDR notation, or single addresses; at least one.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub cidr: Vec<String>,
    /// Invert the condition: it holds when the client is in none of them (or unknown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// `real_ip:` — the proxies in front of the service, whose header naming the client is
/// believed (nginx's `set_real_ip_from` and `real_ip_header`, with `real_ip_recursive on`).
///
/// Without it the client's address is the connection's peer. With it, when the peer is in
/// `trusted`, the addresses in `header` are read from the right: the first one that is not
/// in `trusted` is the client (all trusted: the leftmost). A peer that is not trusted is
/// the client, whatever its header says; so is the last address read when the next one is
/// not an address. A peer the server does not tell counts as trusted only when `trusted`
/// holds a network of every address (`0.0.0.0/0` or `::/0`).
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// real_ip:
///   header: x-forwarded-for         # the default; also x-real-ip, forwarded (RFC 7239)
///   trusted: [10.0.0.0/8, 172.16.0.0/12]
/// versions: [stable, canary]
/// "#)?;
/// assert_eq!(config.real_ip.unwrap().trusted.len(), 2);
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RealIpConfig {
    /// The header proxies write the client's address in (default `x-forwarded-for`). A
    /// list of addresses, comma-separated, across repeated headers in order; addresses may
    /// carry a port (`192.0.2.7:5012`, `[2001:db8::7]:443`). `forwarded` is read as RFC
    /// 7239's header: the `for=` of each element.
    #[serde(default = "forwarded_for")]
    pub header: String,
    /// Networks (or single addresses) of the proxies whose header is believed; at least one.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub trusted: Vec<String>,
}

fn forwarded_for() -> String {
    "x-forwarded-for".to_owned()
}
