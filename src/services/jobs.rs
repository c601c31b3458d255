//! The print-job queue: creating jobs, starting them (one per printer, never twice), charging
//! balance/quota/share prints exactly once, following the agent's reports to the job's end,
//! and the auto-start of the next queued job.

use chrono::{Datelike, Duration, NaiveDateTime};
use serde_json::{json, Map, Value};

use crate::db::models::{
    read, FarmCopy, FileId, Job, JobChange, JobId, JobStatus, NewJob, Organization, Printer,
    PrinterCommand, PrinterId, PrinterShare, PrinterState, StoredFile, User, UserId,
};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::auth::{random_token, token_hash};
use crate::services::job_states::{cancel_source, CancelReason};
use crate::services::printers::{self as printer_access, Access};
use crate::services::{commands, maintenance};

/// What job transitions need from outside the database.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Base URL agents download G-code from: `server.public_url`, or empty for a path that
    /// the agent channel resolves against the agent's own poll.
    pub base_url: String,
    pub offline_after: Duration,
}

fn not_found(id: JobId) -> Error {
    Error::not_found(format!("Job {id} not found"))
}

fn lock_printer(conn: &mut DbConn, id: PrinterId) -> Result<Printer> {
    db::lock_printer(conn, id)?.ok_or_else(|| Error::not_found(format!("Printer {id} not found")))
}

fn lock_user(conn: &mut DbConn, id: UserId) -> Result<User> {
    db::lock_user(conn, id)?.ok_or_else(|| Error::internal("job without user"))
}

fn lock_share(conn: &mut DbConn, id: i64) -> Result<Option<PrinterShare>> {
    Ok(db::lock_share(conn, id)?)
}

/// Why a printer cannot start a job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartBlocker {
    Offline,
    InError(Option<String>),
    Busy,
    Maintenance(String),
    TrayNotClear,
    NotReady(String),
}

impl StartBlocker {
    /// The printer cannot take jobs at all now: `print_file` refuses even to queue a "print
    /// now" on it, where a busy printer or a used tray only make the job wait its turn.
    pub fn refuses_new_jobs(&self) -> bool {
        matches!(self, StartBlocker::Offline | StartBlocker::InError(_))
    }
}

impl From<StartBlocker> for Error {
    fn from(b: StartBlocker) -> Error {
        Error::Conflict(
            Conflict::WrongState,
            match b {
                StartBlocker::Offline => "The printer is offline".into(),
                StartBlocker::InError(detail) => format!(
                    "The printer is in error{}",
                    detail.map(|e| format!(": {e}")).unwrap_or_default()
                ),
                StartBlocker::Busy => "The printer is busy with another job".into(),
                StartBlocker::Maintenance(note) => {
                    format!("The printer is in maintenance: {note}")
                }
                StartBlocker::TrayNotClear => "The build tray is not clear; clear it first".into(),
                StartBlocker::NotReady(state) => {
                    format!("The printer is not ready (state {state})")
                }
            },
        )
    }
}

