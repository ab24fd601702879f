//! Weighted splits: sticky buckets for keyed splits, and an exact low-discrepancy sequence
//! for unkeyed ones.
//!
//! **Keyed.** `bucket = xxh3_64_with_seed(key, xxh3_64(salt)) % 10_000` (see [`bucket`]).
//! Versions own contiguous bucket ranges. The default version sits in the middle and the
//! others at the two ends, outermost first: the first other version declared at the top,
//! the second at the bottom, the third just inside the first, the fourth just inside the
//! second, and so on. So with two versions the default owns `0..10_000 − w` and the other
//! the top `w` buckets; and when the default version and another trade weight (a canary
//! widened), that version keeps all of its keys and only the versions between it and the
//! default move — none at all with up to three versions, where a canary widened beside a
//! blue/green pair leaves the other's users where they are. (Declared order, the default
//! first, would move every version declared between the two.)
//!
//! **Unkeyed** (or the key is absent). Request number `n` is placed by a cascade of
//! Bresenham lines: the first version with weight `w` out of the remaining `R` takes request
//! `m` when `ceil((m+1)·w/R) > ceil(m·w/R)`; the rest pass on to the next version with their
//! index among those passed on. After any number of requests a split of `k` versions is
//! within `k − 1` requests of exact (two versions within one, three within two), and every
//! 10,000 requests it is exact — unlike a random draw, which drifts by √n.
//!
//! Each thread counts its own requests (a per-thread counter, made on the thread's first
//! unkeyed request): a counter shared by all cores would be one cache line that every
//! request on every core writes to. So the bounds above hold per thread, and across `t`
//! threads a two-version split is within `t` requests of exact.

use std::cell::Cell;

use thread_local::ThreadLocal;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Number of buckets: weights have 0.01% resolution.
pub const BUCKETS: u16 = 10_000;

/// The bucket (`0..10_000`) of `key` for a split with `salt` (the route name unless the
/// config sets `salt`), the same in every process and every language with xxh3:
/// `xxh3_64_with_seed(key, xxh3_64(salt)) % 10_000`.
///
/// A split's versions own contiguous ranges of buckets, each as wide as its weight in
/// hundredths of a percent. The default version (declared first) sits in the middle and
/// the others at the two ends: from bucket 0 up, the 3rd, 5th, 7th… declared version, the
/// default, then …the 6th, 4th, 2nd. With `versions: [stable, canary]` and canary at 10%,
/// canary owns buckets `9000..10_000`; with `[stable, canary, beta]` at 80/10/10, beta owns
/// `0..1000`, stable `1000..9000`, canary `9000..10_000`. So widening one version's share
/// from the default's keeps all of its users and moves no other version's (with more than
/// three versions, only those nested between it and the default).
///
/// ```
/// let b = gray_core::engine::bucket("users", b"42");
/// assert!(b < gray_core::engine::BUCKETS);
/// assert_eq!(b, gray_core::engine::bucket("users", b"42"));
/// ```
pub fn bucket(salt: &str, key: &[u8]) -> u16 {
    bucket_seeded(xxh3_64(salt.as_bytes()), key)
}

#[inline]
fn bucket_seeded(seed: u64, key: &[u8]) -> u16 {
    // The remainder is below 10_000, so it always fits.
    (xxh3_64_with_seed(key, seed) % u64::from(BUCKETS)) as u16
}

/// The order in which `count` versions (by declared index, the default 0) own the bucket
/// space from bucket 0 up: 2, 4, 6, …, then 0, then …, 5, 3, 1.
fn layout(count: usize) -> impl Iterator<Item = usize> {
    let bottom = (2..count).step_by(2);
    let top = (1..count).step_by(2).rev();
    bottom.chain((0..count.min(1)).chain(top))
}

/// A compiled split: who owns which buckets, and the unkeyed sequence.
#[derive(Debug)]
pub(super) struct Weighted {
    seed: u64,
    /// `(upper bound, version)`: the version owns buckets below `upper` not owned before.
    /// Versions with weight 0 are left out.
    ranges: Box<[(u16, u8)]>,
    /// `(weight, remaining weight, version)` per level of the unkeyed cascade.
    levels: Box<[(u16, u16, u8)]>,
    /// Each thread's position in the unkeyed sequence.
    counter: ThreadLocal<Cell<u64>>,
}

