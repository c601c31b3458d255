//! Printers: who sees and manages which, the Global API lists, shares, registration codes,
//! the build-tray flag and camera tokens.
//!
//! Visibility: organization admins see their organization's printers; owners see theirs;
//! workgroup members see the printers of their workgroups; a share to the user's email gives
//! access to that printer (across organizations, too). Everything else answers 404.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::models::{
    access_role, normalize_email, read, rights, share_role, CameraToken, Job, JobId, NewPrinter,
    Printer, PrinterId, PrinterShare, PrinterState, PrinterType, PrinterWorkgroups,
    RegistrationCode, User, Workgroup,
};
use crate::db::{self, DbConn};
use crate::error::{AgentCode, Error, Result};
use crate::services::auth::{random_token, token_hash};
use crate::services::orgs::is_org_admin;

/// What a user may do with a printer, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// May queue jobs (workgroup rights 3, share role 5).
    Queue,
    /// May start jobs (workgroup rights 2, share role 2).
    Print,
    /// Owner or organization admin: shares, workgroups, everything.
    Manage,
}

fn access_via_rights(r: i32) -> Access {
    if r == rights::CAN_QUEUE {
        Access::Queue
    } else {
        Access::Print
    }
}

fn access_via_share(s: &PrinterShare) -> Access {
    if s.role_id == share_role::CAN_QUEUE {
        Access::Queue
    } else {
        Access::Print
    }
}

/// Every printer the user can reach, with the strongest access they have to it.
pub fn reachable(conn: &mut DbConn, user: &User) -> Result<BTreeMap<PrinterId, Access>> {
    Ok(reachable_and_org_printers(conn, user)?.0)
}

/// [`reachable`], with the rows of the organization's printers it read on the way.
fn reachable_and_org_printers(
    conn: &mut DbConn,
    user: &User,
) -> Result<(BTreeMap<PrinterId, Access>, Vec<Printer>)> {
    let mut out: BTreeMap<PrinterId, Access> = BTreeMap::new();
    let mut grant = |id: PrinterId, a: Access| {
        let e = out.entry(id).or_insert(a);
        if a > *e {
            *e = a;
        }
    };
    let org_printers = Printer::in_org(conn, user.organization_id)?;
    for p in &org_printers {
        if is_org_admin(user) || p.owner_user_id == Some(user.id) {
            grant(p.id, Access::Manage);
        }
    }
    for (printer, rights) in PrinterWorkgroups::member_rights(conn, user.id)? {
        grant(printer, access_via_rights(rights));
    }
    for s in PrinterShare::for_email(conn, &user.email)? {
        grant(s.printer_id, access_via_share(&s));
    }
    Ok((out, org_printers))
}

/// The user's access to one printer, or `None` when it is out of reach.
pub fn access(conn: &mut DbConn, user: &User, printer: &Printer) -> Result<Option<Access>> {
    let mut best = None;
    if printer.organization_id == user.organization_id
        && (is_org_admin(user) || printer.owner_user_id == Some(user.id))
    {
        return Ok(Some(Access::Manage));
    }
    if printer.organization_id == user.organization_id {
        let mine = Workgroup::of_user(conn, user.id)?;
        let groups: BTreeSet<i64> = PrinterWorkgroups::of(conn, &[printer.id])?
            .into_iter()
            .map(|(_, wg)| wg)
            .collect();
        for (wg, r) in mine {
            if groups.contains(&wg.id) {
                best = best.max(Some(access_via_rights(r)));
            }
        }
    }
    if let Some(s) = PrinterShare::find_for(conn, printer.id, &user.email)? {
        best = best.max(Some(access_via_share(&s)));
    }
    Ok(best)
}

/// Whether the user sees every job of a printer they can reach, or only their own. People
/// of the printer's organization see all of them; holders of a share from another
/// organization see only their own (other people's emails, files and costs are not theirs to
/// see). The one rule for every call that lists or shows jobs of a printer.
pub fn sees_all_jobs(user: &User, printer: &Printer) -> bool {
    printer.organization_id == user.organization_id
}

fn not_found(id: PrinterId) -> Error {
    Error::not_found(format!("Printer {id} not found"))
}

