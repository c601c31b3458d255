//! Read models: rows joined across entities for lists and reports.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// A queued job with its file and owner, for the agent's `get_queued_jobs`.
pub type QueuedJobRow = (
    i64,
    i32,
    NaiveDateTime,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// A printer's queued jobs, oldest first: (id, printing duration, queued at, file name, file
/// size, owner's email).
pub fn queued_jobs(conn: &mut DbConn, printer_id: i64) -> QResult<Vec<QueuedJobRow>> {
    jobs::table
        .left_join(files::table)
        .left_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::printer_id.eq(printer_id))
        .filter(jobs::status_id.eq(JobStatus::Queued))
        .order(jobs::id.asc())
        .select((
            jobs::id,
            jobs::printing_duration,
            jobs::created_at,
            files::filename.nullable(),
            files::size.nullable(),
            users::email.nullable(),
        ))
        .load(conn)
}

/// Which jobs of a printer to list (`get_printer_jobs`).
pub struct JobFilter {
    pub printer_id: i64,
    /// Only this user's jobs (a member who does not see the printer's whole queue).
    pub only_user: Option<i64>,
    /// Only jobs changed after the first counter value, up to the second.
    pub changed: Option<(i64, i64)>,
    /// Only queued and printing jobs, and those that ended since then.
    pub active_since: Option<NaiveDateTime>,
    pub limit: i64,
    pub offset: i64,
}

/// A printer's jobs, newest first, with their file name and owner's email.
pub fn printer_jobs(conn: &mut DbConn, f: &JobFilter) -> QResult<Vec<(Job, String, String)>> {
    let mut q = jobs::table
        .inner_join(files::table)
        .inner_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::printer_id.eq(f.printer_id))
        .into_boxed::<crate::db::MultiBackend>();
    if let Some(user) = f.only_user {
        q = q.filter(jobs::user_id.eq(user));
    }
    // Only live updates are bounded by the cursor (and walk the change index). A plain listing
    // is not: bounding it made SQLite plan on the change index and sort every job of the
    // printer. A job changed after the cursor may then be listed now and again with the next
    // cursor — sent twice, never missed.
    if let Some((after, cursor)) = f.changed {
        q = q
            .filter(jobs::change_seq.gt(after))
            .filter(jobs::change_seq.le(cursor));
    }
    if let Some(since) = f.active_since {
        q = q.filter(
            jobs::status_id
                .eq_any([JobStatus::Queued, JobStatus::InProgress])
                .or(jobs::ended_at.ge(since)),
        );
    }
    q.order(jobs::id.desc())
        .limit(f.limit)
        .offset(f.offset)
        .select((Job::as_select(), files::filename, users::email))
        .load(conn)
}
