//! The printer-agent channel: reports, durable commands (pending → sent → acked/failed, one
//! per poll, in number order, re-sent until acknowledged), and camera frames.

use std::collections::HashMap;

use chrono::Duration;
use serde_json::{Map, Value};

use crate::db::models::{
    read, CameraFrame, Heartbeat, Printer, PrinterCommand, PrinterId, PrinterReport, PrinterState,
    RegistrationCode,
};
use crate::db::{self, DbConn};
use crate::error::{AgentCode, Error, Result};
use crate::services::auth::token_hash;
use crate::services::farm;
use crate::services::jobs::{self, JobContext};

/// The printer an agent token belongs to. The first use of a freshly issued token also
/// forgets the plain copy kept for the registration poll. "First use" is a printer not seen
/// since its token was issued (pairing clears `last_seen_at`), so steady-state polls skip
/// that write.
pub fn authenticate(conn: &mut DbConn, token: &str) -> Result<Printer> {
    if token.is_empty() {
        return Err(bad_token());
    }
    let printer = Printer::find_by_token_hash(conn, &token_hash(token))?.ok_or_else(bad_token)?;
    first_use(conn, &printer)?;
    Ok(printer)
}

/// [`authenticate`] for a poll, in the same statement: also whether a command waits for the
/// printer.
pub fn authenticate_poll(conn: &mut DbConn, token: &str) -> Result<(Printer, bool)> {
    if token.is_empty() {
        return Err(bad_token());
    }
    let (printer, waiting) =
        Printer::find_by_token_hash_for_poll(conn, &token_hash(token))?.ok_or_else(bad_token)?;
    first_use(conn, &printer)?;
    Ok((printer, waiting))
}

fn bad_token() -> Error {
    Error::agent(
        AgentCode::BadToken,
        "Invalid auth token; register the printer again",
    )
}

fn first_use(conn: &mut DbConn, printer: &Printer) -> Result<()> {
    if printer.last_seen_at.is_none() {
        RegistrationCode::forget_token(conn, printer.id)?;
    }
    Ok(())
}

/// One `command` request, decoded.
#[derive(Debug, Default, Clone)]
pub struct Poll {
    pub report: Option<Map<String, Value>>,
    pub ack: Option<(i64, bool)>,
    pub errors: Option<Value>,
    pub reset_job: bool,
    pub bed_clear: bool,
}

impl Poll {
    pub fn from_json(body: &Value) -> Poll {
        let ack = body.get("command_ack").and_then(|a| {
            let number = match a.get("number")? {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }?;
            // A missing or null result counts as success (the reference client does the same).
            let ok = !matches!(a.get("result"), Some(Value::Bool(false)));
            Some((number, ok))
        });
        let errors = body
            .get("error")
            .filter(|e| !e.is_null() && e.as_array().is_none_or(|a| !a.is_empty()))
            .cloned();
        Poll {
            report: body.get("report").and_then(Value::as_object).cloned(),
            ack,
            errors,
            reset_job: body.get("reset_job").is_some_and(truthy),
            bed_clear: body.get("bed_clear").is_some_and(truthy),
        }
    }

