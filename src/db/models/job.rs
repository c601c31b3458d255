//! Print jobs and their statuses.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Job {
    pub id: JobId,
    pub organization_id: OrgId,
    pub printer_id: PrinterId,
    pub file_id: FileId,
    pub user_id: UserId,
    pub share_id: Option<i64>,
    pub status_id: JobStatus,
    /// Value of the `job_changes` counter at the job's last change (the live-update cursor).
    pub change_seq: i64,
    pub notes: Option<String>,
    pub percent: f64,
    /// Real print time, seconds.
    pub print_time: i32,
    /// Estimated print time, seconds.
    pub printing_duration: i32,
    pub material_type: String,
    pub layer_height: f64,
    pub color_numbers: i32,
    /// JSON text of target extruder temperatures, as the Global API serves it.
    pub extruders: String,
    pub weight: f64,
    pub heated_bed: bool,
    pub heated_bed_temperature: i32,
    pub raft: bool,
    pub supports: bool,
    pub file_cost: Option<f64>,
    pub cost: Option<f64>,
    /// Balance, quota and share prints were charged (exactly once, at start).
    pub charged: bool,
    /// The reason a person chose when cancelling: a `services::job_states::CancelReason` code.
    pub cancel_reason: Option<String>,
    /// Free text given with the cancel (bounded).
    pub cancel_details: Option<String>,
    pub cancelled_by_user_id: Option<UserId>,
    pub started_by_user_id: Option<UserId>,
    pub feedback: Option<String>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub started_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub ended_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    pub download_token_hash: Option<String>,
    /// Who or what ended the job early: a `services::job_states::cancel_source` code.
    pub cancel_source: Option<String>,
    /// Place in the printer's queue: higher first, then older (see `next_queued`).
    pub priority: i32,
    /// The farm-queue copy this job prints (`farm_copies`), if it came from the farm queue.
    pub farm_copy_id: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob<'a> {
    pub organization_id: OrgId,
    pub printer_id: PrinterId,
    pub file_id: FileId,
    pub user_id: UserId,
    pub share_id: Option<i64>,
    pub status_id: JobStatus,
    pub change_seq: i64,
    pub notes: Option<&'a str>,
    pub percent: f64,
    pub print_time: i32,
    pub printing_duration: i32,
    pub material_type: &'a str,
    pub layer_height: f64,
    pub color_numbers: i32,
    pub extruders: &'a str,
    pub weight: f64,
    pub heated_bed: bool,
    pub heated_bed_temperature: i32,
    pub raft: bool,
    pub supports: bool,
    pub file_cost: Option<f64>,
    pub charged: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub farm_copy_id: Option<i64>,
}

/// Fields of a job to change; `None` leaves one as it is (`Some(None)` clears it).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = jobs)]
pub struct JobChange<'a> {
    pub status_id: Option<JobStatus>,
    pub percent: Option<f64>,
    pub print_time: Option<i32>,
    pub cost: Option<Option<f64>>,
    pub charged: Option<bool>,
    pub cancel_reason: Option<Option<String>>,
    pub cancel_details: Option<Option<String>>,
    pub cancelled_by_user_id: Option<Option<UserId>>,
    pub started_by_user_id: Option<Option<UserId>>,
    pub feedback: Option<Option<&'a str>>,
    pub started_at: Option<Option<NaiveDateTime>>,
    pub ended_at: Option<Option<NaiveDateTime>>,
    pub download_token_hash: Option<Option<String>>,
    pub cancel_source: Option<Option<&'a str>>,
    pub priority: Option<i32>,
    /// Set by `Job::change` on every change, whatever is given here.
    pub change_seq: Option<i64>,
    pub updated_at: Option<NaiveDateTime>,
}

impl Job {
    /// Applies `change` and stamps the next change-counter value on the job, so that
    /// `get_job_changes` readers see it; answers the job as it is now.
    pub fn change(
        conn: &mut DbConn,
        id: JobId,
        mut change: JobChange,
        now: NaiveDateTime,
    ) -> QResult<Option<Job>> {
        change.change_seq = Some(Job::next_change(conn)?);
        change.updated_at = Some(now);
        diesel::update(jobs::table.find(id))
            .set(&change)
            .execute(conn)?;
        Job::find(conn, id)
    }

