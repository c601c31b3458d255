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
