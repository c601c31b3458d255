//! Reports for organization admins: the custom job report (call 22, `get_custom_report`) and
//! the finished-jobs report (call 27, `get_finished_jobs_report`).
//!
//! Who sees what: organization admins see every job of their organization; workgroup admins
//! (org role 2) see the jobs on printers assigned to the workgroups they belong to; everyone
//! else is refused (403). A job belongs to the organization of its printer
//! (`jobs.organization_id`), so another organization's jobs never appear.
//!
//! Dates are whole UTC days, `from` and `to` inclusive. The custom report selects jobs by
//! their creation time, the finished-jobs report by their end time.
//!
//! The custom report is read in keyset-paginated batches (by job id), so an export of a year of
//! a large farm never holds more than one batch in memory; [`CustomReport::batch`] is the unit
//! the HTTP layer streams.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, NaiveDateTime};

use crate::db::models::read::{self, ReportJob};
use crate::db::models::{
    access_role, FileId, JobStatus, OrgId, Organization, PrinterId, User, UserId, Workgroup,
};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::services::job_states::{cancel_source, CancelReason};

/// Longest allowed `to - from`, in days.
pub const MAX_RANGE_DAYS: i64 = 365;
/// `from` defaults to `to` minus this many days.
pub const DEFAULT_RANGE_DAYS: i64 = 31;

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// The custom report's selectable fields, in the seed's order (which is also column order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    JobId,
    PrinterId,
    PrinterName,
    PrinterType,
    FileId,
    FileName,
    PrintDate,
    Email,
    Fname,
    Lname,
    Filament,
    Cost,
    Status,
    PrintTime,
    RealPrintTime,
    CancelReason,
    CancelDetails,
    StartedByEmail,
    Feedback,
}

impl Field {
    pub const ALL: [Field; 19] = [
        Field::JobId,
        Field::PrinterId,
        Field::PrinterName,
        Field::PrinterType,
        Field::FileId,
        Field::FileName,
        Field::PrintDate,
        Field::Email,
        Field::Fname,
        Field::Lname,
        Field::Filament,
        Field::Cost,
        Field::Status,
        Field::PrintTime,
        Field::RealPrintTime,
        Field::CancelReason,
        Field::CancelDetails,
        Field::StartedByEmail,
        Field::Feedback,
    ];

    /// The fields of the seed's example answer: used when the organization chose none.
    pub const DEFAULT: [Field; 16] = [
        Field::JobId,
        Field::PrinterId,
        Field::PrinterName,
        Field::PrinterType,
        Field::FileId,
        Field::FileName,
        Field::PrintDate,
        Field::Email,
        Field::Filament,
        Field::Cost,
        Field::Status,
        Field::PrintTime,
        Field::RealPrintTime,
        Field::CancelReason,
        Field::CancelDetails,
        Field::Feedback,
    ];

    /// The parameter name (`fields=job_id,email`).
    pub fn name(self) -> &'static str {
        match self {
            Field::JobId => "job_id",
            Field::PrinterId => "printer_id",
            Field::PrinterName => "printer_name",
            Field::PrinterType => "printer_type",
            Field::FileId => "file_id",
            Field::FileName => "file_name",
            Field::PrintDate => "print_date",
            Field::Email => "email",
            Field::Fname => "fname",
            Field::Lname => "lname",
            Field::Filament => "filament",
            Field::Cost => "cost",
            Field::Status => "status",
            Field::PrintTime => "print_time",
            Field::RealPrintTime => "real_print_time",
            Field::CancelReason => "cancel_reason",
            Field::CancelDetails => "cancel_details",
            Field::StartedByEmail => "started_by_email",
            Field::Feedback => "feedback",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// One column of the custom report: a field, or one of the workgroup columns (`workgroups=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Field(Field),
    WorkgroupIds,
    WorkgroupNames,
    WorkgroupPasswords,
}

impl Column {
    /// The human header name.
    pub fn header(self) -> &'static str {
        match self {
            Column::Field(f) => match f {
                Field::JobId => "Job ID",
                Field::PrinterId => "Printer ID",
                Field::PrinterName => "Printer Name",
                Field::PrinterType => "Printer Type",
                Field::FileId => "File ID",
                Field::FileName => "File Name",
                Field::PrintDate => "Started Date/Time",
                Field::Email => "Account Email",
                Field::Fname => "First Name",
                Field::Lname => "Last Name",
                Field::Filament => "Filament",
                Field::Cost => "Material Cost",
                Field::Status => "Status",
                Field::PrintTime => "Estimated Print Time",
                Field::RealPrintTime => "Real Print Time",
                Field::CancelReason => "Cancel Reason",
                Field::CancelDetails => "Cancel Details",
                Field::StartedByEmail => "Started By",
                Field::Feedback => "Feedback",
            },
            Column::WorkgroupIds => "Workgroup IDs",
            Column::WorkgroupNames => "Workgroup Names",
            Column::WorkgroupPasswords => "Workgroup Passwords",
        }
    }

