//! Upstream response deadlines, checked by one sweep every [`TICK`] instead of a tokio
//! timer per request.
//!
//! A tokio timer per request (`tokio::time::timeout`) costs about 1,800 instructions per
//! proxied request here — the timer wheel's insert and removal and the time driver's
//! work on every park while one is pending (`MODE=instructions benches/load/run.sh`, see
//! `benches/README.md`). A gateway's upstream timeout needs no millisecond precision: a
//! request here registers its deadline, in ticks, in a table that one task sweeps every
//! tick, waking the requests that are due. A deadline fires between its time and one tick
//! later, never early. The table is sharded by thread, so that worker threads do not
//! queue on one lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;

/// How often the table is swept: the precision of every deadline.
pub const TICK: Duration = Duration::from_millis(100);

/// The requests waiting for an upstream, with their deadlines.
#[derive(Debug)]
pub struct Deadlines {
    /// Ticks since the sweep began.
    now: AtomicU64,
    shards: Box<[Mutex<slab::Slab<Entry>>]>,
    sweeping: AtomicBool,
}

impl Default for Deadlines {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            now: AtomicU64::new(0),
            shards: (0..threads).map(|_| Mutex::default()).collect(),
            sweeping: AtomicBool::new(false),
        }
    }
}

/// This thread's shard (threads are numbered as they first register a deadline).
fn shard_of_this_thread(shards: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    THREAD.with(|n| n % shards)
}

#[derive(Debug)]
struct Entry {
    due: u64,
    waker: Waker,
    expired: bool,
}

/// A request that waited longer than its deadline.
#[derive(Debug)]
pub struct Elapsed;

impl Deadlines {
    fn shard(&self, shard: usize) -> std::sync::MutexGuard<'_, slab::Slab<Entry>> {
        // A poisoned lock only means a panic elsewhere; the table is always whole.
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `future`, or [`Elapsed`] once `timeout` has passed (rounded up to whole ticks).
    pub fn within<F: Future>(&self, timeout: Duration, future: F) -> Within<'_, F> {
        // Rounded up, plus the tick already under way: never early.
        let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()) + 1;
        Within {
            inner: future,
            deadlines: self,
            ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
            key: None,
        }
    }

    /// How many requests are waiting.
    pub fn waiting(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shard(i).len()).sum()
    }

    /// Advances the clock by a tick and wakes every request now due.
    fn sweep(&self) {
        let now = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        for shard in 0..self.shards.len() {
            for (_, entry) in self.shard(shard).iter_mut() {
                if entry.due <= now && !entry.expired {
                    entry.expired = true;
                    entry.waker.wake_by_ref();
                }
            }
        }
    }

    /// Starts the sweep on the current tokio runtime (once, however often it is called);
    /// it ends when the last `Arc` is dropped.
    pub fn start(self: &Arc<Self>) {
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(Self::run(Arc::downgrade(self)));
        }
    }

    /// Sweeps every [`TICK`] while the `Deadlines` is in use.
    async fn run(deadlines: Weak<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match deadlines.upgrade() {
                Some(deadlines) => deadlines.sweep(),
                None => break,
            }
        }
    }
}

pin_project! {
    /// A future with a deadline; see [`Deadlines::within`].
    pub struct Within<'a, F> {
        #[pin]
        inner: F,
        deadlines: &'a Deadlines,
        ticks: u64,
        // The shard and slot of its entry, once registered.
        key: Option<(usize, usize)>,
    }

    impl<'a, F> PinnedDrop for Within<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((shard, key)) = this.key.take() {
                this.deadlines.shard(shard).try_remove(key);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match *this.key {
            None => {
                let deadlines = *this.deadlines;
                // A sweep that runs between this read and the insertion below takes one
                // tick off the wait: the `+ 1` in `within` covers it.
                let due = deadlines
                    .now
                    .load(Ordering::Acquire)
                    .saturating_add(*this.ticks);
                let shard = shard_of_this_thread(deadlines.shards.len());
                let key = deadlines.shard(shard).insert(Entry {
                    due,
                    waker: cx.waker().clone(),
                    expired: false,
                });
                *this.key = Some((shard, key));
            }
            Some((shard, key)) => match this.deadlines.shard(shard).get_mut(key) {
                Some(entry) if entry.expired => return Poll::Ready(Err(Elapsed)),
                Some(entry) if !entry.waker.will_wake(cx.waker()) => {
                    entry.waker = cx.waker().clone();
                }
                _ => {}
            },
        }
        Poll::Pending
    }
}
