//! Backups of a farm on the embedded database (`printfarm admin backup` / `restore`): the
//! SQLite database copied online with `VACUUM INTO` (one consistent snapshot while the server
//! runs) and the local file store copied beside it. A restore refuses while a server runs on
//! the database (each holds a shared lock on `<database>.lock`), replaces the database and the
//! files, and migrates an older backup forward. Postgres farms use `pg_dump` / `pg_restore`
//! (README, "Backups").

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::{self, Backend, DbConn};
use crate::error::{Conflict, Error, Result};

/// The database file inside a backup folder.
pub const DATABASE: &str = "printfarm.db";
/// The file store inside a backup folder.
pub const FILES: &str = "files";
const MANIFEST: &str = "manifest.json";

/// What a backup folder says about itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub created_at: String,
    pub printfarm: String,
    /// The last migration the database had.
    pub schema: String,
    pub files: u64,
    pub file_bytes: u64,
}

/// The lock file beside a SQLite database: servers hold it shared, a restore exclusively.
pub fn lock_path(config: &Config) -> Option<PathBuf> {
    let db = db::sqlite_file(&config.database.url)?;
    Some(PathBuf::from(format!("{}.lock", db.display())))
}

/// Held by a running server for its lifetime: a restore cannot replace the database under it.
pub fn hold_shared(config: &Config) -> std::io::Result<Option<File>> {
    let Some(path) = lock_path(config) else {
        return Ok(None);
    };
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.lock_shared()?;
    Ok(Some(f))
}

fn sqlite_only(config: &Config) -> Result<PathBuf> {
    match db::backend_for_url(&config.database.url) {
        Backend::Sqlite => db::sqlite_file(&config.database.url)
            .ok_or_else(|| Error::invalid("no SQLite database file configured")),
        Backend::Postgres => Err(Error::invalid(
            "this farm runs on Postgres: back it up with pg_dump and restore with pg_restore (README, \"Backups\")",
        )),
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// Copies a folder tree; answers (files, bytes). Files that vanish meanwhile are skipped (an
/// object deleted while the backup runs).
fn copy_tree(from: &Path, to: &Path) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    fs::create_dir_all(to).map_err(|e| io("cannot create", to, e))?;
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io("cannot read", from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("cannot read", from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| io("cannot read", &src, e))?;
        if kind.is_dir() {
            let (f, b) = copy_tree(&src, &dst)?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            match fs::copy(&src, &dst) {
                Ok(n) => {
                    files += 1;
                    bytes += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot copy", &src, e)),
            }
        }
    }
    Ok((files, bytes))
}

fn local_files(config: &Config) -> Option<PathBuf> {
    (config.storage.backend == "local").then(|| PathBuf::from(&config.storage.files_dir))
}

/// Writes a backup into `to` (a new or empty folder) while the server may run.
pub fn backup(conn: &mut DbConn, config: &Config, to: &Path) -> Result<Manifest> {
    sqlite_only(config)?;
    if to.exists()
        && fs::read_dir(to)
            .map_err(|e| io("cannot read", to, e))?
            .next()
            .is_some()
    {
        return Err(Error::conflict(
            Conflict::InUse,
            format!("{} is not empty: back up into a new folder", to.display()),
        ));
    }
    fs::create_dir_all(to).map_err(|e| io("cannot create", to, e))?;
    // The database first: every file it names was stored before its row, so the copy made
    // after it holds them all (one deleted in between is the only gap).
    db::vacuum_into(conn, &to.join(DATABASE))?;
    let schema = db::latest_migration(conn)?;
    let (files, file_bytes) = match local_files(config) {
        Some(dir) => copy_tree(&dir, &to.join(FILES))?,
        None => (0, 0),
    };
    let manifest = Manifest {
        created_at: db::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        printfarm: env!("CARGO_PKG_VERSION").to_string(),
        schema,
        files,
        file_bytes,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(Error::internal)?;
    fs::write(to.join(MANIFEST), text).map_err(|e| io("cannot write", to, e))?;
    Ok(manifest)
}

/// Restores a backup folder over the configured SQLite database and file store (no server may
/// run on them); an older backup is migrated forward. The files there before are kept aside in
/// `<files>.before-restore`.
pub fn restore(config: &Config, from: &Path) -> Result<Manifest> {
    let target = sqlite_only(config)?;
    let source = from.join(DATABASE);
    if !source.is_file() {
        return Err(Error::not_found(format!(
            "{} holds no {DATABASE}: not a printfarm backup",
            from.display()
        )));
    }
    let manifest: Manifest = fs::read_to_string(from.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| Error::invalid(format!("{} has no readable {MANIFEST}", from.display())))?;
    // The backup must be sound and not newer than this printfarm.
    {
        let mut check = db::ConnectionManager::new(&source.display().to_string())
            .establish()
            .map_err(|e| Error::invalid(format!("the backup's database cannot be opened: {e}")))?;
        db::check_integrity(&mut check)?;
        let known = db::known_migrations(Backend::Sqlite);
        let theirs = db::latest_migration(&mut check)?;
        if !known.contains(&theirs) {
            return Err(Error::invalid(format!(
                "the backup was made by a newer printfarm (schema {theirs}); upgrade printfarm first"
            )));
        }
    }
    let lock_file = lock_path(config).ok_or_else(|| Error::internal("no lock path"))?;
    if let Some(dir) = lock_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .map_err(|e| io("cannot open", &lock_file, e))?;
    if lock.try_lock().is_err() {
        return Err(Error::conflict(
            Conflict::InUse,
            "a printfarm server is running on this database: stop it, then restore",
        ));
    }
    // A stale write-ahead log would be replayed onto the restored file: remove it first.
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", target.display()));
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot remove", &p, e)),
        }
    }
    let partial = PathBuf::from(format!("{}.restoring", target.display()));
    fs::copy(&source, &partial).map_err(|e| io("cannot copy", &source, e))?;
    fs::rename(&partial, &target).map_err(|e| io("cannot replace", &target, e))?;
    if let Some(dir) = local_files(config) {
        if dir.exists() {
            let aside = PathBuf::from(format!("{}.before-restore", dir.display()));
            if aside.exists() {
                fs::remove_dir_all(&aside).map_err(|e| io("cannot remove", &aside, e))?;
            }
            fs::rename(&dir, &aside).map_err(|e| io("cannot move", &dir, e))?;
        }
        copy_tree(&from.join(FILES), &dir)?;
    }
    // An older backup comes forward to this version's schema.
    let mut conn = db::ConnectionManager::new(&config.database.url)
        .establish()
        .map_err(Error::internal)?;
    db::run_migrations(&mut conn).map_err(Error::internal)?;
    drop(lock);
    Ok(manifest)
}
