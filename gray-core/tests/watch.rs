//! `Watcher`: real files in a temp dir, including the kubelet's `..data` symlink swap.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{req, temp_dir};
use gray_core::Gray;
use gray_core::reload::Watcher;

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
    assert_eq!(watcher.path(), path);
    assert_eq!(
        format!("{watcher:?}"),
        format!("Watcher {{ path: {path:?}, .. }}")
    );
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

    // Both refusals are on the record, the last one's error with them, until a reload
    // is applied.
    let reloads = gray.reloads();
    assert_eq!((reloads.applied, reloads.refused), (0, 2));
    let last = reloads.last_error.expect("the last refusal");
    assert!(
        last.contains("rules.yaml") && last.contains("YAML"),
        "{last}"
    );

    rename_over(&path, &rules(0));
    assert_eq!(rx.recv_timeout(WAIT).expect("a report"), Ok(()));
    assert_eq!(version(&gray), "stable");
    let reloads = gray.reloads();
    assert_eq!((reloads.applied, reloads.refused), (1, 2));
    assert!(reloads.last_reload_successful());
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
    assert_eq!(gray.reloads().refused, 1, "a file gone is a refused reload");
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

/// The file's directory replaced under its name (`rm -r conf && mkdir conf`, as deploy
/// scripts do): reported gone, then watched again — the new file reloads, and so do
/// later edits of it.
#[test]
fn a_directory_replaced_under_the_file_is_watched_again() {
    let dir = temp_dir("replaced");
    let conf = dir.join("conf");
    fs::create_dir(&conf).unwrap();
    let path = conf.join("rules.yaml");
    fs::write(&path, rules(0)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);

    fs::remove_dir_all(&conf).unwrap();
    let err = rx.recv_timeout(WAIT).expect("a report").expect_err("gone");
    assert!(err.contains("cannot read"), "{err}");
    fs::create_dir(&conf).unwrap();
    fs::write(&path, rules(100)).unwrap();
    wait_ok(&rx);
    assert_eq!(version(&gray), "canary");
    fs::write(&path, rules(0)).unwrap();
    wait_ok(&rx);
    assert_eq!(version(&gray), "stable");
}

/// A rules file that is a symlink into another directory (a checkout of a config
/// repository, say): edits of the target, in place or renamed over, are picked up although
/// nothing changes in the link's own directory.
#[cfg(unix)]
#[test]
fn a_link_into_another_directory_is_followed() {
    use std::os::unix::fs::symlink;

    let dir = temp_dir("elsewhere");
    let (etc, repo) = (dir.join("etc"), dir.join("repo"));
    fs::create_dir(&etc).unwrap();
    fs::create_dir(&repo).unwrap();
    let target = repo.join("rules.yaml");
    fs::write(&target, rules(0)).unwrap();
    symlink(&target, etc.join("rules.yaml")).unwrap();

    let path = etc.join("rules.yaml");
    let gray = Gray::from_path(&path).unwrap();
    let (_w, rx) = watch(&gray, &path);
    fs::write(&target, rules(100)).unwrap();
    wait_ok(&rx);
    assert_eq!(version(&gray), "canary");
    rename_over(&target, &rules(0));
    wait_ok(&rx);
    assert_eq!(version(&gray), "stable");
}

/// Releases side by side and a `current` link swapped between them (Capistrano's layout),
/// the rules file named through `current` (`releases/current/rules.yaml`) and through a
/// link from another directory to that: each swap reloads, and so does an edit in the
/// release `current` points to now — and no longer one in the old.
#[cfg(unix)]
#[test]
fn a_directory_link_swapped_elsewhere_is_followed() {
    use std::os::unix::fs::symlink;

    let dir = temp_dir("releases");
    let (app, releases) = (dir.join("app"), dir.join("releases"));
    fs::create_dir(&app).unwrap();
    fs::create_dir_all(releases.join("v1")).unwrap();
    fs::write(releases.join("v1/rules.yaml"), rules(0)).unwrap();
    symlink("v1", releases.join("current")).unwrap();
    symlink("../releases/current/rules.yaml", app.join("rules.yaml")).unwrap();

    let watched: Vec<_> = [app.join("rules.yaml"), releases.join("current/rules.yaml")]
        .into_iter()
        .map(|path| {
            let gray = Gray::from_path(&path).unwrap();
            let (watcher, rx) = watch(&gray, &path);
            (gray, watcher, rx)
        })
        .collect();
    let expect = |what: &str, want: &str| {
        for (gray, watcher, rx) in &watched {
            let path = watcher.path().display();
            assert_eq!(
                rx.recv_timeout(WAIT).expect("a report"),
                Ok(()),
                "{what}: {path}"
            );
            assert_eq!(version(gray), want, "{what}: {path}");
        }
    };

    for (i, canary) in [(2, 100), (3, 0)] {
        let release = releases.join(format!("v{i}"));
        fs::create_dir(&release).unwrap();
        fs::write(release.join("rules.yaml"), rules(canary)).unwrap();
        symlink(format!("v{i}"), releases.join("current_tmp")).unwrap();
        fs::rename(releases.join("current_tmp"), releases.join("current")).unwrap();
        let (now, then) = if canary == 100 {
            ("canary", "stable")
        } else {
            ("stable", "canary")
        };
        expect(&format!("swap {i}"), now);

        // Noise: an edit of the release that was current, not the file any more.
        fs::write(releases.join(format!("v{}/rules.yaml", i - 1)), rules(50)).unwrap();
        // An edit of the current release, in place.
        fs::write(release.join("rules.yaml"), rules(100 - canary)).unwrap();
        expect(&format!("edit {i}"), then);
    }
}

/// Links that point at each other: resolving the path gives up after as many links as
/// the kernel follows, and the watcher is refused — it does not loop.
#[cfg(unix)]
#[test]
fn a_symlink_loop_is_refused_not_followed_forever() {
    use std::os::unix::fs::symlink;

    let dir = temp_dir("loop");
    symlink("b", dir.join("a")).unwrap();
    symlink("a", dir.join("b")).unwrap();
    let gray = Gray::new(gray_core::Config::from_yaml(&rules(0)).unwrap()).unwrap();
    let path = dir.join("a/rules.yaml");
    // On a thread of its own, so that a loop fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let made = Watcher::new(gray, path, |_| {}).map(drop);
        let _ = tx.send(made.map_err(|e| e.to_string()));
    });
    let err = rx
        .recv_timeout(WAIT)
        .expect("resolving the path loops")
        .unwrap_err();
    assert!(err.contains("rules.yaml"), "{err}");
}

/// Dropping a watcher stops it: once `drop` returns, no reload is under way or to come —
/// its thread has ended, and the callback with it.
#[test]
fn a_dropped_watcher_has_stopped() {
    let dir = temp_dir("dropped");
    let path = dir.join("rules.yaml");
    fs::write(&path, rules(0)).unwrap();
    let gray = Gray::from_path(&path).unwrap();
    let (w, rx) = watch(&gray, &path);
    fs::write(&path, rules(100)).unwrap();
    wait_ok(&rx);
    drop(w);
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
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