/// A printer the user can reach (404 otherwise, exactly as for a missing id).
pub fn visible(conn: &mut DbConn, user: &User, id: PrinterId) -> Result<(Printer, Access)> {
    let printer = Printer::find(conn, id)?.ok_or_else(|| not_found(id))?;
    let a = access(conn, user, &printer)?.ok_or_else(|| not_found(id))?;
    Ok((printer, a))
}

/// A printer the user manages: 404 out of reach, 403 reachable without the right.
pub fn managed(conn: &mut DbConn, user: &User, id: PrinterId) -> Result<Printer> {
    let (printer, a) = visible(conn, user, id)?;
    if a < Access::Manage {
        return Err(Error::denied(
            "Only the printer's owner and organization admins may do this",
        ));
    }
    Ok(printer)
}

/// The state clients see: the agent's, or `notconnected` when it stopped polling. A printer
/// in maintenance shows `local_mode` once idle (the documented word for a printer that takes
/// no jobs from the cloud); while it ends a job it shows that job's state.
pub fn display_state(p: &Printer, offline_after: Duration, now: NaiveDateTime) -> PrinterState {
    match p.last_seen_at {
        Some(seen) if now - seen <= offline_after => {
            let idle = matches!(p.state, PrinterState::Ready | PrinterState::BedNotClear);
            if p.maintenance_note.is_some() && p.current_job_id.is_none() && idle {
                PrinterState::LocalMode
            } else {
                p.state.clone()
            }
        }
        _ => PrinterState::NotConnected,
    }
}

/// Temperatures as whole degrees; the agent's odd entries (not numbers) become null.
fn int_temps(text: Option<&str>) -> Option<Vec<Option<i64>>> {
    let list = serde_json::from_str::<Vec<Option<f64>>>(text?).ok()?;
    Some(
        list.into_iter()
            .map(|t| t.map(|v| v.round() as i64))
            .collect(),
    )
}

/// What `user_list_item` needs besides the printer: the printer types' short names.
pub struct ListContext {
    pub offline_after: Duration,
    pub types: BTreeMap<i64, String>,
}

pub fn list_context(conn: &mut DbConn, offline_after: Duration) -> Result<ListContext> {
    Ok(ListContext {
        offline_after,
        types: PrinterType::short_names(conn)?.into_iter().collect(),
    })
}

/// What `org_list_item` needs: the user list's context and the printers' workgroups.
pub struct OrgListContext {
    pub list: ListContext,
    pub workgroups: BTreeMap<PrinterId, Vec<i64>>,
}

pub fn org_list_context(
    conn: &mut DbConn,
    printers: &[Printer],
    offline_after: Duration,
) -> Result<OrgListContext> {
    let list = list_context(conn, offline_after)?;
    let ids: BTreeSet<PrinterId> = printers.iter().map(|p| p.id).collect();
    let orgs: BTreeSet<_> = printers.iter().map(|p| p.organization_id).collect();
    let orgs: Vec<_> = orgs.into_iter().collect();
    let mut workgroups: BTreeMap<PrinterId, Vec<i64>> = BTreeMap::new();
    for (p, wg) in PrinterWorkgroups::of_orgs(conn, &orgs)? {
        if ids.contains(&p) {
            workgroups.entry(p).or_default().push(wg);
        }
    }
    Ok(OrgListContext { list, workgroups })
}

fn type_name(ctx: &ListContext, p: &Printer) -> String {
    p.printer_type_id
        .and_then(|t| ctx.types.get(&t))
        .cloned()
        .unwrap_or_default()
}

/// One item of `get_organization_printers_list`, with exactly the seed's keys.
#[derive(Serialize, ToSchema)]
pub struct OrgPrinterItem {
    #[schema(value_type = i64)]
    pub id: PrinterId,
    pub name: String,
    /// The printer type's short name.
    pub r#type: String,
    pub snr: String,
    pub host_num: String,
    pub local_ip: String,
    /// The workgroups the printer belongs to, or null for none.
    pub workgroups: Option<Vec<i64>>,
    /// The agent's state, or `notconnected`.
    #[schema(example = "ready")]
    pub state: String,
    pub temps: Option<Vec<Option<i64>>>,
    pub target_temps: Option<Vec<Option<i64>>>,
    pub percent: i64,
}