    /// What the job queue follows a running job by.
    pub fn seen(&self) -> jobs::AgentSeen<'_> {
        let blocking_error = self
            .errors
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|errs| {
                errs.iter().any(|e| {
                    e.get("level")
                        .and_then(Value::as_i64)
                        .is_some_and(|l| l >= 40)
                })
            });
        jobs::AgentSeen {
            report: self.report.as_ref(),
            reset_job: self.reset_job,
            blocking_error,
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

/// Temperatures as agents send them, tolerating odd entries (`[60.1, [215, 2], null, "x"]`):
/// numbers are kept, a list contributes its first number, anything else becomes null.
pub fn temps(v: &Value) -> Option<Vec<Option<f64>>> {
    let list = v.as_array()?;
    Some(
        list.iter()
            .map(|t| match t {
                Value::Number(n) => n.as_f64(),
                Value::Array(inner) => inner.iter().find_map(Value::as_f64),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .map(|t| t.filter(|x| x.is_finite()))
            .collect(),
    )
}

/// The report fields the protocol defines (`notes/agent-protocol.md` §2.6) plus `local_ip`.
/// Only these are stored: the report is merged poll after poll, so any other key would make
/// the row grow without bound.
const REPORT_FIELDS: &[&str] = &[
    "state",
    "percent",
    "temps",
    "target_temps",
    "line_number",
    "coords",
    "material_names",
    "material_desc",
    "material_volumes",
    "material_colors_hex",
    "estimated_time",
    "ext",
    "response",
    "clouds_job_id",
    "printers_job_id",
    "filename",
    "local_ip",
];
/// The keys kept inside `ext`.
const EXT_FIELDS: &[&str] = &[
    "status_bin",
    "id_bin",
    "tank_error",
    "cartridge_error",
    "cartridge_original_volume",
];
/// Longest stored string (characters) and list in a report.
const REPORT_MAX_STRING: usize = 256;
const REPORT_MAX_LIST: usize = 16;

/// A known report field with its size bounded (strings cut, lists shortened, nesting at most
/// one list deep, as `target_temps` entries like `[215, 2]` need); unknown keys give `None`.
/// The material lists are validated entry by entry ([`material_field`]).
fn bounded_report_field(key: &str, v: &Value) -> Option<Value> {
    if !REPORT_FIELDS.contains(&key) {
        return None;
    }
    if key.starts_with("material_") {
        return material_field(key, v);
    }
    if key == "ext" {
        let ext = v.as_object()?;
        let kept: Map<String, Value> = ext
            .iter()
            .filter(|(k, _)| EXT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), bounded_value(v, 0)))
            .collect();
        return Some(Value::Object(kept));
    }
    Some(bounded_value(v, 1))
}

/// Most extruders (or material slots, e.g. an AMS with four units) one printer reports.
pub const MAX_MATERIAL_SLOTS: usize = 16;
/// Longest material name kept (characters), e.g. "Prusament PETG Galaxy Black".
pub const MAX_MATERIAL_NAME: usize = 64;
/// Longest `material_desc` entry kept (the protocol's roles: primary, support, …).
const MAX_MATERIAL_DESC: usize = 32;

/// One entry of a `material_*` list, checked: names and roles are printable text cut to
/// length, colours `#RRGGBB` or `#RRGGBBAA` (upper case), volumes finite and not negative.
/// Anything else becomes null in its slot, so the other slots keep their extruder numbers.
fn material_entry(key: &str, v: &Value) -> Value {
    let text = |max: usize| {
        let s: String = v
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let s: String = s.trim().chars().take(max).collect();
        let s = s.trim_end().to_string();
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s)
        }
    };
    match key {
        "material_names" => text(MAX_MATERIAL_NAME),
        "material_desc" => text(MAX_MATERIAL_DESC),
        "material_colors_hex" => v
            .as_str()
            .and_then(crate::material::hex_color)
            .map(Value::String)
            .unwrap_or(Value::Null),
        _ => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Value::from)
            .unwrap_or(Value::Null),
    }
}

/// A `material_*` report field: a list (at most [`MAX_MATERIAL_SLOTS`] entries, one per
/// extruder), each entry checked. Anything but a list or null is refused (`None`: the
/// stored value stays as it was).
fn material_field(key: &str, v: &Value) -> Option<Value> {
    match v {
        Value::Null => Some(Value::Array(Vec::new())),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .take(MAX_MATERIAL_SLOTS)
                .map(|i| material_entry(key, i))
                .collect(),
        )),
        _ => None,
    }
}

/// The `filaments` of `get_printers_list`: the loaded materials as a JSON string (a list,
/// one object per extruder that has a known material or colour:
/// `{"extruder": 1, "material": "PLA", "color_hex": "#FF8800"}`, plus `desc` and `volume`
/// when reported), or None when nothing is known.
pub fn filaments_json(report: &Map<String, Value>) -> Option<String> {
    let list = |k: &str| {
        report
            .get(k)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    };
    let (names, colors) = (list("material_names"), list("material_colors_hex"));
    let (descs, volumes) = (list("material_desc"), list("material_volumes"));
    let slots = names.len().max(colors.len()).min(MAX_MATERIAL_SLOTS);
    let entries: Vec<Value> = (0..slots)
        .filter_map(|i| {
            // Stored values are already checked; check again so rows stored before keep
            // the bound too.
            let material = names.get(i).map(|v| material_entry("material_names", v));
            let color = colors
                .get(i)
                .map(|v| material_entry("material_colors_hex", v));
            let (material, color) = (
                material.unwrap_or(Value::Null),
                color.unwrap_or(Value::Null),
            );
            if material.is_null() && color.is_null() {
                return None;
            }
            let mut e = Map::new();
            e.insert("extruder".into(), Value::from(i + 1));
            e.insert("material".into(), material);
            e.insert("color_hex".into(), color);
            if let Some(d) = descs.get(i).map(|v| material_entry("material_desc", v)) {
                if !d.is_null() {
                    e.insert("desc".into(), d);
                }
            }
            if let Some(v) = volumes
                .get(i)
                .map(|v| material_entry("material_volumes", v))
            {
                if !v.is_null() {
                    e.insert("volume".into(), v);
                }
            }
            Some(Value::Object(e))
        })
        .collect();
    (!entries.is_empty()).then(|| Value::Array(entries).to_string())
}

