//! The record of reloads (`Gray::reloads`, `gray_config_*` in the Prometheus text): every
//! reload applied or refused is on it, and the fingerprint tells which rules are in force.

mod common;

use std::time::SystemTime;

use common::{gray, temp_dir, version_for_user};
use gray_core::rollout::Rollout;
use gray_core::{Config, Gray};

const RULES: &str = "versions: [stable, canary]
routes:
  - name: users
    split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } }
";

#[test]
fn every_reload_is_on_the_record_applied_or_refused() {
    let before = SystemTime::now();
    let dir = temp_dir("reloads");
    let path = dir.join("rules.yaml");
    std::fs::write(&path, RULES).unwrap();
    let g = Gray::from_path(&path).unwrap();
    let first = g.reloads();
    assert_eq!((first.applied, first.refused), (0, 0));
    assert!(first.last_reload_successful());
    assert!(first.loaded_at >= before && first.loaded_at <= SystemTime::now());

    // Refused: invalid rules, a file that is gone, a file that does not parse.
    let invalid = Config::from_yaml(&RULES.replace("canary: 10", "canary: 20")).unwrap();
    assert!(g.reload(invalid).is_err());
    let r = g.reloads();
    assert_eq!((r.applied, r.refused), (0, 1));
    assert_eq!(
        r.last_error.as_deref(),
        Some(r#"route "users": split.weights: weights sum to 110, not 100"#)
    );
    assert!(g.reload_from_path(dir.join("gone.yaml")).is_err());
    let r = g.reloads();
    assert_eq!(r.refused, 2);
    assert!(r.last_error.unwrap().contains("gone.yaml"));
    std::fs::write(&path, "versions: [stable, canary\n").unwrap();
    assert!(g.reload_from_path(&path).is_err());
    let r = g.reloads();
    assert_eq!((r.applied, r.refused), (0, 3));
    let last = r.last_error.clone().unwrap();
    assert!(
        last.contains("rules.yaml") && last.contains("YAML"),
        "{last}"
    );
    // The rules in force, their fingerprint and their time stayed.
    assert_eq!(
        (r.fingerprint, r.loaded_at),
        (first.fingerprint, first.loaded_at)
    );

    // Applied: the error is gone, the counts and the time move on.
    std::fs::write(&path, RULES.replace("90, canary: 10", "70, canary: 30")).unwrap();
    g.reload_from_path(&path).unwrap();
    let r = g.reloads();
    assert_eq!((r.applied, r.refused), (1, 3));
    assert!(r.last_reload_successful() && r.last_error.is_none());
    assert!(r.loaded_at >= first.loaded_at);
    assert_ne!(r.fingerprint, first.fingerprint);
    // `metrics` carries the same record.
    assert_eq!(g.metrics().reloads(), &r);
}

#[test]
fn the_prometheus_text_tells_the_record() {
    let g = gray(RULES);
    let text = g.metrics().prometheus();
    let fingerprint = format!("{:016x}", g.reloads().fingerprint);
    for line in [
        "# TYPE gray_config_reloads_total counter",
        "gray_config_reloads_total{result=\"applied\"} 0",
        "gray_config_reloads_total{result=\"refused\"} 0",
        "gray_config_last_reload_successful 1",
        &format!("gray_config_info{{fingerprint=\"{fingerprint}\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    let loaded_at: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("gray_config_last_reload_success_timestamp_seconds "))
        .expect("the time the rules were loaded")
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        loaded_at <= now && now - loaded_at < 60.0,
        "{loaded_at} {now}"
    );

    assert!(
        g.reload(Config::from_yaml("versions: []\n").unwrap())
            .is_err()
    );
    let text = g.metrics().prometheus();
    for line in [
        "gray_config_reloads_total{result=\"refused\"} 1",
        "gray_config_last_reload_successful 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[test]
fn one_fingerprint_for_the_same_rules_in_force_in_every_process() {
    // Two replicas, one given the rules as YAML and one as JSON.
    let yaml = gray(RULES);
    let json = Gray::new(
        Config::from_json(
            r#"{"versions":["stable","canary"],"routes":[{"name":"users",
                "split":{"by":{"header":"x-user-id"},"weights":{"canary":10,"stable":90}}}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(yaml.reloads().fingerprint, json.reloads().fingerprint);

    // A rollout's held weight is part of the rules in force: one replica at 5% has
    // another fingerprint, which is not a reload of its file; a replica whose file says
    // 5% has the same.
    let mut rollout = Rollout::new(yaml.clone(), "users", "canary", [5.0, 100.0]).unwrap();
    rollout.start().unwrap();
    assert_ne!(yaml.reloads().fingerprint, json.reloads().fingerprint);
    assert_eq!(yaml.reloads().applied, 0);
    let at_five = gray(&RULES.replace("90, canary: 10", "95, canary: 5"));
    assert_eq!(yaml.reloads().fingerprint, at_five.reloads().fingerprint);
    for user in ["1", "2", "3", "42"] {
        assert_eq!(
            version_for_user(&yaml, user),
            version_for_user(&at_five, user)
        );
    }
}

/// What the rules in force declare, as a status page or a log line shows it: the
/// versions (default first) and how many routes, taken from each reload as it applies.
#[test]
fn the_versions_and_debug_follow_the_rules_in_force() {
    let g = gray(RULES);
    let names = |g: &Gray| {
        g.versions()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&g), ["stable", "canary"]);
    assert_eq!(
        format!("{g:?}"),
        r#"Gray { versions: ["stable", "canary"], routes: 1, .. }"#
    );
    let three = "versions: [v2, stable, canary]\nroutes: []\n";
    g.reload(Config::from_yaml(three).unwrap()).unwrap();
    assert_eq!(names(&g), ["v2", "stable", "canary"]);
    assert_eq!(
        format!("{g:?}"),
        r#"Gray { versions: ["v2", "stable", "canary"], routes: 0, .. }"#
    );
}
