//! [`Watcher`]: reload a [`Gray`] when its rules file changes (feature `watch`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::thread;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::gray::Gray;
use crate::rules::{Config, Error, Format};

/// What a watcher reports after each change it acts on.
pub type Reloaded = Result<(), Error>;

/// Reloads a [`Gray`] from its rules file whenever the file changes, until dropped.
///
/// It watches the file's *directory* — and each directory holding a symlink on the way
/// to the file, the directory of the file the path resolves to, and that one's parent —
/// and on every event there re-resolves the path (following symlinks) and re-reads the
/// file; it reloads when the resolved target or the content differs from what it last
/// loaded, and moves its watches when the path resolves elsewhere or a directory is
/// replaced. That follows every way a file is updated:
///
/// - a Kubernetes ConfigMap mount, where the kubelet writes a new timestamped directory and
///   atomically swaps the `..data` symlink — the file's own path never changes;
/// - an in-place write, and an editor's write-to-temp-then-rename-over;
/// - the same through a symlink into another directory (a checkout of a config
///   repository), or through a `current` link swapped between releases;
/// - the file's directory deleted and made again (`rm -r conf && mkdir conf`).
///
/// The reloads run on a thread of the watcher's own (`gray-watcher`), which also calls
/// `on_reload`; a burst of events is one reload.
///
/// A file that cannot be read, parsed or validated is reported — to the callback and as a
/// `tracing` warning — and the rules in force stay. Reading a half-written file is
/// harmless for the same reason: it is refused, and the write's next event reloads it.
///
/// ```
/// use gray_core::Gray;
/// use gray_core::reload::Watcher;
/// # let dir = std::env::temp_dir().join(format!("gray-watch-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("rules.yaml");
/// # std::fs::write(&path, "versions: [stable, canary]\n")?;
///
/// let gray = Gray::from_path(&path)?;
/// let watcher = Watcher::new(gray.clone(), &path, |result| {
///     if let Err(e) = result {
///         eprintln!("rules not reloaded, the old ones stay: {e}");
///     }
/// })?;
/// // ... serve with `gray`; every change to the file is picked up ...
/// drop(watcher); // stops watching
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Watcher {
    path: PathBuf,
    /// Shared with the worker, which moves the watches; `None` once dropped.
    notify: Option<Arc<Mutex<RecommendedWatcher>>>,
    worker: Option<thread::JoinHandle<()>>,
}

/// What the watcher last loaded: the resolved file and a hash of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    target: u64,
    content: u64,
}

/// The worker's: what it reloads, from where, and what it last loaded.
struct State {
    gray: Gray,
    path: PathBuf,
    format: Format,
    last: Option<Seen>,
    on_reload: Box<dyn Fn(&Reloaded) + Send + Sync>,
}

impl Watcher {
    /// Watches `path` and reloads `gray` from it on every change, calling `on_reload` with
    /// the outcome of each reload attempt (`Ok` once the new rules are in force).
    ///
    /// The file as it is now counts as loaded: only later changes reload. Fails if the
    /// file's format is unknown or its directory cannot be watched.
    pub fn new(
        gray: Gray,
        path: impl AsRef<Path>,
        on_reload: impl Fn(&Reloaded) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let format =
            Format::from_path(&path).ok_or_else(|| Error::UnknownFormat { path: path.clone() })?;
        let watch_err = |e: notify::Error| Error::Watch {
            path: path.clone(),
            message: e.to_string(),
        };
        let (events, rx) = mpsc::channel();
        let watched_path = path.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if !wakes(&event.kind) => {}
                Ok(_) => {
                    // The receiver is gone only once the watcher is being dropped.
                    let _ = events.send(());
                }
                Err(e) => tracing::warn!(path = %watched_path.display(), "watch error: {e}"),
            })
            .map_err(watch_err)?;
        // The file's own directory must be watchable; the others are watched as they can be.
        let (wanted, home) = dirs_to_watch(&path);
        watcher
            .watch(&home, RecursiveMode::NonRecursive)
            .map_err(watch_err)?;
        let mut watched = Watched::from([(home.clone(), identity(&home))]);
        rewatch(&mut watcher, &mut watched, wanted, &path);
        // Read once watched: a change from now on is an event.
        let state = State {
            gray,
            format,
            last: read(&path).ok().map(|(seen, _)| seen),
            path: path.clone(),
            on_reload: Box::new(on_reload),
        };

        let notify = Arc::new(Mutex::new(watcher));
        let weak = Arc::downgrade(&notify);
        let worker = thread::Builder::new()
            .name("gray-watcher".into())
            .spawn(move || state.run(&rx, &weak, watched))
            .map_err(|e| watch_err(notify::Error::io(e)))?;
        Ok(Self {
            path,
            notify: Some(notify),
            worker: Some(worker),
        })
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether an event of this kind may mean the file changed: any but an access, except the
/// close of a file written to. (Not the worker's own reads: each would wake it again.)
fn wakes(kind: &notify::EventKind) -> bool {
    !kind.is_access()
        || matches!(
            kind,
            notify::EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            ))
        )
}

