//! Read models: rows joined across entities for lists and reports.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// A job with its printer, its file and its owner's email, in one statement (`get_job_info`).
pub fn job_with_printer_and_file(
    conn: &mut DbConn,
    id: JobId,
) -> QResult<Option<(Job, Printer, StoredFile, String)>> {
    jobs::table
        .inner_join(printers::table)
        .inner_join(files::table)
        .inner_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::id.eq(id))
        .select((
            Job::as_select(),
            Printer::as_select(),
            StoredFile::as_select(),
            users::email,
        ))
        .first(conn)
        .optional()
}

/// A queued job with its file and owner, for the agent's `get_queued_jobs`.
pub type QueuedJobRow = (
    i64,
    i32,
    NaiveDateTime,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// A printer's queued jobs in the order they start (raised ones first, then oldest first):
/// (id, printing duration, queued at, file name, file size, owner's email).
pub fn queued_jobs(conn: &mut DbConn, printer_id: PrinterId) -> QResult<Vec<QueuedJobRow>> {
    jobs::table
        .left_join(files::table)
        .left_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::printer_id.eq(printer_id))
        .filter(jobs::status_id.eq(JobStatus::Queued))
        .order((jobs::priority.desc(), jobs::id.asc()))
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
    pub printer_id: PrinterId,
    /// Only this user's jobs (a member who does not see the printer's whole queue).
    pub only_user: Option<UserId>,
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

/// The printers of these workgroups in the organization (a workgroup admin's report scope).
pub fn printers_of_workgroups(
    conn: &mut DbConn,
    organization: OrgId,
    workgroups: &[i64],
) -> QResult<Vec<i64>> {
    printer_workgroups::table
        .inner_join(printers::table)
        .filter(printer_workgroups::workgroup_id.eq_any(workgroups))
        .filter(printers::organization_id.eq(organization))
        .select(printer_workgroups::printer_id)
        .load(conn)
}

/// (printer, workgroup id, name, join password) of the organization's workgroups, only those
/// in `only` when given, by printer then workgroup.
pub fn printer_workgroup_names(
    conn: &mut DbConn,
    organization: OrgId,
    only: Option<&[i64]>,
) -> QResult<Vec<(i64, i64, String, String)>> {
    let mut q = printer_workgroups::table
        .inner_join(workgroups::table)
        .filter(workgroups::organization_id.eq(organization))
        .into_boxed::<crate::db::MultiBackend>();
    if let Some(own) = only {
        q = q.filter(workgroups::id.eq_any(own.to_vec()));
    }
    q.order((printer_workgroups::printer_id, workgroups::id))
        .select((
            printer_workgroups::printer_id,
            workgroups::id,
            workgroups::name,
            workgroups::join_password,
        ))
        .load(conn)
}

/// The organization's printers (id, name).
pub fn printer_names(conn: &mut DbConn, organization: OrgId) -> QResult<Vec<(i64, String)>> {
    printers::table
        .filter(printers::organization_id.eq(organization))
        .order(printers::id.asc())
        .select((printers::id, printers::name))
        .load::<(PrinterId, String)>(conn)
        .map(|v| v.into_iter().map(|(id, n)| (id.0, n)).collect())
}

/// The jobs a report covers: an organization's, created (or for finished jobs, ended) in
/// `[from, until)`, on the listed printers when given.
pub struct ReportFilter<'a> {
    pub organization: OrgId,
    pub printers: Option<&'a [i64]>,
    pub from: NaiveDateTime,
    pub until: NaiveDateTime,
}

/// The job columns a report row is built from. The names of its printer, file and users are
/// read by id apart ([`report_printers`], [`report_files`], [`report_users`]): joined to each
/// of a million rows, Postgres spent more on the joins than on the jobs.
#[derive(Debug, Queryable)]
pub struct ReportJob {
    pub id: i64,
    pub user_id: UserId,
    pub printer_id: PrinterId,
    pub file_id: FileId,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub started_at: Option<NaiveDateTime>,
    pub weight: f64,
    pub cost: Option<f64>,
    pub file_cost: Option<f64>,
    pub status_id: JobStatus,
    pub printing_duration: i32,
    pub print_time: i32,
    pub cancel_reason: Option<String>,
    pub cancel_details: Option<String>,
    pub started_by: Option<UserId>,
    pub feedback: Option<String>,
    pub cancel_source: Option<String>,
}