    /// The type name of the second row, as the seed writes them.
    pub fn type_name(self) -> &'static str {
        match self {
            Column::Field(Field::JobId | Field::PrinterId | Field::FileId) => "int",
            Column::Field(Field::Filament | Field::Cost) => "float",
            Column::Field(_) => "text",
            Column::WorkgroupIds => "int,int,...",
            Column::WorkgroupNames | Column::WorkgroupPasswords => "text,text,...",
        }
    }
}

/// Parses a comma-separated field list (`job_id, email`): names are trimmed and
/// case-insensitive, duplicates collapse, and the result is in the report's column order.
/// Unknown names answer 400 naming them and the parameter.
pub fn parse_fields<'a>(
    param: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Field>> {
    let mut chosen = Vec::new();
    let mut unknown = Vec::new();
    for name in names
        .into_iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match Field::parse(&name.to_ascii_lowercase()) {
            Some(f) => chosen.push(f),
            None => unknown.push(name.to_string()),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        return Err(Error::invalid(format!(
            "parameter '{param}' names unknown fields: {}; known fields: {}",
            unknown.join(", "),
            known.join(", ")
        )));
    }
    Ok(Field::ALL
        .into_iter()
        .filter(|f| chosen.contains(f))
        .collect())
}

/// The organization's default fields (`organizations.report_fields`), or [`Field::DEFAULT`]
/// when unset. Names that are no longer known are skipped rather than failing every report.
pub fn organization_fields(org: &Organization) -> Vec<Field> {
    let stored: Vec<Field> = org
        .report_fields
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| Field::parse(n.trim()))
        .collect();
    if stored.is_empty() {
        Field::DEFAULT.to_vec()
    } else {
        Field::ALL
            .into_iter()
            .filter(|f| stored.contains(f))
            .collect()
    }
}

/// What `update_organization_settings(report_fields=…)` stores: the validated, canonical comma
/// list, or `None` for `default` (back to the server's default set).
pub fn report_fields_setting(names: &[String]) -> Result<Option<String>> {
    if names.len() == 1 && names[0].trim().eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    let fields = parse_fields("report_fields", names.iter().map(String::as_str))?;
    if fields.is_empty() {
        return Err(Error::invalid(
            "parameter 'report_fields' must name at least one field (or be 'default')",
        ));
    }
    Ok(Some(
        fields
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// A report's days, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

fn parse_day(param: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        Error::invalid(format!(
            "parameter '{param}' must be a date as Y-m-d, e.g. 2019-06-01 (got '{text}')"
        ))
    })
}

impl DateRange {
    /// `from`/`to` as `Y-m-d`; `to` defaults to today, `from` to `to` minus 31 days. At most
    /// 365 days apart, `from` not after `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<DateRange> {
        let to = to.map(|t| parse_day("to", t)).transpose()?.unwrap_or(today);
        let from = from
            .map(|f| parse_day("from", f))
            .transpose()?
            .unwrap_or(to - Duration::days(DEFAULT_RANGE_DAYS));
        if from > to {
            return Err(Error::invalid(format!(
                "parameter 'from' ({from}) is after 'to' ({to})"
            )));
        }
        let days = (to - from).num_days();
        if days > MAX_RANGE_DAYS {
            return Err(Error::invalid(format!(
                "the range from {from} to {to} spans {days} days; at most {MAX_RANGE_DAYS} days are allowed"
            )));
        }
        Ok(DateRange { from, to })
    }

    /// The first instant of `from` (UTC).
    pub fn start(&self) -> NaiveDateTime {
        self.from.and_hms_opt(0, 0, 0).expect("midnight exists")
    }

    /// The first instant after `to` (UTC), exclusive.
    pub fn end(&self) -> NaiveDateTime {
        (self.to + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
    }
}

/// Whose jobs a caller's reports cover.
#[derive(Debug, Clone)]
pub enum Scope {
    Organization(OrgId),
    /// A workgroup admin: the printers of their workgroups, inside their organization.
    Workgroups {
        organization: OrgId,
        workgroups: Vec<i64>,
        printers: Vec<i64>,
    },
}

impl Scope {
    pub fn organization(&self) -> OrgId {
        match self {
            Scope::Organization(o)
            | Scope::Workgroups {
                organization: o, ..
            } => *o,
        }
    }
}

/// Organization admins get their organization, workgroup admins their workgroups; others 403.
pub fn scope_for(conn: &mut DbConn, user: &User) -> Result<Scope> {
    match user.access_role {
        access_role::ADMIN => Ok(Scope::Organization(user.organization_id)),
        access_role::WORKGROUP_ADMIN => {
            let workgroups: Vec<i64> = Workgroup::of_user(conn, user.id)?
                .into_iter()
                .filter(|(w, _)| w.organization_id == user.organization_id)
                .map(|(w, _)| w.id)
                .collect();
            let mut printers =
                read::printers_of_workgroups(conn, user.organization_id, &workgroups)?;
            printers.sort_unstable();
            printers.dedup();
            Ok(Scope::Workgroups {
                organization: user.organization_id,
                workgroups,
                printers,
            })
        }
        _ => Err(Error::denied(
            "Reports are for organization admins and workgroup admins",
        )),
    }
}

/// One value of a report row, borrowed from the row it was read from: a report of a million
/// rows formats each value straight into the output instead of into a string of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a str),
    /// `YYYY-MM-DD HH:MM:SS` (UTC).
    DateTime(NaiveDateTime),
    /// Seconds, as `H:MM:SS`.
    Hms(i64),
}

