//! Per-version metrics: requests by status class and a latency histogram, recorded by the
//! server adapters when a response is ready, read as a [`Metrics`] snapshot of one
//! [`Gray`](crate::Gray) (by version name, across reloads) or as Prometheus text.
//!
//! Recording takes no lock and writes no memory another core writes: each thread counts
//! into its own shard, and a read sums the shards. Each (`Gray`, version name) pair gets a
//! counter slot when rules declaring the version are first compiled, and gives it back
//! when the last clone of its `Gray` is dropped; a process has at most
//! [`MAX_METERED_VERSIONS`] of them at once, and versions met while they are all taken are
//! served but not counted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use thread_local::ThreadLocal;

use crate::reloads::Reloads;

/// Most (`Gray`, version name) pairs counted at once in one process (a dropped `Gray`'s
/// slots serve the next ones).
pub const MAX_METERED_VERSIONS: usize = CHUNK * CHUNKS;

/// Upper bounds of the latency histogram's buckets, in seconds (a last bucket, `+Inf`,
/// takes the rest): the Prometheus client libraries' default buckets, with three finer
/// ones below 5 ms, where in-process services answer.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, as the shards count.
const BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Status classes counted: 1xx to 5xx.
const CLASSES: usize = 5;
/// Latency buckets counted: one per bound, and `+Inf`.
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// A thread's slots are made in chunks of this many, when first written.
const CHUNK: usize = 64;
const CHUNKS: usize = 64;

/// One version's counters in one thread's shard.
#[derive(Default)]
struct Counters {
    /// The use of the slot ([`Slot::generation`]) these counters count for. The owning
    /// thread moves it on, zeroing the counters first, when it counts the first request
    /// under a later use; readers sum only the counters of the use they read.
    generation: AtomicU32,
    classes: [AtomicU64; CLASSES],
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

type Chunk = [Counters; CHUNK];

/// One thread's counters. Only that thread writes them (a load and a store, no locked
/// instruction); readers load.
struct Shard {
    chunks: [OnceLock<Box<Chunk>>; CHUNKS],
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

static SHARDS: LazyLock<ThreadLocal<Shard>> = LazyLock::new(ThreadLocal::new);

/// A version's counters: where they sit in every thread's shard, and which use of that
/// place this is — a slot given back by a dropped `Gray` serves another one, and a
/// [`Measure`] begun under the first use must not count for the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    index: u32,
    generation: u32,
}

/// Slots never taken yet start here.
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// Slots given back, to be taken before new ones.
static FREE_SLOTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Each slot's current use: bumped when it is given back, read when it is taken — never
/// per request (a request's [`Measure`] carries the use it began under).
static GENERATIONS: [AtomicU32; MAX_METERED_VERSIONS] =
    [const { AtomicU32::new(0) }; MAX_METERED_VERSIONS];

/// A counter slot, its counters at zero for whoever reads it; `None` while
/// [`MAX_METERED_VERSIONS`] are taken.
/// Called when rules are compiled, never per request.
pub(crate) fn new_slot() -> Option<Slot> {
    let freed = FREE_SLOTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop();
    // A freed slot's counters are not zeroed here: each thread starts its own afresh when
    // it first counts for the new use (see `Measure::finish`), and until then a read of
    // the new use passes them over.
    let index = match freed {
        Some(index) => index,
        None => NEXT_SLOT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_METERED_VERSIONS as u32).then_some(n + 1)
            })
            .ok()?,
    };
    let generation = GENERATIONS.get(index as usize)?.load(Ordering::Relaxed);
    Some(Slot { index, generation })
}

/// Gives `slot` back, when the `Gray` it counted for is dropped: a [`Measure`] still
/// running under it counts where nobody reads any more, and the next owner finds its
/// counters at zero.
pub(crate) fn release_slot(slot: Slot) {
    if let Some(generation) = GENERATIONS.get(slot.index as usize) {
        generation.fetch_add(1, Ordering::Relaxed);
    }
    FREE_SLOTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(slot.index);
}