/// Why a printer cannot start a job now, if it cannot.
pub fn start_blocker(
    p: &Printer,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Option<StartBlocker> {
    let state = printer_access::display_state(p, offline_after, now);
    match state {
        PrinterState::NotConnected => Some(StartBlocker::Offline),
        PrinterState::Error => Some(StartBlocker::InError(p.last_error.clone())),
        _ if p.current_job_id.is_some() || state.is_busy() => Some(StartBlocker::Busy),
        _ if p.maintenance_note.is_some() => Some(StartBlocker::Maintenance(
            p.maintenance_note.clone().unwrap_or_default(),
        )),
        PrinterState::BedNotClear => Some(StartBlocker::TrayNotClear),
        _ if !p.tray_clear => Some(StartBlocker::TrayNotClear),
        PrinterState::Ready => None,
        other => Some(StartBlocker::NotReady(other.to_string())),
    }
}

fn month(now: NaiveDateTime) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

/// Prints this user has started in the current month.
pub fn quota_used(user: &User, now: NaiveDateTime) -> i32 {
    if user.quota_period.as_deref() == Some(month(now).as_str()) {
        user.quota_used
    } else {
        0
    }
}

/// Refuses a job its user cannot pay for: monthly quota, balance, share prints.
pub fn check_means(
    conn: &mut DbConn,
    user: &User,
    share: Option<&PrinterShare>,
    cost: Option<f64>,
    now: NaiveDateTime,
) -> Result<()> {
    if let Some(q) = user.monthly_quota {
        if quota_used(user, now) >= q {
            return Err(Error::denied("Your monthly print quota is used up"));
        }
    }
    if let (Some(balance), Some(cost)) = (user.balance, cost) {
        if balance < cost {
            return Err(Error::denied(format!(
                "Your balance ({balance:.2}) does not cover this print ({cost:.2})"
            )));
        }
    }
    if let Some(s) = share {
        let s = PrinterShare::find(conn, s.id)?
            .ok_or_else(|| Error::denied("The share of this printer was removed"))?;
        if s.number_of_prints.is_some_and(|n| s.prints_used >= n) {
            return Err(Error::denied(
                "The prints of your share of this printer are used up",
            ));
        }
    }
    Ok(())
}

/// The share through which the user reaches a printer, when that is their only way in.
fn share_used(
    conn: &mut DbConn,
    user: &User,
    printer: &Printer,
    access: Access,
) -> Result<Option<PrinterShare>> {
    if access == Access::Manage {
        return Ok(None);
    }
    let share = PrinterShare::find_for(conn, printer.id, &user.email)?;
    let via_workgroup = printer.organization_id == user.organization_id && {
        let groups: Vec<i64> = crate::db::models::PrinterWorkgroups::of(conn, &[printer.id])?
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        crate::db::models::Workgroup::of_user(conn, user.id)?
            .iter()
            .any(|(w, _)| groups.contains(&w.id))
    };
    Ok(if via_workgroup { None } else { share })
}

struct Estimates {
    duration: i32,
    material: String,
    layer_height: f64,
    extruders: String,
    weight: f64,
    heated_bed: bool,
    bed_temp: i32,
    raft: bool,
    supports: bool,
    colors: i32,
}

fn estimates(file: &StoredFile) -> Estimates {
    let a = file.analysis_json();
    let f = |k: &str| a.get(k).and_then(Value::as_f64);
    let temps: Vec<f64> = a
        .get("nozzle_temperatures")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let extruders = json!({
        "R": temps.first().map_or(0, |t| t.round() as i64),
        "L": temps.get(1).map_or(0, |t| t.round() as i64),
    })
    .to_string();
    Estimates {
        duration: f("slicer_estimated_time_s")
            .or(f("estimated_time_s"))
            .unwrap_or(0.0)
            .round() as i32,
        material: a
            .get("filament_type")
            .and_then(Value::as_str)
            .unwrap_or("PLA")
            .to_string(),
        layer_height: f("layer_height").unwrap_or(0.0),
        extruders,
        weight: (f("filament_weight_g").unwrap_or(0.0) * 100.0).round() / 100.0,
        heated_bed: a
            .get("heated_bed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        bed_temp: f("bed_temperature").unwrap_or(0.0).round() as i32,
        raft: a.get("raft").and_then(Value::as_bool).unwrap_or(false),
        supports: a.get("supports").and_then(Value::as_bool).unwrap_or(false),
        colors: a
            .get("extruders_used")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(1) as i32,
    }
}

/// A file's estimated print time in seconds (the slicer's figure, else ours; 0 unknown).
pub fn estimated_duration(file: &StoredFile) -> i32 {
    estimates(file).duration
}

/// Material cost from the organization's prices (per kg, by material name).
fn material_cost(org: &Organization, material: &str, weight_g: f64) -> Option<f64> {
    let prices: Map<String, Value> = org
        .material_prices
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())?;
    let per_kg = prices
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(material))
        .or_else(|| prices.iter().find(|(k, _)| k.as_str() == "default"))
        .and_then(|(_, v)| v.as_f64())?;
    Some((weight_g / 1000.0 * per_kg * 100.0).round() / 100.0)
}

