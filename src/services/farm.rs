//! The farm queue (printfarm extension): a job may name a printer type, a workgroup or a list
//! of printers instead of one printer, with a number of copies. The dispatcher gives each
//! copy to an eligible printer as one becomes free, as an ordinary job row (so every call,
//! report and client sees ordinary jobs); every waiting farm job has one stated reason and an
//! estimate of when it starts and ends; power circuits stagger starts.
//!
//! Correctness across instances: a copy is assigned in the transaction that starts its job,
//! under the printer's row lock, and copies are claimed with `SKIP LOCKED` (Postgres); the
//! partial unique index on `jobs.farm_copy_id` forbids a second live job for one copy.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::models::{
    CopyCounts, CopyState, FarmCopy, FarmJob, FarmTarget, FileId, Job, JobId, NewFarmJob,
    NewPowerCircuit, OrgId, PowerCircuit, Printer, PrinterId, PrinterState, PrinterType,
    PrinterWorkgroups, StoredFile, User, UserId,
};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::jobs::{self, JobContext, StartBlocker};
use crate::services::orgs::{is_org_admin, visible_workgroup};
use crate::services::printers::{self as printer_access, Access};

/// Most copies one farm job may ask for.
pub const MAX_COPIES: i32 = 1000;
/// Most printers one farm job may list.
pub const MAX_LISTED: usize = 1000;
/// Farm-job priorities an organization admin may give.
pub const PRIORITIES: std::ops::RangeInclusive<i32> = -100..=100;
/// A started job counts as heating for its circuit at most this long without a report that
/// says otherwise (an agent that never reports temperatures must not block a circuit).
const HEATING_AT_MOST: i64 = 30 * 60;
/// Estimated print time of a file without one, for the estimates only.
const UNKNOWN_DURATION: i64 = 3600;

/// What a farm job names instead of one printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    PrinterType(i64),
    Workgroup(i64),
    Printers(Vec<PrinterId>),
}

/// A farm job asked for (kept as JSON on a slice that ends in one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FarmRequest {
    pub file_id: FileId,
    pub target: Target,
    pub copies: i32,
    pub material: Option<String>,
    pub color: Option<String>,
    pub priority: Option<i32>,
}

fn not_found(id: i64) -> Error {
    Error::not_found(format!("Farm job {id} not found"))
}

/// A material name as jobs ask for it: `PETG`, `PLA+`, `ASA-CF`.
fn material_name(s: Option<&str>) -> Result<Option<String>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(m)
            if m.chars().count() <= 32
                && m.chars()
                    .all(|c| c.is_alphanumeric() || " -+_.".contains(c)) =>
        {
            Ok(Some(m.to_string()))
        }
        Some(_) => Err(Error::invalid(
            "material must be a material name such as PETG (letters, digits, - + _ ., at most 32)",
        )),
    }
}

/// `#RRGGBB` (upper case) from `#rrggbb` or `rrggbb`.
fn color_hex(s: Option<&str>) -> Result<Option<String>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(c) => {
            let hex = c.strip_prefix('#').unwrap_or(c);
            if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(Some(format!("#{}", hex.to_ascii_uppercase())))
            } else {
                Err(Error::invalid("color must be a colour as #RRGGBB"))
            }
        }
    }
}

/// Whether the printer has what the farm job asks for loaded (any extruder).
fn material_loaded(fj: &FarmJob, p: &Printer) -> bool {
    if fj.material.is_none() && fj.color_hex.is_none() {
        return true;
    }
    let loaded: Vec<Value> = p
        .filaments
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or_default();
    loaded.iter().any(|e| {
        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        fj.material
            .as_deref()
            .is_none_or(|m| field("material").eq_ignore_ascii_case(m))
            && fj
                .color_hex
                .as_deref()
                .is_none_or(|c| field("color_hex").eq_ignore_ascii_case(c))
    })
}

fn wanted(fj: &FarmJob) -> String {
    match (&fj.material, &fj.color_hex) {
        (Some(m), Some(c)) => format!("{m} ({c})"),
        (Some(m), None) => m.clone(),
        (None, Some(c)) => format!("colour {c}"),
        (None, None) => "any material".into(),
    }
}

/// The checked values of a farm request that need no database.
struct Fields {
    material: Option<String>,
    color: Option<String>,
    priority: i32,
}

fn fields(user: &User, req: &FarmRequest) -> Result<Fields> {
    if !(1..=MAX_COPIES).contains(&req.copies) {
        return Err(Error::invalid(format!(
            "copies must be between 1 and {MAX_COPIES}"
        )));
    }
    let material = material_name(req.material.as_deref())?;
    let color = color_hex(req.color.as_deref())?;
    let priority = req.priority.unwrap_or(0);
    if !PRIORITIES.contains(&priority) {
        return Err(Error::invalid(format!(
            "priority must be between {} and {}",
            PRIORITIES.start(),
            PRIORITIES.end()
        )));
    }
    if priority != 0 && !is_org_admin(user) {
        return Err(Error::denied(
            "Only organization admins give farm jobs a priority",
        ));
    }
    if let Target::Printers(list) = &req.target {
        if list.is_empty() || list.len() > MAX_LISTED {
            return Err(Error::invalid(format!(
                "printer_ids must list 1 to {MAX_LISTED} printers"
            )));
        }
    }
    Ok(Fields {
        material,
        color,
        priority,
    })
}

/// A target as stored: its kind, printer type, workgroup and listed printers.
type Resolved = (FarmTarget, Option<i64>, Option<i64>, Vec<PrinterId>);

/// The target as stored: its kind, type, workgroup and listed printers; 404 for what is out
/// of the caller's reach, 400 for a type other than the one the G-code was made for.
fn resolve_target(
    c: &mut DbConn,
    user: &User,
    target: &Target,
    file_type: Option<i64>,
) -> Result<Resolved> {
    Ok(match target {
        Target::PrinterType(t) => {
            if !PrinterType::all(c)?.iter().any(|pt| pt.id == *t) {
                return Err(Error::not_found(format!("Printer type {t} not found")));
            }
            if let Some(ft) = file_type.filter(|ft| ft != t) {
                return Err(Error::invalid(format!(
                    "The G-code was made for another printer type ({ft}), not {t}"
                )));
            }
            (FarmTarget::PrinterType, Some(*t), None, vec![])
        }
        Target::Workgroup(w) => {
            let wg = visible_workgroup(c, user, *w)?;
            (FarmTarget::Workgroup, None, Some(wg.id), vec![])
        }
        Target::Printers(list) => {
            let mut ids: Vec<PrinterId> = list.clone();
            ids.sort();
            ids.dedup();
            for id in &ids {
                // 404 for a printer out of reach, as everywhere.
                printer_access::visible(c, user, *id)?;
            }
            (FarmTarget::Printers, None, None, ids)
        }
    })
}

