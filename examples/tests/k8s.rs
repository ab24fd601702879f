//! `examples/k8s/shop.yaml`: the rules in its ConfigMap are valid and do what the comments
//! say, its Deployment mounts them the way `gray_core::reload::Watcher` needs, and its monitoring
//! scrapes the pods and alerts on series gray exports.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::path::PathBuf;

use gray_core::{Config, Gray};
use serde_json::Value;

fn manifests() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s/shop.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

fn decide(gray: &Gray, headers: &[(&str, &str)]) -> String {
    let mut req = http::Request::get("/");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    gray.decide(&req.body(()).unwrap()).version().to_owned()
}

#[test]
fn the_configmap_holds_valid_rules() {
    let docs = manifests();
    let rules = of_kind(&docs, "ConfigMap")["data"]["rules.yaml"]
        .as_str()
        .unwrap();
    let gray = Gray::new(Config::from_yaml(rules).unwrap()).unwrap();
    assert_eq!(decide(&gray, &[("x-app-version", "beta")]), "canary");
    // The edge overwrites a label sent from outside.
    let spoofed = [("x-gray-version", "canary"), ("x-user-id", "7")];
    assert_eq!(
        decide(&gray, &spoofed),
        decide(&gray, &[("x-user-id", "7")])
    );
    // 5% of users on canary: 500 of 10,000, sigma ≈ 22.
    let canary = (0..10_000)
        .filter(|u| decide(&gray, &[("x-user-id", &format!("user-{u}"))]) == "canary")
        .count();
    assert!((390..=610).contains(&canary), "{canary} of 10000");
}

/// What a CI step checks before `kubectl apply`: the ConfigMap's rules against the
/// committed schema, `gray-core/rules.schema.json`.
#[test]
fn the_configmap_rules_are_valid_by_the_committed_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gray-core/rules.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let docs = manifests();
    let text = of_kind(&docs, "ConfigMap")["data"]["rules.yaml"]
        .as_str()
        .unwrap();
    let rules: Value = serde_saphyr::from_str(text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&rules)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // A slip in an edit is caught there, at the field.
    let slip: Value = serde_saphyr::from_str(&text.replace("weights:", "wieghts:")).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&slip)
        .map(|e| format!("{} {e}", e.instance_path()))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/routes/1/split ") && e.contains("wieghts")),
        "{errors:?}"
    );
}

#[test]
fn the_deployment_mounts_the_configmap_as_a_directory() {
    let docs = manifests();
    let configmap = of_kind(&docs, "ConfigMap");
    let pod = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == configmap["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let container = &pod["containers"][0];
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the ConfigMap volume is mounted");
    // With `subPath` the kubelet never updates the file: the rules would never reload.
    assert!(mount.get("subPath").is_none(), "{mount}");
    // The path the service reads is the ConfigMap's key inside the mounted directory.
    let rules_path = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "GRAY_RULES")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = configmap["data"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap();
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(rules_path, format!("{dir}/{key}"));
}

#[test]
fn the_pod_monitor_scrapes_the_deployments_pods_on_a_named_port() {
    let docs = manifests();
    let monitor = &of_kind(&docs, "PodMonitor")["spec"];
    let template = &of_kind(&docs, "Deployment")["spec"]["template"];
    for (label, value) in monitor["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&template["metadata"]["labels"][label], value, "{label}");
    }
    let port = &monitor["podMetricsEndpoints"][0]["port"];
    let ports = template["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap();
    assert!(
        ports.iter().any(|p| &p["name"] == port),
        "{port} in {ports:?}"
    );
}

#[test]
fn the_alerts_read_series_gray_exports() {
    let docs = manifests();
    let rules = of_kind(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 3);
    // What a service serves on /metrics, from a `Gray` of the ConfigMap's rules.
    let configmap = of_kind(&docs, "ConfigMap");
    let gray =
        Gray::new(Config::from_yaml(configmap["data"]["rules.yaml"].as_str().unwrap()).unwrap())
            .unwrap();
    let exported = gray.metrics().prometheus();
    for rule in rules {
        let expr = rule["expr"].as_str().unwrap();
        let mut names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("gray_"))
            .peekable();
        assert!(names.peek().is_some(), "{expr}");
        for name in names {
            let sample = format!("\n{name}");
            assert!(
                exported.contains(&format!("{sample} "))
                    || exported.contains(&format!("{sample}{{")),
                "{name} (in {expr}) is not a series gray exports:\n{exported}"
            );
        }
    }
}
