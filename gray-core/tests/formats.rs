//! YAML, TOML and JSON load the same model and give the same decisions.

mod common;

use std::path::PathBuf;

use common::{req, rules_path, temp_dir};
use gray_core::rules::Format;
use gray_core::{Config, Gray};

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
fn a_file_saved_with_a_byte_order_mark_reads_the_same_in_every_format() {
    // Some Windows editors write U+FEFF first; serde_json alone would refuse it.
    let dir = temp_dir("bom");
    let plain = Gray::from_path(rules_path()).unwrap().reloads().fingerprint;
    for source in [rules_path(), fixture("rules.toml"), fixture("rules.json")] {
        let path = dir.join(source.file_name().unwrap());
        let text = std::fs::read_to_string(&source).unwrap();
        std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
        let gray = Gray::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gray.reloads().fingerprint, plain, "{}", path.display());
        gray.reload_from_path(&path)
            .unwrap_or_else(|e| panic!("{e}"));
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

/// One split's weight and one mirror's percent, written `value`, in each format.
fn percentages(value: &str) -> [(&'static str, Result<Config, gray_core::Error>); 3] {
    let yaml = format!(
        "versions: [stable, canary]\nroutes:\n  - name: r\n    split: {{ weights: {{ stable: {value}, canary: 0 }} }}\n    mirror: {{ to: canary, percent: {value} }}\n"
    );
    let toml = format!(
        "versions = [\"stable\", \"canary\"]\n[[routes]]\nname = \"r\"\nsplit = {{ weights = {{ stable = {value}, canary = 0 }} }}\nmirror = {{ to = \"canary\", percent = {value} }}\n"
    );
    let json = format!(
        r#"{{"versions": ["stable", "canary"], "routes": [{{"name": "r", "split": {{"weights": {{"stable": {value}, "canary": 0}}}}, "mirror": {{"to": "canary", "percent": {value}}}}}]}}"#
    );
    [
        ("yaml", Config::from_yaml(&yaml)),
        ("toml", Config::from_toml(&toml)),
        ("json", Config::from_json(&json)),
    ]
}

#[test]
fn percentages_are_numbers_and_a_percent_sign_is_told_how_to_write_them() {
    for value in ["100", "100.0", "1e2", "\"100\""] {
        for (format, config) in percentages(value) {
            let config = config.unwrap_or_else(|e| panic!("{format} {value}: {e}"));
            let route = &config.routes[0];
            let weights = &route.split.as_ref().unwrap().weights;
            assert_eq!(weights.get("stable"), Some(&100.0), "{format} {value}");
            assert_eq!(
                route.mirror.as_ref().unwrap().percent,
                100.0,
                "{format} {value}"
            );
        }
    }
    // nginx's `split_clients` writes `10%`: the message says what to write instead, at the
    // value's line.
    for value in ["\"100%\"", "\"100 %\""] {
        for (format, config) in percentages(value) {
            let message = config.unwrap_err().to_string();
            assert!(
                message.contains("write 100, not \"100"),
                "{format}: {message}"
            );
            assert!(message.contains("line "), "{format}: {message}");
        }
    }
    // Anything else that is not a number is refused as such, in the rules' own words.
    for value in [
        "true", "\"ten\"", "\"inf\"", "\"ten%\"", "\"inf%\"", "[100]",
    ] {
        for (format, config) in percentages(value) {
            let message = config.unwrap_err().to_string();
            assert!(
                message.contains("expected a number of percent"),
                "{format} {value}: {message}"
            );
        }
    }
}

/// `weights:` written as a list of versions, or as one number, is told what it should be
/// (YAML's reader alone says only "expected mapping start").
#[test]
fn weights_that_are_not_a_map_are_told_what_weights_are_in_every_format() {
    for value in [
        ("[stable, canary]", r#"["stable", "canary"]"#),
        ("50", "50"),
    ] {
        let (yaml_value, value) = value;
        let yaml = format!(
            "versions: [stable, canary]\nroutes:\n  - name: u\n    split: {{ weights: {yaml_value} }}\n"
        );
        let toml = format!(
            "versions = [\"stable\", \"canary\"]\n[[routes]]\nname = \"u\"\nsplit = {{ weights = {value} }}\n"
        );
        let json = format!(
            r#"{{"versions": ["stable", "canary"], "routes": [{{"name": "u", "split": {{"weights": {value}}}}}]}}"#
        );
        for (format, parsed) in [
            ("yaml", Config::from_yaml(&yaml)),
            ("toml", Config::from_toml(&toml)),
            ("json", Config::from_json(&json)),
        ] {
            let message = parsed.unwrap_err().to_string();
            assert!(
                message.contains(
                    "expected a map of version to percent, such as { stable: 90, canary: 10 }"
                ),
                "{format}, weights: {value}: {message}"
            );
            assert!(message.contains("line "), "{format}: {message}");
        }
    }
}

#[test]
fn a_key_given_twice_is_refused_in_every_format_in_the_files_words() {
    // A version given two weights: YAML and TOML refuse a repeated key, and so does JSON
    // (serde_json alone would keep the last one and the split would run on it).
    let yaml = "versions: [stable, canary]\nroutes:\n  - name: u\n    split: { weights: { stable: 50, canary: 40, canary: 50 } }\n";
    let toml = "versions = [\"stable\", \"canary\"]\n[[routes]]\nname = \"u\"\nsplit = { weights = { stable = 50, canary = 40, canary = 50 } }\n";
    let json = r#"{"versions": ["stable", "canary"], "routes": [{"name": "u", "split": {"weights": {"stable": 50, "canary": 40, "canary": 50}}}]}"#;
    for (format, parsed, words) in [
        (
            "yaml",
            Config::from_yaml(yaml),
            "duplicate mapping key `canary`",
        ),
        ("toml", Config::from_toml(toml), "duplicate key"),
        (
            "json",
            Config::from_json(json),
            "version `canary` is given two weights",
        ),
    ] {
        let message = parsed.unwrap_err().to_string();
        assert!(message.contains(words), "{format}: {message}");
        assert!(message.contains("line "), "{format}: {message}");
    }
    // A field given twice, and a second YAML document: said for the file's author, not as
    // advice to the program ("set DuplicateKeyPolicy in Options", "use from_str_multiple").
    for (text, words) in [
        (
            "versions: [stable, canary]\nversions: [stable]\n",
            "duplicate mapping key `versions`",
        ),
        (
            "versions: [stable, canary]\n---\nversions: [stable]\n",
            "only single YAML document expected",
        ),
    ] {
        let message = Config::from_yaml(text).unwrap_err().to_string();
        assert!(message.contains(words), "{message}");
        assert!(
            !message.contains("Options") && !message.contains("from_str"),
            "{message}"
        );
    }
    let message = Config::from_json(r#"{"versions": ["stable"], "versions": ["stable"]}"#)
        .unwrap_err()
        .to_string();
    assert!(message.contains("duplicate field `versions`"), "{message}");
}
