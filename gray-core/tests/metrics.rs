//! Per-version metrics: counted by status class and latency, per thread, read per `Gray`
//! as a snapshot and as Prometheus text.

mod common;

use common::{gray, req};
use gray_core::metrics::{LATENCY_BUCKETS, VersionMetrics};
use gray_core::{Config, Gray};

fn metrics_of(gray: &Gray, version: &str) -> VersionMetrics {
    gray.metrics()
        .version(version)
        .cloned()
        .unwrap_or_else(|| panic!("{version} is metered"))
}

#[test]
fn requests_are_counted_by_version_and_status_class() {
    let g = gray(
        "versions: [stable, canary]
routes:
  - { name: testers, match: { headers: [{ name: x-app-version, exact: beta }] }, to: canary }",
    );
    let (stable, canary) = (req("/", &[]), req("/", &[("x-app-version", "beta")]));
    for status in [200, 201, 204, 301, 404, 101] {
        g.decide(&stable).measure().unwrap().finish(status);
    }
    for status in [200, 500, 503, 599, 700] {
        g.decide(&canary).measure().unwrap().finish(status);
    }

    let s = metrics_of(&g, "stable");
    assert_eq!(s.requests, [1, 3, 1, 1, 0]);
    assert_eq!(s.total(), 6);
    assert_eq!(s.error_rate(), 0.0);
    let c = metrics_of(&g, "canary");
    assert_eq!(c.requests, [0, 1, 0, 0, 4], "500, 503, 599 and 700 are 5xx");
    assert_eq!(c.error_rate(), 0.8);
    // Nothing here took a second: every request is in a bucket of a second or less.
    for v in [&s, &c] {
        assert_eq!(v.latency.iter().sum::<u64>(), v.total());
        let fast: u64 = v.latency[..LATENCY_BUCKETS.iter().position(|&b| b == 1.0).unwrap() + 1]
            .iter()
            .sum();
        assert_eq!(fast, v.total(), "{v:?}");
        assert!(v.latency_sum < 1.0);
        assert!(v.latency_quantile(0.99).unwrap() <= 1.0);
    }
}

#[test]
fn threads_count_into_their_own_shards_and_a_snapshot_sums_them() {
    let g = gray("versions: [stable]\n");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let r = req("/", &[]);
                for _ in 0..1_000 {
                    g.decide(&r).measure().unwrap().finish(200);
                }
            });
        }
    });
    assert_eq!(metrics_of(&g, "stable").requests, [0, 4_000, 0, 0, 0]);
}

#[test]
fn versions_keep_their_counts_across_reloads_by_name() {
    let g = gray("versions: [a, b]\n");
    g.decide(&req("/", &[])).measure().unwrap().finish(200);
    // b becomes the default: its requests are counted under its own name.
    g.reload(Config::from_yaml("versions: [b, a]\n").unwrap())
        .unwrap();
    g.decide(&req("/", &[])).measure().unwrap().finish(503);
    assert_eq!(metrics_of(&g, "a").requests, [0, 1, 0, 0, 0]);
    assert_eq!(metrics_of(&g, "b").requests, [0, 0, 0, 0, 1]);
}

#[test]
fn each_gray_counts_its_own_requests() {
    let (one, two) = (gray("versions: [stable]\n"), gray("versions: [stable]\n"));
    one.decide(&req("/", &[])).measure().unwrap().finish(200);
    assert_eq!(metrics_of(&one, "stable").total(), 1);
    assert_eq!(metrics_of(&two, "stable").total(), 0);
    // Clones share them.
    let clone = one.clone();
    clone.decide(&req("/", &[])).measure().unwrap().finish(200);
    assert_eq!(metrics_of(&one, "stable").total(), 2);
}

#[test]
fn a_quantile_is_interpolated_within_its_bucket_as_prometheus_does() {
    let g = gray("versions: [stable]\n");
    let mut v = metrics_of(&g, "stable");
    assert_eq!(v.latency_quantile(0.5), None);
    v.latency[0] = 90; // 0–0.5 ms
    v.latency[5] = 9; // 10–25 ms
    v.latency[LATENCY_BUCKETS.len()] = 1; // slower than the last bound
    let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-12);
    // Rank 50 of 90 in the first bucket: 50/90 of the way from 0 to 0.5 ms.
    assert!(close(v.latency_quantile(0.5), 0.0005 * 50.0 / 90.0));
    // Rank 95: the 5th of 9 in 10–25 ms.
    assert!(close(v.latency_quantile(0.95), 0.010 + 0.015 * 5.0 / 9.0));
    // Rank 99 is the top of that bucket; past it, the last finite bound.
    assert!(close(v.latency_quantile(0.99), 0.025));
    assert_eq!(v.latency_quantile(1.0), Some(10.0));
    // Empty buckets are passed over: the minimum is at the first non-empty one's start.
    v.latency[0] = 0;
    assert!(close(v.latency_quantile(0.0), 0.010));
    // Out-of-range quantiles are clamped; NaN has no answer, and no panic.
    assert_eq!(v.latency_quantile(7.0), Some(10.0));
    assert!(close(v.latency_quantile(-1.0), 0.010));
    assert_eq!(v.latency_quantile(f64::NAN), None);
}