impl Cell<'_> {
    /// Appends the value as text (nothing for null): what a CSV cell holds.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        match *self {
            Cell::Null => {}
            Cell::Int(i) => out.extend_from_slice(num.format(i).as_bytes()),
            Cell::Float(f) => {
                use std::io::Write;
                let _ = write!(out, "{f}");
            }
            Cell::Text(t) => out.extend_from_slice(t.as_bytes()),
            Cell::DateTime(t) => write_datetime(t, out),
            Cell::Hms(seconds) => {
                let s = seconds.max(0);
                out.extend_from_slice(num.format(s / 3600).as_bytes());
                out.push(b':');
                two_digits(s / 60 % 60, out);
                out.push(b':');
                two_digits(s % 60, out);
            }
        }
    }
}

fn two_digits(n: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// [`DATETIME`] without going through chrono's format machinery (a report writes one or two
/// per row); years outside 0..=9999 take chrono's own form.
fn write_datetime(t: NaiveDateTime, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let year = i64::from(t.year());
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(t.format(DATETIME).to_string().as_bytes());
        return;
    }
    two_digits(year / 100, out);
    two_digits(year % 100, out);
    for (sep, n) in [
        (b'-', t.month()),
        (b'-', t.day()),
        (b' ', t.hour()),
        (b':', t.minute()),
        (b':', t.second()),
    ] {
        out.push(sep);
        two_digits(i64::from(n), out);
    }
}

/// Seconds as `H:MM:SS` (hours unbounded).
pub fn hms(seconds: i64) -> String {
    let mut out = Vec::new();
    Cell::Hms(seconds).write_text(&mut out);
    String::from_utf8(out).expect("digits and colons")
}

/// The status word of a job: DONE, CANCELLED_WEB (cancelled through the API or the web),
/// CANCELLED_PRINTER (cancelled on the printer), CANCELLED (other aborts), FAILED, IN_PROGRESS,
/// QUEUED.
pub fn status_word(status: JobStatus, source: Option<&str>) -> &'static str {
    match status {
        JobStatus::Finished => "DONE",
        JobStatus::Aborted => match source {
            Some(cancel_source::CANCELLED_WEB) => cancel_source::CANCELLED_WEB,
            Some(cancel_source::CANCELLED_PRINTER) => cancel_source::CANCELLED_PRINTER,
            _ => "CANCELLED",
        },
        JobStatus::Failed => "FAILED",
        JobStatus::InProgress => "IN_PROGRESS",
        JobStatus::Queued => "QUEUED",
    }
}

/// "Cancel Reason": the label of the reason the person who cancelled chose. When nobody chose
/// one, a job the printer or the server ended says why in words; a web cancel without a
/// choice (also every one from before reasons existed) has none.
pub fn cancel_reason_text<'a>(reason: Option<&'a str>, source: Option<&str>) -> Option<&'a str> {
    if let Some(r) = reason {
        // A stored code always parses; anything else is shown as stored rather than hidden.
        return Some(CancelReason::from_code(r).map_or(r, |c| c.label()));
    }
    let words = match source? {
        cancel_source::CANCELLED_PRINTER => "Cancelled on the printer",
        cancel_source::STOPPED_ON_PRINTER => "Stopped on the printer",
        cancel_source::PRINTER_ERROR => "Printer error",
        cancel_source::AGENT_RESET => "Printer agent restarted",
        cancel_source::NOT_CHARGEABLE => "Could not be charged",
        _ => return None,
    };
    Some(words)
}

/// What the parameters of `get_custom_report` ask for.
#[derive(Debug, Clone, Default)]
pub struct CustomReportRequest {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `fields`, as sent (comma lists, or the elements of an array).
    pub fields: Vec<String>,
    pub all_fields: bool,
    pub workgroups: bool,
}

