//! The promised properties of splits: sticky, uniform, monotonic, independent, and the
//! exactness of the unkeyed sequence.

mod common;

use common::{gray, keyed_split, req, version_for_user};
use gray_core::engine::{BUCKETS, bucket};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Same key, same config → same version, in this engine and in a second one built from
    /// the same text (as another process would).
    #[test]
    fn sticky(key in "[a-zA-Z0-9_-]{1,40}", canary in 1u32..100) {
        let a = keyed_split(f64::from(canary), None);
        let b = keyed_split(f64::from(canary), None);
        let first = version_for_user(&a, &key);
        prop_assert_eq!(&first, &version_for_user(&a, &key));
        prop_assert_eq!(&first, &version_for_user(&b, &key));
    }

    /// A key is on canary exactly when its bucket falls in canary's range (the top of the
    /// bucket space, after stable's).
    #[test]
    fn version_follows_the_documented_bucket(key in "\\PC{1,60}", canary in 0u32..=100) {
        let g = keyed_split(f64::from(canary), None);
        let expected = if u32::from(bucket("users", key.as_bytes())) >= (100 - canary) * 100 { "canary" } else { "stable" };
        prop_assert_eq!(version_for_user(&g, &key), expected);
    }

    /// Growing canary only ever moves users from stable to canary, never back.
    #[test]
    fn monotonic(key in "[0-9a-f]{8,16}") {
        let stages = [1.0, 5.0, 10.0, 30.0, 50.0, 100.0];
        let mut was_canary = false;
        for pct in stages {
            let is_canary = version_for_user(&keyed_split(pct, None), &key) == "canary";
            prop_assert!(!was_canary || is_canary, "left canary at {pct}%");
            was_canary = is_canary;
        }
        prop_assert!(was_canary, "100% must put everyone on canary");
    }
}

