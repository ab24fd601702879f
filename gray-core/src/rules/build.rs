//! Building rules in code: a constructor for each config type and a method for each of its
//! optional parts, so that a field added to the rules file later is no breaking change
//! (the types are `#[non_exhaustive]`: they are built with these, not with struct literals).
//!
//! ```
//! use gray_core::rules::{Config, Match, Route, Split, SplitBy, ValueMatch};
//!
//! let config = Config::new(["stable", "canary"])
//!     .route(Route::to("testers", "canary").matching(Match::new().header(ValueMatch::exact("x-app-version", "beta"))))
//!     .route(Route::split(
//!         "users",
//!         Split::new([("stable", 90.0), ("canary", 10.0)]).by(SplitBy::Header("x-user-id".into())),
//!     ));
//! assert_eq!(config, Config::from_yaml(r#"
//! versions: [stable, canary]
//! routes:
//!   - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }
//!   - { name: users, split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } } }
//! "#)?);
//! config.validate()?;
//! # Ok::<(), gray_core::Error>(())
//! ```

use super::config::{
    ClientIpMatch, Config, Inherit, LabelConfig, Match, MirrorConfig, PathMatch, RealIpConfig,
    Route, SetCookieConfig, Split, SplitBy, ValueMatch,
};

impl Config {
    /// Rules declaring `versions` (the first is the default), with no route: every request
    /// goes to the default version.
    pub fn new<V: Into<String>>(versions: impl IntoIterator<Item = V>) -> Self {
        Self {
            versions: versions.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// With `route` after the routes so far (routes are tried in order).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// With `label:` as given.
    pub fn label(mut self, label: LabelConfig) -> Self {
        self.label = label;
        self
    }

    /// With `real_ip:` as given.
    pub fn real_ip(mut self, real_ip: RealIpConfig) -> Self {
        self.real_ip = Some(real_ip);
        self
    }
}

impl LabelConfig {
    /// The label in `header` instead of `x-gray-version`.
    pub fn header(mut self, header: impl Into<String>) -> Self {
        self.header = header.into();
        self
    }

    /// Whether an incoming label is honoured.
    pub fn inherit(mut self, inherit: Inherit) -> Self {
        self.inherit = inherit;
        self
    }

    /// Whether the `gray` member of `baggage` is read and rewritten (default on).
    pub fn baggage(mut self, baggage: bool) -> Self {
        self.baggage = baggage;
        self
    }

    /// Honour a label only from peers in these networks (with `inherit: always`).
    pub fn from<N: Into<String>>(mut self, networks: impl IntoIterator<Item = N>) -> Self {
        self.from = Some(networks.into_iter().map(Into::into).collect());
        self
    }
}

impl Route {
    fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            matches: None,
            to: None,
            split: None,
            mirror: None,
        }
    }

    /// A route `name` sending every request it matches to `version`.
    pub fn to(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            to: Some(version.into()),
            ..Self::named(name)
        }
    }

    /// A route `name` splitting the requests it matches as `split` says.
    pub fn split(name: impl Into<String>, split: Split) -> Self {
        Self {
            split: Some(split),
            ..Self::named(name)
        }
    }

    /// Matching only requests where every condition of `matches` holds (without it, every
    /// request).
    pub fn matching(mut self, matches: Match) -> Self {
        self.matches = Some(matches);
        self
    }

    /// Also copying requests as `mirror` says.
    pub fn mirror(mut self, mirror: MirrorConfig) -> Self {
        self.mirror = Some(mirror);
        self
    }
}

impl Match {
    /// No condition yet (it holds for every request).
    pub fn new() -> Self {
        Self::default()
    }

    /// And a header condition.
    pub fn header(mut self, condition: ValueMatch) -> Self {
        self.headers.push(condition);
        self
    }

    /// And a query parameter condition.
    pub fn query(mut self, condition: ValueMatch) -> Self {
        self.query.push(condition);
        self
    }

    /// And a cookie condition.
    pub fn cookie(mut self, condition: ValueMatch) -> Self {
        self.cookies.push(condition);
        self
    }