/// A checked custom report, ready to be read batch by batch.
#[derive(Debug, Clone)]
pub struct CustomReport {
    pub scope: Scope,
    pub range: DateRange,
    pub columns: Vec<Column>,
    /// Printer id → the ids, names and join passwords of its workgroups the caller may see,
    /// each joined with commas; only loaded with `workgroups=1`.
    workgroups: HashMap<i64, [String; 3]>,
}

/// Checks the caller and the parameters of `get_custom_report`. Everything that can be refused
/// is refused here, before any row is read.
pub fn custom_report(
    conn: &mut DbConn,
    user: &User,
    req: &CustomReportRequest,
    today: NaiveDate,
) -> Result<CustomReport> {
    let scope = scope_for(conn, user)?;
    let range = DateRange::parse(req.from.as_deref(), req.to.as_deref(), today)?;
    // With all_fields=1, `fields` is ignored, as documented (clients send anything there).
    let requested = if req.all_fields {
        Vec::new()
    } else {
        parse_fields("fields", req.fields.iter().map(String::as_str))?
    };
    let fields = if req.all_fields {
        Field::ALL.to_vec()
    } else if !requested.is_empty() {
        requested
    } else {
        let org = Organization::find(conn, scope.organization())?
            .ok_or_else(|| Error::internal("user without organization"))?;
        organization_fields(&org)
    };
    let mut columns: Vec<Column> = fields.into_iter().map(Column::Field).collect();
    let mut workgroups: HashMap<i64, [String; 3]> = HashMap::new();
    if req.workgroups {
        columns.extend([
            Column::WorkgroupIds,
            Column::WorkgroupNames,
            Column::WorkgroupPasswords,
        ]);
        // A workgroup admin sees only their own workgroups (and their passwords).
        let own = match &scope {
            Scope::Workgroups { workgroups, .. } => Some(workgroups.as_slice()),
            Scope::Organization(_) => None,
        };
        let rows = read::printer_workgroup_names(conn, scope.organization(), own)?;
        for (printer, id, name, password) in rows {
            let joined = workgroups.entry(printer).or_default();
            for (list, item) in joined.iter_mut().zip([id.to_string(), name, password]) {
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(&item);
            }
        }
    }
    Ok(CustomReport {
        scope,
        range,
        columns,
        workgroups,
    })
}

/// A printer as a report names it.
#[derive(Debug)]
pub struct PrinterLabel {
    pub name: String,
    pub kind: Option<String>,
}

/// A user as a report names them.
#[derive(Debug)]
pub struct Person {
    pub email: String,
    pub firstname: String,
    pub lastname: String,
}

/// A report row: the job and the names it points at (shared with the other rows that point at
/// the same printer, file or user; `None` when no column of the report shows them).
#[derive(Debug)]
pub struct ReportRow {
    pub job: ReportJob,
    pub printer: Option<Arc<PrinterLabel>>,
    pub file_name: Option<Arc<str>>,
    pub user: Option<Arc<Person>>,
    pub started_by: Option<Arc<Person>>,
}

/// Names of a kind kept at most across batches: a farm's printers, users and files recur from
/// batch to batch and are read once, yet a report over more of them than this (every job its
/// own file) keeps memory flat.
const NAMES_KEPT: usize = 20_000;
/// Ids per lookup query (SQLite binds each one).
const IDS_PER_QUERY: usize = 5_000;

/// The names report rows point at, read by id for each batch (only those not known yet)
/// instead of joined to every row: joined to each of a million rows, Postgres spent more on
/// the joins than on the jobs.
#[derive(Debug, Default)]
pub struct Names {
    printers: HashMap<PrinterId, Arc<PrinterLabel>>,
    files: HashMap<FileId, Arc<str>>,
    users: HashMap<UserId, Arc<Person>>,
    want_printers: bool,
    want_files: bool,
    want_users: bool,
    want_starters: bool,
}

/// Reads into `known` the names of the `wanted` ids it lacks. When that would keep more than
/// `keep`, it starts over with this batch's ids alone.
fn learn<K: Copy + Eq + Hash + Ord, V>(
    known: &mut HashMap<K, V>,
    keep: usize,
    wanted: impl Iterator<Item = K>,
    mut read: impl FnMut(&[K]) -> Result<Vec<(K, V)>>,
) -> Result<()> {
    let mut ids: Vec<K> = wanted.collect();
    ids.sort_unstable();
    ids.dedup();
    let missing = ids.iter().filter(|id| !known.contains_key(id)).count();
    if missing == 0 {
        return Ok(());
    }
    if known.len() + missing > keep {
        known.clear();
    } else {
        ids.retain(|id| !known.contains_key(id));
    }
    for chunk in ids.chunks(IDS_PER_QUERY) {
        known.extend(read(chunk)?);
    }
    Ok(())
}