/// Updates a job and stamps the next change-counter value on it.
fn change(conn: &mut DbConn, job_id: JobId, change: JobChange) -> Result<Job> {
    Job::change(conn, job_id, change, db::now())?.ok_or_else(|| not_found(job_id))
}

pub struct Created {
    pub job: Job,
    /// Set when the job started at once: the printer to wake.
    pub started: bool,
}

/// `print_file`: queues the caller's G-code on a printer they may use, and starts it at once
/// unless `only_queue` (or the printer is busy / its tray not clear: then it waits its turn).
pub fn print_file(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
    printer_id: PrinterId,
    only_queue: bool,
    ctx: &JobContext,
) -> Result<Created> {
    db::write_transaction(conn, |c| {
        let now = db::now();
        let (printer, access) = printer_access::visible(c, user, printer_id)?;
        if !only_queue && access < Access::Print {
            return Err(Error::denied(
                "You may only queue jobs on this printer (only_queue=1)",
            ));
        }
        let file = StoredFile::find_owned(c, user.id, file_id)?
            .ok_or_else(|| Error::not_found(format!("File {file_id} not found")))?;
        if !file.is_printable() {
            return Err(Error::invalid(format!(
                "File {file_id} is not a printable G-code file"
            )));
        }
        if let (Some(ft), Some(pt)) = (file.printer_type_id, printer.printer_type_id) {
            if ft != pt {
                return Err(Error::invalid(format!(
                    "File {file_id} was made for another printer type ({ft}); this printer is type {pt}"
                )));
            }
        }
        let printer = lock_printer(c, printer.id)?;
        if !only_queue {
            if let Some(b) = start_blocker(&printer, ctx.offline_after, now)
                .filter(StartBlocker::refuses_new_jobs)
            {
                return Err(b.into());
            }
        }
        let job = queue_job(c, user, access, &file, &printer, None, now)?;
        // Jobs queued earlier go first.
        let first_in_line = Job::next_queued(c, printer.id)?.is_some_and(|j| j.id == job.id);
        if !only_queue && first_in_line && start_blocker(&printer, ctx.offline_after, now).is_none()
        {
            let job = start(c, job, user.id, ctx)?;
            return Ok(Created { job, started: true });
        }
        Ok(Created {
            job,
            started: false,
        })
    })
}

/// A queued job row for the user's file on the (locked) printer, its material cost from the
/// organization's prices, the share it goes through, once the user's means allow it; the
/// farm copy it prints, if any.
fn queue_job(
    c: &mut DbConn,
    user: &User,
    access: Access,
    file: &StoredFile,
    printer: &Printer,
    farm_copy_id: Option<i64>,
    now: NaiveDateTime,
) -> Result<Job> {
    let org = Organization::find(c, printer.organization_id)?
        .ok_or_else(|| Error::internal("printer without organization"))?;
    let est = estimates(file);
    let cost = material_cost(&org, &est.material, est.weight);
    let share = share_used(c, user, printer, access)?;
    check_means(c, user, share.as_ref(), cost, now)?;
    let seq = Job::next_change(c)?;
    Ok(Job::insert(
        c,
        &NewJob {
            organization_id: printer.organization_id,
            printer_id: printer.id,
            file_id: file.id,
            user_id: user.id,
            share_id: share.as_ref().map(|s| s.id),
            status_id: JobStatus::Queued,
            change_seq: seq,
            notes: None,
            percent: 0.0,
            print_time: 0,
            printing_duration: est.duration,
            material_type: &est.material,
            layer_height: est.layer_height,
            color_numbers: est.colors,
            extruders: &est.extruders,
            weight: est.weight,
            heated_bed: est.heated_bed,
            heated_bed_temperature: est.bed_temp,
            raft: est.raft,
            supports: est.supports,
            file_cost: cost,
            charged: false,
            created_at: now,
            updated_at: now,
            farm_copy_id,
        },
    )?)
}

