//! Recording: each thread counts into its own shard — no lock, no memory another core
//! writes — under counter slots that a `Gray` takes for each version it declares and gives
//! back when dropped; [`Measure`] is one request being counted.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use thread_local::ThreadLocal;

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
pub(super) const CLASSES: usize = 5;
/// Latency buckets counted: one per bound, and `+Inf`.
pub(super) const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// A thread's slots are made in chunks of this many, when first written.
pub(super) const CHUNK: usize = 64;
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
    pub(super) slot: Slot,
    pub(super) start: Instant,
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

/// The counts of `slot` summed over every thread's shard: requests by class, by latency
/// bucket, and the latency's sum in seconds.
pub(super) fn totals(slot: Slot) -> ([u64; CLASSES], [u64; BUCKETS], f64) {
    let (mut requests, mut latency, mut sum) = ([0; CLASSES], [0; BUCKETS], 0.0);
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
        for (t, c) in requests.iter_mut().zip(&counters.classes) {
            *t += c.load(Ordering::Relaxed);
        }
        for (t, c) in latency.iter_mut().zip(&counters.buckets) {
            *t += c.load(Ordering::Relaxed);
        }
        sum += counters.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
    }
    (requests, latency, sum)
}

#[cfg(test)]
mod tests {
    use super::later;

    #[test]
    fn a_slots_uses_are_ordered_across_the_wrap() {
        assert!(later(1, 0) && !later(0, 1) && !later(7, 7));
        assert!(later(0, u32::MAX) && !later(u32::MAX, 0));
        assert!(later(3, u32::MAX - 3));
    }
}