/// Checks a farm request whose G-code does not exist yet (a slice's, of `file_type`): all but
/// what needs the file. `create` checks the rest when the slice is done.
pub fn check_request(
    conn: &mut DbConn,
    user: &User,
    req: &FarmRequest,
    file_type: Option<i64>,
) -> Result<()> {
    fields(user, req)?;
    resolve_target(conn, user, &req.target, file_type)?;
    Ok(())
}

/// Creates a farm job (the caller's G-code, a target, copies) and its waiting copies. The
/// dispatcher starts them; `dispatch_pass` right after gives free printers their copies.
pub fn create(
    conn: &mut DbConn,
    user: &User,
    req: FarmRequest,
    ctx: &JobContext,
) -> Result<FarmJob> {
    let f = fields(user, &req)?;
    db::write_transaction(conn, |c| {
        let now = db::now();
        let file = StoredFile::find_owned(c, user.id, req.file_id)?
            .ok_or_else(|| Error::not_found(format!("File {} not found", req.file_id)))?;
        if !file.is_printable() {
            return Err(Error::invalid(format!(
                "File {} is not a printable G-code file (slice a model for a printer type first)",
                file.id
            )));
        }
        let (kind, type_id, workgroup_id, listed) =
            resolve_target(c, user, &req.target, file.printer_type_id)?;
        let fj = FarmJob::insert(
            c,
            &NewFarmJob {
                organization_id: user.organization_id,
                user_id: user.id,
                file_id: file.id,
                target_kind: kind,
                printer_type_id: type_id,
                workgroup_id,
                copies: req.copies,
                material: f.material.as_deref(),
                color_hex: f.color.as_deref(),
                priority: f.priority,
                created_at: now,
                updated_at: now,
            },
            &listed,
        )?;
        // A job no printer could ever take is refused now rather than left waiting.
        let facts = Facts::load(c, std::slice::from_ref(&fj), ctx, now)?;
        if facts.candidates(&fj).is_empty() {
            return Err(Error::invalid(format!(
                "No printer you may print on matches this job ({}{})",
                facts.target_name(&fj),
                if file.printer_type_id.is_some() {
                    ", of the printer type the file was made for"
                } else {
                    ""
                }
            )));
        }
        jobs::check_means(c, user, None, None, now)?;
        Ok(fj)
    })
}

/// Everything the dispatcher and the reasons need to know about some farm jobs and the
/// printers they may use, read once.
struct Facts {
    now: NaiveDateTime,
    offline_after: Duration,
    printers: BTreeMap<PrinterId, Printer>,
    workgroups: BTreeMap<PrinterId, BTreeSet<i64>>,
    listed: BTreeMap<i64, BTreeSet<PrinterId>>,
    users: BTreeMap<UserId, (User, BTreeMap<PrinterId, Access>)>,
    files: BTreeMap<FileId, StoredFile>,
    types: BTreeMap<i64, String>,
    circuits: BTreeMap<i64, PowerCircuit>,
    /// Printers whose own queue has a job waiting.
    own_queue: BTreeSet<PrinterId>,
    /// The running job of each busy printer.
    running: BTreeMap<PrinterId, Job>,
}

impl Facts {
    fn load(
        c: &mut DbConn,
        fjs: &[FarmJob],
        ctx: &JobContext,
        now: NaiveDateTime,
    ) -> Result<Facts> {
        let mut users = BTreeMap::new();
        let mut files = BTreeMap::new();
        let mut printer_ids: BTreeSet<PrinterId> = BTreeSet::new();
        let mut orgs: BTreeSet<OrgId> = BTreeSet::new();
        for fj in fjs {
            orgs.insert(fj.organization_id);
            if !users.contains_key(&fj.user_id) {
                if let Some(u) = User::find(c, fj.user_id)? {
                    let reach = printer_access::reachable(c, &u)?;
                    printer_ids.extend(reach.keys().copied());
                    users.insert(u.id, (u, reach));
                }
            }
            if !files.contains_key(&fj.file_id) {
                if let Some(f) = StoredFile::find(c, fj.file_id)? {
                    files.insert(f.id, f);
                }
            }
        }
        let ids: Vec<i64> = fjs.iter().map(|f| f.id).collect();
        let mut listed: BTreeMap<i64, BTreeSet<PrinterId>> = BTreeMap::new();
        for (fj, p) in FarmJob::listed_printers_of(c, &ids)? {
            listed.entry(fj).or_default().insert(p);
        }
        // Only printers someone here may print on can matter.
        let printer_ids: Vec<PrinterId> = printer_ids.into_iter().collect();
        let printers: BTreeMap<PrinterId, Printer> = Printer::by_ids(c, &printer_ids)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut workgroups: BTreeMap<PrinterId, BTreeSet<i64>> = BTreeMap::new();
        for (p, w) in PrinterWorkgroups::of(c, &printer_ids)? {
            workgroups.entry(p).or_default().insert(w);
        }
        let types = PrinterType::all(c)?
            .into_iter()
            .map(|t| {
                let name = if t.description.is_empty() {
                    t.short_name
                } else {
                    t.description
                };
                (t.id, name)
            })
            .collect();
        let mut circuits = BTreeMap::new();
        orgs.extend(printers.values().map(|p| p.organization_id));
        for org in &orgs {
            for ci in PowerCircuit::of_org(c, *org)? {
                circuits.insert(ci.id, ci);
            }
        }
        let own_queue = Job::queued_on(c, &printer_ids)?.into_iter().collect();
        let running_ids: Vec<JobId> = printers.values().filter_map(|p| p.current_job_id).collect();
        let running = Job::by_ids(c, &running_ids)?
            .into_iter()
            .map(|j| (j.printer_id, j))
            .collect();
        Ok(Facts {
            now,
            offline_after: ctx.offline_after,
            printers,
            workgroups,
            listed,
            users,
            files,
            types,
            circuits,
            own_queue,
            running,
        })
    }

    /// Whether the farm job's target names this printer.
    fn targets(&self, fj: &FarmJob, p: &Printer) -> bool {
        names(
            fj,
            p,
            self.workgroups.get(&p.id).unwrap_or(&BTreeSet::new()),
            self.listed.get(&fj.id).unwrap_or(&BTreeSet::new()),
        )
    }