impl Weighted {
    /// `weights` are basis points (summing to 10_000) indexed by version, in declared order.
    pub(super) fn new(salt: &str, weights: &[u16]) -> Self {
        let mut ranges = Vec::new();
        let mut upper = 0u16;
        for version in layout(weights.len()) {
            let w = weights[version];
            if w == 0 {
                continue;
            }
            upper += w;
            // Versions are capped at u8::MAX + 1 by validation.
            ranges.push((upper, version as u8));
        }
        let mut levels = Vec::new();
        let mut remaining = BUCKETS;
        for (version, &w) in weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            levels.push((w, remaining, version as u8));
            remaining -= w;
        }
        Self {
            seed: xxh3_64(salt.as_bytes()),
            ranges: ranges.into(),
            levels: levels.into(),
            counter: ThreadLocal::new(),
        }
    }

    /// The version for a key: sticky, by bucket.
    #[inline]
    pub(super) fn keyed(&self, key: &[u8]) -> u8 {
        let b = bucket_seeded(self.seed, key);
        for &(upper, version) in self.ranges.split_last().map_or(&[][..], |(_, init)| init) {
            if b < upper {
                return version;
            }
        }
        // Weights sum to 10_000, so at least one version has a range.
        self.ranges.last().map_or(0, |&(_, v)| v)
    }

    /// The version for this thread's next unkeyed request.
    #[inline]
    pub(super) fn next(&self) -> u8 {
        let counter = self.counter.get_or(Cell::default);
        let n = counter.get();
        counter.set(n.wrapping_add(1));
        self.nth(n)
    }

    /// The version of request number `n` of the unkeyed sequence.
    pub(super) fn nth(&self, n: u64) -> u8 {
        // The sequence repeats every 10_000 requests, exact at each period's end.
        let mut m = (n % u64::from(BUCKETS)) as u32;
        for &(w, r, version) in self.levels.split_last().map_or(&[][..], |(_, init)| init) {
            let (w, r) = (u32::from(w), u32::from(r));
            let taken_before = (m * w).div_ceil(r);
            if (m + 1) * w > taken_before * r {
                return version;
            }
            m -= taken_before;
        }
        self.last()
    }

    #[inline]
    fn last(&self) -> u8 {
        // Weights sum to 10_000, so at least one version has a level.
        self.levels.last().map_or(0, |&(_, _, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k` versions: within `k − 1` requests of exact after any count (two within one),
    /// and exact after every 10,000.
    #[test]
    fn sequence_is_exact_per_period_and_close_at_every_count() {
        for weights in [
            &[9000u16, 1000, 0][..],
            &[5000, 0, 5000],
            &[3333, 3334, 3333],
            &[1, 9998, 1],
            &[0, 0, 10_000],
            &[2500, 2500, 2500, 2500],
            &[7000, 1000, 1000, 1000],
            &[1, 1, 1, 9997],
            &[4000, 0, 3000, 2000, 1000],
            &[1234, 2345, 3456, 1111, 1854],
        ] {
            let k = weights.iter().filter(|&&w| w > 0).count();
            let w = Weighted::new("s", weights);
            let mut counts = vec![0i64; weights.len()];
            for n in 1..=20_000u64 {
                counts[usize::from(w.nth(n - 1))] += 1;
                for (c, &wt) in counts.iter().zip(weights) {
                    let exact = n as f64 * f64::from(wt) / 10_000.0;
                    assert!(
                        (*c as f64 - exact).abs() < (k - 1).max(1) as f64,
                        "{weights:?} n={n} {counts:?}"
                    );
                }
                if n % 10_000 == 0 {
                    let periods = (n / 10_000) as i64;
                    let exact: Vec<i64> = weights.iter().map(|&x| i64::from(x) * periods).collect();
                    assert_eq!(counts, exact, "{weights:?} after {n}");
                }
            }
        }
    }

    #[test]
    fn the_default_sits_in_the_middle_and_the_others_at_the_ends() {
        let orders: Vec<Vec<usize>> = (0..=6).map(|n| layout(n).collect()).collect();
        assert_eq!(
            orders,
            [
                vec![],
                vec![0],
                vec![0, 1],
                vec![2, 0, 1],
                vec![2, 0, 3, 1],
                vec![2, 4, 0, 3, 1],
                vec![2, 4, 0, 5, 3, 1],
            ]
        );
        let w = Weighted::new("s", &[8000, 1000, 1000]);
        assert_eq!(&*w.ranges, [(1000, 2), (9000, 0), (10_000, 1)]);
    }

    #[test]
    fn the_sequence_repeats_every_10_000_requests_however_many_came_before() {
        let w = Weighted::new("s", &[9000, 1000]);
        let period: Vec<u8> = (0..u64::from(BUCKETS)).map(|n| w.nth(n)).collect();
        // A process that has served trillions of requests (or a counter near wrapping).
        for base in [
            10_000u64,
            10_000 * 1_000_000_007,
            u64::MAX / 10_000 * 10_000 - 10_000,
        ] {
            let again: Vec<u8> = (0..u64::from(BUCKETS)).map(|n| w.nth(base + n)).collect();
            assert!(again == period, "the sequence after {base} requests");
        }
    }

    #[test]
    fn first_request_goes_to_the_heaviest_leading_version() {
        let w = Weighted::new("s", &[9000, 1000]);
        let first: Vec<u8> = (0..10).map(|n| w.nth(n)).collect();
        assert_eq!(first, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