/// Adds `n` to a counter only this thread writes.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Where `slot` lives in a shard.
#[inline]
fn place(slot: u32) -> (usize, usize) {
    (slot as usize / CHUNK, slot as usize % CHUNK)
}

/// A request being measured, from the decision to its response: made with
/// [`Decision::measure`](crate::Decision::measure) (which reads the clock), ended with
/// [`finish`](Self::finish). Small and `Copy`: keep it in the response future.
///
/// ```
/// use gray_core::{Config, Gray};
///
/// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
/// let req = http::Request::get("/").body(())?;
/// let measure = gray.decide(&req).measure();
/// // … the request is served …
/// if let Some(measure) = measure {
///     measure.finish(200);
/// }
/// let metrics = gray.metrics();
/// assert_eq!(metrics.version("stable").map(|v| v.requests), Some([0, 1, 0, 0, 0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    slot: Slot,
    start: Instant,
}

impl Measure {
    #[inline]
    pub(crate) fn start(slot: Slot) -> Self {
        Self {
            slot,
            start: Instant::now(),
        }
    }

    /// Counts the request under its version: `status`'s class (below 200 counts as 1xx,
    /// 500 and above as 5xx) and the time since the decision. Not at all if the version's
    /// `Gray` has been dropped meanwhile: its counters may serve another one by then.
    #[inline]
    pub fn finish(self, status: u16) {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        let bucket = BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS - 1);
        let Slot { index, generation } = self.slot;
        let (chunk, index) = place(index);
        let Some(chunk) = SHARDS.get_or(Shard::default).chunks.get(chunk) else {
            return;
        };
        let counters = &chunk.get_or_init(new_chunk)[index];
        let counting = counters.generation.load(Ordering::Relaxed);
        if counting != generation {
            // Begun under an earlier use of the slot, whose `Gray` is gone: not counted.
            if later(counting, generation) {
                return;
            }
            counters.restart(generation);
        }
        bump(&counters.classes[class], 1);
        bump(&counters.buckets[bucket], 1);
        bump(&counters.sum_us, micros);
    }
}

impl Counters {
    /// Zeroes the counters for use `generation` of their slot: the first request this
    /// thread counts under it. The new use is published after the zeros, so that a reader
    /// that sees it sees them.
    #[cold]
    fn restart(&self, generation: u32) {
        for counter in self.classes.iter().chain(&self.buckets) {
            counter.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
        self.generation.store(generation, Ordering::Release);
    }
}

/// Whether use `a` of a slot came after use `b` (uses are numbered on, wrapping).
#[inline]
fn later(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn new_chunk() -> Box<Chunk> {
    Box::new(std::array::from_fn(|_| Counters::default()))
}

/// One version's totals, summed over every thread.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct VersionMetrics {
    /// The version, e.g. `"canary"`.
    pub version: String,
    /// Requests by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub requests: [u64; CLASSES],
    /// Requests by latency bucket, not cumulative: `latency[i]` counts requests that took
    /// at most [`LATENCY_BUCKETS`]`[i]` seconds and more than the bound before; the last
    /// entry counts the slower ones.
    pub latency: [u64; BUCKETS],
    /// Total latency, in seconds.
    pub latency_sum: f64,
}

impl VersionMetrics {
    /// No requests yet.
    pub(crate) fn empty(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            requests: [0; CLASSES],
            latency: [0; BUCKETS],
            latency_sum: 0.0,
        }
    }

    /// The totals of `slot` over every thread's shard.
    fn read(version: &str, slot: Slot) -> Self {
        let mut totals = Self::empty(version);
        let (chunk, index) = place(slot.index);
        for shard in SHARDS.iter() {
            let Some(counters) = shard.chunks.get(chunk).and_then(OnceLock::get) else {
                continue;
            };
            let counters = &counters[index];
            // This thread has counted nothing under this use of the slot yet: what its
            // counters hold is an earlier `Gray`'s.
            if counters.generation.load(Ordering::Acquire) != slot.generation {
                continue;
            }
            for (t, c) in totals.requests.iter_mut().zip(&counters.classes) {
                *t += c.load(Ordering::Relaxed);
            }
            for (t, c) in totals.latency.iter_mut().zip(&counters.buckets) {
                *t += c.load(Ordering::Relaxed);
            }
            totals.latency_sum += counters.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        }
        totals
    }

