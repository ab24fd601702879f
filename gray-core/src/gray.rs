//! [`Gray`]: the shared handle to the compiled rules, which decides requests.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use http::HeaderName;
use thread_local::ThreadLocal;

use crate::decision::Decision;
use crate::engine::{Engine, RequestView, RouteCheck, Source};
use crate::metrics::{self, InForce, Metrics, Reloads, Slot, fingerprint};
use crate::rules::hold::Hold;
use crate::rules::{Config, Error};

/// The routing engine: decides which version serves a request.
///
/// `Clone` is cheap and every clone shares one set of rules, so a [`reload`](Self::reload)
/// through any clone is seen by all. The rules sit behind one [`ArcSwap`]: a decision loads
/// a snapshot without a lock, and a reload swaps the whole table at once.
///
/// ```
/// use gray_core::{Config, Gray};
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: testers
///     match: { headers: [{ name: x-app-version, exact: beta }] }
///     to: canary
/// "#)?)?;
///
/// let req = http::Request::get("/").header("x-app-version", "beta").body(())?;
/// let decision = gray.decide(&req);
/// assert_eq!(decision.version(), "canary");
/// assert_eq!(decision.route(), Some("testers"));
///
/// let other = http::Request::get("/").body(())?;
/// assert_eq!(gray.decide(&other).version(), "stable"); // the default: first declared
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Gray {
    shared: Arc<Shared>,
}

/// What every clone of a [`Gray`] shares.
///
/// Aligned to 128 bytes (two cache lines, the unit x86 prefetches together) so that it
/// starts on its own line after the `Arc`'s reference counts: adapters clone a `Gray` with
/// their service on every request, on every core, and those writes must not evict the
/// snapshot pointer that every decision reads.
#[repr(align(128))]
struct Shared {
    engine: ArcSwap<Engine>,
    /// The rules in force read the client's or the peer's address (set with each new
    /// snapshot): for a server to ask without loading the snapshot.
    reads_client_ip: AtomicBool,
    /// Incoming labels refused (at an edge, or undeclared or too long), counted
    /// per thread (only the owning thread writes its counter) so that a flood of spoofed
    /// labels does not make every core write one cache line.
    rejected: ThreadLocal<AtomicU64>,
    /// Versions marked unavailable, by name: carried over to the rules of every reload.
    unavailable: Mutex<BTreeSet<String>>,
    /// Each version's counter slot in the per-version metrics, by name, in the order
    /// first declared: carried over to the rules of every reload.
    metered: Mutex<Vec<(Arc<str>, Slot)>>,
    /// The canary weights rollouts hold, applied to the rules of every reload. Its lock
    /// also takes reloads one at a time, so that a rollout's change and a file's reload
    /// cannot both start from the same rules and the later drop the other's.
    holds: Mutex<Vec<Hold>>,
    /// What became of the reloads, and the fingerprint of the rules in force: written
    /// under the holds' lock, read by `reloads` and `metrics` — never by a decision.
    reloads: Mutex<Reloads>,
}

impl Drop for Shared {
    /// The last clone of the `Gray` is gone: its versions' counter slots serve others.
    fn drop(&mut self) {
        let metered = self
            .metered
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for &(_, slot) in metered.iter() {
            metrics::release_slot(slot);
        }
    }
}

/// Gives each version of `engine` its counter slot from `metered`, taking new slots for
/// names not seen before.
fn meter(metered: &Mutex<Vec<(Arc<str>, Slot)>>, engine: &mut Engine) {
    // A poisoned lock only means a panic elsewhere; the list itself is always whole.
    let mut metered = metered.lock().unwrap_or_else(PoisonError::into_inner);
    engine.set_metric_slots(|version| {
        if let Some(&(_, slot)) = metered.iter().find(|(name, _)| name == version) {
            return Some(slot);
        }
        let slot = metrics::new_slot()?;
        metered.push((Arc::clone(version), slot));
        Some(slot)
    });
}