/// The dispatcher's start of one farm-queue copy on a printer it chose (locked, ready): a job
/// row for the copy, started at once and charged like any other. The caller runs it in a
/// savepoint: a refusal (means, printer) leaves nothing behind.
pub fn start_farm_copy(
    c: &mut DbConn,
    user: &User,
    access: Access,
    file: &StoredFile,
    printer: &Printer,
    copy_id: i64,
    ctx: &JobContext,
) -> Result<Job> {
    let job = queue_job(c, user, access, file, printer, Some(copy_id), db::now())?;
    start(c, job, user.id, ctx)
}

/// Starts a queued job on its (locked, ready) printer: charges the user once, marks the tray
/// used, and queues the agent's `gcodes` command with a download link.
fn start(c: &mut DbConn, job: Job, by: UserId, ctx: &JobContext) -> Result<Job> {
    let now = db::now();
    let printer = lock_printer(c, job.printer_id)?;
    if job.status_id != JobStatus::Queued {
        return Err(Error::conflict(
            Conflict::WrongState,
            format!("Job {} is not queued", job.id),
        ));
    }
    if let Some(b) = start_blocker(&printer, ctx.offline_after, now) {
        return Err(b.into());
    }
    let file =
        StoredFile::find(c, job.file_id)?.ok_or_else(|| Error::internal("job without file"))?;
    let token = random_token();
    // The job row (and the change counter) before the user and share rows: the lock order of
    // `db::write_transaction`. A refusal below rolls the job's change back with the rest.
    let charged = job.charged;
    let job = change(
        c,
        job.id,
        JobChange {
            status_id: Some(JobStatus::InProgress),
            started_at: Some(Some(now)),
            started_by_user_id: Some(Some(by)),
            charged: Some(true),
            cost: Some(job.file_cost),
            download_token_hash: Some(Some(token_hash(&token))),
            ..Default::default()
        },
    )?;
    // Locked, so that two jobs of one person starting at once on two printers are both
    // checked against (and charged to) the balance the other left.
    let user = lock_user(c, job.user_id)?;
    let share = job
        .share_id
        .map(|s| lock_share(c, s))
        .transpose()?
        .flatten();
    check_means(c, &user, share.as_ref(), job.file_cost, now)?;
    // Charge exactly once: the job's `charged` flag is set in this same transaction.
    if !charged {
        let used = quota_used(&user, now) + 1;
        let balance = user.balance.map(|b| b - job.file_cost.unwrap_or(0.0));
        User::charge(c, user.id, used, &month(now), balance, now)?;
        if let Some(s) = &share {
            PrinterShare::count_print(c, s.id)?;
        }
    }
    Printer::take_job(c, printer.id, job.id, now)?;
    let mut extra = Map::new();
    extra.insert("is_link".into(), json!(true));
    extra.insert(
        "payload".into(),
        json!(format!(
            "{}/apiprinter/v1/download/{}/{token}",
            ctx.base_url, job.id
        )),
    );
    extra.insert("filename".into(), json!(file.filename));
    extra.insert("size".into(), json!(file.size));
    extra.insert("zip".into(), json!(file.zip));
    extra.insert("job_id".into(), json!(job.id));
    extra.insert("printing_duration".into(), json!(job.printing_duration));
    commands::enqueue(c, printer.id, "gcodes", extra, Some(job.id))?;
    Ok(job)
}

/// A job the user may act on: their own, or any job of a printer they manage. 404 otherwise.
fn actionable(c: &mut DbConn, user: &User, job_id: JobId) -> Result<(Job, Access)> {
    let job = Job::find(c, job_id)?.ok_or_else(|| not_found(job_id))?;
    let printer = Printer::find(c, job.printer_id)?.ok_or_else(|| not_found(job_id))?;
    let access = printer_access::access(c, user, &printer)?;
    match access {
        Some(Access::Manage) => Ok((job, Access::Manage)),
        Some(a) if job.user_id == user.id => Ok((job, a)),
        _ => Err(not_found(job_id)),
    }
}