    /// What was counted after `earlier`, a snapshot of the same version taken before.
    ///
    /// ```
    /// use gray_core::{Config, Gray};
    ///
    /// let gray = Gray::new(Config::from_yaml("versions: [stable]\n")?)?;
    /// let req = http::Request::get("/").body(())?;
    /// gray.decide(&req).measure().map(|m| m.finish(200));
    /// let before = gray.metrics();
    /// gray.decide(&req).measure().map(|m| m.finish(503));
    /// let now = gray.metrics();
    /// let window = now.version("stable").zip(before.version("stable")).map(|(n, b)| n.since(b));
    /// assert_eq!(window.map(|w| w.requests), Some([0, 0, 0, 0, 1]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn since(&self, earlier: &Self) -> Self {
        let mut out = self.clone();
        for (n, e) in out.requests.iter_mut().zip(&earlier.requests) {
            *n = n.saturating_sub(*e);
        }
        for (n, e) in out.latency.iter_mut().zip(&earlier.latency) {
            *n = n.saturating_sub(*e);
        }
        out.latency_sum = (self.latency_sum - earlier.latency_sum).max(0.0);
        out
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// The share of 5xx responses, `0.0` with no requests.
    pub fn error_rate(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.requests[4] as f64 / total as f64,
        }
    }

    /// The `q` latency quantile (`0.0..=1.0`, clamped) in seconds, estimated from the
    /// histogram as Prometheus' `histogram_quantile` does: linear interpolation within the
    /// bucket the quantile falls in (from 0 in the first bucket), and the last finite bound
    /// ([`LATENCY_BUCKETS`]) when it falls past it. `None` with no requests, or when `q` is
    /// NaN.
    ///
    /// ```
    /// # use gray_core::{Config, Gray, LATENCY_BUCKETS};
    /// # let gray = Gray::new(Config::from_yaml("versions: [stable]\n")?)?;
    /// let mut stable = gray.metrics().version("stable").cloned().expect("declared");
    /// assert_eq!(stable.latency_quantile(0.5), None); // no requests yet
    ///
    /// assert_eq!((LATENCY_BUCKETS[3], LATENCY_BUCKETS[4]), (0.005, 0.01));
    /// stable.latency[4] = 100; // 100 requests that took 5 to 10 ms
    /// let median = stable.latency_quantile(0.5).expect("some requests");
    /// assert!((median - 0.0075).abs() < 1e-12); // halfway through the bucket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 || q.is_nan() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            // The first non-empty bucket that reaches the rank.
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    break; // past the last bound: that bound, as Prometheus answers
                };
                let lower = i.checked_sub(1).map_or(0.0, |j| LATENCY_BUCKETS[j]);
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += n;
        }
        LATENCY_BUCKETS.last().copied()
    }
}

/// A snapshot of one [`Gray`](crate::Gray)'s per-version metrics, from
/// [`Gray::metrics`](crate::Gray::metrics): every version its rules have declared since it
/// was made, in the order first declared, counted by name across reloads.
///
/// Adapters record them when asked to (`GrayLayer::metrics`, `GrayMiddleware::metrics`);
/// a metrics endpoint serves [`Metrics::prometheus`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    versions: Vec<VersionMetrics>,
    rejected_labels: u64,
    reloads: Reloads,
    in_force: InForce,
}

/// What the rules in force give each version when the metrics are read: for the gauges
/// beside the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct InForce {
    /// `(route, version, percent)`: every declared version's weight in every split route,
    /// in route order.
    pub(crate) weights: Vec<(String, String, f64)>,
    /// Every declared version, and whether it is available.
    pub(crate) available: Vec<(String, bool)>,
}