#[test]
fn prometheus_text_is_well_formed() {
    // A split behind the first route (never reached, its weights still shown), and a
    // quote in a route name, escaped.
    let g = gray(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: canary }\n  - { name: 'say \"hi\"', split: { weights: { stable: 99.5, canary: 0.5 } } }\n",
    );
    for status in [200, 200, 502] {
        g.decide(&req("/", &[])).measure().unwrap().finish(status);
    }
    let text = g.metrics().prometheus();
    assert!(text.contains("# TYPE gray_requests_total counter\n"));
    assert!(text.contains("# TYPE gray_request_duration_seconds histogram\n"));
    assert!(text.contains("gray_requests_total{version=\"canary\",class=\"2xx\"} 2\n"));
    assert!(text.contains("gray_requests_total{version=\"canary\",class=\"5xx\"} 1\n"));
    assert!(text.contains("gray_requests_total{version=\"stable\",class=\"2xx\"} 0\n"));
    assert!(
        text.contains("gray_request_duration_seconds_bucket{version=\"canary\",le=\"+Inf\"} 3\n")
    );
    assert!(text.contains("gray_request_duration_seconds_count{version=\"canary\"} 3\n"));
    assert!(
        text.contains("# TYPE gray_rejected_labels_total counter\ngray_rejected_labels_total 0\n")
    );
    assert!(text.contains("gray_split_weight{route=\"say \\\"hi\\\"\",version=\"canary\"} 0.5\n"));
    // A label arriving at this edge is refused and counted.
    g.decide(&req("/", &[("x-gray-version", "canary")]));
    let metrics = g.metrics();
    assert_eq!(metrics.rejected_labels(), 1);
    assert!(
        metrics
            .prometheus()
            .contains("\ngray_rejected_labels_total 1\n")
    );

    // Every sample line is `name{labels} number` (a few have no labels) of a family whose
    // type was given before it, and buckets never decrease.
    let unlabelled = [
        "gray_rejected_labels_total",
        "gray_config_last_reload_successful",
        "gray_config_last_reload_success_timestamp_seconds",
    ];
    let mut typed: Vec<(&str, &str)> = Vec::new();
    let mut last_bucket: Option<(String, f64)> = None;
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let (name, kind) = family.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push((name, kind));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().expect("the value is a number");
        let labelled = series.contains('{') && series.ends_with('}');
        assert!(labelled || unlabelled.contains(&series), "{line}");
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            typed.iter().any(|&(family, kind)| name == family
                || kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(family))),
            "{line}: no # TYPE before it"
        );
        if let Some(rest) = series.strip_prefix("gray_request_duration_seconds_bucket{") {
            let version = rest.split(",le=").next().unwrap().to_owned();
            if let Some((v, previous)) = &last_bucket
                && *v == version
            {
                assert!(value >= *previous, "{line}");
            }
            last_bucket = Some((version, value));
        }
    }
}

/// The gauges of the rules in force: each declared version's weight in each split route
/// (0 where the split lists it not), as reloads and rollouts move them, and 0 for a
/// version while it is marked unavailable.
#[test]
fn gauges_show_the_weights_and_availability_in_force() {
    let g = gray(
        "versions: [stable, canary, beta]\nroutes:\n  - { name: testers, to: beta, match: { headers: [{ name: x-beta, present: true }] } }\n  - { name: users, split: { weights: { stable: 90, canary: 10 } } }\n",
    );
    let gauges = |g: &Gray| -> Vec<String> {
        g.metrics()
            .prometheus()
            .lines()
            .filter(|l| {
                l.starts_with("gray_split_weight{") || l.starts_with("gray_version_available{")
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        gauges(&g),
        [
            r#"gray_split_weight{route="users",version="stable"} 90"#,
            r#"gray_split_weight{route="users",version="canary"} 10"#,
            r#"gray_split_weight{route="users",version="beta"} 0"#,
            r#"gray_version_available{version="stable"} 1"#,
            r#"gray_version_available{version="canary"} 1"#,
            r#"gray_version_available{version="beta"} 1"#,
        ]
    );
    g.set_available("canary", false);
    let mut rollout = gray_core::rollout::Rollout::new(g.clone(), "users", "beta", [5.0]).unwrap();
    rollout.start().unwrap();
    assert_eq!(
        gauges(&g),
        [
            r#"gray_split_weight{route="users",version="stable"} 85"#,
            r#"gray_split_weight{route="users",version="canary"} 10"#,
            r#"gray_split_weight{route="users",version="beta"} 5"#,
            r#"gray_version_available{version="stable"} 1"#,
            r#"gray_version_available{version="canary"} 0"#,
            r#"gray_version_available{version="beta"} 1"#,
        ]
    );
    // A reload drops a version and the split: their series go with them.
    drop(rollout);
    g.reload(Config::from_yaml("versions: [stable, canary]\n").unwrap())
        .unwrap();
    assert_eq!(
        gauges(&g),
        [
            r#"gray_version_available{version="stable"} 1"#,
            r#"gray_version_available{version="canary"} 0"#,
        ]
    );
}