pub fn org_list_item(ctx: &OrgListContext, p: &Printer, now: NaiveDateTime) -> OrgPrinterItem {
    OrgPrinterItem {
        id: p.id,
        name: p.name.clone(),
        r#type: type_name(&ctx.list, p),
        snr: p.snr.clone(),
        host_num: p.host_num.clone(),
        local_ip: p.local_ip.clone(),
        workgroups: ctx.workgroups.get(&p.id).filter(|w| !w.is_empty()).cloned(),
        state: display_state(p, ctx.list.offline_after, now).to_string(),
        temps: int_temps(p.temps.as_deref()),
        target_temps: int_temps(p.target_temps.as_deref()),
        percent: p.percent.round() as i64,
    }
}

/// One item of `get_printers_list`.
#[derive(Serialize, ToSchema)]
pub struct UserPrinterItem {
    #[schema(value_type = i64)]
    pub id: PrinterId,
    /// The same as `id`.
    #[schema(value_type = i64)]
    pub printer_id: PrinterId,
    pub name: String,
    pub r#type: String,
    #[schema(example = "ready")]
    pub state: String,
    pub local_ip: String,
    /// The loaded materials as reported by the printer's agent, as a JSON *string* (clients
    /// `json.loads` it): a list with one object per extruder whose material or colour is
    /// known, `{"extruder": 1, "material": "PLA", "color_hex": "#FF8800"}` (plus `desc` and
    /// `volume` when the agent reports them); null when nothing is known.
    #[schema(example = r##"[{"extruder":1,"material":"PLA","color_hex":"#FF8800"}]"##)]
    pub filaments: Option<String>,
    pub percent: i64,
    pub temps: Option<Vec<Option<i64>>>,
    pub target_temps: Option<Vec<Option<i64>>>,
    pub tray_clear: bool,
}

pub fn user_list_item(ctx: &ListContext, p: &Printer, now: NaiveDateTime) -> UserPrinterItem {
    UserPrinterItem {
        id: p.id,
        printer_id: p.id,
        name: p.name.clone(),
        r#type: type_name(ctx, p),
        state: display_state(p, ctx.offline_after, now).to_string(),
        local_ip: p.local_ip.clone(),
        filaments: p.filaments.clone(),
        percent: p.percent.round() as i64,
        temps: int_temps(p.temps.as_deref()),
        target_temps: int_temps(p.target_temps.as_deref()),
        tray_clear: p.tray_clear,
    }
}

/// A printer as the console's dashboard shows it: what `get_printers_list` answers, with the
/// job it is busy with and the length of its queue.
pub struct PrinterCard {
    pub item: UserPrinterItem,
    pub job: Option<CardJob>,
    pub queued: i64,
    /// The maintenance note, while the printer is in maintenance.
    pub maintenance: Option<String>,
}

pub struct CardJob {
    pub id: JobId,
    /// The viewer may pause, resume and cancel it: their own job, or a printer they manage
    /// (the rule of `job_pause` and `job_cancel`).
    pub may_control: bool,
    pub filename: String,
    pub owner: String,
    /// From the slicer's estimate and the progress; None before the job reports progress.
    pub seconds_left: Option<i64>,
}