impl Metrics {
    /// Reads the counters of `(version, slot)` pairs.
    pub(crate) fn read<'a>(
        slots: impl IntoIterator<Item = (&'a str, Slot)>,
        rejected_labels: u64,
        reloads: Reloads,
        in_force: InForce,
    ) -> Self {
        Self {
            versions: slots
                .into_iter()
                .map(|(version, slot)| VersionMetrics::read(version, slot))
                .collect(),
            rejected_labels,
            reloads,
            in_force,
        }
    }

    /// What became of the reloads, and the fingerprint of the rules in force
    /// ([`Gray::reloads`](crate::Gray::reloads)).
    pub fn reloads(&self) -> &Reloads {
        &self.reloads
    }

    /// Incoming labels refused so far ([`Gray::rejected_labels`](crate::Gray::rejected_labels)).
    pub fn rejected_labels(&self) -> u64 {
        self.rejected_labels
    }

    /// Every version's totals.
    pub fn versions(&self) -> &[VersionMetrics] {
        &self.versions
    }

    /// The totals of `version`, if the rules ever declared it.
    pub fn version(&self, version: &str) -> Option<&VersionMetrics> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The metrics in the Prometheus text format: `gray_requests_total{version, class}`,
    /// the histogram `gray_request_duration_seconds{version}`, the counter
    /// `gray_rejected_labels_total`, and the reloads' record ([`Reloads`]):
    /// `gray_config_reloads_total{result}`, `gray_config_last_reload_successful`,
    /// `gray_config_last_reload_success_timestamp_seconds`, `gray_config_info{fingerprint}`;
    /// and two gauges of the rules in force, to lay over the counters on a dashboard:
    /// `gray_split_weight{route, version}` (each declared version's percent in each split
    /// route, a [`Rollout`](crate::Rollout)'s stage included) and
    /// `gray_version_available{version}` (0 while
    /// [`Gray::set_available`](crate::Gray::set_available) keeps it out).
    pub fn prometheus(&self) -> String {
        let versions: Vec<(String, &VersionMetrics)> = self
            .versions
            .iter()
            .map(|v| (escape_label(&v.version), v))
            .collect();
        let mut out = String::from(
            "# HELP gray_requests_total Requests served (and mirrored copies), by version and status class.\n\
             # TYPE gray_requests_total counter\n",
        );
        for (name, v) in &versions {
            for (i, n) in v.requests.iter().enumerate() {
                let class = i + 1;
                let _ = writeln!(
                    out,
                    "gray_requests_total{{version=\"{name}\",class=\"{class}xx\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP gray_request_duration_seconds Time from the routing decision to the \
             response, by version.\n\
             # TYPE gray_request_duration_seconds histogram\n",
        );
        for (name, v) in &versions {
            let mut cumulative = 0;
            for (i, n) in v.latency.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "gray_request_duration_seconds_bucket{{version=\"{name}\",le=\"{le}\"}} \
                     {cumulative}"
                );
            }
            let sum = v.latency_sum;
            let _ = writeln!(
                out,
                "gray_request_duration_seconds_sum{{version=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "gray_request_duration_seconds_count{{version=\"{name}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gray_rejected_labels_total Incoming labels refused: any at an edge, \
             undeclared or too long ones where labels are inherited.\n\
             # TYPE gray_rejected_labels_total counter\n\
             gray_rejected_labels_total {}",
            self.rejected_labels
        );
        let reloads = &self.reloads;
        let _ = writeln!(
            out,
            "# HELP gray_config_reloads_total Reloads of the rules, by result: applied, or \
             refused (the rules in force stayed).\n\
             # TYPE gray_config_reloads_total counter\n\
             gray_config_reloads_total{{result=\"applied\"}} {}\n\
             gray_config_reloads_total{{result=\"refused\"}} {}\n\
             # HELP gray_config_last_reload_successful 1 unless the last reload was refused.\n\
             # TYPE gray_config_last_reload_successful gauge\n\
             gray_config_last_reload_successful {}\n\
             # HELP gray_config_last_reload_success_timestamp_seconds When the rules were \
             last loaded, in seconds since the Unix epoch.\n\
             # TYPE gray_config_last_reload_success_timestamp_seconds gauge\n\
             gray_config_last_reload_success_timestamp_seconds {}\n\
             # HELP gray_config_info The rules in force, by fingerprint: the same in every \
             process that runs the same rules.\n\
             # TYPE gray_config_info gauge\n\
             gray_config_info{{fingerprint=\"{}\"}} 1",
            reloads.applied,
            reloads.refused,
            u8::from(reloads.last_reload_successful()),
            reloads.loaded_at_unix(),
            reloads.fingerprint_hex(),
        );
        out.push_str(
            "# HELP gray_split_weight The percent of a split route's requests each version \
             gets under the rules in force.\n\
             # TYPE gray_split_weight gauge\n",
        );
        for (route, version, weight) in &self.in_force.weights {
            let (route, version) = (escape_label(route), escape_label(version));
            let _ = writeln!(
                out,
                "gray_split_weight{{route=\"{route}\",version=\"{version}\"}} {weight}"
            );
        }
        out.push_str(
            "# HELP gray_version_available 0 while a version is marked unavailable (its \
             requests served by the default version), else 1.\n\
             # TYPE gray_version_available gauge\n",
        );
        for (version, available) in &self.in_force.available {
            let version = escape_label(version);
            let _ = writeln!(
                out,
                "gray_version_available{{version=\"{version}\"}} {}",
                u8::from(*available)
            );
        }
        out
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

    use std::time::{Duration, Instant};

    use super::{BUCKETS, Measure, VersionMetrics, escape_label, later, new_slot, release_slot};

    /// A request of slot `slot` that began `ago`, answered `status` now.
    fn served(slot: super::Slot, ago: Duration, status: u16) {
        let start = Instant::now().checked_sub(ago).unwrap();
        Measure { slot, start }.finish(status);
    }

    #[test]
    fn a_request_past_the_last_bound_counts_in_inf_and_in_the_sum() {
        let slot = new_slot().unwrap();
        served(slot, Duration::from_secs(11), 200);
        let before = VersionMetrics::read("slow", slot);
        assert_eq!(before.latency[BUCKETS - 1], 1, "{before:?}");
        assert_eq!(before.latency.iter().sum::<u64>(), 1);
        assert!((11.0..12.0).contains(&before.latency_sum), "{before:?}");
        served(slot, Duration::from_secs(2), 200);
        let now = VersionMetrics::read("slow", slot);
        assert!((13.0..14.0).contains(&now.latency_sum), "{now:?}");
        let window = now.since(&before);
        assert!((2.0..2.5).contains(&window.latency_sum), "{window:?}");
        assert_eq!(
            window.latency[BUCKETS - 4],
            1,
            "2 s is within 2.5 s: {window:?}"
        );
        release_slot(slot);
    }

    #[test]
    fn slots_past_a_chunk_keep_counters_of_their_own() {
        let slots: Vec<_> = (0..super::CHUNK + 10)
            .map(|_| new_slot().unwrap())
            .collect();
        for (n, &slot) in slots.iter().enumerate() {
            for _ in 0..=n {
                served(slot, Duration::ZERO, 200);
            }
        }
        for (n, &slot) in slots.iter().enumerate() {
            let v = VersionMetrics::read("v", slot);
            assert_eq!(v.total(), n as u64 + 1, "slot {slot:?}");
            release_slot(slot);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("canary"), "canary");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_slots_uses_are_ordered_across_the_wrap() {
        assert!(later(1, 0) && !later(0, 1) && !later(7, 7));
        assert!(later(0, u32::MAX) && !later(u32::MAX, 0));
        assert!(later(3, u32::MAX - 3));
    }
}
