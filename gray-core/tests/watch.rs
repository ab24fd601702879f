//! `Watcher`: real files in a temp dir, including the kubelet's `..data` symlink swap.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{req, temp_dir};
use gray_core::{Gray, Watcher};

const WAIT: Duration = Duration::from_secs(20);

fn rules(canary: u32) -> String {
    format!(
        "versions: [stable, canary]\nroutes:\n  - name: all\n    split: {{ weights: {{ stable: {}, canary: {canary} }} }}\n",
        100 - canary
    )
}

/// Version of a request under the current rules (the split is 0 or 100, so exact).
fn version(gray: &Gray) -> String {
    gray.decide(&req("/", &[])).version().to_owned()
}

/// A watcher whose reports arrive on a channel.
fn watch(gray: &Gray, path: &Path) -> (Watcher, mpsc::Receiver<Result<(), String>>) {
    let (tx, rx) = mpsc::channel();
    let watcher = Watcher::new(gray.clone(), path, move |r| {
        let _ = tx.send(r.as_ref().map(|_| ()).map_err(ToString::to_string));
    })
    .expect("watch");
    (watcher, rx)
}

/// Waits for a successful reload, skipping reports of a half-written file.
fn wait_ok(rx: &mpsc::Receiver<Result<(), String>>) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(())) => return,
            Ok(Err(_)) => continue,
            Err(e) => panic!("no reload: {e}"),
        }
    }
}

/// Writes `text` beside `path` and renames it over: the file changes atomically.
fn rename_over(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    fs::write(&tmp, text).expect("write temp file");
    fs::rename(&tmp, path).expect("rename over");
}

#[test]
fn an_in_place_write_reloads() {
    let dir = temp_dir("in-place");
    let path = dir.join("rules.yaml");
    fs::write(&path, rules(0)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);
    assert_eq!(version(&gray), "stable");
    fs::write(&path, rules(100)).unwrap();
    wait_ok(&rx);
    assert_eq!(version(&gray), "canary");
}

#[test]
fn a_rename_over_reloads_and_unrelated_files_do_not() {
    let dir = temp_dir("rename");
    let path = dir.join("rules.yaml");
    fs::write(&path, rules(0)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);
    // Noise in the directory, and a rewrite with the same content: nothing to report.
    fs::write(dir.join("other.txt"), "hello").unwrap();
    rename_over(&path, &rules(0));
    rename_over(&path, &rules(100));
    assert_eq!(rx.recv_timeout(WAIT).expect("a report"), Ok(()));
    assert_eq!(version(&gray), "canary");
    assert!(rx.try_recv().is_err(), "one change, one report");
}

#[test]
fn a_bad_file_is_reported_and_the_rules_stay() {
    let dir = temp_dir("bad");
    let path = dir.join("rules.yaml");
    fs::write(&path, rules(100)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);

    rename_over(&path, &rules(100).replace("canary: 100", "canary: 10"));
    let err = rx
        .recv_timeout(WAIT)
        .expect("a report")
        .expect_err("weights sum to 10");
    assert!(
        err.contains("rules.yaml") && err.contains("all") && err.contains("weights"),
        "{err}"
    );
    assert_eq!(version(&gray), "canary", "the rules in force stay");

    rename_over(&path, "versions: [stable, canary\n");
    let err = rx
        .recv_timeout(WAIT)
        .expect("a report")
        .expect_err("not YAML");
    assert!(err.contains("yaml") || err.contains("YAML"), "{err}");
    assert_eq!(version(&gray), "canary");

    rename_over(&path, &rules(0));
    assert_eq!(rx.recv_timeout(WAIT).expect("a report"), Ok(()));
    assert_eq!(version(&gray), "stable");
}

#[test]
fn a_deleted_file_keeps_the_rules_until_it_returns() {
    let dir = temp_dir("deleted");
    let path = dir.join("rules.yaml");
    fs::write(&path, rules(100)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);
    fs::remove_file(&path).unwrap();
    let err = rx.recv_timeout(WAIT).expect("a report").expect_err("gone");
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(version(&gray), "canary");
    rename_over(&path, &rules(0));
    wait_ok(&rx);
    assert_eq!(version(&gray), "stable");
}

/// The kubelet's ConfigMap update: a new timestamped directory, a `..data_tmp` symlink to
/// it renamed over `..data`; `rules.yaml` is a symlink to `..data/rules.yaml` throughout.
#[cfg(unix)]
#[test]
fn a_configmap_symlink_swap_reloads() {
    use std::os::unix::fs::symlink;

    let dir = temp_dir("configmap");
    let first = dir.join("..2026_11_25_10_00_00.000000001");
    fs::create_dir(&first).unwrap();
    fs::write(first.join("rules.yaml"), rules(0)).unwrap();
    symlink(first.file_name().unwrap(), dir.join("..data")).unwrap();
    symlink("..data/rules.yaml", dir.join("rules.yaml")).unwrap();

    let path = dir.join("rules.yaml");
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);
    assert_eq!(version(&gray), "stable");

    for (i, canary) in [(2, 100), (3, 0), (4, 100)] {
        let next = dir.join(format!("..2026_11_25_10_00_0{i}.000000001"));
        fs::create_dir(&next).unwrap();
        fs::write(next.join("rules.yaml"), rules(canary)).unwrap();
        symlink(next.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        assert_eq!(rx.recv_timeout(WAIT).expect("a report"), Ok(()), "swap {i}");
        let want = if canary == 100 { "canary" } else { "stable" };
        assert_eq!(version(&gray), want, "swap {i}");
    }
}

#[test]
fn an_unknown_format_is_refused_up_front() {
    let dir = temp_dir("format");
    let gray = Gray::new(gray_core::Config::from_yaml(&rules(0)).unwrap()).unwrap();
    let err = Watcher::new(gray, dir.join("rules.ini"), |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("unknown rules file format"),
        "{err}"
    );
}