/// The dashboard: every printer the user may use (the same reach as `get_printers_list`),
/// by name.
pub fn cards(
    conn: &mut DbConn,
    user: &User,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Result<Vec<PrinterCard>> {
    cards_of(conn, user, None, offline_after, now)
}

/// The dashboard's cards, or only the card of `only` (404 when out of reach).
fn cards_of(
    conn: &mut DbConn,
    user: &User,
    only: Option<PrinterId>,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Result<Vec<PrinterCard>> {
    // The reach once: it is both the list (as `user_printers` without filters) and who manages.
    let reach = reachable(conn, user)?;
    let ids: Vec<PrinterId> = reach
        .keys()
        .copied()
        .filter(|id| only.is_none_or(|o| o == *id))
        .collect();
    if let Some(id) = only.filter(|_| ids.is_empty()) {
        return Err(not_found(id));
    }
    let mut printers = Printer::by_ids(conn, &ids)?;
    printers.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let ctx = list_context(conn, offline_after)?;
    let busy: Vec<JobId> = printers.iter().filter_map(|p| p.current_job_id).collect();
    let jobs: BTreeMap<JobId, (Job, String, String)> = read::jobs_with_file(conn, &busy)?
        .into_iter()
        .map(|row| (row.0.id, row))
        .collect();
    let queues: BTreeMap<PrinterId, i64> = read::queue_lengths(conn, &ids)?.into_iter().collect();
    Ok(printers
        .iter()
        .map(|p| {
            let job = p
                .current_job_id
                .and_then(|j| jobs.get(&j))
                .map(|(job, file, owner)| {
                    // A job that others may not see stays anonymous on a shared printer.
                    let visible = sees_all_jobs(user, p) || job.user_id == user.id;
                    let manages = reach.get(&p.id) == Some(&Access::Manage);
                    CardJob {
                        id: job.id,
                        may_control: manages || job.user_id == user.id,
                        filename: if visible {
                            file.clone()
                        } else {
                            "A job".into()
                        },
                        owner: if visible {
                            owner.clone()
                        } else {
                            String::new()
                        },
                        seconds_left: (job.percent > 0.0 && job.printing_duration > 0).then(|| {
                            (f64::from(job.printing_duration) * (100.0 - job.percent) / 100.0)
                                .round() as i64
                        }),
                    }
                });
            PrinterCard {
                item: user_list_item(&ctx, p, now),
                job,
                queued: queues.get(&p.id).copied().unwrap_or(0),
                maintenance: p.maintenance_note.clone(),
            }
        })
        .collect())
}

/// One printer's card (404 when out of reach).
pub fn card(
    conn: &mut DbConn,
    user: &User,
    id: PrinterId,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Result<PrinterCard> {
    cards_of(conn, user, Some(id), offline_after, now)?
        .pop()
        .ok_or_else(|| not_found(id))
}

/// `get_organization_printers_list`: organization admins see the organization, workgroup admins
/// the printers of their workgroups; optional filters by printer and workgroup.
pub fn organization_printers(
    conn: &mut DbConn,
    user: &User,
    printer_id: Option<PrinterId>,
    workgroup_id: Option<i64>,
) -> Result<Vec<Printer>> {
    let all = Printer::in_org(conn, user.organization_id)?;
    let allowed: Option<BTreeSet<PrinterId>> = if is_org_admin(user) {
        None
    } else if user.access_role == access_role::WORKGROUP_ADMIN {
        let wgs: Vec<i64> = Workgroup::of_user(conn, user.id)?
            .iter()
            .map(|(w, _)| w.id)
            .collect();
        Some(
            PrinterWorkgroups::printers_in(conn, &wgs)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
        )
    } else {
        return Err(Error::denied(
            "Only organization and workgroup admins may list the organization's printers",
        ));
    };
    if let Some(wg) = workgroup_id {
        crate::services::orgs::visible_workgroup(conn, user, wg)?;
    }
    let in_wg: Option<BTreeSet<PrinterId>> = workgroup_id
        .map(|wg| {
            PrinterWorkgroups::printers_in(conn, &[wg])
                .map(|v| v.into_iter().map(|(p, _)| p).collect())
        })
        .transpose()?;
    let list: Vec<Printer> = all
        .into_iter()
        .filter(|p| allowed.as_ref().is_none_or(|a| a.contains(&p.id)))
        .filter(|p| in_wg.as_ref().is_none_or(|w| w.contains(&p.id)))
        .filter(|p| printer_id.is_none_or(|id| p.id == id))
        .collect();
    if let Some(id) = printer_id {
        if list.is_empty() {
            return Err(not_found(id));
        }
    }
    Ok(list)
}

/// `get_printers_list`: every printer the user can reach, optionally filtered.
pub fn user_printers(
    conn: &mut DbConn,
    user: &User,
    printer_type: Option<&str>,
    ids: &[PrinterId],
) -> Result<Vec<Printer>> {
    let (reach, org_printers) = reachable_and_org_printers(conn, user)?;
    let wanted = |id: &PrinterId| reach.contains_key(id) && (ids.is_empty() || ids.contains(id));
    let mut printers: Vec<Printer> = org_printers.into_iter().filter(|p| wanted(&p.id)).collect();
    // Printers of other organizations (shared with the user) were not read yet.
    let read: BTreeSet<PrinterId> = printers.iter().map(|p| p.id).collect();
    let elsewhere: Vec<PrinterId> = reach
        .keys()
        .copied()
        .filter(|id| wanted(id) && !read.contains(id))
        .collect();
    if !elsewhere.is_empty() {
        printers.extend(Printer::by_ids(conn, &elsewhere)?);
        printers.sort_by_key(|p| p.id);
    }
    if let Some(t) = printer_type {
        let t = t.trim().to_uppercase();
        let types: BTreeMap<i64, String> = PrinterType::short_names(conn)?.into_iter().collect();
        printers.retain(|p| {
            p.printer_type_id
                .and_then(|id| types.get(&id))
                .is_some_and(|s| *s == t)
        });
    }
    Ok(printers)
}

/// Organization admins assign a printer to workgroups of its organization (printfarm extension).
pub fn set_workgroups(
    conn: &mut DbConn,
    user: &User,
    printer_id: PrinterId,
    workgroups: &[i64],
) -> Result<()> {
    db::write_transaction(conn, |c| {
        let printer = managed(c, user, printer_id)?;
        for wg in workgroups {
            Workgroup::find_in_org(c, printer.organization_id, *wg)?
                .ok_or_else(|| Error::not_found(format!("Workgroup {wg} not found")))?;
        }
        let unique: BTreeSet<i64> = workgroups.iter().copied().collect();
        PrinterWorkgroups::set(c, printer.id, &unique.into_iter().collect::<Vec<_>>())?;
        Ok(())
    })
}

pub fn shares(conn: &mut DbConn, user: &User, printer_id: PrinterId) -> Result<Vec<PrinterShare>> {
    let printer = managed(conn, user, printer_id)?;
    Ok(PrinterShare::of_printer(conn, printer.id)?)
}

/// `share_printer`: a new share, or new terms for an existing share to the same email.
pub fn share(
    conn: &mut DbConn,
    user: &User,
    printer_id: PrinterId,
    role: i64,
    email: &str,
    prints: Option<i64>,
) -> Result<PrinterShare> {
    let role = i32::try_from(role)
        .ok()
        .filter(|r| *r == share_role::CAN_PRINT || *r == share_role::CAN_QUEUE)
        .ok_or_else(|| Error::invalid("role_id must be 2 (can print) or 5 (can queue)"))?;
    let prints = prints
        .map(|n| {
            i32::try_from(n)
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Error::invalid("number_of_prints must be a non-negative integer"))
        })
        .transpose()?;
    let email = normalize_email(email);
    if !email.contains('@') || email.len() > 254 {
        return Err(Error::invalid("user_email is not a valid email address"));
    }
    db::write_transaction(conn, |c| {
        let printer = managed(c, user, printer_id)?;
        match PrinterShare::find_for(c, printer.id, &email)? {
            Some(s) => {
                PrinterShare::update_terms(c, s.id, role, prints)?;
                Ok(
                    PrinterShare::find(c, s.id)?
                        .ok_or_else(|| Error::internal("share vanished"))?,
                )
            }
            None => Ok(PrinterShare::insert(
                c, printer.id, &email, role, prints, user.id,
            )?),
        }
    })
}

pub fn unshare(conn: &mut DbConn, user: &User, share_id: i64) -> Result<()> {
    db::write_transaction(conn, |c| {
        let missing = || Error::not_found(format!("Share {share_id} not found"));
        let share = PrinterShare::find(c, share_id)?.ok_or_else(missing)?;
        // Someone who cannot manage the printer learns nothing about its shares.
        match managed(c, user, share.printer_id) {
            Ok(_) => {}
            Err(Error::Denied(_)) | Err(Error::NotFound(_)) => return Err(missing()),
            Err(e) => return Err(e),
        }
        PrinterShare::delete(c, share.id)?;
        Ok(())
    })
}

/// `printer_clear_build_tray`: a user who may print on the printer confirms the tray is clear
/// (or not). A clear tray lets queued jobs start, so queue-only users may not touch it.
pub fn set_tray(
    conn: &mut DbConn,
    user: &User,
    printer_id: PrinterId,
    clear: bool,
) -> Result<Printer> {
    db::write_transaction(conn, |c| {
        let (printer, access) = visible(c, user, printer_id)?;
        if access < Access::Print {
            return Err(Error::denied(
                "Only users who may print on this printer may change its build tray",
            ));
        }
        Printer::set_tray_clear(c, printer.id, clear)?;
        Printer::find(c, printer.id)?.ok_or_else(|| not_found(printer_id))
    })
}

/// Short, unambiguous codes (no 0/O, 1/I/L) shown by agents, like `K7QM-W3XR`.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let chars: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

pub fn normalize_code(code: &str) -> String {
    let c: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if c.len() == 8 {
        format!("{}-{}", &c[..4], &c[4..])
    } else {
        c
    }
}

/// What a printer agent told us about itself when registering.
#[derive(Debug, Clone, Default)]
pub struct DeviceInfo {
    pub vid: String,
    pub pid: String,
    pub snr: String,
    pub mac: String,
    pub version: Option<String>,
    pub type_alias: Option<String>,
    pub local_ip: String,
    pub raw: Value,
}

impl DeviceInfo {
    /// What is kept of an agent's device description (`register` / `printer_login` body):
    /// top-level scalars only, strings cut to 128 characters, at most 32 keys, so a stored
    /// registration stays small whatever the agent sends.
    pub fn bounded_raw(v: &Value) -> Value {
        let Some(obj) = v.as_object() else {
            return Value::Object(Default::default());
        };
        let kept = obj
            .iter()
            .filter(|(k, _)| k.len() <= 64)
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => Value::String(s.chars().take(128).collect()),
                    Value::Number(_) | Value::Bool(_) => v.clone(),
                    _ => return None,
                };
                Some((k.clone(), v))
            })
            .take(32)
            .collect();
        Value::Object(kept)
    }

    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.vid, self.pid, self.snr)
    }
}

