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
    pub user_id: UserId,
    pub file_id: FileId,
    /// The G-code file id reserved when the slice was requested.
    pub output_file_id: Option<FileId>,
    pub slicer_id: i32,
    /// The complete PrusaSlicer profile (JSON object of keys).
    pub profile: String,
    pub printer_id: Option<PrinterId>,
    pub start_print: bool,
    pub status: SliceStatus,
    pub error: Option<String>,
    pub stderr: Option<String>,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub lease_until: Option<NaiveDateTime>,
    pub print_job_id: Option<JobId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub started_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub finished_at: Option<NaiveDateTime>,
    /// The farm job to make of the G-code when done (JSON of `services::farm::FarmRequest`).
    pub farm_request: Option<String>,
    /// The farm job it made.
    pub farm_job_id: Option<i64>,
}

/// A slice to queue.
#[derive(Debug, Insertable)]
#[diesel(table_name = slice_jobs)]
pub struct NewSliceJob<'a> {
    pub uuid: &'a str,
    pub user_id: UserId,
    pub file_id: FileId,
    pub output_file_id: Option<FileId>,
    pub slicer_id: i32,
    pub profile: &'a str,
    pub printer_id: Option<PrinterId>,
    pub start_print: bool,
    pub status: SliceStatus,
    pub attempts: i32,
    pub created_at: NaiveDateTime,
    pub farm_request: Option<&'a str>,
}

/// The G-code a finished slice produced, written on its reserved file.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = files)]
pub struct SliceOutput<'a> {
    pub state: FileState,
    pub storage_key: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub analysis: Option<&'a str>,
    pub slicer_settings: Option<&'a str>,
    pub picture: Option<&'a str>,
    pub updated_at: NaiveDateTime,
}

impl SliceJob {
    pub fn insert(conn: &mut DbConn, new: &NewSliceJob) -> QResult<SliceJob> {
        diesel::insert_into(slice_jobs::table)
            .values(new)
            .get_result(conn)
    }

    /// Claims the oldest pending slice, or a running one whose lease ran out, for `owner`
    /// until `lease_until`. Run it in a write transaction (see `db::claimable_slice`).
    pub fn claim(
        conn: &mut DbConn,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> QResult<Option<SliceJob>> {
        let id = crate::db::claimable_slice(conn, now)?;
        let Some(id) = id else { return Ok(None) };
        diesel::update(slice_jobs::table.find(id))
            .set((
                slice_jobs::status.eq(SliceStatus::Running),
                slice_jobs::lease_owner.eq(Some(owner)),
                slice_jobs::lease_until.eq(Some(lease_until)),
                slice_jobs::attempts.eq(slice_jobs::attempts + 1),
                slice_jobs::started_at.eq(Some(now)),
            ))
            .execute(conn)?;
        SliceJob::find(conn, id)
    }

    /// Extends the lease of a running slice `owner` still holds; false when it does not.
    pub fn renew(
        conn: &mut DbConn,
        id: i64,
        owner: &str,
        lease_until: NaiveDateTime,
    ) -> QResult<bool> {
        let n = diesel::update(
            slice_jobs::table
                .filter(slice_jobs::id.eq(id))
                .filter(slice_jobs::status.eq(SliceStatus::Running))
                .filter(slice_jobs::lease_owner.eq(owner)),
        )
        .set(slice_jobs::lease_until.eq(Some(lease_until)))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Marks the slice done, and its reserved output file ready with what it produced.
    pub fn complete(
        conn: &mut DbConn,
        job: &SliceJob,
        output: &SliceOutput,
        log: &str,
        now: NaiveDateTime,
    ) -> QResult<()> {
        if let Some(fid) = job.output_file_id {
            diesel::update(files::table.find(fid))
                .set(output)
                .execute(conn)?;
        }
        diesel::update(slice_jobs::table.find(job.id))
            .set((
                slice_jobs::status.eq(SliceStatus::Done),
                slice_jobs::stderr.eq(Some(log)),
                slice_jobs::finished_at.eq(Some(now)),
                slice_jobs::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Marks the slice failed and removes its reserved output file.
    pub fn fail(
        conn: &mut DbConn,
        job: &SliceJob,
        error: &str,
        log: &str,
        now: NaiveDateTime,
    ) -> QResult<()> {
        diesel::update(slice_jobs::table.find(job.id))
            .set((
                slice_jobs::status.eq(SliceStatus::Failed),
                slice_jobs::error.eq(Some(error)),
                slice_jobs::stderr.eq(Some(log)),
                slice_jobs::output_file_id.eq(None::<i64>),
                slice_jobs::finished_at.eq(Some(now)),
                slice_jobs::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        if let Some(fid) = job.output_file_id {
            diesel::delete(
                files::table
                    .find(fid)
                    .filter(files::state.eq(FileState::Reserved)),
            )
            .execute(conn)?;
        }
        Ok(())
    }

    /// Deletes the slices that read the model `file_id`.
    pub fn delete_reading(conn: &mut DbConn, file_id: FileId) -> QResult<()> {
        diesel::delete(slice_jobs::table.filter(slice_jobs::file_id.eq(file_id))).execute(conn)?;
        Ok(())
    }

    /// Deletes the slices that made the G-code `file_id`.
    pub fn delete_making(conn: &mut DbConn, file_id: FileId) -> QResult<()> {
        diesel::delete(slice_jobs::table.filter(slice_jobs::output_file_id.eq(file_id)))
            .execute(conn)?;
        Ok(())
    }

    pub fn set_farm_job(conn: &mut DbConn, id: i64, farm_job: i64) -> QResult<()> {
        diesel::update(slice_jobs::table.find(id))
            .set(slice_jobs::farm_job_id.eq(Some(farm_job)))
            .execute(conn)?;
        Ok(())
    }

    pub fn set_print_job(conn: &mut DbConn, id: i64, job: JobId) -> QResult<()> {
        diesel::update(slice_jobs::table.find(id))
            .set(slice_jobs::print_job_id.eq(Some(job)))
            .execute(conn)?;
        Ok(())
    }

    /// A user's slices of one file, newest first.
    pub fn of_file(
        conn: &mut DbConn,
        user_id: UserId,
        file_id: FileId,
        limit: i64,
    ) -> QResult<Vec<SliceJob>> {
        slice_jobs::table
            .filter(slice_jobs::user_id.eq(user_id))
            .filter(slice_jobs::file_id.eq(file_id))
            .order(slice_jobs::id.desc())
            .limit(limit)
            .load(conn)
    }

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
            .filter(slice_jobs::status.eq_any([SliceStatus::Pending, SliceStatus::Running]))
            .count()
            .get_result(conn)
    }
}