    /// The printers the farm job may ever use: named by its target, printable by its owner,
    /// of the type its G-code was made for.
    fn candidates(&self, fj: &FarmJob) -> Vec<&Printer> {
        let Some((_, reach)) = self.users.get(&fj.user_id) else {
            return vec![];
        };
        let file_type = self.files.get(&fj.file_id).and_then(|f| f.printer_type_id);
        self.printers
            .values()
            .filter(|p| reach.get(&p.id).is_some_and(|a| *a >= Access::Print))
            .filter(|p| file_type.is_none_or(|t| p.printer_type_id == Some(t)))
            .filter(|p| self.targets(fj, p))
            .collect()
    }

    fn target_name(&self, fj: &FarmJob) -> String {
        match fj.target_kind {
            FarmTarget::PrinterType => format!(
                "printer type {}",
                fj.printer_type_id
                    .and_then(|t| self.types.get(&t).cloned())
                    .unwrap_or_default()
            ),
            FarmTarget::Workgroup => format!("workgroup {}", fj.workgroup_id.unwrap_or_default()),
            FarmTarget::Printers => {
                let n = self.listed.get(&fj.id).map_or(0, BTreeSet::len);
                format!("{n} listed printer{}", if n == 1 { "" } else { "s" })
            }
        }
    }

    /// The circuit use that stops this printer from starting now, if any.
    fn stagger(&self, p: &Printer) -> Option<String> {
        let ci = self.circuits.get(&p.circuit_id?)?;
        let members: Vec<&Printer> = self
            .printers
            .values()
            .filter(|o| o.circuit_id == Some(ci.id) && o.id != p.id)
            .collect();
        let started = self
            .running
            .iter()
            .filter_map(|(p, j)| Some((*p, j.started_at?)))
            .collect();
        stagger_refusal(ci, &members, &started, self.offline_after, self.now)
    }

    /// Why this printer cannot take a farm copy now (None: it can).
    fn availability(&self, p: &Printer) -> Option<Blocked> {
        match jobs::start_blocker(p, self.offline_after, self.now) {
            Some(StartBlocker::Offline) => Some(Blocked::Offline),
            Some(StartBlocker::InError(_)) | Some(StartBlocker::NotReady(_)) => {
                Some(Blocked::NotReady)
            }
            Some(StartBlocker::Busy) => Some(Blocked::Busy(self.remaining(p))),
            Some(StartBlocker::Maintenance(_)) => Some(Blocked::Maintenance),
            Some(StartBlocker::TrayNotClear) => Some(Blocked::Tray),
            None if self.own_queue.contains(&p.id) => Some(Blocked::OwnQueue),
            None => self.stagger(p).map(Blocked::Stagger),
        }
    }

    /// Seconds until a busy printer's job should end (None: unknown).
    fn remaining(&self, p: &Printer) -> Option<i64> {
        let job = self.running.get(&p.id)?;
        let total = i64::from(job.printing_duration);
        if total <= 0 {
            return None;
        }
        let by_percent = (total as f64 * (1.0 - p.percent.clamp(0.0, 100.0) / 100.0)) as i64;
        let by_clock = job
            .started_at
            .map(|s| total - (self.now - s).num_seconds())
            .unwrap_or(by_percent);
        // Progress is the better guide once printing; the clock before (heating, download).
        let left = if p.percent > 0.0 {
            by_percent
        } else {
            by_clock
        };
        Some(left.max(60))
    }

    fn duration(&self, fj: &FarmJob) -> i64 {
        self.files
            .get(&fj.file_id)
            .map(|f| i64::from(jobs::estimated_duration(f)))
            .filter(|d| *d > 0)
            .unwrap_or(UNKNOWN_DURATION)
    }
}

/// Why one printer cannot take a copy now.
#[derive(Debug, Clone)]
enum Blocked {
    Offline,
    NotReady,
    Busy(Option<i64>),
    Maintenance,
    Tray,
    OwnQueue,
    Stagger(String),
}

/// Whether a printer with a started job is fetching its G-code and heating, for the
/// staggered-start limits: (downloading, heating). A job counts as downloading until the
/// agent reports printing, and as heating until every heater with a target is within 5 °C
/// of it (printers that report no targets: until 1 %), at most `HEATING_AT_MOST`.
fn start_phase(
    p: &Printer,
    running_since: Option<NaiveDateTime>,
    offline_after: Duration,
    now: NaiveDateTime,
) -> (bool, bool) {
    if p.current_job_id.is_none()
        || printer_access::display_state(p, offline_after, now) == PrinterState::NotConnected
    {
        return (false, false);
    }
    if running_since.is_some_and(|s| (now - s).num_seconds() > HEATING_AT_MOST) {
        return (false, false);
    }
    let downloading = !matches!(
        p.state,
        PrinterState::Printing | PrinterState::Paused | PrinterState::Error
    );
    let temps = |t: Option<&str>| -> Vec<Option<f64>> {
        t.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    };
    let (now_t, target_t) = (temps(p.temps.as_deref()), temps(p.target_temps.as_deref()));
    let targets: Vec<(usize, f64)> = target_t
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.filter(|t| *t >= 35.0).map(|t| (i, t)))
        .collect();
    let heating = downloading
        || (p.state == PrinterState::Printing
            && if targets.is_empty() {
                p.percent < 1.0
            } else {
                targets
                    .iter()
                    .any(|(i, t)| now_t.get(*i).copied().flatten().is_none_or(|v| v < t - 5.0))
            });
    (downloading, heating)
}

/// How many of the printers are (downloading, heating).
fn circuit_use(
    printers: &[&Printer],
    started: &BTreeMap<PrinterId, NaiveDateTime>,
    offline_after: Duration,
    now: NaiveDateTime,
) -> (i32, i32) {
    printers.iter().fold((0, 0), |(d, h), p| {
        let (pd, ph) = start_phase(p, started.get(&p.id).copied(), offline_after, now);
        (d + i32::from(pd), h + i32::from(ph))
    })
}

/// When the running jobs of these printers started.
fn started_at(c: &mut DbConn, printers: &[Printer]) -> Result<BTreeMap<PrinterId, NaiveDateTime>> {
    let ids: Vec<JobId> = printers.iter().filter_map(|p| p.current_job_id).collect();
    Ok(Job::by_ids(c, &ids)?
        .into_iter()
        .filter_map(|j| Some((j.printer_id, j.started_at?)))
        .collect())
}