impl Names {
    /// Names for the columns of `report`: only the kinds one of them shows are read.
    pub fn for_report(report: &CustomReport) -> Names {
        Names {
            want_printers: report.has(Field::PrinterName) || report.has(Field::PrinterType),
            want_files: report.has(Field::FileName),
            want_users: [Field::Email, Field::Fname, Field::Lname]
                .iter()
                .any(|f| report.has(*f)),
            want_starters: report.has(Field::StartedByEmail),
            ..Names::default()
        }
    }

    /// The rows of `jobs`, with their names (read here when not known yet).
    pub fn rows(&mut self, conn: &mut DbConn, jobs: Vec<ReportJob>) -> Result<Vec<ReportRow>> {
        if self.want_printers {
            learn(
                &mut self.printers,
                NAMES_KEPT,
                jobs.iter().map(|j| j.printer_id),
                |ids| {
                    Ok(read::report_printers(conn, ids)?
                        .into_iter()
                        .map(|(id, name, kind)| (id, Arc::new(PrinterLabel { name, kind })))
                        .collect())
                },
            )?;
        }
        if self.want_files {
            learn(
                &mut self.files,
                NAMES_KEPT,
                jobs.iter().map(|j| j.file_id),
                |ids| {
                    Ok(read::report_files(conn, ids)?
                        .into_iter()
                        .map(|(id, name)| (id, Arc::from(name)))
                        .collect())
                },
            )?;
        }
        if self.want_users || self.want_starters {
            let owners = jobs.iter().filter(|_| self.want_users).map(|j| j.user_id);
            let starters = jobs
                .iter()
                .filter(|_| self.want_starters)
                .filter_map(|j| j.started_by);
            learn(&mut self.users, NAMES_KEPT, owners.chain(starters), |ids| {
                Ok(read::report_users(conn, ids)?
                    .into_iter()
                    .map(|(id, email, firstname, lastname)| {
                        let person = Person {
                            email,
                            firstname,
                            lastname,
                        };
                        (id, Arc::new(person))
                    })
                    .collect())
            })?;
        }
        // A kind no column shows was never read: its map is empty. Owners and starters share
        // the users' map.
        let (owners, starters) = (self.want_users, self.want_starters);
        Ok(jobs
            .into_iter()
            .map(|job| ReportRow {
                printer: self.printers.get(&job.printer_id).cloned(),
                file_name: self.files.get(&job.file_id).cloned(),
                user: self.users.get(&job.user_id).filter(|_| owners).cloned(),
                started_by: job
                    .started_by
                    .and_then(|s| self.users.get(&s).filter(|_| starters).cloned()),
                job,
            })
            .collect())
    }
}

/// One query's worth of report rows.
pub struct Batch {
    rows: Vec<ReportRow>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The job id to read the next batch after.
    pub fn last_id(&self) -> Option<i64> {
        self.rows.last().map(|r| r.job.id)
    }
}

fn opt_text(s: &Option<String>) -> Cell<'_> {
    s.as_deref().map_or(Cell::Null, Cell::Text)
}