fn bounded_value(v: &Value, list_depth: u8) -> Value {
    match v {
        Value::String(s) if s.chars().count() > REPORT_MAX_STRING => {
            Value::String(s.chars().take(REPORT_MAX_STRING).collect())
        }
        Value::Array(items) if list_depth > 0 => Value::Array(
            items
                .iter()
                .take(REPORT_MAX_LIST)
                .map(|i| bounded_value(i, list_depth - 1))
                .collect(),
        ),
        Value::Array(_) | Value::Object(_) => Value::Null,
        other => other.clone(),
    }
}

/// Report fields that change all the time and that agents send again and again: losing the
/// last write of one of them after a crash costs nothing.
const VOLATILE_FIELDS: &[&str] = &["percent", "temps", "target_temps"];

/// What a report makes of its printer's agent state, worked out before anything is written.
struct Reported {
    state: PrinterState,
    percent: f64,
    temps: Option<String>,
    target_temps: Option<String>,
    local_ip: String,
    filaments: Option<String>,
    report: String,
    last_error: Option<String>,
    /// Something lasting changed (the state, materials, an error, any field but the volatile
    /// ones): an agent will not send it again, so it must be written durably.
    lasting: bool,
}

/// Merges a report into the printer's agent state. Agents omit fields that did not change, so
/// the stored report is merged, not replaced.
fn read_report(printer: &Printer, poll: &Poll) -> Result<Reported> {
    let mut merged: Map<String, Value> = printer
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default();
    // Rows stored before the bound shrink on their next poll.
    merged.retain(|k, _| REPORT_FIELDS.contains(&k.as_str()));
    let mut state = printer.state.clone();
    let mut percent = printer.percent;
    let mut temps_json = printer.temps.clone();
    let mut targets_json = printer.target_temps.clone();
    let mut local_ip = printer.local_ip.clone();
    let mut lasting = false;
    if let Some(report) = &poll.report {
        for (k, v) in report {
            if let Some(v) = bounded_report_field(k, v) {
                let volatile = VOLATILE_FIELDS.contains(&k.as_str());
                if let Some(old) = merged.insert(k.clone(), v) {
                    lasting |= !volatile && merged.get(k) != Some(&old);
                } else {
                    lasting |= !volatile;
                }
            }
        }
        if let Some(s) = report
            .get("state")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 32)
        {
            state = PrinterState::parse(s);
        }
        if let Some(p) = report
            .get("percent")
            .and_then(|p| p.as_f64().or_else(|| p.as_str()?.parse().ok()))
        {
            if p.is_finite() {
                percent = p.clamp(0.0, 100.0);
            }
        }
        if let Some(t) = report.get("temps").and_then(temps) {
            temps_json = Some(serde_json::to_string(&t).map_err(Error::internal)?);
        }
        if let Some(t) = report.get("target_temps").and_then(temps) {
            targets_json = Some(serde_json::to_string(&t).map_err(Error::internal)?);
        }
        if let Some(ip) = report.get("local_ip").and_then(Value::as_str) {
            local_ip = ip.chars().take(64).collect();
        }
    }
    let filaments = filaments_json(&merged);
    let last_error = match &poll.errors {
        Some(e) => Some(e.to_string()),
        None => printer.last_error.clone(),
    };
    lasting |= state != printer.state
        || local_ip != printer.local_ip
        || filaments != printer.filaments
        || last_error != printer.last_error;
    Ok(Reported {
        state,
        percent,
        temps: temps_json,
        target_temps: targets_json,
        local_ip,
        filaments,
        report: Value::Object(merged).to_string(),
        last_error,
        lasting,
    })
}