impl Gray {
    /// Validates and compiles `config`.
    pub fn new(config: Config) -> Result<Self, Error> {
        let mut engine = Engine::compile(config)?;
        let metered = Mutex::default();
        meter(&metered, &mut engine);
        let reloads = Mutex::new(Reloads::new(engine.config()));
        Ok(Self {
            shared: Arc::new(Shared {
                reloads,
                reads_client_ip: AtomicBool::new(engine.reads_peer()),
                engine: ArcSwap::from_pointee(engine),
                rejected: ThreadLocal::new(),
                unavailable: Mutex::default(),
                metered,
                holds: Mutex::default(),
            }),
        })
    }

    /// Loads, validates and compiles a rules file (format by extension).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        Self::new(Config::from_path(path)?).map_err(|e| e.in_file(path))
    }

    /// Decides which version serves `req`. Takes no lock, allocates nothing (but a
    /// thread's own counters, on its first unkeyed split or refused label), and writes no
    /// memory that another core writes.
    ///
    /// The [`Decision`] holds a snapshot of the rules it came from; turn it into a
    /// [`GrayContext`](crate::GrayContext) (owned, cheap) to keep it across an `.await`.
    #[inline]
    pub fn decide<R: RequestView + ?Sized>(&self, req: &R) -> Decision {
        let engine = self.shared.engine.load();
        let outcome = engine.decide(req);
        if outcome.label_rejected() {
            let rejected = self.shared.rejected.get_or(AtomicU64::default);
            rejected.store(rejected.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        Decision::new(engine, outcome)
    }

    /// Replaces the rules, atomically: a decision sees the old rules or the new ones,
    /// never a mix. An invalid config returns its error and changes nothing.
    ///
    /// While a [`Rollout`](crate::rollout::Rollout) holds a route's canary weight (from its start
    /// until it is dropped), the new rules apply with that weight — and the default
    /// version's beside it — as the rollout holds it, so no user moves behind its back;
    /// rules whose other weights leave it no room are refused
    /// ([`Problem::HeldByRollout`](crate::rules::Problem::HeldByRollout)).
    ///
    /// Each reload, applied or refused, is counted in [`reloads`](Self::reloads).
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        self.reload_loaded(Ok(config), None)
    }

    /// Applies `loaded` — the config read, or why none could be — and records the outcome
    /// in [`Reloads`], under the holds' lock: reloads are applied and recorded in one order.
    /// An error is given `file` as its file.
    pub(crate) fn reload_loaded(
        &self,
        loaded: Result<Config, Error>,
        file: Option<&Path>,
    ) -> Result<(), Error> {
        let holds = self.holds();
        let mut outcome = loaded.and_then(|config| self.install(config, &holds));
        if let Some(file) = file {
            outcome = outcome.map_err(|e| e.in_file(file));
        }
        self.reloads_mut().record(&outcome);
        outcome
    }

    fn reloads_mut(&self) -> MutexGuard<'_, Reloads> {
        // A poisoned lock only means a panic elsewhere; the record itself is always whole.
        self.shared
            .reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What became of this `Gray`'s reloads — how many were applied and refused, the last
    /// refusal's error, when the rules in force were loaded — and a fingerprint of the rules
    /// in force, the same in every process that runs the same rules. See [`Reloads`].
    pub fn reloads(&self) -> Reloads {
        self.reloads_mut().clone()
    }

    /// Compiles `config` with `holds` applied and swaps it in. Called with the holds' lock.
    fn install(&self, mut config: Config, holds: &[Hold]) -> Result<(), Error> {
        for hold in holds {
            hold.apply(&mut config)?;
        }
        let mut engine = Engine::compile(config)?;
        meter(&self.shared.metered, &mut engine);
        let fingerprint = fingerprint(engine.config());
        // Under the lock, so that no `set_available` falls between the copy and the swap.
        let unavailable = self.unavailable_set();
        for version in unavailable.iter() {
            if let Some(index) = engine.version_index(version.as_bytes()) {
                engine.set_unavailable(index, true);
            }
        }
        let reads_client_ip = engine.reads_peer();
        self.shared.engine.store(Arc::new(engine));
        self.shared
            .reads_client_ip
            .store(reads_client_ip, Ordering::Relaxed);
        self.reloads_mut().fingerprint = fingerprint;
        Ok(())
    }

    fn holds(&self) -> MutexGuard<'_, Vec<Hold>> {
        // A poisoned lock only means a panic elsewhere; the list itself is always whole.
        self.shared
            .holds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a canary weight (see [`Hold`]) from now on, replacing any hold on the same
    /// route, and puts it in force. If the rules cannot take it, the error is returned and
    /// the hold and the rules in force stay as they were.
    pub(crate) fn hold(&self, hold: Hold) -> Result<(), Error> {
        let mut holds = self.holds();
        let mut next = holds.clone();
        match next.iter_mut().find(|h| h.holds(hold.route(), None)) {
            Some(held) => *held = hold.clone(),
            None => next.push(hold.clone()),
        }
        let current = self.config();
        let mut config = (*current).clone();
        hold.apply(&mut config)?;
        if config != *current {
            self.install(config, &next)?;
        }
        *holds = next;
        Ok(())
    }

    /// Lets go of `owner`'s hold on `route`, if it still has it. The rules in force do not
    /// change; the next reload applies its own weights to the route.
    pub(crate) fn release(&self, route: &str, owner: u64) {
        self.holds().retain(|h| !h.holds(route, Some(owner)));
    }

    fn unavailable_set(&self) -> MutexGuard<'_, BTreeSet<String>> {
        // A poisoned lock only means a panic elsewhere; the set itself is always whole.
        self.shared
            .unavailable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `version` unavailable (a failed health check, say) or available again.
    /// While it is unavailable, a decision that would pick it — by a route or an inherited
    /// label — gives the default version instead ([`Source::Fallback`]). The default
    /// version itself always serves. The mark is kept across reloads, by name, and
    /// exported as `gray_version_available{version}` ([`Metrics::prometheus`]).
    ///
    /// Returns whether `version` is declared by the rules in force.
    ///
    /// ```
    /// use gray_core::{Config, Gray, Source};
    ///
    /// let gray = Gray::new(Config::from_yaml(
    ///     "versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n",
    /// )?)?;
    /// let req = http::Request::get("/").body(())?;
    /// assert_eq!(gray.decide(&req).version(), "canary");
    ///
    /// gray.set_available("canary", false);
    /// let d = gray.decide(&req);
    /// assert_eq!((d.version(), d.source()), ("stable", Source::Fallback));
    ///
    /// gray.set_available("canary", true);
    /// assert_eq!(gray.decide(&req).version(), "canary");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_available(&self, version: &str, available: bool) -> bool {
        let mut unavailable = self.unavailable_set();
        if available {
            unavailable.remove(version);
        } else {
            unavailable.insert(version.to_owned());
        }
        let engine = self.shared.engine.load();
        match engine.version_index(version.as_bytes()) {
            Some(index) => {
                engine.set_unavailable(index, !available);
                true
            }
            None => false,
        }
    }

    /// The versions marked unavailable, by name.
    pub fn unavailable_versions(&self) -> Vec<String> {
        self.unavailable_set().iter().cloned().collect()
    }

    /// [`reload`](Self::reload) from a rules file; on any error the rules in force stay.
    /// A file that cannot be read or parsed counts as a refused reload too.
    pub fn reload_from_path(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        self.reload_loaded(Config::from_path(path), Some(path))
    }

    /// The per-version metrics recorded for this `Gray` (by adapters asked to, or with
    /// [`Decision::measure`]): every version its rules have declared since it was made.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let metrics = gray.metrics();
    /// assert_eq!(metrics.versions().len(), 2);
    /// assert_eq!(metrics.version("canary").map(|v| v.total()), Some(0));
    /// assert!(metrics.prometheus().contains("gray_requests_total{version=\"canary\",class=\"5xx\"} 0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let reloads = self.reloads();
        let in_force = self.in_force();
        let metered = self
            .shared
            .metered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slots = metered.iter().map(|(name, slot)| (&**name, *slot));
        Metrics::read(slots, self.rejected_labels(), reloads, in_force)
    }

    /// The split weights and availability of every declared version, for the gauges.
    fn in_force(&self) -> InForce {
        let config = self.config();
        let weights = config.routes.iter().filter_map(|route| {
            let split = route.split.as_ref()?;
            Some(config.versions.iter().map(|version| {
                let weight = split.weights.get(version).copied().unwrap_or(0.0);
                (route.name.clone(), version.clone(), weight)
            }))
        });
        let unavailable = self.unavailable_set();
        InForce::new(
            weights.flatten().collect(),
            (config.versions.iter())
                .map(|version| (version.clone(), !unavailable.contains(version)))
                .collect(),
        )
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(self.shared.engine.load().config())
    }

    /// The declared versions of the rules in force; the first is the default.
    pub fn versions(&self) -> Vec<Arc<str>> {
        self.shared.engine.load().versions().to_vec()
    }

    /// The header that carries the label, under the rules in force.
    pub fn label_header(&self) -> HeaderName {
        self.shared.engine.load().label_header().clone()
    }

    /// How many incoming labels were refused since this `Gray` was made
    /// ([`Decision::label_rejected`]): at an edge (`inherit: never`), every label that
    /// arrived — clients trying to pick their version; under `inherit: always`, labels
    /// that name no declared version or are too long — spoofing attempts, or a caller on
    /// rules this service does not have. Shared by all clones; [`Metrics::prometheus`]
    /// exports it as `gray_rejected_labels_total`.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let edge = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// let spoofed = http::Request::get("/").header("x-gray-version", "canary").body(())?;
    /// assert_eq!(edge.decide(&spoofed).version(), "stable"); // overwritten, and counted
    /// assert_eq!(edge.rejected_labels(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`Metrics::prometheus`]: crate::metrics::Metrics::prometheus
    pub fn rejected_labels(&self) -> u64 {
        self.shared
            .rejected
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Why `req` is decided as it is, route by route: each route tried, in order, up to the
    /// one that takes it, with the first of its conditions that failed. For dry runs and
    /// debugging (the `explain` example's `--why`); it allocates, unlike [`decide`](Self::decide).
    /// When an incoming label decides ([`Source::Inherited`]) no
    /// route is tried, and the list is empty.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml(r#"
    /// versions: [stable, canary]
    /// routes:
    ///   - name: testers
    ///     match: { headers: [{ name: x-app-version, exact: beta }] }
    ///     to: canary
    ///   - name: everyone
    ///     split: { weights: { stable: 90, canary: 10 } }
    /// "#)?)?;
    /// let req = http::Request::get("/").header("x-app-version", "alpha").body(())?;
    /// let why = gray.explain(&req);
    /// assert_eq!(why[0].route, "testers");
    /// assert_eq!(why[0].failed.as_deref(), Some("match.headers[0]"));
    /// assert_eq!((why[1].route.as_str(), why[1].failed.as_deref()), ("everyone", None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn explain<R: RequestView + ?Sized>(&self, req: &R) -> Vec<RouteCheck> {
        // The same snapshot for both, and nothing counted: a dry run.
        let engine = self.shared.engine.load();
        if engine.decide(req).source() == Source::Inherited {
            return Vec::new();
        }
        engine.explain(req)
    }

    /// Whether the rules in force read the client's address (`match.client_ip`,
    /// `split.by: client_ip`) or the peer's (`label.from`): a server that has work to do
    /// to hand the engine the connection's peer ([`PeerAddr`](crate::PeerAddr) in the
    /// request extensions) can skip it otherwise. One atomic load, no snapshot. A reload
    /// between this and a decision can change the answer: a request decided then has no
    /// peer, as from a server that does not tell it.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
    /// assert!(!gray.reads_client_ip());
    /// gray.reload(Config::from_yaml(
    ///     "versions: [stable, canary]\nroutes:\n  - { name: all, split: { by: client_ip, weights: { stable: 90, canary: 10 } } }\n",
    /// )?)?;
    /// assert!(gray.reads_client_ip());
    /// # Ok::<(), gray_core::Error>(())
    /// ```
    #[inline]
    pub fn reads_client_ip(&self) -> bool {
        self.shared.reads_client_ip.load(Ordering::Relaxed)
    }

    /// Whether `label` names a version declared by the rules in force (and is short enough
    /// to be looked at). Use it to vet a label from outside before trusting it.
    pub fn is_declared(&self, label: &[u8]) -> bool {
        self.shared.engine.load().version_index(label).is_some()
    }
}

impl fmt::Debug for Gray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = self.shared.engine.load();
        f.debug_struct("Gray")
            .field("versions", &engine.versions())
            .field("routes", &engine.route_count())
            .finish_non_exhaustive()
    }
}