    /// And the path condition.
    pub fn path(mut self, path: PathMatch) -> Self {
        self.path = Some(path);
        self
    }

    /// And the method (`GET`, …).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// And the client's address condition.
    pub fn client_ip(mut self, client_ip: ClientIpMatch) -> Self {
        self.client_ip = Some(client_ip);
        self
    }
}

impl ValueMatch {
    fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Value `name` equals `value`.
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            exact: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// Value `name` starts with `prefix`.
    pub fn prefix(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            prefix: Some(prefix.into()),
            ..Self::named(name)
        }
    }

    /// Value `name` matches `regex` (unanchored unless you anchor it).
    pub fn regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self {
            regex: Some(regex.into()),
            ..Self::named(name)
        }
    }

    /// Value `name` is present (`true`) or absent (`false`).
    pub fn present(name: impl Into<String>, present: bool) -> Self {
        Self {
            present: Some(present),
            ..Self::named(name)
        }
    }

    /// The condition inverted.
    pub fn inverted(mut self) -> Self {
        self.invert = !self.invert;
        self
    }
}

impl PathMatch {
    /// The path equals `path`.
    pub fn exact(path: impl Into<String>) -> Self {
        Self {
            exact: Some(path.into()),
            ..Self::default()
        }
    }

    /// The path starts with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: Some(prefix.into()),
            ..Self::default()
        }
    }

    /// The path matches `regex`.
    pub fn regex(regex: impl Into<String>) -> Self {
        Self {
            regex: Some(regex.into()),
            ..Self::default()
        }
    }

    /// The condition inverted.
    pub fn inverted(mut self) -> Self {
        self.invert = !self.invert;
        self
    }
}

impl ClientIpMatch {
    /// The client's address is in one of `networks` (CIDR, or single addresses).
    pub fn new<N: Into<String>>(networks: impl IntoIterator<Item = N>) -> Self {
        Self {
            cidr: networks.into_iter().map(Into::into).collect(),
            invert: false,
        }
    }

    /// The condition inverted.
    pub fn inverted(mut self) -> Self {
        self.invert = !self.invert;
        self
    }
}

impl RealIpConfig {
    /// The proxies in `trusted` (CIDR, or single addresses), writing `x-forwarded-for`.
    pub fn new<N: Into<String>>(trusted: impl IntoIterator<Item = N>) -> Self {
        Self {
            header: "x-forwarded-for".to_owned(),
            trusted: trusted.into_iter().map(Into::into).collect(),
        }
    }

    /// The client's address in `header` instead (`x-real-ip`, `forwarded`).
    pub fn header(mut self, header: impl Into<String>) -> Self {
        self.header = header.into();
        self
    }
}

impl Split {
    /// A split by `weights` (percent per version, summing to 100), unkeyed until
    /// [`by`](Self::by).
    pub fn new<V: Into<String>>(weights: impl IntoIterator<Item = (V, f64)>) -> Self {
        Self {
            by: None,
            weights: weights.into_iter().map(|(v, w)| (v.into(), w)).collect(),
            salt: None,
            set_cookie: None,
        }
    }

    /// Sticky: keyed by `by`.
    pub fn by(mut self, by: SplitBy) -> Self {
        self.by = Some(by);
        self
    }

    /// Hashed with `salt` instead of the route's name.
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// Giving a client without its key cookie one, as `cookie` says.
    pub fn set_cookie(mut self, cookie: SetCookieConfig) -> Self {
        self.set_cookie = Some(cookie);
        self
    }
}

impl MirrorConfig {
    /// A copy of `percent` percent of the route's requests to `version`.
    pub fn new(version: impl Into<String>, percent: f64) -> Self {
        Self {
            to: version.into(),
            percent,
        }
    }
}

impl SetCookieConfig {
    /// The cookie lasts `seconds` (`Max-Age`).
    pub fn max_age(mut self, seconds: u32) -> Self {
        self.max_age = seconds;
        self
    }

    /// The cookie's `Path`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie's `Domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sent over HTTPS only.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
}