/// A job the user may see: any job of a printer they can reach, or only their own ones when
/// that printer is shared from another organization (`printers::sees_all_jobs`).
pub fn visible_job(c: &mut DbConn, user: &User, job_id: JobId) -> Result<Job> {
    let job = Job::find(c, job_id)?.ok_or_else(|| not_found(job_id))?;
    let printer = Printer::find(c, job.printer_id)?.ok_or_else(|| not_found(job_id))?;
    check_visible(c, user, &job, &printer)?;
    Ok(job)
}

/// A job the user may see, with its file and its owner's email (`get_job_info`), read in one
/// statement.
pub fn job_info(
    c: &mut DbConn,
    user: &User,
    job_id: JobId,
) -> Result<(Job, crate::db::models::StoredFile, String)> {
    let (job, printer, file, email) =
        read::job_with_printer_and_file(c, job_id)?.ok_or_else(|| not_found(job_id))?;
    check_visible(c, user, &job, &printer)?;
    Ok((job, file, email))
}

/// Unknown to those who may not see it: someone else's job on a printer they cannot reach,
/// or whose jobs they see only their own of.
fn check_visible(c: &mut DbConn, user: &User, job: &Job, printer: &Printer) -> Result<()> {
    printer_access::access(c, user, printer)?.ok_or_else(|| not_found(job.id))?;
    if job.user_id != user.id && !printer_access::sees_all_jobs(user, printer) {
        return Err(not_found(job.id));
    }
    Ok(())
}

/// `job_start`: starts a queued job now (needs "can print" rights and a ready printer).
pub fn job_start(conn: &mut DbConn, user: &User, job_id: JobId, ctx: &JobContext) -> Result<Job> {
    db::write_transaction(conn, |c| {
        let (job, access) = actionable(c, user, job_id)?;
        if access < Access::Print {
            return Err(Error::denied("You may only queue jobs on this printer"));
        }
        if job.status_id != JobStatus::Queued {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Job {job_id} is not queued"),
            ));
        }
        start(c, job, user.id, ctx)
    })
}

/// "Print next": a queued job goes to the front of its printer's queue. Only those who manage
/// the printer reorder its queue (owners and organization admins, as for anyone's jobs).
pub fn move_to_front(conn: &mut DbConn, user: &User, job_id: JobId) -> Result<Job> {
    db::write_transaction(conn, |c| {
        let job = visible_job(c, user, job_id)?;
        // The printer's row lock orders this with starts and other moves on that printer.
        let printer = lock_printer(c, job.printer_id)?;
        if printer_access::access(c, user, &printer)? != Some(Access::Manage) {
            return Err(Error::denied(
                "Only those who manage this printer change the order of its queue",
            ));
        }
        if job.status_id != JobStatus::Queued {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Job {job_id} is not queued"),
            ));
        }
        let top = Job::top_priority(c, printer.id)?;
        if Job::next_queued(c, printer.id)?.is_some_and(|first| first.id == job.id) {
            return Ok(job);
        }
        change(
            c,
            job.id,
            JobChange {
                priority: Some(top.saturating_add(1)),
                ..JobChange::default()
            },
        )
    })
}

/// `job_pause` / `job_unpause`: forwards the command to the agent of a running job.
pub fn job_command(
    conn: &mut DbConn,
    user: &User,
    job_id: JobId,
    command: &str,
) -> Result<PrinterCommand> {
    db::write_transaction(conn, |c| {
        let (job, _) = actionable(c, user, job_id)?;
        if job.status_id != JobStatus::InProgress {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Job {job_id} is not printing"),
            ));
        }
        let mut extra = Map::new();
        extra.insert("job_id".into(), json!(job.id));
        commands::enqueue(c, job.printer_id, command, extra, Some(job.id))
    })
}

/// Longest `job_cancel` details and job feedback, in characters.
pub const MAX_CANCEL_DETAILS: usize = 1000;
pub const MAX_FEEDBACK: usize = 2000;

