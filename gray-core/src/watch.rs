//! [`Watcher`]: reload a [`Gray`] when its rules file changes (feature `watch`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use notify::{RecursiveMode, Watcher as _};

use crate::config::{Config, Format};
use crate::error::Error;
use crate::gray::Gray;

/// What a watcher reports after each change it acts on.
pub type Reloaded = Result<(), Error>;

/// Reloads a [`Gray`] from its rules file whenever the file changes, until dropped.
///
/// It watches the file's *directory*, and on every event there re-resolves the path
/// (following symlinks) and re-reads the file; it reloads when the resolved target or the
/// content differs from what it last loaded. That follows every way a file is updated:
///
/// - a Kubernetes ConfigMap mount, where the kubelet writes a new timestamped directory and
///   atomically swaps the `..data` symlink — the file's own path never changes;
/// - an in-place write, and an editor's write-to-temp-then-rename-over.
///
/// A file that cannot be read, parsed or validated is reported — to the callback and as a
/// `tracing` warning — and the rules in force stay. Reading a half-written file is
/// harmless for the same reason: it is refused, and the write's next event reloads it.
///
/// ```
/// use gray_core::{Gray, Watcher};
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
    _watcher: notify::RecommendedWatcher,
}

/// What the watcher last loaded: the resolved file and a hash of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    target: u64,
    content: u64,
}

struct State {
    gray: Gray,
    path: PathBuf,
    format: Format,
    last: Mutex<Option<Seen>>,
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
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let state = Arc::new(State {
            gray,
            format,
            last: Mutex::new(read(&path).ok().map(|(seen, _)| seen)),
            path: path.clone(),
            on_reload: Box::new(on_reload),
        });
        let watch_err = |e: notify::Error| Error::Watch {
            path: path.clone(),
            message: e.to_string(),
        };
        let handler = Arc::clone(&state);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.kind.is_access() && !is_close_write(&event.kind) => {}
                Ok(_) => handler.changed(),
                Err(e) => tracing::warn!(path = %handler.path.display(), "watch error: {e}"),
            })
            .map_err(watch_err)?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(watch_err)?;
        Ok(Self {
            path,
            _watcher: watcher,
        })
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn is_close_write(kind: &notify::EventKind) -> bool {
    matches!(
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
    /// Something happened in the directory: reload if the file is not what was loaded.
    fn changed(&self) {
        // One event at a time; a poisoned lock only means a callback panicked.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match read(&self.path) {
            Ok((seen, _)) if *last == Some(seen) => return,
            // Truncated for an in-place write: the write's own event follows.
            Ok((_, text)) if text.is_empty() => return,
            Ok((seen, text)) => {
                *last = Some(seen);
                Config::from_str_as(&text, self.format)
                    .and_then(|config| self.gray.reload(config))
                    .map_err(|e| e.in_file(&self.path))
            }
            Err(e) => {
                // Gone (or unreadable): report once, and reload when it comes back.
                if last.take().is_none() {
                    return;
                }
                Err(e)
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

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