/// Report jobs created in the filter's range after job id `after`, in job id order, at most
/// `limit`.
pub fn report_jobs(
    conn: &mut DbConn,
    f: &ReportFilter,
    after: i64,
    limit: i64,
) -> QResult<Vec<ReportJob>> {
    let mut q = jobs::table
        .filter(jobs::organization_id.eq(f.organization))
        .filter(jobs::created_at.ge(f.from))
        .filter(jobs::created_at.lt(f.until))
        .filter(jobs::id.gt(after))
        .into_boxed::<crate::db::MultiBackend>();
    if let Some(ids) = f.printers {
        q = q.filter(jobs::printer_id.eq_any(ids.to_vec()));
    }
    q.order(jobs::id.asc())
        .limit(limit)
        .select((
            jobs::id,
            jobs::user_id,
            jobs::printer_id,
            jobs::file_id,
            jobs::created_at,
            jobs::started_at,
            jobs::weight,
            jobs::cost,
            jobs::file_cost,
            jobs::status_id,
            jobs::printing_duration,
            jobs::print_time,
            jobs::cancel_reason,
            jobs::cancel_details,
            jobs::started_by_user_id,
            jobs::feedback,
            jobs::cancel_source,
        ))
        .load(conn)
}

/// (id, name, type description) of these printers.
pub fn report_printers(
    conn: &mut DbConn,
    ids: &[PrinterId],
) -> QResult<Vec<(PrinterId, String, Option<String>)>> {
    printers::table
        .left_join(printer_types::table)
        .filter(printers::id.eq_any(ids))
        .select((
            printers::id,
            printers::name,
            printer_types::description.nullable(),
        ))
        .load(conn)
}

/// (id, file name) of these files.
pub fn report_files(conn: &mut DbConn, ids: &[FileId]) -> QResult<Vec<(FileId, String)>> {
    files::table
        .filter(files::id.eq_any(ids))
        .select((files::id, files::filename))
        .load(conn)
}

/// (id, email, first name, last name) of these users.
pub fn report_users(
    conn: &mut DbConn,
    ids: &[UserId],
) -> QResult<Vec<(UserId, String, String, String)>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::email, users::firstname, users::lastname))
        .load(conn)
}

/// (email, first name, last name, file name, ended at) of the jobs finished in the filter's
/// range, by end time.
pub type FinishedRow = (String, String, String, String, Option<NaiveDateTime>);

pub fn finished_jobs(conn: &mut DbConn, f: &ReportFilter) -> QResult<Vec<FinishedRow>> {
    let mut q = jobs::table
        .inner_join(files::table)
        .inner_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::organization_id.eq(f.organization))
        .filter(jobs::status_id.eq(JobStatus::Finished))
        .filter(jobs::ended_at.ge(f.from))
        .filter(jobs::ended_at.lt(f.until))
        .into_boxed::<crate::db::MultiBackend>();
    if let Some(ids) = f.printers {
        q = q.filter(jobs::printer_id.eq_any(ids.to_vec()));
    }
    q.order((jobs::ended_at.asc(), jobs::id.asc()))
        .select((
            users::email,
            users::firstname,
            users::lastname,
            files::filename,
            jobs::ended_at,
        ))
        .load(conn)
}

/// A person's own jobs on any printer, newest first: (job, file name, printer name).
pub fn user_jobs(
    conn: &mut DbConn,
    user_id: UserId,
    limit: i64,
) -> QResult<Vec<(Job, String, String)>> {
    jobs::table
        .inner_join(files::table)
        .inner_join(printers::table)
        .filter(jobs::user_id.eq(user_id))
        .order(jobs::id.desc())
        .limit(limit)
        .select((Job::as_select(), files::filename, printers::name))
        .load(conn)
}

/// The jobs printers are busy with: (job, file name, owner's email).
pub fn jobs_with_file(conn: &mut DbConn, ids: &[JobId]) -> QResult<Vec<(Job, String, String)>> {
    jobs::table
        .inner_join(files::table)
        .inner_join(users::table.on(users::id.eq(jobs::user_id)))
        .filter(jobs::id.eq_any(ids))
        .select((Job::as_select(), files::filename, users::email))
        .load(conn)
}

/// How many jobs wait in each of these printers' queues (printers with none are left out).
pub fn queue_lengths(conn: &mut DbConn, printers: &[PrinterId]) -> QResult<Vec<(PrinterId, i64)>> {
    jobs::table
        .filter(jobs::printer_id.eq_any(printers))
        .filter(jobs::status_id.eq(JobStatus::Queued))
        .group_by(jobs::printer_id)
        .select((jobs::printer_id, diesel::dsl::count_star()))
        .load(conn)
}