fn bounded<'a>(name: &str, text: Option<&'a str>, max: usize) -> Result<Option<&'a str>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > max => Err(Error::invalid(format!(
            "{name} must be at most {max} characters"
        ))),
        other => Ok(other),
    }
}

/// `job_cancel`: a queued job is aborted at once; a running one gets a `cancel` command and
/// ends when the agent reports it. `reason` is the person's choice from [`CancelReason`],
/// `details` free text. Returns the printer to wake, if a command was sent.
pub fn job_cancel(
    conn: &mut DbConn,
    user: &User,
    job_id: JobId,
    reason: Option<CancelReason>,
    details: Option<&str>,
) -> Result<()> {
    let details = bounded("details", details, MAX_CANCEL_DETAILS)?;
    let reason = reason.map(CancelReason::code);
    db::write_transaction(conn, |c| {
        let (job, _) = actionable(c, user, job_id)?;
        // The printer before the change counter (the lock order of `db::write_transaction`):
        // the cancel command takes the printer's next command number.
        lock_printer(c, job.printer_id)?;
        let job = Job::find(c, job.id)?.ok_or_else(|| not_found(job_id))?;
        let now = db::now();
        // A repeated cancel of a printing job without a reason keeps the one given before.
        let why = JobChange {
            cancel_source: Some(Some(cancel_source::CANCELLED_WEB)),
            cancel_reason: Some(reason.map(str::to_string).or(job.cancel_reason.clone())),
            cancel_details: Some(details.map(str::to_string).or(job.cancel_details.clone())),
            cancelled_by_user_id: Some(Some(user.id)),
            ..Default::default()
        };
        match job.status_id {
            JobStatus::Queued => {
                change(
                    c,
                    job.id,
                    JobChange {
                        status_id: Some(JobStatus::Aborted),
                        ended_at: Some(Some(now)),
                        ..why
                    },
                )?;
                Ok(())
            }
            JobStatus::InProgress => {
                change(c, job.id, why)?;
                let mut extra = Map::new();
                extra.insert("job_id".into(), json!(job.id));
                commands::enqueue(c, job.printer_id, "cancel", extra, Some(job.id))?;
                Ok(())
            }
            _ => Err(Error::conflict(
                Conflict::WrongState,
                format!("Job {job_id} has already ended"),
            )),
        }
    })
}

/// `job_feedback` (printfarm extension): the job's owner, or whoever manages its printer,
/// leaves a note on a job that has ended (finished, cancelled or failed); it fills the
/// report's "Feedback" column. A second call replaces it; an empty one clears it.
pub fn job_feedback(
    conn: &mut DbConn,
    user: &User,
    job_id: JobId,
    feedback: Option<&str>,
) -> Result<()> {
    let feedback = bounded("feedback", feedback, MAX_FEEDBACK)?;
    db::write_transaction(conn, |c| {
        let (job, _) = actionable(c, user, job_id)?;
        if job.status_id.is_active() {
            return Err(Error::conflict(Conflict::WrongState, format!(
                "Job {job_id} has not ended yet: feedback is left on a finished, cancelled or failed job"
            )));
        }
        change(
            c,
            job.id,
            JobChange {
                feedback: Some(feedback),
                ..Default::default()
            },
        )?;
        Ok(())
    })
}

fn end_job(c: &mut DbConn, job: &Job, status: JobStatus, source: Option<&str>) -> Result<()> {
    let now = db::now();
    let print_time = job.started_at.map_or(0, |s| {
        (now - s).num_seconds().clamp(0, i64::from(i32::MAX)) as i32
    });
    // A web cancel already named its source; the printer's report only confirms it.
    let source = source.filter(|_| job.cancel_source.is_none());
    change(
        c,
        job.id,
        JobChange {
            status_id: Some(status),
            ended_at: Some(Some(now)),
            print_time: Some(print_time),
            percent: Some(if status == JobStatus::Finished {
                100.0
            } else {
                job.percent
            }),
            download_token_hash: Some(None),
            cancel_source: source.map(Some),
            ..Default::default()
        },
    )?;
    Printer::release_job(c, job.printer_id, job.id)?;
    if let Some(copy) = job.farm_copy_id {
        FarmCopy::job_ended(c, copy, job.id, status == JobStatus::Finished, now)?;
    }
    maintenance::maintenance_due(c, job.printer_id, now)?;
    Ok(())
}

