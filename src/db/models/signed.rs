//! Signed reads: a read call's data and its caller's live session in one statement.
//!
//! Each function joins the session (by token hash, not expired) and its enabled user to the
//! call's main query, so that the common case — a live session that may read the data — is one
//! statement. Each answers `None` when that statement found no such row; the call then takes
//! its exact path (the session check, then the services' rules), which says why or answers
//! what this statement could not. So a gate here may grant *less* than the services' rules,
//! never more: whatever it answers, the exact path would have answered the same.
//!
//! They run on the concrete connection (`per_backend!`): through Diesel's multi-backend
//! connection a statement's SQL text is written out again on every execution (twice: to learn
//! whether it may be cached and to collect its binds), which for statements of this size costs
//! more than the database's own work on SQLite.

use chrono::NaiveDateTime;
use diesel::dsl::{And, Eq, Gt};
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// The session a signed read was made with.
pub struct Gate<'a> {
    pub token_hash: &'a str,
    pub now: NaiveDateTime,
}

/// What a signed read needs of its session to slide its expiry.
#[derive(Debug, Clone, Copy, Queryable)]
pub struct LiveSession {
    pub id: i64,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub last_seen_at: NaiveDateTime,
}

/// A signed read's answer: `None` when the statement found no live session that may read it.
pub type Signed<T> = Option<(LiveSession, T)>;
/// The organization's workgroups with the caller's rights in each, and the caller's role.
pub type OrgWorkgroups = (i32, Vec<(Workgroup, Option<i32>)>);
/// A job, its file and its owner's email.
pub type JobInfo = (Job, StoredFile, String);
/// The counter of job changes and a page of jobs with file name and owner's email.
pub type JobPage = (i64, Vec<(Job, String, String)>);

type LiveSessionColumns = (sessions::id, sessions::created_at, sessions::last_seen_at);
const LIVE_SESSION: LiveSessionColumns =
    (sessions::id, sessions::created_at, sessions::last_seen_at);

type Live<'a> = And<
    And<Eq<sessions::token_hash, &'a str>, Gt<sessions::expires_at, NaiveDateTime>>,
    Eq<users::disabled, bool>,
>;

/// The session is the caller's, has not expired, and its user is enabled (a session waiting
/// for GDPR consent has no user and never passes the inner join with `users`).
fn live<'a>(gate: &Gate<'a>) -> Live<'a> {
    sessions::token_hash
        .eq(gate.token_hash)
        .and(sessions::expires_at.gt(gate.now))
        .and(users::disabled.eq(false))
}

/// The rows of a signed read: `None` without a live session; otherwise the session and the
/// rows, where a left join that matched nothing gives one row of `None`.
fn split<T>(rows: Vec<(LiveSession, Option<T>)>) -> Signed<Vec<T>> {
    let session = rows.first()?.0;
    Some((session, rows.into_iter().filter_map(|(_, t)| t).collect()))
}

/// `get_projects`: the caller's projects (as `Project::of_user`).
pub fn projects(conn: &mut DbConn, gate: &Gate) -> QResult<Signed<Vec<Project>>> {
    crate::per_backend!(conn, |c| sessions::table
        .inner_join(users::table)
        .left_join(projects::table.on(projects::user_id.eq(users::id)))
        .filter(live(gate))
        .order(projects::id.asc())
        .select((LIVE_SESSION, Option::<Project>::as_select()))
        .load(c))
    .map(split)
}

/// `get_workgroups_simple_list`: the workgroups of the caller's organization with the caller's
/// rights in those they belong to, and whether the caller is an organization admin. (Members
/// belong only to workgroups of their own organization: `orgs::add_user_to_workgroup` is the
/// one way in and checks it.)
pub fn org_workgroups(conn: &mut DbConn, gate: &Gate) -> QResult<Signed<OrgWorkgroups>> {
    let rows: Vec<(LiveSession, i32, Option<Workgroup>, Option<i32>)> =
        crate::per_backend!(conn, |c| sessions::table
            .inner_join(users::table)
            .left_join(workgroups::table.on(workgroups::organization_id.eq(users::organization_id)))
            .left_join(
                workgroup_members::table.on(workgroup_members::workgroup_id
                    .eq(workgroups::id)
                    .and(workgroup_members::user_id.eq(users::id))),
            )
            .filter(live(gate))
            .order(workgroups::id.asc())
            .select((
                LIVE_SESSION,
                users::access_role,
                Option::<Workgroup>::as_select(),
                workgroup_members::rights.nullable(),
            ))
            .load(c))?;
    let Some(&(session, role, _, _)) = rows.first() else {
        return Ok(None);
    };
    let list = rows
        .into_iter()
        .filter_map(|(_, _, w, r)| Some((w?, r)))
        .collect();
    Ok(Some((session, (role, list))))
}

