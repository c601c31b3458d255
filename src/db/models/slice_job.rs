//! Slice jobs: queued work for the slice workers, with leases.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = slice_jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SliceJob {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub file_id: i64,
    /// The G-code file id reserved when the slice was requested.
    pub output_file_id: Option<i64>,
    pub slicer_id: i32,
    /// The complete PrusaSlicer profile (JSON object of keys).
    pub profile: String,
    pub printer_id: Option<i64>,
    pub start_print: bool,
    /// pending → running → done | failed
    pub status: String,
    pub error: Option<String>,
    pub stderr: Option<String>,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub print_job_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl SliceJob {
    pub fn find_by_uuid(conn: &mut DbConn, uuid: &str) -> QResult<Option<SliceJob>> {
        slice_jobs::table
            .filter(slice_jobs::uuid.eq(uuid))
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<SliceJob>> {
        slice_jobs::table.find(id).first(conn).optional()
    }

    /// Slices waiting or running ahead of this one.
    pub fn ahead_of(conn: &mut DbConn, id: i64) -> QResult<i64> {
        slice_jobs::table
            .filter(slice_jobs::id.lt(id))
            .filter(slice_jobs::status.eq_any(["pending", "running"]))
            .count()
            .get_result(conn)
    }
}