    pub fn insert(conn: &mut DbConn, new: &NewJob) -> QResult<Job> {
        diesel::insert_into(jobs::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: JobId) -> QResult<Option<Job>> {
        jobs::table.find(id).first(conn).optional()
    }

    /// Every job printing a file.
    pub fn of_file(conn: &mut DbConn, file_id: FileId) -> QResult<Vec<Job>> {
        jobs::table
            .filter(jobs::file_id.eq(file_id))
            .order(jobs::id.asc())
            .load(conn)
    }

    /// The next value of the job change counter. Updating the counter row locks it until the
    /// transaction ends, so values are committed in order and a reader that sees value N has
    /// every change up to N.
    pub fn next_change(conn: &mut DbConn) -> QResult<i64> {
        diesel::update(counters::table.filter(counters::name.eq("job_changes")))
            .set(counters::value.eq(counters::value + 1))
            .returning(counters::value)
            .get_result(conn)
    }

    pub fn current_change(conn: &mut DbConn) -> QResult<i64> {
        counters::table
            .filter(counters::name.eq("job_changes"))
            .select(counters::value)
            .first(conn)
    }

    /// The oldest queued job of a printer.
    pub fn next_queued(conn: &mut DbConn, printer: PrinterId) -> QResult<Option<Job>> {
        jobs::table
            .filter(jobs::printer_id.eq(printer))
            .filter(jobs::status_id.eq(JobStatus::Queued))
            .order((jobs::priority.desc(), jobs::id.asc()))
            .first(conn)
            .optional()
    }

    /// Which of these printers have a job waiting in their own queue.
    pub fn queued_on(conn: &mut DbConn, printers: &[PrinterId]) -> QResult<Vec<PrinterId>> {
        jobs::table
            .filter(jobs::printer_id.eq_any(printers))
            .filter(jobs::status_id.eq(JobStatus::Queued))
            .select(jobs::printer_id)
            .distinct()
            .load(conn)
    }

    pub fn by_ids(conn: &mut DbConn, ids: &[JobId]) -> QResult<Vec<Job>> {
        jobs::table.filter(jobs::id.eq_any(ids)).load(conn)
    }

    /// The highest priority among the printer's queued jobs (0 when none is raised).
    pub fn top_priority(conn: &mut DbConn, printer: PrinterId) -> QResult<i32> {
        jobs::table
            .filter(jobs::printer_id.eq(printer))
            .filter(jobs::status_id.eq(JobStatus::Queued))
            .select(diesel::dsl::max(jobs::priority))
            .first::<Option<i32>>(conn)
            .map(|m| m.unwrap_or(0))
    }

    /// Print seconds and grams of filament a printer used in jobs that ended at or after
    /// `since` (all of them when None): a job that did not finish counts the share of its
    /// filament it got to.
    pub fn usage_since(
        conn: &mut DbConn,
        printer: PrinterId,
        since: Option<NaiveDateTime>,
    ) -> QResult<(i64, f64)> {
        let mut q = jobs::table
            .filter(jobs::printer_id.eq(printer))
            .filter(jobs::ended_at.is_not_null())
            .filter(jobs::started_at.is_not_null())
            .into_boxed();
        if let Some(since) = since {
            q = q.filter(jobs::ended_at.ge(since));
        }
        let rows: Vec<(i32, f64, f64, JobStatus)> = q
            .select((
                jobs::print_time,
                jobs::weight,
                jobs::percent,
                jobs::status_id,
            ))
            .load(conn)?;
        Ok(rows
            .iter()
            .fold((0, 0.0), |(t, g), (time, weight, percent, status)| {
                let share = if *status == JobStatus::Finished {
                    1.0
                } else {
                    (percent / 100.0).clamp(0.0, 1.0)
                };
                (t + i64::from(*time), g + weight * share)
            }))
    }
}