/// `get_printer_shares`: the shares of a printer the caller manages as its owner or as an
/// admin of its organization (`printers::managed`: nobody else manages a printer).
pub fn managed_printer_shares(
    conn: &mut DbConn,
    gate: &Gate,
    printer: PrinterId,
) -> QResult<Signed<Vec<PrinterShare>>> {
    crate::per_backend!(conn, |c| sessions::table
        .inner_join(users::table)
        .inner_join(
            printers::table.on(printers::id
                .eq(printer)
                .and(printers::organization_id.eq(users::organization_id))
                .and(
                    users::access_role
                        .eq(access_role::ADMIN)
                        .or(printers::owner_user_id.eq(users::id.nullable())),
                )),
        )
        .left_join(printer_shares::table.on(printer_shares::printer_id.eq(printers::id)))
        .filter(live(gate))
        .select((LIVE_SESSION, Option::<PrinterShare>::as_select()))
        .load(c))
    .map(|rows| {
        // In id order as `PrinterShare::of_printer` lists them, sorted here: the shares come
        // by the (printer, email) index, and SQLite would sort them in a temporary B-tree.
        split(rows).map(|(session, mut shares)| {
            shares.sort_unstable_by_key(|s| s.id);
            (session, shares)
        })
    })
}

diesel::alias!(users as job_owners: JobOwners);

/// A printer the caller reaches (`printers::access` is `Some`): as its owner or an admin of
/// its organization, through a workgroup of its organization the caller belongs to, or through
/// a share to the caller's email. (The subqueries are correlated with the one caller row.)
macro_rules! reaches_printer {
    () => {
        printers::organization_id
            .eq(users::organization_id)
            .and(
                users::access_role
                    .eq(access_role::ADMIN)
                    .or(printers::owner_user_id.eq(users::id.nullable()))
                    .or(diesel::dsl::exists(
                        printer_workgroups::table
                            .inner_join(
                                workgroup_members::table.on(workgroup_members::workgroup_id
                                    .eq(printer_workgroups::workgroup_id)),
                            )
                            .filter(printer_workgroups::printer_id.eq(printers::id))
                            .filter(workgroup_members::user_id.eq(users::id))
                            .select(printer_workgroups::printer_id),
                    )),
            )
            .or(diesel::dsl::exists(
                printer_shares::table
                    .filter(printer_shares::printer_id.eq(printers::id))
                    .filter(printer_shares::email.eq(users::email))
                    .select(printer_shares::id),
            ))
    };
}

/// A job the caller may see on a printer they reach: everyone of the printer's organization
/// sees all its jobs, a share from another organization only the caller's own
/// (`printers::sees_all_jobs`).
macro_rules! sees_job {
    () => {
        printers::organization_id
            .eq(users::organization_id)
            .or(jobs::user_id.eq(users::id))
    };
}

/// `get_job_info`: a job the caller may see, with its file and its owner's email.
pub fn job_info(conn: &mut DbConn, gate: &Gate, job: JobId) -> QResult<Signed<JobInfo>> {
    crate::per_backend!(conn, |c| sessions::table
        .inner_join(users::table)
        .inner_join(jobs::table.on(jobs::id.eq(job)))
        .inner_join(printers::table.on(printers::id.eq(jobs::printer_id)))
        .inner_join(files::table.on(files::id.eq(jobs::file_id)))
        .inner_join(job_owners.on(job_owners.field(users::id).eq(jobs::user_id)))
        .filter(live(gate))
        .filter(reaches_printer!())
        .filter(sees_job!())
        .select((
            LIVE_SESSION,
            (
                Job::as_select(),
                StoredFile::as_select(),
                job_owners.field(users::email),
            ),
        ))
        .first(c))
    .optional()
}

/// `get_printer_jobs` without a change cursor or the "actual" filter: a page of the jobs the
/// caller sees on a printer they reach, newest first, with the counter of job changes. The jobs
/// drive the statement (the printer's job index, read backwards, stops at the page) and the
/// caller's row is joined to each; a page without jobs therefore answers `None`, and the
/// exact path answers it.
pub fn printer_jobs(
    conn: &mut DbConn,
    gate: &Gate,
    printer: PrinterId,
    limit: i64,
    offset: i64,
) -> QResult<Signed<JobPage>> {
    let rows: Vec<(LiveSession, i64, (Job, String, String))> =
        crate::per_backend!(conn, |c| jobs::table
            .inner_join(files::table.on(files::id.eq(jobs::file_id)))
            .inner_join(job_owners.on(job_owners.field(users::id).eq(jobs::user_id)))
            .inner_join(sessions::table.on(sessions::token_hash.eq(gate.token_hash.to_owned())))
            .inner_join(users::table.on(users::id.nullable().eq(sessions::user_id)))
            .inner_join(printers::table.on(printers::id.eq(jobs::printer_id)))
            .inner_join(counters::table.on(counters::name.eq("job_changes")))
            .filter(jobs::printer_id.eq(printer))
            .filter(live(gate))
            .filter(reaches_printer!())
            .filter(sees_job!())
            .order(jobs::id.desc())
            .limit(limit)
            .offset(offset)
            .select((
                LIVE_SESSION,
                counters::value,
                (
                    Job::as_select(),
                    files::filename,
                    job_owners.field(users::email),
                ),
            ))
            .load(c))?;
    let Some(&(session, cursor, _)) = rows.first() else {
        return Ok(None);
    };
    let jobs = rows.into_iter().map(|(_, _, job)| job).collect();
    Ok(Some((session, (cursor, jobs))))
}