/// What an agent's poll tells the queue, as decoded by the agent channel.
pub struct AgentSeen<'a> {
    pub report: Option<&'a Map<String, Value>>,
    /// The agent restarted and dropped its job.
    pub reset_job: bool,
    /// An error of level 40 or more was reported.
    pub blocking_error: bool,
}

/// What an agent's report did to its running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    /// The job ended (finished, aborted or failed).
    pub ended: bool,
    /// The job row changed (its progress, or its end).
    pub changed: bool,
}

/// Follows the running job through an agent report (`before` = the printer as it was):
/// printing → ready at 100 % finished (77); `cancel` aborted (45); `error`, a blocking error or
/// `reset_job` failed (43).
pub fn follow_report(c: &mut DbConn, before: &Printer, seen: &AgentSeen) -> Result<Followed> {
    let (report, reset_job) = (seen.report, seen.reset_job);
    let Some(job_id) = before.current_job_id else {
        return Ok(Followed::default());
    };
    let Some(job) = Job::find(c, job_id)? else {
        return Ok(Followed::default());
    };
    if job.status_id != JobStatus::InProgress {
        return Ok(Followed::default());
    }
    let state = report
        .and_then(|r| r.get("state"))
        .and_then(Value::as_str)
        .map_or_else(|| before.state.clone(), PrinterState::parse);
    let percent = report
        .and_then(|r| r.get("percent"))
        .and_then(|p| p.as_f64().or_else(|| p.as_str()?.parse().ok()))
        .unwrap_or(before.percent);
    let blocking_error = seen.blocking_error;
    let was_active = before.state.is_busy();
    let outcome = if reset_job {
        Some((JobStatus::Failed, cancel_source::AGENT_RESET))
    } else if state == PrinterState::Cancel {
        Some((JobStatus::Aborted, cancel_source::CANCELLED_PRINTER))
    } else if state == PrinterState::Error || blocking_error {
        Some((JobStatus::Failed, cancel_source::PRINTER_ERROR))
    } else if state == PrinterState::Ready && was_active {
        if percent >= 99.9 || before.percent >= 99.9 {
            Some((JobStatus::Finished, ""))
        } else {
            Some((JobStatus::Aborted, cancel_source::STOPPED_ON_PRINTER))
        }
    } else {
        None
    };
    match outcome {
        Some((status, reason)) => {
            end_job(c, &job, status, Some(reason).filter(|r| !r.is_empty()))?;
            Ok(Followed {
                ended: true,
                changed: true,
            })
        }
        None => {
            let progressed = (percent - job.percent).abs() >= 1.0
                && matches!(state, PrinterState::Printing | PrinterState::Paused);
            if progressed {
                change(
                    c,
                    job.id,
                    JobChange {
                        percent: Some(percent),
                        ..Default::default()
                    },
                )?;
            }
            Ok(Followed {
                ended: false,
                changed: progressed,
            })
        }
    }
}