/// Writes a report on the printer row (and a cleared tray). Returns whether something lasting
/// changed.
fn apply_report(
    conn: &mut DbConn,
    printer: &Printer,
    poll: &Poll,
    now: chrono::NaiveDateTime,
) -> Result<bool> {
    let r = read_report(printer, poll)?;
    Printer::apply_report(
        conn,
        printer.id,
        &PrinterReport {
            state: &r.state,
            percent: r.percent,
            temps: r.temps.as_deref(),
            target_temps: r.target_temps.as_deref(),
            local_ip: &r.local_ip,
            filaments: r.filaments.as_deref(),
            report: Some(r.report),
            last_error: r.last_error.as_deref(),
            last_seen_at: Some(now),
            updated_at: now,
        },
    )?;
    if poll.bed_clear {
        Printer::set_tray_clear(conn, printer.id, true)?;
    }
    Ok(r.lasting)
}

/// Polls whose report changes only what the next report overwrites (temperatures, progress,
/// the merged report, last seen), kept in memory and written for all printers at once, about
/// once a second ([`write_heartbeats`]): 1,000 agents polling every second would otherwise
/// cost a write transaction each. Everything else a poll does (a new state, acks, a cleared
/// tray, job progress and ends, starts, delivered commands) is written before its answer.
/// A crash loses at most the last second of such reports; the agents send them again.
#[derive(Debug, Default)]
pub struct Heartbeats {
    pending: std::sync::Mutex<HashMap<PrinterId, Heartbeat>>,
}

impl Heartbeats {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<PrinterId, Heartbeat>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The printer as its agent last reported it: its row with a newer heartbeat not yet
    /// written laid over it. Returns whether one was.
    pub fn overlay(&self, printer: &mut Printer) -> bool {
        let pending = self.pending();
        let Some(h) = pending.get(&printer.id) else {
            return false;
        };
        if printer.last_seen_at.is_some_and(|seen| seen >= h.seen_at) {
            return false;
        }
        printer.percent = h.percent;
        printer.temps.clone_from(&h.temps);
        printer.target_temps.clone_from(&h.target_temps);
        printer.report = Some(h.report.clone());
        printer.last_seen_at = Some(h.seen_at);
        true
    }

    fn keep(&self, printer: PrinterId, heartbeat: Heartbeat) {
        self.pending().insert(printer, heartbeat);
    }

    /// After a durable write of the printer's report: what was pending is in it.
    fn written(&self, printer: PrinterId, at: chrono::NaiveDateTime) {
        let mut pending = self.pending();
        if pending.get(&printer).is_some_and(|h| h.seen_at <= at) {
            pending.remove(&printer);
        }
    }

    /// Everything pending, to be written.
    pub fn take(&self) -> Vec<Heartbeat> {
        self.pending().drain().map(|(_, h)| h).collect()
    }
}

/// Writes heartbeats in one transaction that need not wait for the disk. A printer row written
/// since (a durable report, a rename: its `updated_at` is later) keeps what it has: the next
/// report brings fresh values anyway. Returns the rows written.
pub fn write_heartbeats(conn: &mut DbConn, beats: &[Heartbeat]) -> Result<usize> {
    if beats.is_empty() {
        return Ok(0);
    }
    db::write_transaction(conn, |c| {
        db::commit_without_flush(c)?;
        Ok(Printer::write_heartbeats(c, beats)?)
    })
}