/// Resolves `path` and reads it: what it is now, and its text.
fn read(path: &Path) -> Result<(Seen, String), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = fs::canonicalize(path).map_err(io)?;
    let bytes = fs::read(&target).map_err(io)?;
    let seen = Seen {
        target: xxhash_rust::xxh3::xxh3_64(target.as_os_str().as_encoded_bytes()),
        content: xxhash_rust::xxh3::xxh3_64(&bytes),
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    Ok((seen, text))
}

impl State {
    /// The worker's loop: on each burst of events, move the watches to where the path
    /// resolves now and reload if the file changed. Ends when the notify watcher is dropped
    /// (with it the sender of `events`).
    fn run(
        mut self,
        events: &mpsc::Receiver<()>,
        notify: &Weak<Mutex<RecommendedWatcher>>,
        mut watched: Watched,
    ) {
        while events.recv().is_ok() {
            while events.try_recv().is_ok() {}
            // Watch where the path leads now, then read it: a change after the read is an
            // event of its own.
            let Some(notify) = notify.upgrade() else {
                return;
            };
            {
                // Poisoned only if a watch call panicked; the watcher itself is whole.
                let mut notify = notify.lock().unwrap_or_else(PoisonError::into_inner);
                let (wanted, _) = dirs_to_watch(&self.path);
                rewatch(&mut notify, &mut watched, wanted, &self.path);
            }
            drop(notify);
            self.changed();
        }
    }

    /// Something happened in a watched directory: reload if the file is not what was
    /// loaded.
    fn changed(&mut self) {
        let last = &mut self.last;
        let result = match read(&self.path) {
            Ok((seen, _)) if *last == Some(seen) => return,
            // Truncated for an in-place write: the write's own event follows.
            Ok((_, text)) if text.is_empty() => return,
            Ok((seen, text)) => {
                *last = Some(seen);
                let loaded = Config::from_str_as(&text, self.format);
                self.gray.reload_loaded(loaded, Some(&self.path))
            }
            Err(e) => {
                // Gone (or unreadable): report once (a refused reload: the rules in
                // force stay), and reload when it comes back.
                if last.take().is_none() {
                    return;
                }
                self.gray.reload_loaded(Err(e), Some(&self.path))
            }
        };
        match &result {
            Ok(()) => tracing::info!(path = %self.path.display(), "gray rules reloaded"),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "gray rules not reloaded, the rules in force stay: {e}")
            }
        }
        (self.on_reload)(&result);
    }
}

/// The directories whose changes can change the file `path` names — each directory
/// holding a symlink met on the way to the file, the directory of the file it resolves to
/// and that directory's parent — and that file's directory. All resolved, so one
/// directory is never watched under two names; components that do not exist (yet) are
/// taken as they are.
fn dirs_to_watch(path: &Path) -> (BTreeSet<PathBuf>, PathBuf) {
    /// As the kernel's `ELOOP`: a longer chain of links is followed no further.
    const MAX_LINKS: usize = 40;
    fn push(rest: &mut Vec<PathBuf>, path: &Path) {
        rest.extend(
            path.components()
                .rev()
                .map(|c| PathBuf::from(c.as_os_str())),
        );
    }
    let mut dirs = BTreeSet::new();
    // One component each, the next last.
    let mut rest = Vec::new();
    push(
        &mut rest,
        &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    );
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = rest.pop() {
        match part.components().next() {
            Some(Component::Normal(name)) => {
                let next = resolved.join(name);
                let link = match fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() && links < MAX_LINKS => {
                        fs::read_link(&next).ok()
                    }
                    _ => None,
                };
                match link {
                    Some(target) => {
                        links += 1;
                        dirs.insert(resolved.clone());
                        if target.is_absolute() {
                            resolved.clear();
                        }
                        push(&mut rest, &target);
                    }
                    None => resolved = next,
                }
            }
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(root @ (Component::RootDir | Component::Prefix(_))) => resolved.push(root),
            Some(Component::CurDir) | None => {}
        }
    }
    let home = resolved
        .parent()
        .map_or_else(|| resolved.clone(), Path::to_path_buf);
    // Its parent sees the directory itself replaced (`rm -r conf && mkdir conf`).
    if let Some(parent) = home.parent() {
        dirs.insert(parent.to_path_buf());
    }
    dirs.insert(home.clone());
    (dirs, home)
}

/// Watched directories, each with what it was when watched ([`identity`]).
type Watched = BTreeMap<PathBuf, Option<Identity>>;

/// A directory's device, inode and time of birth (0 where the file system does not tell
/// it): a directory removed and made again under the same name may get the same inode, and
/// its watch ended with the old one.
type Identity = (u64, u64, u128);

/// Which directory is at `dir` now — so that one replaced under the same name (whose
/// watch ended with the old one) is told apart — or `None` if none is.
fn identity(dir: &Path) -> Option<Identity> {
    let meta = fs::metadata(dir).ok()?;
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino(), born))
    }
    #[cfg(not(unix))]
    {
        Some((0, 0, born))
    }
}