/// `users` split three ways, by `x-user-id`, with these percentages.
fn three_way(stable: f64, canary: f64, beta: f64) -> gray_core::Gray {
    gray(&format!(
        "versions: [stable, canary, beta]\nroutes:\n  - name: users\n    split: {{ by: {{ header: x-user-id }}, weights: {{ stable: {stable}, canary: {canary}, beta: {beta} }} }}\n"
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Three versions: beta owns the bottom of the bucket space, canary the top, stable
    /// the middle (`gray_core::engine::bucket`'s documented layout).
    #[test]
    fn three_versions_follow_the_documented_layout(key in "\\PC{1,40}", canary in 0u32..=50, beta in 0u32..=50) {
        let g = three_way(f64::from(100 - canary - beta), f64::from(canary), f64::from(beta));
        let b = u32::from(bucket("users", key.as_bytes()));
        let expected = if b < beta * 100 {
            "beta"
        } else if b >= (100 - canary) * 100 {
            "canary"
        } else {
            "stable"
        };
        prop_assert_eq!(version_for_user(&g, &key), expected);
    }

    /// Widening either of two canaries from stable keeps its users and moves none of the
    /// other's: a third version is never reshuffled by a rollout beside it.
    #[test]
    fn widening_one_of_three_versions_moves_no_one_else(key in "[0-9a-f]{8,16}", from in 0u32..40, to in 40u32..=80, widen_beta in proptest::bool::ANY) {
        let (before, after) = if widen_beta {
            (three_way(f64::from(90 - from), 10.0, f64::from(from)), three_way(f64::from(90 - to), 10.0, f64::from(to)))
        } else {
            (three_way(f64::from(90 - from), f64::from(from), 10.0), three_way(f64::from(90 - to), f64::from(to), 10.0))
        };
        let (widened, other) = if widen_beta { ("beta", "canary") } else { ("canary", "beta") };
        let was = version_for_user(&before, &key);
        let is = version_for_user(&after, &key);
        if was == widened {
            prop_assert_eq!(is.as_str(), widened, "left the widened version");
        }
        prop_assert_eq!(was == other, is == other, "the other version's users moved: {} → {}", was, is);
    }
}

/// A key whose bucket for salt `users` is `b` (searched for: about 10,000 tries each).
fn key_in_bucket(b: u16) -> String {
    (0u32..1_000_000)
        .map(|i| format!("k{i}"))
        .find(|k| bucket("users", k.as_bytes()) == b)
        .unwrap_or_else(|| panic!("no key in bucket {b} among the first million"))
}

/// The ranges' edges, bucket by bucket: each version owns exactly the buckets the docs
/// give it, no bucket more or less — which the random keys of the properties above hit at
/// an edge once in 10,000 cases. And 0.01% is one bucket.
#[test]
fn each_version_owns_exactly_its_documented_buckets_edges_included() {
    // [stable, canary, beta] at 80/10/10: beta 0..1000, stable 1000..9000, canary 9000..10_000.
    let g = three_way(80.0, 10.0, 10.0);
    for (b, expected) in [
        (0, "beta"),
        (999, "beta"),
        (1000, "stable"),
        (8999, "stable"),
        (9000, "canary"),
        (9999, "canary"),
    ] {
        let key = key_in_bucket(b);
        assert_eq!(version_for_user(&g, &key), expected, "bucket {b} ({key})");
    }
    // The smallest share there is: canary at 0.01% owns the top bucket alone.
    let g = keyed_split(0.01, None);
    assert_eq!(version_for_user(&g, &key_in_bucket(9999)), "canary");
    assert_eq!(version_for_user(&g, &key_in_bucket(9998)), "stable");
}

/// The bucket formula is part of the contract (other processes and languages reproduce it),
/// so pin a few values: a change here moves users between versions on upgrade.
#[test]
fn bucket_values_are_stable_across_releases() {
    let pinned: Vec<u16> = ["1", "42", "user-1001", ""]
        .iter()
        .map(|k| bucket("users", k.as_bytes()))
        .collect();
    assert_eq!(pinned, PINNED);
    assert!(pinned.iter().all(|&b| b < BUCKETS));
}
/// Computed independently with Python's `xxhash` package:
/// `xxh3_64_intdigest(key, seed=xxh3_64_intdigest(b"users")) % 10000`.
const PINNED: [u16; 4] = [2457, 8101, 7318, 1075];

#[test]
fn uniform_over_100k_keys_within_5_sigma() {
    for canary in [1.0, 10.0, 30.0, 50.0] {
        let g = keyed_split(canary, None);
        let n = 100_000u32;
        let hits = (0..n)
            .filter(|i| version_for_user(&g, &format!("user-{i}")) == "canary")
            .count() as f64;
        let p = canary / 100.0;
        let (mean, sigma) = (f64::from(n) * p, (f64::from(n) * p * (1.0 - p)).sqrt());
        assert!(
            (hits - mean).abs() <= 5.0 * sigma,
            "{canary}%: {hits} canary of {n}, expected {mean} ± {}",
            5.0 * sigma
        );
    }
}

#[test]
fn different_salts_pick_independent_users() {
    // Two 50% splits: if independent, about a quarter of users are canary in both.
    let a = keyed_split(50.0, Some("checkout"));
    let b = keyed_split(50.0, Some("search"));
    let same_salt = keyed_split(50.0, Some("checkout"));
    let n = 40_000u32;
    let (mut both, mut same) = (0u32, 0u32);
    for i in 0..n {
        let key = format!("u{i}");
        let in_a = version_for_user(&a, &key) == "canary";
        both += u32::from(in_a && version_for_user(&b, &key) == "canary");
        same += u32::from(in_a && version_for_user(&same_salt, &key) == "canary");
    }
    let (mean, sigma) = (f64::from(n) * 0.25, (f64::from(n) * 0.25 * 0.75).sqrt());
    assert!(
        (f64::from(both) - mean).abs() <= 5.0 * sigma,
        "overlap {both} of {n}, expected {mean}"
    );
    // The control: the same salt picks the very same users.
    assert!((f64::from(same) - f64::from(n) * 0.5).abs() <= 5.0 * (f64::from(n) * 0.25).sqrt());
}

#[test]
fn default_salt_is_the_route_name() {
    let named = gray(
        "versions: [stable, canary]
routes:
  - { name: users, split: { by: { header: x-user-id }, weights: { stable: 50, canary: 50 } } }",
    );
    let salted = keyed_split(50.0, Some("users"));
    for i in 0..2_000 {
        let key = i.to_string();
        assert_eq!(
            version_for_user(&named, &key),
            version_for_user(&salted, &key)
        );
    }
}

fn unkeyed(weights: &str) -> gray_core::Gray {
    gray(&format!(
        "versions: [stable, canary, v3]
routes:
  - {{ name: all, split: {{ weights: {weights} }} }}"
    ))
}

#[test]
fn unkeyed_split_is_exact_at_10_100_1000_10000() {
    let g = unkeyed("{ stable: 90, canary: 10 }");
    let request = req("/", &[]);
    let mut canary = 0u64;
    for n in 1..=10_000u64 {
        canary += u64::from(g.decide(&request).version() == "canary");
        // Within ±2 of exact at every count; exact at the round numbers.
        assert!(
            (canary as f64 - n as f64 * 0.1).abs() <= 2.0,
            "n={n}: {canary} canary"
        );
        if [10, 100, 1_000, 10_000].contains(&n) {
            assert_eq!(canary, n / 10, "n={n}");
        }
    }
}

#[test]
fn unkeyed_split_counts_per_thread_and_stays_exact_across_threads() {
    let g = unkeyed("{ stable: 90, canary: 10 }");
    // Each of four threads runs its own exact sequence: each thread's 1,000 requests carry
    // exactly 100 canaries, whatever the other threads do.
    let per_thread: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let request = req("/", &[]);
                    (0..1_000)
                        .filter(|_| g.decide(&request).version() == "canary")
                        .count() as u64
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(per_thread, [100, 100, 100, 100]);
}

#[test]
fn unkeyed_three_way_split_stays_within_two_requests() {
    let g = unkeyed("{ stable: 33.33, canary: 33.34, v3: 33.33 }");
    let request = req("/", &[]);
    let mut counts = [0f64; 3];
    for n in 1..=10_000u32 {
        let i = match g.decide(&request).version() {
            "stable" => 0,
            "canary" => 1,
            _ => 2,
        };
        counts[i] += 1.0;
        for (c, w) in counts.iter().zip([0.3333, 0.3334, 0.3333]) {
            assert!((c - f64::from(n) * w).abs() <= 2.0, "n={n}: {counts:?}");
        }
    }
    assert_eq!(counts, [3333.0, 3334.0, 3333.0]);
}

#[test]
fn absent_or_empty_key_takes_the_exact_sequence() {
    let g = keyed_split(10.0, None);
    let (no_key, empty_key) = (req("/", &[]), req("/", &[("x-user-id", "")]));
    let canary = (0..500)
        .filter(|i| {
            g.decide(if i % 2 == 0 { &no_key } else { &empty_key })
                .version()
                == "canary"
        })
        .count();
    assert_eq!(canary, 50);
}

#[test]
fn zero_and_hundred_percent_are_absolute() {
    for (pct, want) in [(0.0, "stable"), (100.0, "canary")] {
        let g = keyed_split(pct, None);
        assert!(
            (0..5_000).all(|i| version_for_user(&g, &i.to_string()) == want),
            "{pct}%"
        );
    }
}