/// Handles a poll: the report (and what it means for the running job), the acknowledgement of
/// the previous command, the auto-start of the next queued job when the printer became free,
/// then hands out the oldest unacknowledged command (re-sending one never acknowledged).
/// `waiting` says whether a command waits ([`authenticate_poll`]). A poll that only
/// refreshes volatile state and finds no command is kept in `heartbeats`
/// instead of being written, unless the row's own `last_seen_at` is older than half the
/// offline delay (a printer coming back, or one whose heartbeats could not be written, must
/// not look offline). Returns the command and whether the poll wrote something (dashboards
/// then look).
pub fn poll(
    conn: &mut DbConn,
    mut printer: Printer,
    waiting: bool,
    poll: &Poll,
    ctx: &JobContext,
    heartbeats: &Heartbeats,
) -> Result<(Option<PrinterCommand>, bool)> {
    let now = db::now();
    let written_seen = printer.last_seen_at;
    let overlaid = heartbeats.overlay(&mut printer);
    let printer = &printer;
    let recently_written = written_seen.is_some_and(|seen| now - seen < ctx.offline_after / 2);
    let quiet = recently_written
        && !waiting
        && poll.ack.is_none()
        && !poll.bed_clear
        && !poll.reset_job
        && printer.current_job_id.is_none();
    if quiet {
        let reported = read_report(printer, poll)?;
        if !reported.lasting {
            // The row already says all of it (an idle printer's steady readings) and was
            // written recently enough to look connected: nothing to write, not even later.
            let unchanged = !overlaid
                && reported.percent == printer.percent
                && reported.temps == printer.temps
                && reported.target_temps == printer.target_temps
                && printer.report.as_deref() == Some(reported.report.as_str());
            if !unchanged {
                heartbeats.keep(
                    printer.id,
                    Heartbeat {
                        printer: printer.id,
                        percent: reported.percent,
                        temps: reported.temps,
                        target_temps: reported.target_temps,
                        report: reported.report,
                        seen_at: now,
                    },
                );
            }
            return Ok((None, false));
        }
    }
    let command = db::write_transaction(conn, |c| {
        let lasting = apply_report(c, printer, poll, now)?;
        if let Some((number, ok)) = poll.ack {
            PrinterCommand::ack(c, printer.id, number, ok, now)?;
        }
        let followed = jobs::follow_report(c, printer, &poll.seen())?;
        let became_ready = printer.state != PrinterState::Ready
            && poll
                .report
                .as_ref()
                .and_then(|r| r.get("state"))
                .and_then(Value::as_str)
                .map(PrinterState::parse)
                == Some(PrinterState::Ready);
        let started = if followed.ended || poll.bed_clear || became_ready {
            farm::next_for_printer(c, printer.id, ctx)?
        } else {
            None
        };
        let command = deliver(c, printer.id)?;
        // A report that changes only what the next report overwrites (a printing printer's
        // temperatures) need not wait for the log to reach the disk. A new state or
        // material, acks, a cleared tray, job progress and ends, starts and delivered
        // commands stay durable.
        let overwritable = !lasting
            && poll.ack.is_none()
            && !poll.bed_clear
            && !poll.reset_job
            && !followed.changed
            && started.is_none()
            && command.is_none();
        if overwritable {
            db::commit_without_flush(c)?;
        }
        Ok::<_, Error>(command)
    })?;
    heartbeats.written(printer.id, now);
    Ok((command, true))
}

/// The next command for a printer, marked as sent.
pub fn deliver(conn: &mut DbConn, printer_id: PrinterId) -> Result<Option<PrinterCommand>> {
    let next = PrinterCommand::next_unacked(conn, printer_id)?;
    if let Some(cmd) = &next {
        PrinterCommand::mark_sent(conn, cmd.id, db::now())?;
    }
    Ok(next)
}

/// Keeps a long-polling printer marked as connected while its request is held.
pub fn touch(conn: &mut DbConn, printer_id: PrinterId) -> Result<()> {
    db::write_transaction(conn, |c| {
        // Overwritten by the next poll: no need to wait for the disk.
        db::commit_without_flush(c)?;
        Ok(Printer::touch(c, printer_id, db::now())?)
    })
}

/// The wire form of a command: `{"command", "number", …extra keys}`.
pub fn command_json(cmd: &PrinterCommand) -> Value {
    let mut obj: Map<String, Value> = cmd
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    obj.insert("command".into(), Value::String(cmd.command.clone()));
    obj.insert("number".into(), Value::from(cmd.number));
    Value::Object(obj)
}

/// One job of a printer's queue as its agent sees it (`get_queued_jobs`).
#[derive(Debug, serde::Serialize)]
pub struct QueuedJob {
    pub id: i64,
    pub filename: String,
    pub file_size: i64,
    pub printing_duration: i32,
    pub email: String,
    /// `YYYY-MM-DD HH:MM:SS`, when it was queued.
    pub datetime: String,
}

/// The printer's queued jobs in the order they start (raised ones first, then the oldest), in
/// one query.
pub fn queued_jobs(conn: &mut DbConn, printer_id: PrinterId) -> Result<Vec<QueuedJob>> {
    Ok(read::queued_jobs(conn, printer_id)?
        .into_iter()
        .map(
            |(id, printing_duration, created, filename, size, email)| QueuedJob {
                id,
                filename: filename.unwrap_or_default(),
                file_size: size.unwrap_or(0),
                printing_duration,
                email: email.unwrap_or_default(),
                datetime: created.format("%Y-%m-%d %H:%M:%S").to_string(),
            },
        )
        .collect())
}

