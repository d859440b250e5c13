//! `watch = true`: reloads when a file the configuration reads changes on disk.
//!
//! inotify (through the `notify` crate) watches the directory of each file and of each
//! symbolic link on the way to it, so what replaces a file is seen however it is done: an
//! editor's rename, `cp`, `certs install`, or kubelet updating a Secret (a new timestamped
//! directory, then a `..data` link renamed to point at it). Events are debounced, then the
//! files are read and compared with what the last reload saw: only a real change reloads.
//! A certificate caught half-written (the new certificate beside the old key) is waited
//! for, up to [`PAIR_WAIT`], so it is neither served nor reported as broken meanwhile.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certstore::CertSpec;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Quiet time after the last event before the files are read: a copy or an update of
/// several files is one burst of events.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The longest a burst of events may delay the reading of the files.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// How long a certificate whose new files do not load together yet is waited for before
/// the reload goes ahead (and reports it, once, keeping its previous version).
pub const PAIR_WAIT: Duration = Duration::from_secs(5);
/// Links followed from a configured path to the file (kubelet's are two deep).
const MAX_LINKS: usize = 8;

/// What the watcher needs of the running configuration.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Every file a reload reads again.
    pub files: Vec<PathBuf>,
    /// The certificates, to tell a half-written pair.
    pub certificates: Vec<CertSpec>,
}

/// The file watcher of a running instance; does nothing when `watch` is off.
pub struct Watch {
    active: Option<Active>,
}

struct Active {
    watcher: RecommendedWatcher,
    events: Arc<Notify>,
    dirs: BTreeSet<PathBuf>,
    watched: Watched,
    /// A digest of each file's content as last read (`None`: unreadable).
    contents: HashMap<PathBuf, Option<u64>>,
}

impl Watch {
    /// Watches `watched`, or nothing when `None` (`watch` is off). A watcher that cannot
    /// start is logged and leaves reloads to SIGHUP and the admin API.
    pub fn new(watched: Option<Watched>) -> Self {
        let Some(watched) = watched else {
            return Self { active: None };
        };
        let events = Arc::new(Notify::new());
        let wake = events.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // An error (an overflowed queue) may hide a change: look at the files anyway.
            if event.is_ok_and(|e| e.kind.is_access()) {
                return;
            }
            wake.notify_one();
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => {
                let mut active = Active {
                    watcher,
                    events,
                    dirs: BTreeSet::new(),
                    contents: read_all(&watched.files),
                    watched,
                };
                active.rewatch();
                tracing::info!(
                    files = active.watched.files.len(),
                    directories = active.dirs.len(),
                    "watching the certificate and configuration files for changes"
                );
                Self {
                    active: Some(active),
                }
            }
            Err(e) => {
                tracing::error!(
                    "watch = true: cannot watch files ({e}); reload with SIGHUP or POST /reload"
                );
                Self { active: None }
            }
        }
    }

    /// After a reload: the configuration may now read other files, or turn `watch` off or on.
    pub fn update(&mut self, watched: Option<Watched>) {
        match (&mut self.active, watched) {
            (Some(active), Some(watched)) => {
                // What the reload read is what `changed` saw before it; reading the files
                // again now would take in a change made since, which would then never
                // reload. Only files the new configuration adds are read.
                let added: Vec<PathBuf> = watched
                    .files
                    .iter()
                    .filter(|f| !active.contents.contains_key(*f))
                    .cloned()
                    .collect();
                active.contents.extend(read_all(&added));
                active.contents.retain(|f, _| watched.files.contains(f));
                active.watched = watched;
                active.rewatch();
            }
            (None, None) => {}
            (_, watched) => *self = Self::new(watched),
        }
    }

    /// Resolves when watched files have changed and every certificate among them loads
    /// (or [`PAIR_WAIT`] has passed); returns the files that changed. Never resolves when
    /// `watch` is off.
    pub async fn changed(&mut self) -> Vec<PathBuf> {
        let Some(active) = &mut self.active else {
            return std::future::pending().await;
        };
        loop {
            active.events.notified().await;
            settle(&active.events).await;
            // Directories come and go (kubelet removes the previous timestamped one).
            active.rewatch();
            let (changed, contents) = active.compare().await;
            if changed.is_empty() {
                continue;
            }
            let (changed, contents) = active.wait_for_pairs(changed, contents).await;
            active.contents = contents;
            return changed;
        }
    }
}

