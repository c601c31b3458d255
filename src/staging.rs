//! The local scratch folder. Each server process stages under its own subfolder
//! `<staging_dir>/run-<pid>-<random>/`, holding an exclusive lock on `.lock` inside it for its
//! whole life. The kernel drops that lock when the process dies (kill -9 included), so a sweep
//! can tell a dead process's leftovers (lock free: the whole folder goes) from a live one's
//! (lock held: left alone) without guessing from ages. Several instances may share one staging
//! folder.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const RUN_PREFIX: &str = "run-";
const LOCK_FILE: &str = ".lock";
/// A run folder whose lock file does not exist yet is being created; after this long without
/// one it is debris.
const CREATION_GRACE: Duration = Duration::from_secs(60);

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Folders of processes that are gone.
    pub dead_runs: usize,
    /// Files (or folders) older than the age limit: this process's forgotten scratch files
    /// and loose entries from older versions that staged in the root.
    pub stale_entries: usize,
    pub bytes: u64,
}

/// This process's staging folder, locked while the value lives.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    dir: PathBuf,
    // Held for the process's life: the lock is the liveness signal other sweeps read.
    _lock: File,
}

impl Staging {
    /// Creates and locks a fresh run folder under `root`.
    pub fn open(root: &Path) -> std::io::Result<Staging> {
        std::fs::create_dir_all(root)?;
        let dir = root.join(format!(
            "{RUN_PREFIX}{}-{:012x}",
            std::process::id(),
            rand::random::<u64>() >> 16
        ));
        std::fs::create_dir(&dir)?;
        let lock = File::create(dir.join(LOCK_FILE))?;
        lock.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => std::io::Error::other("fresh staging lock is taken"),
        })?;
        Ok(Staging {
            root: root.to_path_buf(),
            dir,
            _lock: lock,
        })
    }

    /// Where this process writes its scratch files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the folders of dead processes, and entries older than `max_age` in this
    /// process's folder and loose in the root. Live processes' folders are never touched.
    pub fn sweep(&self, max_age: Duration) -> Swept {
        let mut swept = Swept::default();
        let now = SystemTime::now();
        let old = |p: &Path| {
            std::fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= max_age)
        };
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return swept;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.dir {
                continue;
            }
            let is_run = entry.file_name().to_string_lossy().starts_with(RUN_PREFIX)
                && entry.file_type().is_ok_and(|t| t.is_dir());
            if is_run {
                if owner_is_gone(&path) {
                    swept.bytes += size_of(&path);
                    if remove(&path) {
                        swept.dead_runs += 1;
                    }
                }
            } else if old(&path) {
                swept.bytes += size_of(&path);
                if remove(&path) {
                    swept.stale_entries += 1;
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name() != LOCK_FILE && old(&path) {
                    swept.bytes += size_of(&path);
                    if remove(&path) {
                        swept.stale_entries += 1;
                    }
                }
            }
        }
        swept
    }
}

/// A run folder's owner is gone when its lock can be taken (or it never got one in time).
fn owner_is_gone(run: &Path) -> bool {
    match File::open(run.join(LOCK_FILE)) {
        Ok(f) => match f.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => false,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::metadata(run)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > CREATION_GRACE),
        Err(_) => false,
    }
}

fn remove(path: &Path) -> bool {
    let res = if path.is_dir() && !path.is_symlink() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match res {
        Ok(()) => true,
        // Gone already (its owner cleaned up meanwhile): nothing to report.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a staging leftover");
            false
        }
    }
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_run_is_kept_and_a_dead_one_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let mine = Staging::open(root.path()).unwrap();
        let other = Staging::open(root.path()).unwrap();
        std::fs::write(other.dir().join("upload-a"), b"12345").unwrap();
        std::fs::write(mine.dir().join("upload-b"), b"xy").unwrap();
        // A live process's folder stays, whatever its age.
        assert_eq!(mine.sweep(Duration::ZERO).dead_runs, 0);
        assert!(other.dir().join("upload-a").exists());
        // This process's own scratch files older than the limit go; its lock file stays.
        assert!(!mine.dir().join("upload-b").exists());
        assert!(mine.dir().join(LOCK_FILE).exists());
        let other_dir = other.dir().to_path_buf();
        drop(other); // the process "dies": its lock is released
        let swept = mine.sweep(Duration::from_secs(3600));
        assert_eq!(swept.dead_runs, 1);
        assert_eq!(swept.bytes, 5);
        assert!(!other_dir.exists());
        assert!(mine.dir().exists());
    }

    #[test]
    fn loose_old_entries_go_and_young_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let mine = Staging::open(root.path()).unwrap();
        std::fs::write(root.path().join("upload-legacy"), b"abc").unwrap();
        assert_eq!(mine.sweep(Duration::from_secs(3600)).stale_entries, 0);
        assert!(root.path().join("upload-legacy").exists());
        assert_eq!(mine.sweep(Duration::ZERO).stale_entries, 1);
        assert!(!root.path().join("upload-legacy").exists());
    }
}
