//! The routing-decision engine of **gray**: canary ("gray") releases inside the service.
//!
//! Given a rules file and a request, [`Gray::decide`] says which version (`stable`,
//! `canary`, …) serves it — by header, by several conditions at once, by a sticky hash of a
//! user id, or by plain weights — in tens of nanoseconds, without a lock or an allocation.
//! The adapters (`gray-tower`, `gray-actix`, `gray-reqwest`) plug it into servers and
//! clients; this crate has no web framework and does no I/O on the decide path.
//!
//! ```
//! use gray_core::{Config, Gray};
//!
//! let gray = Gray::new(Config::from_yaml(r#"
//! label:
//!   header: x-gray-version   # carries the version between services
//!   inherit: never           # the edge: decide here, overwrite (and count) incoming labels
//! versions: [stable, canary] # the first is the default
//! routes:
//!   - name: testers
//!     match:
//!       headers: [{ name: x-app-version, exact: beta }]
//!     to: canary
//!   - name: premium-active   # every condition must hold
//!     match:
//!       headers:
//!         - { name: x-user-tier, exact: premium }
//!         - { name: x-activity-level, regex: "^high" }
//!     to: canary
//!   - name: users            # 10% of users, always the same ones
//!     split:
//!       by: { header: x-user-id }
//!       weights: { stable: 90, canary: 10 }
//! "#)?)?;
//!
//! let tester = http::Request::get("/").header("x-app-version", "beta").body(())?;
//! assert_eq!(gray.decide(&tester).version(), "canary");
//!
//! let user = http::Request::get("/").header("x-user-id", "42").body(())?;
//! let first = gray.decide(&user).version().to_owned();
//! for _ in 0..10 {
//!     assert_eq!(gray.decide(&user).version(), first); // sticky
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where things are
//! The root holds what a service uses: [`Gray`], [`Config`], [`Decision`],
//! [`GrayContext`], [`Error`], [`RequestView`], [`PeerAddr`], [`Mirror`], [`Source`]. The
//! rest is in modules named for who needs them: [`rules`] (the rules file as types, built
//! in code or parsed), [`label`] (the label on the wire), [`metrics`], [`rollout`],
//! [`adapter`] (the contract an adapter implements), [`engine`] (the hashing, and
//! explanations) and `reload` (feature `watch`). `ARCHITECTURE.md` in the repository maps
//! the code.
//!
//! # How a decision is made
//! 1. With `label.inherit: always`, an incoming label header that names a declared version
//!    (at most [`MAX_LABEL_LEN`](crate::label::MAX_LABEL_LEN) bytes) is honoured — with `label.from`, only from a peer
//!    in those networks ([`LabelConfig::from`](crate::rules::LabelConfig::from)); any other label is ignored and the
//!    decision says so ([`Decision::label_rejected`]; [`Gray::rejected_labels`] counts
//!    them). When the label header is absent, the `gray` member of a W3C `baggage` header
//!    is read instead (`label.baggage`, on by default), so OpenTelemetry-instrumented
//!    services interoperate. At an edge (`inherit: never`, the default) no label is
//!    honoured, and one that arrives is counted the same way — unless a route reads the
//!    label header itself (testers forcing a version with it).
//! 2. Routes are tried in order; the first whose conditions all hold decides, with `to` a
//!    version or a `split` by weights (see [`bucket`](crate::engine::bucket) for the hashing and the exact
//!    low-discrepancy sequence used when there is no key).
//!    A cookie-keyed split with `set_cookie:` ([`SetCookieConfig`](crate::rules::SetCookieConfig)) places a client that
//!    came without its cookie by a random key drawn for it, and [`Decision::set_cookie`]
//!    gives the `Set-Cookie` that hands the key to the client (the adapters append it to
//!    the response), so anonymous clients are sticky from their first request.
//!    A split's key can be the first of several the request has
//!    (`by: { first_of: [...] }`, [`SplitBy::FirstOf`](crate::rules::SplitBy::FirstOf)): a user id, else a session cookie.
//!    A route can also match the client's address (`match.client_ip`, networks in CIDR
//!    notation) and a split hash it (`by: client_ip`): the connection's peer
//!    ([`RequestView::peer_ip`], a [`PeerAddr`] extension for the `http` types), or behind
//!    proxies the address their `X-Forwarded-For` names, read only when the peer is one of
//!    them ([`RealIpConfig`](crate::rules::RealIpConfig)).
//! 3. No route matched: the default version, the first in `versions`.
//! 4. A version marked unavailable ([`Gray::set_available`], after a failed health check,
//!    say) gives way to the default version ([`Source::Fallback`]).
//!
//! The adapters then write the decision on the request: the label header, and a `gray`
//! member of `baggage` that says otherwise ([`Decision::baggage_stale`],
//! [`relabel_baggage`](crate::label::relabel_baggage)), so that a proxy forwards no label but the decided one.
//!
//! A route with `mirror:` ([`MirrorConfig`](crate::rules::MirrorConfig)) also picks a share of its requests to be
//! copied to another version, whose answer nobody waits for (traffic shadowing):
//! [`Decision::mirror`] gives the copy's [`Mirror`], and the adapters put it in the request
//! extensions for whatever forwards the request (the `gateway` example) to send the copy.
//!
//! [`Gray::explain`] shows it for one request: the routes tried, in order, and the
//! condition that stopped each ([`RouteCheck`](crate::engine::RouteCheck)).
//!
//! # Reloading
//! [`Gray::reload`] validates and compiles the new rules, then swaps them in atomically; an
//! invalid config returns an [`Error`] naming the route and field of each problem found
//! ([`Error::problems`]) and changes nothing.
//! With feature `watch`, `Watcher` reloads from a rules file whenever it changes,
//! following Kubernetes ConfigMap updates. Every reload, applied or refused, is on the
//! record ([`Gray::reloads`], [`Reloads`](crate::metrics::Reloads); in the Prometheus text too), with a fingerprint
//! of the rules in force that is the same in every process running the same rules.
//!
//! With feature `schema`, `Config::json_schema` gives the rules file's JSON Schema (kept
//! in the repository as `gray-core/rules.schema.json`), for editors and CI to check a file
//! as it is written, and `schemars::JsonSchema` on the config types, to embed them in a
//! schema of your own (a Kubernetes custom resource's, say).
//!
//! # Metrics
//! Adapters asked to (`GrayLayer::metrics`, `GrayMiddleware::metrics`) time each request
//! from its decision to its response ([`Decision::measure`], [`Measure::finish`](crate::metrics::Measure::finish)) and count
//! it under its version: requests by status class and a latency histogram, with no lock
//! and no memory written by two cores. [`Gray::metrics`] reads them (error rate and
//! latency quantiles per version, to compare a canary with the stable version);
//! [`Metrics::prometheus`](crate::metrics::Metrics::prometheus) renders them for a `/metrics` endpoint.
//!
//! # Outbound calls
//! [`Propagation`](crate::adapter::Propagation) writes a request's label on an outbound call — the label header and the
//! `gray` member of W3C `baggage` — so the next service keeps the request on the same
//! version. `gray_reqwest::GrayPropagation` (reqwest) and `gray_tower::GrayPropagationLayer`
//! (any tower HTTP client: hyper-util's, tonic's channels) apply it to every call.
//!
//! # Staged rollouts
//! A [`Rollout`](crate::rollout::Rollout) widens a canary in one `split` route stage by stage (5% → 30% → 100%),
//! judging each stage on the metrics since it began ([`Analysis`](crate::rollout::Analysis): 5xx rate against a
//! ceiling and against the default version, a latency quantile against the default
//! version's), and rolls the canary back to 0% — or pauses — when it is worse: each stage
//! held at least [`Rollout::min_stage_duration`](crate::rollout::Rollout::min_stage_duration), a few failing readings tolerated with
//! [`Rollout::failure_limit`](crate::rollout::Rollout::failure_limit), your own verdicts joined with [`Rollout::step_with`](crate::rollout::Rollout::step_with). Drive
//! it with [`Rollout::step`](crate::rollout::Rollout::step) from a timer, or let a tokio task drive it
//! ([`Rollout::spawn`](crate::rollout::Rollout::spawn)) and order it about through its [`RolloutHandle`](crate::rollout::RolloutHandle);
//! `examples/rollout.rs` runs one end to end.
#![deny(missing_docs)]
// On docs.rs: mark what a feature brings.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, lowest first: a module imports only from those above it in this list (the
// test `layers` checks it; ARCHITECTURE.md tells why).
pub mod adapter;
mod context;
mod decision;
pub mod engine;
mod gray;
pub mod label;
pub mod metrics;
#[cfg(feature = "watch")]
pub mod reload;
pub mod rollout;
pub mod rules;

pub use context::GrayContext;
pub use decision::Decision;
pub use engine::{Mirror, PeerAddr, RequestView, Source};
pub use gray::Gray;
/// The `http` 1.x crate gray-core is built on (its `HeaderName` is in [`RequestView`]).
pub use http;
pub use rules::{Config, Error};