/// "circuit Lab A: 2 of 2 heating" when one more start would pass a limit of the circuit.
fn stagger_refusal(
    ci: &PowerCircuit,
    others: &[&Printer],
    started: &BTreeMap<PrinterId, NaiveDateTime>,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Option<String> {
    if ci.max_heating.is_none() && ci.max_downloads.is_none() {
        return None;
    }
    let (downloading, heating) = circuit_use(others, started, offline_after, now);
    if let Some(max) = ci.max_heating.filter(|m| heating >= *m) {
        return Some(format!("circuit {}: {heating} of {max} heating", ci.name));
    }
    if let Some(max) = ci.max_downloads.filter(|m| downloading >= *m) {
        return Some(format!(
            "circuit {}: {downloading} of {max} downloading",
            ci.name
        ));
    }
    None
}

/// Gives one free printer the first farm copy it may print, in dispatch order (priority,
/// then age; jobs it cannot print are passed over, so none waits behind them). Runs inside
/// a write transaction; `skip_locked` (a dispatch pass) skips a printer another instance
/// holds instead of waiting for it. Returns the started job.
pub fn dispatch_to(
    c: &mut DbConn,
    printer_id: PrinterId,
    skip_locked: bool,
    ctx: &JobContext,
) -> Result<Option<Job>> {
    let printer = if skip_locked {
        db::try_lock_printer(c, printer_id)?
    } else {
        db::lock_printer(c, printer_id)?
    };
    let Some(printer) = printer else {
        return Ok(None);
    };
    let now = db::now();
    if jobs::start_blocker(&printer, ctx.offline_after, now).is_some()
        || Job::next_queued(c, printer.id)?.is_some()
    {
        return Ok(None);
    }
    if let Some(ci) = printer.circuit_id {
        if let Some(ci) = PowerCircuit::find(c, ci)? {
            let members = Printer::in_circuit(c, ci.id)?;
            let started = started_at(c, &members)?;
            let others: Vec<&Printer> = members.iter().filter(|o| o.id != printer.id).collect();
            if stagger_refusal(&ci, &others, &started, ctx.offline_after, now).is_some() {
                return Ok(None);
            }
        }
    }
    let groups: BTreeSet<i64> = PrinterWorkgroups::of(c, &[printer.id])?
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    let mut access_of: BTreeMap<UserId, Option<(User, Access)>> = BTreeMap::new();
    for fj in FarmJob::waiting(c, None)? {
        let listed: BTreeSet<PrinterId> = match fj.target_kind {
            FarmTarget::Printers => FarmJob::listed_printers(c, fj.id)?.into_iter().collect(),
            _ => BTreeSet::new(),
        };
        if !names(&fj, &printer, &groups, &listed) || !material_loaded(&fj, &printer) {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = access_of.entry(fj.user_id) {
            let entry = match User::find(c, fj.user_id)? {
                Some(u) if !u.disabled => printer_access::access(c, &u, &printer)?.map(|a| (u, a)),
                _ => None,
            };
            slot.insert(entry);
        }
        let Some((user, access)) = access_of[&fj.user_id].clone() else {
            continue;
        };
        if access < Access::Print {
            continue;
        }
        let Some(file) = StoredFile::find(c, fj.file_id)? else {
            continue;
        };
        if !file.is_printable()
            || file
                .printer_type_id
                .is_some_and(|t| printer.printer_type_id != Some(t))
        {
            continue;
        }
        let Some(copy) = db::claim_waiting_copy(c, fj.id)? else {
            continue;
        };
        let started = db::savepoint(c, |c| {
            let job = jobs::start_farm_copy(c, &user, access, &file, &printer, copy, ctx)?;
            if !FarmCopy::assign(c, copy, job.id, now)? {
                return Err(Error::conflict(Conflict::WrongState, "copy taken"));
            }
            Ok(job)
        });
        match started {
            Ok(job) => {
                tracing::info!(
                    farm_job = fj.id,
                    copy,
                    job = job.id.0,
                    printer = printer.id.0,
                    "farm copy started"
                );
                return Ok(Some(job));
            }
            // This person cannot pay for it now (quota, balance): the next job may.
            Err(Error::Denied(_)) | Err(Error::Conflict(..)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A dispatch pass: every idle printer gets a copy if one may go there. Each printer in its
/// own short transaction; `skip_locked` as in [`dispatch_to`]. Returns the number of copies
/// started.
pub fn dispatch_pass(conn: &mut DbConn, ctx: &JobContext, skip_locked: bool) -> Result<usize> {
    let waiting = FarmJob::waiting(conn, None)?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let now = db::now();
    // Printers of any organization: a share may reach across.
    let idle = Printer::idle(conn, now - ctx.offline_after)?;
    if idle.is_empty() {
        return Ok(0);
    }
    // Only printers some waiting job names and has the material for get a transaction: a
    // farm of idle printers of other types costs one read a second, not one write each.
    let ids: Vec<i64> = waiting.iter().map(|f| f.id).collect();
    let mut listed: BTreeMap<i64, BTreeSet<PrinterId>> = BTreeMap::new();
    for (fj, p) in FarmJob::listed_printers_of(conn, &ids)? {
        listed.entry(fj).or_default().insert(p);
    }
    let idle_ids: Vec<PrinterId> = idle.iter().map(|p| p.id).collect();
    let mut groups: BTreeMap<PrinterId, BTreeSet<i64>> = BTreeMap::new();
    for (p, w) in PrinterWorkgroups::of(conn, &idle_ids)? {
        groups.entry(p).or_default().insert(w);
    }
    let (no_groups, no_list) = (BTreeSet::new(), BTreeSet::new());
    let mut started = 0;
    for p in idle {
        let wanted = waiting.iter().any(|fj| {
            names(
                fj,
                &p,
                groups.get(&p.id).unwrap_or(&no_groups),
                listed.get(&fj.id).unwrap_or(&no_list),
            ) && material_loaded(fj, &p)
        });
        if wanted
            && db::write_transaction(conn, |c| dispatch_to(c, p.id, skip_locked, ctx))?.is_some()
        {
            started += 1;
        }
    }
    Ok(started)
}

/// Whether a farm job's target names the printer (its type, one of its workgroups, or the
/// list of the job).
fn names(
    fj: &FarmJob,
    p: &Printer,
    workgroups: &BTreeSet<i64>,
    listed: &BTreeSet<PrinterId>,
) -> bool {
    match fj.target_kind {
        FarmTarget::PrinterType => {
            p.printer_type_id.is_some() && p.printer_type_id == fj.printer_type_id
        }
        FarmTarget::Workgroup => fj.workgroup_id.is_some_and(|w| workgroups.contains(&w)),
        FarmTarget::Printers => listed.contains(&p.id),
    }
}

/// A dispatch pass right after a committed change (a farm job queued or retried, a printer
/// back in service): the change stands whatever the pass meets; a failed pass is logged and
/// left to the dispatcher's next run, so the caller is never told the change failed. It waits
/// for a printer another pass holds rather than skipping it: once it returns, every copy a
/// free printer took is committed, so the caller's answer lists them all.
pub fn dispatch_now(conn: &mut DbConn, ctx: &JobContext) {
    if let Err(e) = dispatch_pass(conn, ctx, false) {
        tracing::warn!(error = %e, "farm dispatch after a change failed; the dispatcher retries");
    }
}

/// After a printer became free (its job ended, its tray was cleared, it came back ready): its
/// own queue first (when its organization auto-starts), then the farm queue.
pub fn next_for_printer(
    c: &mut DbConn,
    printer_id: PrinterId,
    ctx: &JobContext,
) -> Result<Option<Job>> {
    if let Some(job) = jobs::auto_start(c, printer_id, ctx)? {
        return Ok(Some(job));
    }
    dispatch_to(c, printer_id, false, ctx)
}

/// `printer_clear_build_tray`: the tray flag, then the next job (own queue, then farm).
pub fn clear_build_tray(
    conn: &mut DbConn,
    user: &User,
    printer_id: PrinterId,
    clear: bool,
    ctx: &JobContext,
) -> Result<Option<Job>> {
    db::write_transaction(conn, |c| {
        let printer = printer_access::set_tray(c, user, printer_id, clear)?;
        if clear {
            next_for_printer(c, printer.id, ctx)
        } else {
            Ok(None)
        }
    })
}

/// The jobs printing a farm job's copies now, in copy order.
pub fn started_jobs(c: &mut DbConn, id: i64) -> Result<Vec<JobId>> {
    Ok(FarmCopy::of_job(c, id)?
        .into_iter()
        .filter(|c| c.state == CopyState::Printing)
        .filter_map(|c| c.job_id)
        .collect())
}

/// A farm job the user may act on: their own, or any of their organization's for its admins.
fn actionable(c: &mut DbConn, user: &User, id: i64) -> Result<FarmJob> {
    let fj = FarmJob::find(c, id)?.ok_or_else(|| not_found(id))?;
    let admin = is_org_admin(user) && fj.organization_id == user.organization_id;
    if fj.user_id != user.id && !admin {
        return Err(not_found(id));
    }
    Ok(fj)
}

/// Sets a farm job's priority (organization admins): higher starts first. `None` puts it
/// first in line: one above the highest waiting job of the organization (at most the top).
pub fn set_priority(conn: &mut DbConn, user: &User, id: i64, priority: Option<i32>) -> Result<i32> {
    if !is_org_admin(user) {
        return Err(Error::denied(
            "Only organization admins change the order of the farm queue",
        ));
    }
    if let Some(p) = priority.filter(|p| !PRIORITIES.contains(p)) {
        return Err(Error::invalid(format!(
            "priority must be between {} and {} (not {p})",
            PRIORITIES.start(),
            PRIORITIES.end()
        )));
    }
    db::write_transaction(conn, |c| {
        let fj = actionable(c, user, id)?;
        if fj.cancelled_at.is_some() {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Farm job {id} is cancelled"),
            ));
        }
        let value = match priority {
            Some(p) => p,
            None => {
                let top = FarmJob::waiting(c, Some(&[fj.organization_id]))?
                    .iter()
                    .filter(|w| w.id != fj.id)
                    .map(|w| w.priority)
                    .max()
                    .unwrap_or(0);
                top.saturating_add(1)
                    .min(*PRIORITIES.end())
                    .max(fj.priority)
            }
        };
        FarmJob::set_priority(c, fj.id, value, db::now())?;
        Ok(value)
    })
}

/// Cancels a farm job: copies not started yet are cancelled; `and_printing` also cancels the
/// copies printing now (as `job_cancel` would). Copies already printed stay printed.
pub fn cancel(conn: &mut DbConn, user: &User, id: i64, and_printing: bool) -> Result<CopyCounts> {
    db::write_transaction(conn, |c| {
        let fj = actionable(c, user, id)?;
        if fj.cancelled_at.is_some() {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Farm job {id} is already cancelled"),
            ));
        }
        let now = db::now();
        // Copies before anything else: the lock order of the dispatcher (printer, copy, job).
        let copies = FarmCopy::of_job(c, fj.id)?;
        let ids: Vec<i64> = copies.iter().map(|c| c.id).collect();
        FarmCopy::set_state(
            c,
            &ids,
            &[CopyState::Waiting, CopyState::Failed],
            CopyState::Cancelled,
            now,
        )?;
        FarmJob::cancel(c, fj.id, now)?;
        if and_printing {
            for copy in copies.iter().filter(|c| c.state == CopyState::Printing) {
                if let Some(job) = copy.job_id {
                    jobs::job_cancel(c, user, job, None, Some("The farm job was cancelled"))?;
                }
            }
        }
        Ok(FarmJob::counts(c, &[fj.id])?
            .into_iter()
            .next()
            .map(|(_, n)| n)
            .unwrap_or_default())
    })
}

/// Queues failed copies again (all of them, or the one `job` printed): same file, same
/// target and constraints. A copy that printed is never queued again.
pub fn retry(conn: &mut DbConn, user: &User, id: i64, job: Option<JobId>) -> Result<usize> {
    db::write_transaction(conn, |c| {
        let fj = actionable(c, user, id)?;
        if fj.cancelled_at.is_some() {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Farm job {id} is cancelled"),
            ));
        }
        let copies = FarmCopy::of_job(c, fj.id)?;
        let chosen: Vec<&FarmCopy> = match job {
            Some(j) => {
                let copy = copies.iter().find(|c| c.job_id == Some(j)).ok_or_else(|| {
                    Error::not_found(format!("Job {j} is not a copy of farm job {id}"))
                })?;
                if copy.state != CopyState::Failed {
                    return Err(Error::conflict(
                        Conflict::WrongState,
                        format!("The copy job {j} printed is {}, not failed", copy.state),
                    ));
                }
                vec![copy]
            }
            None => copies
                .iter()
                .filter(|c| c.state == CopyState::Failed)
                .collect(),
        };
        if chosen.is_empty() {
            return Err(Error::conflict(
                Conflict::WrongState,
                format!("Farm job {id} has no failed copy to retry"),
            ));
        }
        let ids: Vec<i64> = chosen.iter().map(|c| c.id).collect();
        Ok(FarmCopy::set_state(
            c,
            &ids,
            &[CopyState::Failed],
            CopyState::Waiting,
            db::now(),
        )?)
    })
}

