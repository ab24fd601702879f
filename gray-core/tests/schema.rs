//! `Config::json_schema` and `gray-core/rules.schema.json`: the committed file is the
//! generated schema, the repository's rules files are valid by it, and slips an editor
//! should flag are not. (That every file gray accepts is valid by it: `robustness.rs`.)

mod common;

use std::path::{Path, PathBuf};

use gray_core::Config;
use gray_core::rules::Format;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A rules file's text as the JSON value an editor or a CI check validates.
fn as_json(text: &str, format: Format) -> Value {
    match format {
        Format::Yaml => serde_saphyr::from_str(text).expect("YAML"),
        Format::Toml => toml::from_str(text).expect("TOML"),
        _ => serde_json::from_str(text).expect("JSON"),
    }
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&Config::json_schema()).expect("the schema is a valid schema")
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = repo("rules.schema.json");
    let generated = serde_json::to_string_pretty(&Config::json_schema()).expect("JSON") + "\n";
    if std::env::var_os("GRAY_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write rules.schema.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not the schema the config types give: regenerate it with \
         `GRAY_BLESS=1 cargo test -p gray-core --features schema --test schema`",
        path.display()
    );
}

#[test]
fn the_repository_rules_files_are_valid() {
    let validator = validator();
    for file in [
        "../examples/rules.yaml",
        "../benches/load/rules.yaml",
        "tests/fixtures/everything.yaml",
        "tests/fixtures/rules.toml",
        "tests/fixtures/rules.json",
    ] {
        let path = repo(file);
        let text = std::fs::read_to_string(&path).expect("rules file");
        let format = Format::from_path(&path).expect("a rules extension");
        let value = as_json(&text, format);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        Config::from_path(&path).expect("and gray accepts it");
    }
}

#[test]
fn slips_an_editor_should_flag_are_invalid() {
    let validator = validator();
    for (yaml, at) in [
        ("versions: []", "/versions"),
        ("versions: [stable]\nroute: []", ""),
        (
            "versions: [stable]\nlabel: { inherit: sometimes }",
            "/label/inherit",
        ),
        (
            "versions: [stable]\nlabel: { inherit: always, from: [] }",
            "/label/from",
        ),
        ("versions: [stable]\nlabel: { heder: x-v }", "/label"),
        (
            "versions: [stable, canary]\nroutes: [{ name: a, split: { wieghts: { stable: 100 } } }]",
            "/routes/0/split",
        ),
        (
            "versions: [stable, canary]\nroutes: [{ name: a, split: { weights: { stable: lots } } }]",
            // An optional field's value is checked as "this, or null": the error is told
            // at the field (editors show the branch that nearly matched).
            "/routes/0/split",
        ),
        (
            "versions: [stable, canary]\nroutes: [{ name: a, to: canary, mirror: { to: stable, percent: 150 } }]",
            "/routes/0/mirror/percent",
        ),
        (
            "versions: [stable, canary]\nroutes: [{ name: a, split: { by: { cookie: c }, weights: { stable: 100 }, set_cookie: { max_age: 0 } } }]",
            "/routes/0/split/set_cookie/max_age",
        ),
        (
            "versions: [stable, canary]\nroutes: [{ name: a, split: { by: { headers: x }, weights: { stable: 100 } } }]",
            "/routes/0/split/by",
        ),
        (
            "versions: [stable]\nroutes: [{ name: a, match: { client_ip: { cidr: [] } }, to: stable }]",
            "/routes/0/match/client_ip",
        ),
    ] {
        let value = as_json(yaml, Format::Yaml);
        let paths: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(!paths.is_empty(), "valid by the schema: {yaml}");
        assert!(
            paths.iter().any(|p| p.starts_with(at)),
            "{yaml}: errors at {paths:?}, none at {at}"
        );
        // gray refuses each as well. (Its YAML reader is more lenient than the schema about
        // a scalar's type: it reads `1.0` as the name "1.0", "100" as the number.)
        let refused = Config::from_yaml(yaml).and_then(|config| config.validate());
        assert!(refused.is_err(), "gray accepts {yaml}");
    }
}
