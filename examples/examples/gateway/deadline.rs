//! Upstream response deadlines, checked by one sweep every [`TICK`] instead of a tokio
//! timer per request.
//!
//! A tokio timer per request (`tokio::time::timeout`) costs about 1,800 instructions per
//! proxied request here — the timer wheel's insert and removal and the time driver's
//! work on every park while one is pending (`MODE=instructions benches/load/run.sh`, see
//! `benches/README.md`). A gateway's upstream timeout needs no millisecond precision: a
//! request here registers its deadline, in ticks, in a table that one task sweeps every
//! tick, waking the requests that are due. A deadline fires between its time and one tick
//! later, never early.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;

/// How often the table is swept: the precision of every deadline.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The requests waiting for an upstream, with their deadlines.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    state: Mutex<State>,
    sweeping: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Ticks since the sweep began.
    now: u64,
    entries: slab::Slab<Entry>,
}

#[derive(Debug)]
struct Entry {
    due: u64,
    waker: Waker,
    expired: bool,
}

/// A request that waited longer than its deadline.
#[derive(Debug)]
pub(crate) struct Elapsed;

impl Deadlines {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the table is always whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `future`, or [`Elapsed`] once `timeout` has passed (rounded up to whole ticks).
    pub(crate) fn within<F: Future>(&self, timeout: Duration, future: F) -> Within<'_, F> {
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
    pub(crate) fn waiting(&self) -> usize {
        self.state().entries.len()
    }

    /// Advances the clock by a tick and wakes every request now due.
    fn sweep(&self) {
        let mut state = self.state();
        state.now += 1;
        let now = state.now;
        for (_, entry) in state.entries.iter_mut() {
            if entry.due <= now && !entry.expired {
                entry.expired = true;
                entry.waker.wake_by_ref();
            }
        }
    }

    /// Starts the sweep on the current tokio runtime (once, however often it is called);
    /// it ends when the last `Arc` is dropped.
    pub(crate) fn start(self: &Arc<Self>) {
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
    pub(crate) struct Within<'a, F> {
        #[pin]
        inner: F,
        deadlines: &'a Deadlines,
        ticks: u64,
        key: Option<usize>,
    }

    impl<'a, F> PinnedDrop for Within<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(key) = this.key.take() {
                this.deadlines.state().entries.try_remove(key);
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
        let mut state = this.deadlines.state();
        match *this.key {
            None => {
                let due = state.now.saturating_add(*this.ticks);
                *this.key = Some(state.entries.insert(Entry {
                    due,
                    waker: cx.waker().clone(),
                    expired: false,
                }));
            }
            Some(key) => match state.entries.get_mut(key) {
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