pub enum Registration {
    /// Show this code to the user; poll again with it.
    Code(String),
    /// Redeemed: the agent's credentials.
    Token { token: String, email: String },
}

/// The agent's `register` poll.
pub fn agent_register(
    conn: &mut DbConn,
    device: &DeviceInfo,
    code: Option<&str>,
    ttl: Duration,
) -> Result<Registration> {
    if device.snr.is_empty() {
        return Err(Error::agent(
            AgentCode::SerialMissing,
            "SNR is required to register",
        ));
    }
    let now = db::now();
    let Some(code) = code.map(normalize_code).filter(|c| !c.is_empty()) else {
        let code = new_code();
        RegistrationCode::insert(
            conn,
            &code,
            &device.key(),
            &device.raw.to_string(),
            device.type_alias.as_deref(),
            now + ttl,
        )?;
        return Ok(Registration::Code(code));
    };
    let bad = |m: &str| Err(Error::agent(AgentCode::BadRegistrationCode, m));
    let Some(row) = RegistrationCode::find(conn, &code)? else {
        return bad("Unknown registration code; register again without a code");
    };
    if row.device_key != device.key() {
        return bad("This registration code belongs to another device");
    }
    if let Some(token) = &row.pending_auth_token {
        let email = row
            .redeemed_by_user_id
            .and_then(|u| User::find(conn, u).transpose())
            .transpose()?
            .map(|u| u.email)
            .unwrap_or_default();
        return Ok(Registration::Token {
            token: token.clone(),
            email,
        });
    }
    if row.redeemed_at.is_some() {
        return bad("This registration code was already used; register again without a code");
    }
    if row.expires_at <= now {
        return bad("The registration code expired; register again without a code");
    }
    Ok(Registration::Code(row.code))
}