/// One farm job as the queue shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FarmJobView {
    pub farm_job_id: i64,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub user_email: String,
    #[schema(value_type = i64)]
    pub file_id: FileId,
    pub file_name: String,
    /// `printer_type`, `workgroup` or `printers`.
    pub target: String,
    /// What the target names, in words (`printer type MK4`).
    pub target_name: String,
    pub printer_type_id: Option<i64>,
    pub workgroup_id: Option<i64>,
    pub printer_ids: Vec<i64>,
    pub copies: i32,
    pub waiting: i64,
    pub printing: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub material: Option<String>,
    pub color_hex: Option<String>,
    pub priority: i32,
    /// `waiting`, `printing`, `done`, `failed` (some copies failed, none left to print) or `cancelled`.
    pub state: String,
    /// Why its next copy is not printing now (null when none waits).
    pub reason: Option<String>,
    /// The reason as a code: `quota`, `balance`, `no_printer`, `material`, `busy`, `tray`,
    /// `maintenance`, `offline`, `own_queue`, `stagger`, `in_line` or `starting`.
    pub reason_code: Option<String>,
    /// Estimates (UTC, `YYYY-MM-DD HH:MM:SS`) from the printers' remaining times and the
    /// jobs ahead: when the next copy starts, and when the last one ends.
    pub eta_next_start: Option<String>,
    pub eta_done: Option<String>,
    pub created_at: String,
    /// Each copy (only when one farm job is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_list: Option<Vec<CopyView>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CopyView {
    pub copy_number: i32,
    /// `waiting`, `printing`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// The job printing it now or the last one that did (a string, as job ids are).
    pub job_id: Option<String>,
    pub printer_id: Option<i64>,
    pub attempts: i32,
}

