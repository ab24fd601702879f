//! YAML, TOML and JSON load the same model and give the same decisions.

mod common;

use std::path::PathBuf;

use common::{req, rules_path};
use gray_core::{Config, Format, Gray};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn three_formats_one_model() {
    let yaml = Config::from_path(rules_path()).unwrap();
    let toml = Config::from_path(fixture("rules.toml")).unwrap();
    let json = Config::from_path(fixture("rules.json")).unwrap();
    assert_eq!(yaml, toml);
    assert_eq!(yaml, json);
    // And a config survives a round trip through serde (what `/gray/status` would print).
    let text = serde_json::to_string(&yaml).unwrap();
    assert_eq!(Config::from_json(&text).unwrap(), yaml);
}

#[test]
fn three_formats_same_decisions() {
    let engines: Vec<Gray> = [rules_path(), fixture("rules.toml"), fixture("rules.json")]
        .iter()
        .map(|p| Gray::from_path(p).unwrap())
        .collect();
    let mut requests = vec![
        req("/", &[("x-app-version", "beta")]),
        req(
            "/",
            &[("x-user-tier", "premium"), ("x-activity-level", "high")],
        ),
    ];
    requests.extend((0..2_000).map(|i| req("/", &[("x-user-id", &format!("u{i}"))])));
    for r in &requests {
        let decisions: Vec<_> = engines
            .iter()
            .map(|g| {
                (
                    g.decide(r).version().to_owned(),
                    g.decide(r).route().map(str::to_owned),
                )
            })
            .collect();
        assert!(decisions.windows(2).all(|w| w[0] == w[1]), "{decisions:?}");
    }
}

#[test]
fn format_by_extension() {
    for (name, format) in [
        ("a.yaml", Some(Format::Yaml)),
        ("a.YML", Some(Format::Yaml)),
        ("a.toml", Some(Format::Toml)),
        ("a.json", Some(Format::Json)),
        ("a.conf", None),
        ("yaml", None),
    ] {
        assert_eq!(Format::from_path(name.as_ref()), format, "{name}");
    }
}