/// `add_printer_by_registration_code`: the code's device becomes a printer of the caller's
/// organization, owned by the caller (a device already known there is re-paired).
pub fn redeem_code(conn: &mut DbConn, user: &User, code: &str) -> Result<Printer> {
    let code = normalize_code(code);
    db::write_transaction(conn, |c| {
        let row = RegistrationCode::find(c, &code)?
            .ok_or_else(|| Error::not_found("Unknown registration code"))?;
        if row.redeemed_at.is_some() {
            return Err(Error::Gone(
                "This registration code was already used".into(),
            ));
        }
        if row.expires_at <= db::now() {
            return Err(Error::Gone(
                "This registration code has expired; restart the printer's registration".into(),
            ));
        }
        let info: Value = serde_json::from_str(&row.agent_info).unwrap_or(Value::Null);
        let text = |k: &str| {
            info.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut parts = row.device_key.splitn(3, ':');
        let device = DeviceInfo {
            vid: parts.next().unwrap_or("").to_string(),
            pid: parts.next().unwrap_or("").to_string(),
            snr: parts.next().unwrap_or("").to_string(),
            mac: text("mac"),
            version: Some(text("version")).filter(|v| !v.is_empty()),
            type_alias: row.printer_type_alias.clone(),
            local_ip: text("local_ip"),
            raw: info.clone(),
        };
        let token = random_token();
        let printer = pair_device(c, user, &device, Some(text("name")), &token)?;
        if !RegistrationCode::redeem(c, row.id, user.id, printer.id, &token)? {
            return Err(Error::Gone(
                "This registration code was already used".into(),
            ));
        }
        Ok(printer)
    })
}

/// Gives a device of the user's organization a new auth token: the printer already known
/// there (same VID, PID and serial) is re-paired, otherwise a new printer owned by the user is
/// created. One transaction (a savepoint inside the caller's).
pub fn pair_device(
    conn: &mut DbConn,
    user: &User,
    device: &DeviceInfo,
    name: Option<String>,
    token: &str,
) -> Result<Printer> {
    db::write_transaction(conn, |c| {
        pair_device_inner(c, user, device, name.clone(), token)
    })
}

fn pair_device_inner(
    conn: &mut DbConn,
    user: &User,
    device: &DeviceInfo,
    name: Option<String>,
    token: &str,
) -> Result<Printer> {
    if let Some(p) = Printer::find_device(
        conn,
        user.organization_id,
        &device.vid,
        &device.pid,
        &device.snr,
    )? {
        // A new token cuts off the agent that holds the old one, so re-pairing is managing
        // the printer: anyone else could take over its next print (issue #13).
        if access(conn, user, &p)? != Some(Access::Manage) {
            return Err(Error::denied(format!(
                "The device {} {} {} is already paired as a printer you may not manage; \
                 ask its owner or an organization admin",
                device.vid, device.pid, device.snr
            )));
        }
        // Not seen with the new token yet: its first use forgets the registration copy.
        Printer::set_token_hash(conn, p.id, &token_hash(token))?;
        Printer::forget_last_seen(conn, p.id)?;
        return Ok(Printer {
            last_seen_at: None,
            ..p
        });
    }
    let ptype = match &device.type_alias {
        Some(alias) => PrinterType::all(conn)?
            .into_iter()
            .find(|t| t.short_name.eq_ignore_ascii_case(alias)),
        None => None,
    };
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
        format!(
            "{} {}",
            ptype.as_ref().map_or("Printer", |t| t.description.as_str()),
            device.snr
        )
    });
    let now = db::now();
    Ok(Printer::insert(
        conn,
        &NewPrinter {
            organization_id: user.organization_id,
            owner_user_id: Some(user.id),
            printer_type_id: ptype.as_ref().map(|t| t.id),
            name: name.trim(),
            snr: &device.snr,
            host_num: &device.mac,
            local_ip: &device.local_ip,
            vid: &device.vid,
            pid: &device.pid,
            mac: &device.mac,
            agent_version: device.version.as_deref(),
            auth_token_hash: Some(&token_hash(token)),
            state: PrinterState::Connecting,
            percent: 0.0,
            tray_clear: true,
            next_command_number: 1,
            created_at: now,
            updated_at: now,
        },
    )?)
}