/// Largest camera frame accepted from an agent.
pub const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// An agent's camera post: a base64 JPEG (kept as the printer's latest frame) or "S" (same
/// frame, keep-alive). Answers whether someone is watching (1 = send full frames).
pub fn camera_frame(conn: &mut DbConn, printer: &Printer, image: &str) -> Result<bool> {
    use base64::Engine;
    let now = db::now();
    if image != "S" && !image.is_empty() {
        let Ok(jpeg) = base64::engine::general_purpose::STANDARD.decode(image.trim()) else {
            return Err(Error::agent(
                AgentCode::ImageNotBase64,
                "image is not valid base64",
            ));
        };
        if jpeg.len() > MAX_FRAME_BYTES || !jpeg.starts_with(&[0xFF, 0xD8]) {
            return Err(Error::agent(
                AgentCode::ImageRefused,
                "image must be a JPEG of at most 2 MiB",
            ));
        }
        CameraFrame::store(conn, printer.id, &jpeg, now)?;
    }
    Ok(printer.camera_watched_until.is_some_and(|t| t > now))
}

/// A viewer is looking: ask the agent for full frames for a while.
pub fn mark_watched(
    conn: &mut DbConn,
    printer_id: PrinterId,
    for_how_long: Duration,
) -> Result<()> {
    Ok(Printer::watched_until(
        conn,
        printer_id,
        db::now() + for_how_long,
    )?)
}

/// Deletes what the agent channel leaves behind once it expired: registration codes (unless a
/// redeemed token still waits for its agent), camera tokens and user tokens (slicer logins never
/// confirmed, sign-in links). Returns (codes, camera tokens, user tokens).
pub fn prune_expired(conn: &mut DbConn) -> Result<(usize, usize, usize)> {
    use crate::db::models::{CameraToken, RegistrationCode, UserToken};
    let now = db::now();
    Ok((
        RegistrationCode::prune(conn, now)?,
        CameraToken::prune(conn, now)?,
        UserToken::prune(conn, now)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: Value) -> Map<String, Value> {
        v.as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), bounded_report_field(k, v)?)))
            .collect()
    }

    #[test]
    fn filaments_follow_the_material_lists() {
        let r = report(json!({
            "material_names": ["PLA", null, "  PETG\u{7}  "],
            "material_colors_hex": ["ff8800", "#00ff00", "red"],
            "material_desc": ["primary"],
            "material_volumes": [812.5, -1.0, "x"],
        }));
        let f: Value = serde_json::from_str(&filaments_json(&r).unwrap()).unwrap();
        assert_eq!(
            f,
            json!([
                {"extruder": 1, "material": "PLA", "color_hex": "#FF8800", "desc": "primary", "volume": 812.5},
                {"extruder": 2, "material": null, "color_hex": "#00FF00"},
                {"extruder": 3, "material": "PETG", "color_hex": null},
            ])
        );
        // Nothing known (or a cleared list): null.
        assert_eq!(filaments_json(&report(json!({"material_names": []}))), None);
        assert_eq!(
            filaments_json(&report(json!({"material_names": null}))),
            None
        );
        assert_eq!(filaments_json(&Map::new()), None);
    }

    #[test]
    fn material_reports_are_bounded_and_refused_when_garbage() {
        // Not a list: refused (the stored value stays).
        assert_eq!(bounded_report_field("material_names", &json!("PLA")), None);
        assert_eq!(
            bounded_report_field("material_colors_hex", &json!({"a": 1})),
            None
        );
        // Too many slots and too long names are cut; nested garbage becomes null.
        let long = "x".repeat(10_000);
        let v = bounded_report_field("material_names", &json!(vec![long.clone(); 100])).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), MAX_MATERIAL_SLOTS);
        assert!(list
            .iter()
            .all(|n| n.as_str().unwrap().chars().count() == MAX_MATERIAL_NAME));
        let v = bounded_report_field("material_names", &json!([["PLA"], {"x": 1}, 5])).unwrap();
        assert_eq!(v, json!([null, null, null]));
    }
}
