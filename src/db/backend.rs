//! Where Postgres and SQLite differ in what they do, not only in how they spell it: row locks,
//! `SKIP LOCKED` claims, advisory locks, NOTIFY and sequences. Everything else is written once
//! in DSL both backends compile (upserts through `per_backend!`).

use crate::db::models::UserId;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{CopyState, FileId, Printer, PrinterId, PrinterShare, SliceStatus, User};
use super::schema::*;
use super::DbConn;

/// The Postgres channel commands are announced on (`notify` LISTENs on it).
pub const NOTIFY_CHANNEL: &str = "printfarm_commands";

type QResult<T> = Result<T, diesel::result::Error>;

// Row locks are `FOR NO KEY UPDATE`, never `FOR UPDATE`: printfarm never changes a key, and
// `FOR UPDATE` also waits for the `FOR KEY SHARE` locks that foreign-key checks take on
// referenced rows (a printer's owner while the printer row is updated twice in one
// transaction, a printer while a job is inserted for it). Those waits made deadlocks between
// an agent's poll (owner's key-share, then the job counter) and a start (counter, then the
// owner's row) under load.

/// Re-reads a printer and, on Postgres, locks its row until the transaction ends, so two
/// starts racing for one printer are serialised (SQLite's BEGIN IMMEDIATE already is).
pub fn lock_printer(conn: &mut DbConn, id: PrinterId) -> QResult<Option<Printer>> {
    match conn {
        DbConn::Pg(pg) => printers::table
            .find(id)
            .for_no_key_update()
            .select(Printer::as_select())
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => Printer::find(conn, id),
    }
}

/// Like `lock_printer`, but on Postgres a printer another transaction holds is skipped
/// (None) instead of waited for: a dispatch pass moves on to the next free printer.
pub fn try_lock_printer(conn: &mut DbConn, id: PrinterId) -> QResult<Option<Printer>> {
    match conn {
        DbConn::Pg(pg) => printers::table
            .find(id)
            .for_no_key_update()
            .skip_locked()
            .select(Printer::as_select())
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => Printer::find(conn, id),
    }
}

/// The first waiting copy of a farm job, locked on Postgres; copies another instance is
/// assigning are skipped, so two instances never take the same copy.
pub fn claim_waiting_copy(conn: &mut DbConn, farm_job: i64) -> QResult<Option<i64>> {
    let waiting = farm_copies::table
        .filter(farm_copies::farm_job_id.eq(farm_job))
        .filter(farm_copies::state.eq(CopyState::Waiting))
        .order(farm_copies::copy_number.asc())
        .select(farm_copies::id);
    match conn {
        DbConn::Pg(pg) => waiting
            .for_no_key_update()
            .skip_locked()
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => waiting.first(conn).optional(),
    }
}

/// Re-reads a user, locking the row on Postgres (balance and quota checks).
pub fn lock_user(conn: &mut DbConn, id: UserId) -> QResult<Option<User>> {
    match conn {
        DbConn::Pg(pg) => users::table
            .find(id)
            .for_no_key_update()
            .select(User::as_select())
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => User::find(conn, id),
    }
}

/// Re-reads a share, locking the row on Postgres (its print quota).
pub fn lock_share(conn: &mut DbConn, id: i64) -> QResult<Option<PrinterShare>> {
    match conn {
        DbConn::Pg(pg) => printer_shares::table
            .find(id)
            .for_no_key_update()
            .select(PrinterShare::as_select())
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => PrinterShare::find(conn, id),
    }
}

/// The id of the oldest claimable slice (pending, or running with its lease run out at
/// `now`). On Postgres the row is locked and rows other workers hold are skipped; on SQLite
/// the surrounding write transaction holds the database's write lock.
pub fn claimable_slice(conn: &mut DbConn, now: NaiveDateTime) -> QResult<Option<i64>> {
    let claimable = slice_jobs::status
        .eq(SliceStatus::Pending)
        .or(slice_jobs::status
            .eq(SliceStatus::Running)
            .and(slice_jobs::lease_until.lt(Some(now))));
    match conn {
        DbConn::Pg(pg) => slice_jobs::table
            .filter(claimable)
            .order(slice_jobs::id.asc())
            .select(slice_jobs::id)
            .for_no_key_update()
            .skip_locked()
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => slice_jobs::table
            .filter(claimable)
            .order(slice_jobs::id.asc())
            .select(slice_jobs::id)
            .first(conn)
            .optional(),
    }
}