impl CustomReport {
    pub fn headers(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.header()).collect()
    }

    pub fn types(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.type_name()).collect()
    }

    fn has(&self, f: Field) -> bool {
        self.columns.contains(&Column::Field(f))
    }

    /// The next rows after job id `after` (ascending job id), at most `limit`. An empty or
    /// short batch means the report is complete.
    pub fn batch(
        &self,
        conn: &mut DbConn,
        names: &mut Names,
        after: i64,
        limit: i64,
    ) -> Result<Batch> {
        let printers = match &self.scope {
            Scope::Workgroups { printers, .. } => Some(printers.as_slice()),
            Scope::Organization(_) => None,
        };
        let jobs = read::report_jobs(
            conn,
            &read::ReportFilter {
                organization: self.scope.organization(),
                printers,
                from: self.range.start(),
                until: self.range.end(),
            },
            after,
            limit,
        )?;
        Ok(Batch {
            rows: names.rows(conn, jobs)?,
        })
    }

    /// Calls `f` with the cells of each row of `batch`, in order, until it breaks.
    pub fn each_row<'a>(
        &'a self,
        batch: &'a Batch,
        now: NaiveDateTime,
        mut f: impl FnMut(&[Cell<'a>]) -> Result<ControlFlow<()>>,
    ) -> Result<ControlFlow<()>> {
        let mut cells = Vec::with_capacity(self.columns.len());
        for r in &batch.rows {
            cells.clear();
            cells.extend(self.columns.iter().map(|c| self.cell(*c, r, now)));
            if f(&cells)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    fn cell<'a>(&'a self, column: Column, r: &'a ReportRow, now: NaiveDateTime) -> Cell<'a> {
        let j = &r.job;
        let groups = |i: usize| {
            self.workgroups
                .get(&j.printer_id.0)
                .map_or(Cell::Text(""), |g| Cell::Text(&g[i]))
        };
        let person = |p: &'a Option<Arc<Person>>, text: fn(&Person) -> &str| {
            Cell::Text(p.as_deref().map_or("", text))
        };
        match column {
            Column::Field(f) => match f {
                Field::JobId => Cell::Int(j.id),
                Field::PrinterId => Cell::Int(j.printer_id.0),
                Field::PrinterName => Cell::Text(r.printer.as_deref().map_or("", |p| &p.name)),
                Field::PrinterType => r
                    .printer
                    .as_deref()
                    .and_then(|p| p.kind.as_deref())
                    .map_or(Cell::Null, Cell::Text),
                Field::FileId => Cell::Int(j.file_id.0),
                Field::FileName => Cell::Text(r.file_name.as_deref().unwrap_or("")),
                Field::PrintDate => Cell::DateTime(j.started_at.unwrap_or(j.created_at)),
                Field::Email => person(&r.user, |p| &p.email),
                Field::Fname => person(&r.user, |p| &p.firstname),
                Field::Lname => person(&r.user, |p| &p.lastname),
                Field::Filament => Cell::Float(j.weight),
                // What was charged; before a start, what the material would cost.
                Field::Cost => j.cost.or(j.file_cost).map_or(Cell::Null, Cell::Float),
                Field::Status => Cell::Text(status_word(j.status_id, j.cancel_source.as_deref())),
                Field::PrintTime => Cell::Hms(i64::from(j.printing_duration)),
                // The column promises H:MM:SS: a job that never ran printed for 0:00:00
                // (dashboards split this text; a null crashed one).
                Field::RealPrintTime => Cell::Hms(match j.started_at {
                    None => 0,
                    Some(s) if j.status_id == JobStatus::InProgress => (now - s).num_seconds(),
                    Some(_) => i64::from(j.print_time),
                }),
                Field::CancelReason => {
                    cancel_reason_text(j.cancel_reason.as_deref(), j.cancel_source.as_deref())
                        .map_or(Cell::Null, Cell::Text)
                }
                Field::CancelDetails => opt_text(&j.cancel_details),
                Field::StartedByEmail => r
                    .started_by
                    .as_deref()
                    .map_or(Cell::Null, |p| Cell::Text(&p.email)),
                Field::Feedback => opt_text(&j.feedback),
            },
            Column::WorkgroupIds => groups(0),
            Column::WorkgroupNames => groups(1),
            Column::WorkgroupPasswords => groups(2),
        }
    }
}

/// One line of `get_finished_jobs_report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedJob {
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub filename: String,
    pub ended_at: NaiveDateTime,
}

impl FinishedJob {
    pub fn endtime(&self) -> String {
        self.ended_at.format(DATETIME).to_string()
    }
}

/// `get_finished_jobs_report`: jobs finished (77) in the range, by end time, oldest first.
pub fn finished_jobs(
    conn: &mut DbConn,
    user: &User,
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<Vec<FinishedJob>> {
    let scope = scope_for(conn, user)?;
    let range = DateRange::parse(from, to, today)?;
    let printers = match &scope {
        Scope::Workgroups { printers, .. } => Some(printers.as_slice()),
        Scope::Organization(_) => None,
    };
    let rows = read::finished_jobs(
        conn,
        &read::ReportFilter {
            organization: scope.organization(),
            printers,
            from: range.start(),
            until: range.end(),
        },
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(email, firstname, lastname, filename, ended)| {
            Some(FinishedJob {
                email,
                firstname,
                lastname,
                filename,
                ended_at: ended?,
            })
        })
        .collect())
}

/// Jobs of one day by outcome (the day a job was created, as the custom report counts it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayOutcomes {
    pub day: NaiveDate,
    pub done: i64,
    pub cancelled: i64,
    pub failed: i64,
    /// Queued or printing now.
    pub open: i64,
}

/// A name and an amount, for the charts' bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount {
    pub name: String,
    pub value: f64,
}

/// What the console's report charts show, over the same jobs as `get_custom_report` for the
/// same person and range.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub days: Vec<DayOutcomes>,
    /// Share of the range's hours each printer in scope spent printing (0..1), busiest first.
    pub utilisation: Vec<Amount>,
    /// Print hours per workgroup (a printer in two workgroups counts for both), most first.
    pub workgroup_hours: Vec<Amount>,
    /// The ten people with the most print hours.
    pub top_users: Vec<Amount>,
    /// Cancelled jobs per reason, most first.
    pub cancel_reasons: Vec<Amount>,
    pub jobs: i64,
    pub print_hours: f64,
    pub filament_g: f64,
}

fn ranked(map: HashMap<String, f64>, keep: usize) -> Vec<Amount> {
    let mut v: Vec<Amount> = map
        .into_iter()
        .map(|(name, value)| Amount { name, value })
        .collect();
    v.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.name.cmp(&b.name))
    });
    v.truncate(keep);
    v
}