fn stamp(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn minutes(s: i64) -> String {
    if s >= 5400 {
        format!("~{} h", (s + 1800) / 3600)
    } else {
        format!("~{} min", (s + 59) / 60)
    }
}

/// The reason one farm job's next copy is not printing, and its code.
fn reason(f: &Facts, fj: &FarmJob, means: Option<(&'static str, String)>) -> (String, String) {
    if let Some((code, text)) = means {
        return (text, code.into());
    }
    let cands = f.candidates(fj);
    if cands.is_empty() {
        return (
            format!(
                "No printer you may print on matches ({})",
                f.target_name(fj)
            ),
            "no_printer".into(),
        );
    }
    let loaded: Vec<&&Printer> = cands.iter().filter(|p| material_loaded(fj, p)).collect();
    if loaded.is_empty() {
        return (
            format!(
                "needs {}, none loaded on the {} matching printer{}",
                wanted(fj),
                cands.len(),
                if cands.len() == 1 { "" } else { "s" }
            ),
            "material".into(),
        );
    }
    let states: Vec<(&Printer, Option<Blocked>)> =
        loaded.iter().map(|p| (**p, f.availability(p))).collect();
    let names = |pick: &dyn Fn(&Blocked) -> bool| -> Vec<String> {
        states
            .iter()
            .filter(|(_, b)| b.as_ref().is_some_and(pick))
            .map(|(p, _)| p.name.clone())
            .collect()
    };
    if states.iter().any(|(_, b)| b.is_none()) {
        return ("a printer is free: starting".into(), "starting".into());
    }
    if let Some((_, Some(Blocked::Stagger(why)))) = states
        .iter()
        .find(|(_, b)| matches!(b, Some(Blocked::Stagger(_))))
    {
        return (
            format!("waiting for staggered start ({why})"),
            "stagger".into(),
        );
    }
    let tray = names(&|b| matches!(b, Blocked::Tray));
    if !tray.is_empty() {
        return (
            format!("build tray not cleared on {}", tray.join(", ")),
            "tray".into(),
        );
    }
    let own = names(&|b| matches!(b, Blocked::OwnQueue));
    if !own.is_empty() {
        return (
            format!(
                "{} print{} its own queue first",
                own.join(", "),
                if own.len() == 1 { "s" } else { "" }
            ),
            "own_queue".into(),
        );
    }
    let busy: Vec<Option<i64>> = states
        .iter()
        .filter_map(|(_, b)| match b {
            Some(Blocked::Busy(left)) => Some(*left),
            _ => None,
        })
        .collect();
    let count = |pick: &dyn Fn(&Blocked) -> bool| {
        states
            .iter()
            .filter(|(_, b)| b.as_ref().is_some_and(pick))
            .count()
    };
    let maintenance = count(&|b| matches!(b, Blocked::Maintenance));
    let offline = count(&|b| matches!(b, Blocked::Offline | Blocked::NotReady));
    let next_free = busy.iter().flatten().min().copied();
    let what = match fj.target_kind {
        FarmTarget::PrinterType => fj
            .printer_type_id
            .and_then(|t| f.types.get(&t).cloned())
            .map(|t| format!("{t} printers"))
            .unwrap_or_else(|| "printers".into()),
        _ => "printers".into(),
    };
    if busy.len() == states.len() {
        let n = busy.len();
        let all = if n == 1 {
            format!("{} busy", states[0].0.name)
        } else {
            format!("all {n} {what} busy")
        };
        return (
            match next_free {
                Some(s) => format!("{all}, next free in {}", minutes(s)),
                None => all,
            },
            "busy".into(),
        );
    }
    if !busy.is_empty() {
        let mut parts = vec![format!(
            "{} busy{}",
            busy.len(),
            next_free
                .map(|s| format!(" (next free in {})", minutes(s)))
                .unwrap_or_default()
        )];
        if maintenance > 0 {
            parts.push(format!("{maintenance} in maintenance"));
        }
        if offline > 0 {
            parts.push(format!("{offline} offline or not ready"));
        }
        return (parts.join(", "), "busy".into());
    }
    if maintenance > 0 && offline == 0 {
        let names: Vec<String> = states
            .iter()
            .filter(|(_, b)| matches!(b, Some(Blocked::Maintenance)))
            .map(|(p, _)| match &p.maintenance_note {
                Some(note) => format!("{} ({note})", p.name),
                None => p.name.clone(),
            })
            .collect();
        return (
            format!("printer in maintenance: {}", names.join(", ")),
            "maintenance".into(),
        );
    }
    let mut parts = vec![];
    if maintenance > 0 {
        parts.push(format!("{maintenance} in maintenance"));
    }
    parts.push(format!(
        "{offline} printer{} offline or not ready",
        if offline == 1 { "" } else { "s" }
    ));
    (parts.join(", "), "offline".into())
}

/// Whether the owner can pay for one more copy now: a quota or balance refusal as a reason.
fn means_reason(f: &Facts, fj: &FarmJob) -> Option<(&'static str, String)> {
    let (user, _) = f.users.get(&fj.user_id)?;
    if user.disabled {
        return Some(("no_printer", "the owner's account is disabled".into()));
    }
    if let Some(q) = user.monthly_quota {
        let used = jobs::quota_used(user, f.now);
        if used >= q {
            return Some((
                "quota",
                format!("monthly quota used up ({used} of {q} prints)"),
            ));
        }
    }
    if user.balance.is_some_and(|b| b <= 0.0) {
        return Some(("balance", "balance used up".into()));
    }
    None
}

/// Estimates: each waiting copy, in dispatch order, goes to its earliest-free eligible
/// printer for its file's estimated time. Printers that cannot take jobs until someone acts
/// (tray, maintenance, offline) are left out; trays are assumed cleared as jobs end.
/// Returns (next start, last end) per farm job.
fn estimates(
    f: &Facts,
    order: &[(FarmJob, i64, Vec<i64>)],
) -> BTreeMap<i64, (Option<NaiveDateTime>, Option<NaiveDateTime>)> {
    let mut free_at: BTreeMap<PrinterId, NaiveDateTime> = BTreeMap::new();
    for p in f.printers.values() {
        let at = match f.availability(p) {
            None | Some(Blocked::Stagger(_)) => Some(f.now),
            Some(Blocked::Busy(left)) => {
                Some(f.now + Duration::seconds(left.unwrap_or(UNKNOWN_DURATION)))
            }
            _ => None,
        };
        if let Some(at) = at {
            free_at.insert(p.id, at);
        }
    }
    let mut out = BTreeMap::new();
    // Bounded work: past this many copies the later estimates are left out.
    let mut budget: i64 = 50_000;
    for (fj, waiting, printing_ends) in order {
        let cands: Vec<PrinterId> = f
            .candidates(fj)
            .into_iter()
            .filter(|p| material_loaded(fj, p))
            .map(|p| p.id)
            .filter(|p| free_at.contains_key(p))
            .collect();
        let d = Duration::seconds(f.duration(fj));
        let mut first = None;
        let mut last = printing_ends
            .iter()
            .filter(|s| **s > 0)
            .map(|s| f.now + Duration::seconds(*s))
            .max();
        if !cands.is_empty() && means_reason(f, fj).is_none() {
            for _ in 0..*waiting {
                budget -= 1;
                if budget < 0 {
                    break;
                }
                let Some(p) = cands.iter().min_by_key(|p| free_at[*p]) else {
                    break;
                };
                let start = free_at[p].max(f.now);
                first.get_or_insert(start);
                let end = start + d;
                free_at.insert(*p, end);
                last = Some(last.map_or(end, |l: NaiveDateTime| l.max(end)));
            }
            if budget < 0 {
                first = None;
                last = None;
            }
        } else if *waiting > 0 {
            last = None;
        }
        out.insert(fj.id, (first, last));
    }
    out
}

/// The farm queue as `user` may see it: their own farm jobs, or all of the organization's
/// for its admins; newest first, at most `limit`; `only` narrows it to one farm job (with
/// its copies).
pub fn queue(
    conn: &mut DbConn,
    user: &User,
    only: Option<i64>,
    limit: i64,
    ctx: &JobContext,
) -> Result<Vec<FarmJobView>> {
    let now = db::now();
    let mine = if is_org_admin(user) {
        None
    } else {
        Some(user.id)
    };
    let shown: Vec<FarmJob> = match only {
        Some(id) => vec![actionable(conn, user, id)?],
        None => FarmJob::of_org(conn, user.organization_id, mine, limit)?,
    };
    // The estimates need every waiting job of the organization ahead of the shown ones.
    let waiting = FarmJob::waiting(conn, Some(&[user.organization_id]))?;
    let mut all: Vec<FarmJob> = waiting.clone();
    for fj in &shown {
        if !all.iter().any(|w| w.id == fj.id) {
            all.push(fj.clone());
        }
    }
    let facts = Facts::load(conn, &all, ctx, now)?;
    let ids: Vec<i64> = all.iter().map(|f| f.id).collect();
    let counts: BTreeMap<i64, CopyCounts> = FarmJob::counts(conn, &ids)?.into_iter().collect();
    // Remaining seconds of the copies printing now, per farm job.
    let mut printing_ends: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut copy_lists: BTreeMap<i64, Vec<CopyView>> = BTreeMap::new();
    for fj in &all {
        let detail = only == Some(fj.id);
        if counts.get(&fj.id).is_none_or(|c| c.printing == 0) && !detail {
            continue;
        }
        let copies = FarmCopy::of_job(conn, fj.id)?;
        let job_ids: Vec<JobId> = copies.iter().filter_map(|c| c.job_id).collect();
        let jobs: BTreeMap<JobId, Job> = Job::by_ids(conn, &job_ids)?
            .into_iter()
            .map(|j| (j.id, j))
            .collect();
        for copy in &copies {
            let job = copy.job_id.and_then(|j| jobs.get(&j));
            if copy.state == CopyState::Printing {
                let left = job
                    .and_then(|j| facts.printers.get(&j.printer_id))
                    .and_then(|p| facts.remaining(p))
                    .unwrap_or(0);
                printing_ends.entry(fj.id).or_default().push(left);
            }
            if detail {
                copy_lists.entry(fj.id).or_default().push(CopyView {
                    copy_number: copy.copy_number,
                    state: copy.state.to_string(),
                    job_id: copy.job_id.map(|j| j.to_string()),
                    printer_id: job.map(|j| j.printer_id.0),
                    attempts: copy.attempts,
                });
            }
        }
    }
    let order: Vec<(FarmJob, i64, Vec<i64>)> = waiting
        .iter()
        .map(|fj| {
            (
                fj.clone(),
                counts.get(&fj.id).map_or(0, |c| c.waiting),
                printing_ends.get(&fj.id).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let etas = estimates(&facts, &order);
    let emails: BTreeMap<UserId, String> = facts
        .users
        .values()
        .map(|(u, _)| (u.id, u.email.clone()))
        .collect();
    let mut out = Vec::with_capacity(shown.len());
    for fj in shown {
        let n = counts.get(&fj.id).copied().unwrap_or_default();
        let state = if fj.cancelled_at.is_some() {
            "cancelled"
        } else if n.waiting > 0 {
            "waiting"
        } else if n.printing > 0 {
            "printing"
        } else if n.failed > 0 {
            "failed"
        } else {
            "done"
        };
        let (why, code) = if state == "waiting" {
            let (text, code) = reason(&facts, &fj, means_reason(&facts, &fj));
            // Free printers taken by the jobs ahead: the estimate says when its turn comes.
            let later = etas
                .get(&fj.id)
                .and_then(|(first, _)| *first)
                .is_some_and(|t| t > now + Duration::seconds(5));
            if code == "starting" && later {
                (
                    "behind other farm jobs in line".to_string(),
                    "in_line".to_string(),
                )
            } else {
                (text, code)
            }
        } else {
            (String::new(), String::new())
        };
        let (first, last) = etas.get(&fj.id).copied().unwrap_or((None, None));
        let last = if state == "printing" {
            printing_ends
                .get(&fj.id)
                .and_then(|e| e.iter().max())
                .map(|s| now + Duration::seconds(*s))
        } else {
            last
        };
        out.push(FarmJobView {
            farm_job_id: fj.id,
            user_id: fj.user_id,
            user_email: emails.get(&fj.user_id).cloned().unwrap_or_default(),
            file_id: fj.file_id,
            file_name: facts
                .files
                .get(&fj.file_id)
                .map(|f| f.filename.clone())
                .unwrap_or_default(),
            target: fj.target_kind.to_string(),
            target_name: facts.target_name(&fj),
            printer_type_id: fj.printer_type_id,
            workgroup_id: fj.workgroup_id,
            printer_ids: facts
                .listed
                .get(&fj.id)
                .map(|l| l.iter().map(|p| p.0).collect())
                .unwrap_or_default(),
            copies: fj.copies,
            waiting: n.waiting,
            printing: n.printing,
            done: n.done,
            failed: n.failed,
            cancelled: n.cancelled,
            material: fj.material.clone(),
            color_hex: fj.color_hex.clone(),
            priority: fj.priority,
            state: state.into(),
            reason: (!why.is_empty()).then_some(why),
            reason_code: (!code.is_empty()).then_some(code),
            eta_next_start: (state == "waiting").then_some(first).flatten().map(stamp),
            eta_done: last
                .filter(|_| state == "waiting" || state == "printing")
                .map(stamp),
            created_at: stamp(fj.created_at),
            copy_list: copy_lists.remove(&fj.id),
        });
    }
    Ok(out)
}

/// A power circuit as the extension call answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CircuitView {
    pub id: i64,
    pub name: String,
    pub max_heating: Option<i32>,
    pub max_downloads: Option<i32>,
    pub printer_ids: Vec<i64>,
    /// Printers of the circuit heating / downloading now.
    pub heating: i32,
    pub downloading: i32,
}

fn circuit_view(c: &mut DbConn, ci: PowerCircuit, ctx: &JobContext) -> Result<CircuitView> {
    let now = db::now();
    let members = Printer::in_circuit(c, ci.id)?;
    let started = started_at(c, &members)?;
    let all: Vec<&Printer> = members.iter().collect();
    let (downloading, heating) = circuit_use(&all, &started, ctx.offline_after, now);
    Ok(CircuitView {
        id: ci.id,
        name: ci.name,
        max_heating: ci.max_heating,
        max_downloads: ci.max_downloads,
        printer_ids: members.iter().map(|p| p.id.0).collect(),
        heating,
        downloading,
    })
}

/// The organization's power circuits.
pub fn circuits(conn: &mut DbConn, user: &User, ctx: &JobContext) -> Result<Vec<CircuitView>> {
    PowerCircuit::of_org(conn, user.organization_id)?
        .into_iter()
        .map(|ci| circuit_view(conn, ci, ctx))
        .collect()
}

/// What `set_circuit` sets.
pub struct CircuitChange {
    pub name: String,
    pub max_heating: Option<i32>,
    pub max_downloads: Option<i32>,
    /// Exactly the printers in it; None leaves them.
    pub printers: Option<Vec<PrinterId>>,
    pub remove: bool,
}

/// Creates or changes a power circuit (organization admins): its limits and, when given,
/// exactly which printers it holds. `remove` deletes it.
pub fn set_circuit(
    conn: &mut DbConn,
    user: &User,
    change: &CircuitChange,
    ctx: &JobContext,
) -> Result<Option<CircuitView>> {
    let (max_heating, max_downloads, remove) =
        (change.max_heating, change.max_downloads, change.remove);
    let printers = change.printers.as_deref();
    crate::services::orgs::require_org_admin(user)?;
    let name = change.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::invalid("name must be 1 to 64 characters"));
    }
    for (k, v) in [
        ("max_heating", max_heating),
        ("max_downloads", max_downloads),
    ] {
        if v.is_some_and(|v| !(1..=10_000).contains(&v)) {
            return Err(Error::invalid(format!(
                "{k} must be at least 1 (leave it out for no limit)"
            )));
        }
    }
    let out = db::write_transaction(conn, |c| {
        let org = user.organization_id;
        let existing = PowerCircuit::by_name(c, org, name)?;
        if remove {
            let ci = existing
                .ok_or_else(|| Error::not_found(format!("Power circuit {name:?} not found")))?;
            PowerCircuit::delete(c, ci.id)?;
            return Ok(None);
        }
        let ci = match existing {
            Some(ci) => {
                PowerCircuit::set_limits(c, ci.id, max_heating, max_downloads)?;
                ci
            }
            None => PowerCircuit::insert(
                c,
                &NewPowerCircuit {
                    organization_id: org,
                    name,
                    max_heating,
                    max_downloads,
                    created_at: db::now(),
                },
            )?,
        };
        if let Some(list) = printers {
            for p in list {
                let printer = printer_access::managed(c, user, *p)?;
                if printer.organization_id != org {
                    return Err(Error::not_found(format!("Printer {p} not found")));
                }
            }
            let old: Vec<PrinterId> = Printer::in_circuit(c, ci.id)?
                .iter()
                .map(|p| p.id)
                .collect();
            Printer::set_circuit(c, &old, None)?;
            Printer::set_circuit(c, list, Some(ci.id))?;
        }
        let ci =
            PowerCircuit::find(c, ci.id)?.ok_or_else(|| Error::internal("circuit vanished"))?;
        Ok(Some(ci))
    })?;
    out.map(|ci| circuit_view(conn, ci, ctx)).transpose()
}