/// On Postgres, tells the other instances (their LISTEN thread) at commit that `printer` has
/// a command waiting; SQLite has one instance, woken by `wake_after_commit` alone.
pub fn notify_printer(conn: &mut DbConn, printer: PrinterId) -> QResult<()> {
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(NOTIFY_CHANNEL)
            .bind::<diesel::sql_types::Text, _>(printer.to_string())
            .execute(pg)?;
    }
    Ok(())
}

/// Lets the current transaction commit without waiting for its log to reach the disk
/// (Postgres `synchronous_commit = off`, for this transaction only): for writes that a later
/// one overwrites anyway. A crash may lose the last such commits, never half of one, and a
/// later durable commit flushes them first. SQLite (WAL, `synchronous = NORMAL`) already
/// commits without a flush.
pub fn commit_without_flush(conn: &mut DbConn) -> QResult<()> {
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SET LOCAL synchronous_commit TO OFF").execute(pg)?;
    }
    Ok(())
}

/// Writes a consistent copy of a SQLite database to `path` while others keep using it
/// (`VACUUM INTO`: one read transaction, a compact file).
pub fn vacuum_into(conn: &mut DbConn, path: &std::path::Path) -> QResult<()> {
    match conn {
        DbConn::Sqlite(c) => {
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(path.display().to_string())
                .execute(c)?;
            Ok(())
        }
        DbConn::Pg(_) => Err(diesel::result::Error::QueryBuilderError(
            "VACUUM INTO is SQLite's; Postgres is backed up with pg_dump".into(),
        )),
    }
}

/// Fails unless SQLite's `integrity_check` finds the database sound (Postgres: nothing to do).
pub fn check_integrity(conn: &mut DbConn) -> QResult<()> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    if let DbConn::Sqlite(c) = conn {
        let rows: Vec<Row> = diesel::sql_query("PRAGMA integrity_check").load(c)?;
        if rows.len() != 1 || rows[0].integrity_check != "ok" {
            let found: Vec<String> = rows.into_iter().map(|r| r.integrity_check).collect();
            return Err(diesel::result::Error::QueryBuilderError(
                format!("the database is damaged: {}", found.join("; ")).into(),
            ));
        }
    }
    Ok(())
}

/// Serialises writers that share `key` until the surrounding transaction ends, so that a
/// check followed by a write (a rate limit, a counter) is one atomic step. Postgres takes a
/// transaction-scoped advisory lock; SQLite needs nothing more, because `write_transaction`
/// already holds the database's single write lock. Callers that take several keys take them
/// in sorted order, so two of them cannot deadlock.
pub fn lock_key(conn: &mut DbConn, key: &str) -> diesel::QueryResult<()> {
    use sha2::{Digest, Sha256};
    if let DbConn::Pg(c) = conn {
        let digest = Sha256::digest(key.as_bytes());
        let id = i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(id)
            .execute(c)?;
    }
    Ok(())
}

/// Takes the next `files` id without inserting a row. A `/v1` upload id promises its file an id
/// before the upload comes; the upload then inserts with that id. Ids whose upload never comes
/// are skipped, like those of rolled-back inserts. Call inside `write_transaction` (on SQLite
/// the sequence row is then changed under the database's write lock).
pub fn reserve_file_id(conn: &mut DbConn) -> diesel::QueryResult<FileId> {
    #[derive(diesel::QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    match conn {
        DbConn::Pg(c) => Ok(FileId(
            diesel::sql_query("SELECT nextval(pg_get_serial_sequence('files', 'id')) AS id")
                .get_result::<Next>(c)?
                .id,
        )),
        // AUTOINCREMENT keeps the highest id ever used in sqlite_sequence and never reuses
        // one; raising it reserves the id (the row exists once any file was stored).
        DbConn::Sqlite(c) => {
            diesel::sql_query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'files', 0 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'files')",
            )
            .execute(c)?;
            diesel::sql_query(
                "UPDATE sqlite_sequence \
                 SET seq = MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM files)) + 1 \
                 WHERE name = 'files'",
            )
            .execute(c)?;
            Ok(FileId(
                diesel::sql_query(
                    "SELECT CAST(seq AS BIGINT) AS id FROM sqlite_sequence WHERE name = 'files'",
                )
                .get_result::<Next>(c)?
                .id,
            ))
        }
    }
}