/// The charts' figures for `range`, read in batches (memory stays flat however many jobs).
pub fn summary(
    conn: &mut DbConn,
    user: &User,
    range: DateRange,
    now: NaiveDateTime,
) -> Result<Summary> {
    let scope = scope_for(conn, user)?;
    let printers_only = match &scope {
        Scope::Workgroups { printers, .. } => Some(printers.clone()),
        Scope::Organization(_) => None,
    };
    let own_workgroups = match &scope {
        Scope::Workgroups { workgroups, .. } => Some(workgroups.clone()),
        Scope::Organization(_) => None,
    };
    let mut groups_of: HashMap<i64, Vec<String>> = HashMap::new();
    for (printer, _, name, _) in
        read::printer_workgroup_names(conn, scope.organization(), own_workgroups.as_deref())?
    {
        groups_of.entry(printer).or_default().push(name);
    }
    let span_days = (range.to - range.from).num_days() + 1;
    let mut days: Vec<DayOutcomes> = (0..span_days)
        .map(|i| DayOutcomes {
            day: range.from + Duration::days(i),
            ..DayOutcomes::default()
        })
        .collect();
    // Every printer in scope has a bar, idle ones too (by id: two printers may share a name).
    let mut printer_hours: HashMap<i64, (String, f64)> = HashMap::new();
    for (id, name) in read::printer_names(conn, scope.organization())? {
        if printers_only.as_ref().is_none_or(|p| p.contains(&id)) {
            printer_hours.insert(id, (name, 0.0));
        }
    }
    let mut group_hours: HashMap<String, f64> = HashMap::new();
    // By id while reading (emails are read once at the end, for the users who printed).
    let mut user_hours: HashMap<UserId, f64> = HashMap::new();
    let mut reasons: HashMap<String, f64> = HashMap::new();
    let mut out = Summary::default();
    let filter = read::ReportFilter {
        organization: scope.organization(),
        printers: printers_only.as_deref(),
        from: range.start(),
        until: range.end(),
    };
    let mut after = 0;
    loop {
        let rows = read::report_jobs(conn, &filter, after, 5_000)?;
        for r in &rows {
            out.jobs += 1;
            out.filament_g += r.weight;
            let i = (r.created_at.date() - range.from).num_days();
            if let Some(d) = usize::try_from(i).ok().and_then(|i| days.get_mut(i)) {
                match r.status_id {
                    JobStatus::Finished => d.done += 1,
                    JobStatus::Aborted => d.cancelled += 1,
                    JobStatus::Failed => d.failed += 1,
                    JobStatus::Queued | JobStatus::InProgress => d.open += 1,
                }
            }
            let seconds = match r.started_at {
                None => 0,
                Some(s) if r.status_id == JobStatus::InProgress => (now - s).num_seconds(),
                Some(_) => i64::from(r.print_time),
            };
            let hours = seconds.max(0) as f64 / 3600.0;
            out.print_hours += hours;
            // A job's organization is its printer's, and printers never change organization:
            // every job's printer has its bar.
            if let Some((_, h)) = printer_hours.get_mut(&r.printer_id.0) {
                *h += hours;
            }
            match groups_of.get(&r.printer_id.0) {
                Some(names) => {
                    for n in names {
                        *group_hours.entry(n.clone()).or_default() += hours;
                    }
                }
                None => *group_hours.entry("(no workgroup)".into()).or_default() += hours,
            }
            *user_hours.entry(r.user_id).or_default() += hours;
            if r.status_id == JobStatus::Aborted {
                let why =
                    cancel_reason_text(r.cancel_reason.as_deref(), r.cancel_source.as_deref())
                        .unwrap_or("No reason given");
                *reasons.entry(why.to_string()).or_default() += 1.0;
            }
        }
        match rows.last() {
            Some(last) if rows.len() == 5_000 => after = last.id,
            _ => break,
        }
    }
    let ids: Vec<UserId> = user_hours.keys().copied().collect();
    let mut email_hours: HashMap<String, f64> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        for (id, email) in User::emails(conn, chunk)? {
            email_hours.insert(email, user_hours[&id]);
        }
    }
    let range_hours = span_days as f64 * 24.0;
    out.days = days;
    let mut utilisation: Vec<Amount> = printer_hours
        .into_values()
        .map(|(name, hours)| Amount {
            value: (hours / range_hours).min(1.0),
            name,
        })
        .collect();
    utilisation.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.name.cmp(&b.name))
    });
    out.utilisation = utilisation;
    out.workgroup_hours = ranked(group_hours, usize::MAX);
    out.top_users = ranked(email_hours, 10);
    out.cancel_reasons = ranked(reasons, usize::MAX);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges() {
        let today = day("2024-03-31");
        let r = DateRange::parse(None, None, today).unwrap();
        assert_eq!((r.from, r.to), (day("2024-02-29"), today));
        assert_eq!(r.end().to_string(), "2024-04-01 00:00:00");
        // 2024 is a leap year: 2023-04-01 .. 2024-03-31 is 365 days apart.
        assert!(DateRange::parse(Some("2023-04-01"), None, today).is_ok());
        let e = DateRange::parse(Some("2023-03-31"), None, today).unwrap_err();
        assert!(e.to_string().contains("366 days"), "{e}");
        assert!(DateRange::parse(Some("2024-04-01"), None, today).is_err());
        let e = DateRange::parse(Some("31.03.2024"), None, today).unwrap_err();
        assert!(e.to_string().contains("'from'"), "{e}");
        let e = DateRange::parse(None, Some("2024-02-30"), today).unwrap_err();
        assert!(e.to_string().contains("'to'"), "{e}");
    }

    #[test]
    fn names_are_read_once_and_kept_bounded() {
        let mut known: HashMap<i64, String> = HashMap::new();
        let mut asked: Vec<Vec<i64>> = Vec::new();
        let mut batch = |known: &mut HashMap<i64, String>, ids: &[i64]| {
            learn(known, 4, ids.iter().copied(), |chunk| {
                asked.push(chunk.to_vec());
                Ok(chunk.iter().map(|i| (*i, format!("n{i}"))).collect())
            })
            .unwrap();
            for i in ids {
                assert_eq!(known[i], format!("n{i}"), "every id of the batch is known");
            }
        };
        batch(&mut known, &[3, 1, 3, 2]);
        batch(&mut known, &[2, 1]);
        batch(&mut known, &[1, 4]);
        // Five would be more than kept: this batch's ids alone, read again.
        batch(&mut known, &[5, 1]);
        assert_eq!(known.len(), 2);
        assert_eq!(asked, vec![vec![1, 2, 3], vec![4], vec![1, 5]]);
    }

    #[test]
    fn cells_as_text() {
        let text = |c: Cell| {
            let mut out = Vec::new();
            c.write_text(&mut out);
            String::from_utf8(out).unwrap()
        };
        for s in [
            "2026-12-04 09:05:07",
            "0999-01-31 23:59:59",
            "0000-02-29 00:00:00",
            "9999-12-31 23:59:59",
        ] {
            let t = NaiveDateTime::parse_from_str(s, DATETIME).unwrap();
            assert_eq!(text(Cell::DateTime(t)), s);
        }
        let far = NaiveDate::from_ymd_opt(12345, 6, 7)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap();
        assert_eq!(text(Cell::DateTime(far)), far.format(DATETIME).to_string());
        assert_eq!(text(Cell::Hms(-5)), "0:00:00");
        assert_eq!(text(Cell::Float(3.83)), "3.83");
        assert_eq!(text(Cell::Float(2.0)), "2");
        assert_eq!(text(Cell::Int(-12)), "-12");
        assert_eq!(text(Cell::Null), "");
    }

    #[test]
    fn fields_and_words() {
        let f = parse_fields("fields", ["email, JOB_ID", "job_id"]).unwrap();
        assert_eq!(f, vec![Field::JobId, Field::Email]);
        let e = parse_fields("fields", ["job_id,bogus,nope"]).unwrap_err();
        assert!(e.to_string().contains("bogus, nope"), "{e}");
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(956), "0:15:56");
        assert_eq!(hms(93_784), "26:03:04");
        assert_eq!(
            status_word(JobStatus::Aborted, Some("CANCELLED_WEB")),
            "CANCELLED_WEB"
        );
        assert_eq!(
            status_word(JobStatus::Aborted, Some("CANCELLED_PRINTER")),
            "CANCELLED_PRINTER"
        );
        assert_eq!(
            status_word(JobStatus::Aborted, Some("STOPPED_ON_PRINTER")),
            "CANCELLED"
        );
        assert_eq!(status_word(JobStatus::Aborted, None), "CANCELLED");
        assert_eq!(
            status_word(JobStatus::Failed, Some("PRINTER_ERROR")),
            "FAILED"
        );
        // The person's choice wins; the source speaks when nobody chose; an old web cancel
        // (its source moved out of cancel_reason by the migration) has no reason.
        assert_eq!(
            cancel_reason_text(Some("print_quality"), Some("CANCELLED_WEB")),
            Some("Print quality")
        );
        assert_eq!(
            cancel_reason_text(None, Some("PRINTER_ERROR")),
            Some("Printer error")
        );
        assert_eq!(cancel_reason_text(None, Some("CANCELLED_WEB")), None);
        assert_eq!(cancel_reason_text(None, None), None);
        assert_eq!(
            report_fields_setting(&["email,job_id".into()]).unwrap(),
            Some("job_id,email".into())
        );
        assert_eq!(report_fields_setting(&["default".into()]).unwrap(), None);
        assert!(report_fields_setting(&[",".into()]).is_err());
    }
}