/// Moves the watches from the directories in `watched` to those in `wanted`, watching
/// again a directory replaced under its name, and one that appears. A directory that
/// cannot be watched is warned about once, and tried again only when it changes.
fn rewatch(
    notify: &mut RecommendedWatcher,
    watched: &mut Watched,
    wanted: BTreeSet<PathBuf>,
    path: &Path,
) {
    for gone in watched.keys().filter(|dir| !wanted.contains(*dir)) {
        // Fails only if the directory went, and its watch with it.
        let _ = notify.unwatch(gone);
    }
    let mut now = Watched::new();
    for dir in wanted {
        let id = identity(&dir);
        match watched.get(&dir) {
            Some(was) if *was == id => {
                now.insert(dir, id);
                continue;
            }
            // Replaced or gone: its watch went with it.
            Some(_) => {
                let _ = notify.unwatch(&dir);
            }
            None => {}
        }
        // Not there (yet): watched when it appears, as its parent will tell.
        if id.is_some()
            && let Err(e) = notify.watch(&dir, RecursiveMode::NonRecursive)
        {
            tracing::warn!(
                path = %path.display(),
                dir = %dir.display(),
                "cannot watch a directory the rules file is reached through: {e}"
            );
        }
        now.insert(dir, id);
    }
    *watched = now;
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Dropping the notify watcher drops the sender of the worker's events, which ends
        // its loop after any reload under way; then no reload happens after this returns.
        drop(self.notify.take());
        if let Some(worker) = self.worker.take() {
            // Unless dropped by its own callback, on the worker itself.
            if worker.thread().id() != thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind};

    use super::*;

    #[test]
    fn reads_do_not_wake_the_worker_and_changes_do() {
        let read = [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Any),
        ];
        assert!(read.iter().all(|kind| !wakes(kind)), "{read:?}");
        let changes = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ];
        assert!(changes.iter().all(wakes), "{changes:?}");
    }

    /// A chain of links is followed as the kernel follows one: 40 links, and no more.
    #[cfg(unix)]
    #[test]
    fn a_chain_of_links_is_followed_forty_deep() {
        let dir = std::env::temp_dir().join(format!("gray-watch-links-{}", std::process::id()));
        for (links, last_followed) in [(40, 40), (41, 40)] {
            let _ = fs::remove_dir_all(&dir);
            // d0/link → d1/link → … → d{links}/rules.yaml, each link in a directory of its own.
            for i in 0..=links {
                fs::create_dir_all(dir.join(format!("d{i}"))).expect("a temp dir");
            }
            fs::write(dir.join(format!("d{links}/rules.yaml")), "").expect("the file");
            for i in 0..links {
                let target = match i + 1 == links {
                    true => format!("../d{links}/rules.yaml"),
                    false => format!("../d{}/link", i + 1),
                };
                std::os::unix::fs::symlink(target, dir.join(format!("d{i}/link"))).expect("a link");
            }
            let resolved = fs::canonicalize(&dir).expect("the temp dir");
            let (dirs, home) = dirs_to_watch(&dir.join("d0/link"));
            assert_eq!(
                home,
                resolved.join(format!("d{last_followed}")),
                "{links} links"
            );
            // Every directory a followed link is in is watched.
            for i in 0..last_followed {
                assert!(
                    dirs.contains(&resolved.join(format!("d{i}"))),
                    "d{i} of {links}"
                );
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// The worker's step on an event, on a real file: an emptied file (an in-place write
    /// caught between its truncation and its write) is passed over, not reported as a
    /// refused reload; the same file again is not reloaded; new rules are.
    #[test]
    fn an_emptied_file_waits_for_its_write() {
        let dir = std::env::temp_dir().join(format!("gray-watch-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("rules.yaml");
        let rules = "versions: [stable, canary]\n";
        fs::write(&path, rules).expect("write the rules");
        let gray = Gray::new(Config::from_yaml(rules).expect("rules")).expect("valid");
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&outcomes);
        let mut state = State {
            gray: gray.clone(),
            path: path.clone(),
            format: Format::Yaml,
            last: read(&path).ok().map(|(seen, _)| seen),
            on_reload: Box::new(move |r: &Reloaded| seen.lock().unwrap().push(r.is_ok())),
        };
        let outcomes = || outcomes.lock().unwrap().clone();

        state.changed();
        assert_eq!(outcomes(), [false; 0], "nothing changed");
        fs::write(&path, "").expect("truncate");
        state.changed();
        assert_eq!(outcomes(), [false; 0], "an empty file is passed over");
        fs::write(&path, "versions: [stable, canary, v2]\n").expect("new rules");
        state.changed();
        assert_eq!(outcomes(), [true]);
        let versions: Vec<String> = gray.versions().iter().map(|v| v.to_string()).collect();
        assert_eq!(versions, ["stable", "canary", "v2"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