/// `get_camera_list_token`: a short-lived viewer token for one printer or all reachable ones.
pub fn camera_token(
    conn: &mut DbConn,
    user: &User,
    printer_id: Option<PrinterId>,
    ttl: Duration,
) -> Result<String> {
    if let Some(id) = printer_id {
        visible(conn, user, id)?;
    }
    let token = random_token();
    CameraToken::insert(
        conn,
        &token_hash(&token),
        user.id,
        printer_id,
        db::now() + ttl,
    )?;
    Ok(token)
}

/// The printer a camera token lets its holder watch (re-checking the user's access).
pub fn camera_printer(conn: &mut DbConn, token: &str, printer_id: PrinterId) -> Result<Printer> {
    let invalid = || Error::not_found("Unknown or expired camera link");
    let t = CameraToken::find(conn, &token_hash(token))?.ok_or_else(invalid)?;
    if t.expires_at <= db::now() {
        return Err(Error::Gone("This camera link has expired".into()));
    }
    if t.printer_id.is_some_and(|p| p != printer_id) {
        return Err(invalid());
    }
    let user = User::find(conn, t.user_id)?.ok_or_else(invalid)?;
    let (printer, _) = visible(conn, &user, printer_id)?;
    Ok(printer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_short_and_unambiguous() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 9);
            assert!(!c.contains(['0', 'O', '1', 'I', 'L']));
            assert_eq!(normalize_code(&c.to_lowercase().replace('-', " ")), c);
        }
    }
}