/// Starts the printer's next queued job when its organization enables auto-start and the
/// printer is ready with a clear tray. Returns the started job.
pub fn auto_start(c: &mut DbConn, printer_id: PrinterId, ctx: &JobContext) -> Result<Option<Job>> {
    let printer = lock_printer(c, printer_id)?;
    let org = Organization::find(c, printer.organization_id)?;
    if !org.is_some_and(|o| o.auto_start_queue)
        || start_blocker(&printer, ctx.offline_after, db::now()).is_some()
    {
        return Ok(None);
    }
    let Some(job) = Job::next_queued(c, printer.id)? else {
        return Ok(None);
    };
    let by = job.user_id;
    // A savepoint: a refused start rolls back only its own writes.
    match db::savepoint(c, |c| start(c, job.clone(), by, ctx)) {
        Ok(job) => Ok(Some(job)),
        // The next job's owner cannot pay any more: it fails instead of blocking the queue.
        Err(Error::Denied(reason)) => {
            end_job(
                c,
                &job,
                JobStatus::Failed,
                Some(cancel_source::NOT_CHARGEABLE),
            )?;
            tracing::info!(job = job.id.0, %reason, "queued job could not be charged");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `start_queued_job` from the agent (its own printer's queue).
pub fn agent_start(
    conn: &mut DbConn,
    printer: &Printer,
    job_id: JobId,
    ctx: &JobContext,
) -> Result<Job> {
    db::write_transaction(conn, |c| {
        let job = Job::find(c, job_id)?
            .filter(|j| j.printer_id == printer.id)
            .ok_or_else(|| not_found(job_id))?;
        let by = job.user_id;
        start(c, job, by, ctx)
    })
}

/// The job and file an agent download link names, if its secret matches a running job.
pub fn download_target(conn: &mut DbConn, job_id: JobId, token: &str) -> Result<StoredFile> {
    let job = Job::find(conn, job_id)?
        .filter(|j| j.download_token_hash.as_deref() == Some(token_hash(token).as_str()))
        .ok_or_else(|| Error::not_found("Unknown download link"))?;
    StoredFile::find(conn, job.file_id)?.ok_or_else(|| Error::not_found("Unknown download link"))
}

pub struct JobPage {
    pub jobs: Vec<(Job, String, String)>,
    pub cursor: i64,
}

/// The person's own jobs on any printer, newest first: (job, file name, printer name).
pub fn my_jobs(conn: &mut DbConn, user: &User, limit: i64) -> Result<Vec<(Job, String, String)>> {
    Ok(read::user_jobs(conn, user.id, limit)?)
}

/// One printer as its console page shows it: its card, what the viewer may do there, and its
/// jobs as `get_printer_jobs` answers them (the active ones and those of the organization's
/// "actual" period), newest first.
pub struct PrinterDetail {
    pub card: printer_access::PrinterCard,
    pub access: Access,
    pub tray_clear: bool,
    pub jobs: Vec<(Job, String, String)>,
}

pub fn printer_detail(
    conn: &mut DbConn,
    user: &User,
    id: PrinterId,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Result<PrinterDetail> {
    let (printer, access) = printer_access::visible(conn, user, id)?;
    let card = printer_access::card(conn, user, id, offline_after, now)?;
    let jobs = printer_jobs(conn, user, id, 200, 0, None, true)?.jobs;
    Ok(PrinterDetail {
        card,
        access,
        tray_clear: printer.tray_clear,
        jobs,
    })
}

/// `get_printer_jobs`: newest first, paged, optionally only active/recent ones, optionally only
/// those changed after a cursor. The cursor is read before the jobs, so every change up to it
/// is already committed and visible here; later ones come with the next cursor.
pub fn printer_jobs(
    conn: &mut DbConn,
    user: &User,
    printer_id: PrinterId,
    limit: i64,
    offset: i64,
    prev: Option<i64>,
    actual: bool,
) -> Result<JobPage> {
    let (printer, _) = printer_access::visible(conn, user, printer_id)?;
    let cursor = Job::current_change(conn)?;
    let active_since = if actual {
        let hours =
            Organization::find(conn, printer.organization_id)?.map_or(24, |o| o.actual_jobs_hours);
        Some(db::now() - Duration::hours(i64::from(hours)))
    } else {
        None
    };
    let rows = read::printer_jobs(
        conn,
        &read::JobFilter {
            printer_id: printer.id,
            only_user: (!printer_access::sees_all_jobs(user, &printer)).then_some(user.id),
            changed: prev.filter(|p| *p > 0).map(|p| (p, cursor)),
            active_since,
            limit,
            offset,
        },
    )?;
    Ok(JobPage { jobs: rows, cursor })
}