impl Active {
    /// Watches the directories the files are in now, and only those.
    fn rewatch(&mut self) {
        let dirs: BTreeSet<PathBuf> = self.watched.files.iter().flat_map(|f| dirs_of(f)).collect();
        for gone in self.dirs.difference(&dirs) {
            // Fails when the directory is gone, which removed its watch already.
            let _ = self.watcher.unwatch(gone);
        }
        for new in dirs.difference(&self.dirs) {
            if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!("watch = true: cannot watch {}: {e}", new.display());
            }
        }
        self.dirs = dirs;
    }

    /// Reads the files (off the runtime's threads) and says which differ from last time.
    async fn compare(&self) -> (Vec<PathBuf>, HashMap<PathBuf, Option<u64>>) {
        let files = self.watched.files.clone();
        let contents = tokio::task::spawn_blocking(move || read_all(&files))
            .await
            .unwrap_or_default();
        let changed = contents
            .iter()
            .filter(|(path, digest)| self.contents.get(*path) != Some(digest))
            .map(|(path, _)| path.clone())
            .collect();
        (changed, contents)
    }

    /// Waits, up to [`PAIR_WAIT`], until every certificate with a changed file loads from
    /// its files; each further change is taken in. Says once what it waits for.
    async fn wait_for_pairs(
        &self,
        mut changed: Vec<PathBuf>,
        mut contents: HashMap<PathBuf, Option<u64>>,
    ) -> (Vec<PathBuf>, HashMap<PathBuf, Option<u64>>) {
        let deadline = Instant::now() + PAIR_WAIT;
        let mut said = false;
        loop {
            let specs: Vec<CertSpec> = self
                .watched
                .certificates
                .iter()
                .filter(|c| c.source.paths().iter().any(|p| changed.contains(p)))
                .cloned()
                .collect();
            let unsettled = tokio::task::spawn_blocking(move || first_unsettled(&specs))
                .await
                .ok()
                .flatten();
            let Some((name, error)) = unsettled else {
                break;
            };
            if !said {
                tracing::info!(
                    "certificate \"{name}\": its new files do not load together yet ({error}); waiting up to {}s for the rest of the update before reloading",
                    PAIR_WAIT.as_secs()
                );
                said = true;
            }
            let next = async {
                self.events.notified().await;
                settle(&self.events).await;
            };
            if tokio::time::timeout_at(deadline, next).await.is_err() {
                break;
            }
            let (more, now) = self.compare().await;
            for path in more {
                if !changed.contains(&path) {
                    changed.push(path);
                }
            }
            contents = now;
        }
        (changed, contents)
    }
}

/// Waits until no event came for [`DEBOUNCE`], or [`DEBOUNCE_MAX`] passed.
async fn settle(events: &Notify) {
    let limit = Instant::now() + DEBOUNCE_MAX;
    while Instant::now() < limit {
        if tokio::time::timeout(DEBOUNCE, events.notified())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The first certificate whose files do not load together, with the reason.
fn first_unsettled(specs: &[CertSpec]) -> Option<(String, certstore::LoadError)> {
    specs.iter().find_map(|spec| {
        certstore::load_source(&spec.source)
            .and_then(|bundle| certstore::matching_key(&bundle))
            .err()
            .map(|e| (spec.name.clone(), e))
    })
}

/// A digest of each file's content; `None` for a file that cannot be read.
fn read_all(files: &[PathBuf]) -> HashMap<PathBuf, Option<u64>> {
    files
        .iter()
        .map(|f| {
            let digest = std::fs::read(f).ok().map(|bytes| {
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            });
            (f.clone(), digest)
        })
        .collect()
}

/// The directories whose changes can change what `file` reads: its own, and that of each
/// link on the way to the real file (kubelet: `tls.crt` → `..data/tls.crt`, `..data` →
/// `..2026_12_07_…`), each as the real directory it is.
fn dirs_of(file: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut path = file.to_owned();
    for _ in 0..MAX_LINKS {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        dirs.extend(std::fs::canonicalize(&parent).ok());
        match std::fs::read_link(&path) {
            Ok(target) => path = parent.join(target),
            Err(_) => break,
        }
    }
    if let Some(real_dir) = std::fs::canonicalize(file)
        .ok()
        .and_then(|real| real.parent().map(Path::to_owned))
    {
        dirs.push(real_dir);
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_secret_volume_is_watched_in_its_directory_and_the_current_data() {
        let dir = tempfile::tempdir().expect("dir");
        let root = std::fs::canonicalize(dir.path()).expect("real");
        let data = root.join("..2026_12_07_10_00_00.1");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("tls.crt"), "x").expect("write");
        std::os::unix::fs::symlink("..2026_12_07_10_00_00.1", root.join("..data")).expect("ln");
        std::os::unix::fs::symlink("..data/tls.crt", root.join("tls.crt")).expect("ln");
        let dirs: BTreeSet<PathBuf> = dirs_of(&root.join("tls.crt")).into_iter().collect();
        assert_eq!(dirs, BTreeSet::from([root.clone(), data]));
    }

    #[test]
    fn a_plain_file_is_watched_in_its_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let root = std::fs::canonicalize(dir.path()).expect("real");
        std::fs::write(root.join("portal.crt"), "x").expect("write");
        let dirs: BTreeSet<PathBuf> = dirs_of(&root.join("portal.crt")).into_iter().collect();
        assert_eq!(dirs, BTreeSet::from([root]));
    }
}
