//! Printer maintenance (printfarm extension): a printer in maintenance takes no jobs, from its
//! own queue or the farm queue; counters of print hours and filament since the last
//! maintenance, and limits past which a printer goes into maintenance by itself.

use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::{Job, Printer, PrinterId};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::services::printers;

/// Longest maintenance note, in characters.
pub const MAX_NOTE: usize = 500;

/// A printer's maintenance as the extension call answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Maintenance {
    #[schema(value_type = i64)]
    pub printer_id: PrinterId,
    /// In maintenance now: takes no jobs.
    pub in_maintenance: bool,
    pub note: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC), when it went into maintenance.
    pub since: Option<String>,
    /// When the last maintenance ended (the counters start there), or null: never.
    pub last_maintained: Option<String>,
    /// Print hours since the last maintenance.
    pub print_hours: f64,
    /// Grams of filament since the last maintenance.
    pub filament_g: f64,
    /// Goes into maintenance by itself past these (null: never).
    pub hours_limit: Option<f64>,
    pub filament_limit_g: Option<f64>,
}

fn stamp(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Print hours and grams of filament since the printer's last maintenance.
pub fn usage(conn: &mut DbConn, p: &Printer) -> Result<(f64, f64)> {
    let (seconds, grams) = Job::usage_since(conn, p.id, p.maintained_at)?;
    Ok((round2(seconds as f64 / 3600.0), round2(grams)))
}

pub fn describe(conn: &mut DbConn, p: &Printer) -> Result<Maintenance> {
    let (hours, grams) = usage(conn, p)?;
    Ok(Maintenance {
        printer_id: p.id,
        in_maintenance: p.maintenance_note.is_some(),
        note: p.maintenance_note.clone(),
        since: stamp(p.maintenance_since),
        last_maintained: stamp(p.maintained_at),
        print_hours: hours,
        filament_g: grams,
        hours_limit: p.maintenance_hours_limit,
        filament_limit_g: p.maintenance_filament_limit_g,
    })
}

/// What a maintenance call changes; `None` leaves a part as it is.
#[derive(Debug, Default)]
pub struct MaintenanceChange {
    /// Some(true) starts maintenance (with `note`), Some(false) ends it.
    pub on: Option<bool>,
    pub note: Option<String>,
    /// Some(None) removes a limit.
    pub hours_limit: Option<Option<f64>>,
    pub filament_limit_g: Option<Option<f64>>,
}

fn limit(name: &str, v: Option<Option<f64>>) -> Result<Option<Option<f64>>> {
    match v {
        Some(Some(x)) if !(x.is_finite() && x > 0.0 && x <= 1e7) => Err(Error::invalid(format!(
            "{name} must be a positive number (0 or empty removes it)"
        ))),
        other => Ok(other),
    }
}

/// Starts or ends a printer's maintenance and sets its limits (those who manage it). Ending it
/// restarts the counters. A printer finishing a job goes into maintenance too: it takes no
/// next job, the running one ends normally.
pub fn change(
    conn: &mut DbConn,
    user: &crate::db::models::User,
    printer_id: PrinterId,
    change: MaintenanceChange,
) -> Result<Maintenance> {
    let note = match change.note.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > MAX_NOTE => {
            return Err(Error::invalid(format!(
                "note must be at most {MAX_NOTE} characters"
            )))
        }
        Some(n) if !n.is_empty() => Some(n.to_string()),
        _ => None,
    };
    let hours = limit("hours_limit", change.hours_limit)?;
    let grams = limit("filament_limit_g", change.filament_limit_g)?;
    db::write_transaction(conn, |c| {
        let printer = printers::managed(c, user, printer_id)?;
        let printer = db::lock_printer(c, printer.id)?
            .ok_or_else(|| Error::not_found(format!("Printer {printer_id} not found")))?;
        let now = db::now();
        match change.on {
            Some(true) => {
                let note = note.as_deref().unwrap_or("Maintenance");
                Printer::set_maintenance(c, printer.id, Some(note), now)?;
            }
            Some(false) if printer.maintenance_note.is_some() => {
                Printer::set_maintenance(c, printer.id, None, now)?;
            }
            _ => {}
        }
        if hours.is_some() || grams.is_some() {
            Printer::set_maintenance_limits(
                c,
                printer.id,
                hours.unwrap_or(printer.maintenance_hours_limit),
                grams.unwrap_or(printer.maintenance_filament_limit_g),
            )?;
        }
        // The limits may already be passed.
        maintenance_due(c, printer.id, now)?;
        let printer = Printer::find(c, printer.id)?
            .ok_or_else(|| Error::not_found(format!("Printer {printer_id} not found")))?;
        db::wake_after_commit(printer.id.0);
        describe(c, &printer)
    })
}

/// One printer's maintenance, for those who see it.
pub fn of_printer(
    conn: &mut DbConn,
    user: &crate::db::models::User,
    printer_id: PrinterId,
) -> Result<Maintenance> {
    let (printer, _) = printers::visible(conn, user, printer_id)?;
    describe(conn, &printer)
}

/// The printers the user sees that are in maintenance now: (name, maintenance).
pub fn in_maintenance(
    conn: &mut DbConn,
    user: &crate::db::models::User,
) -> Result<Vec<(String, Maintenance)>> {
    let ids: Vec<PrinterId> = printers::reachable(conn, user)?.into_keys().collect();
    let mut out = Vec::new();
    for p in Printer::by_ids(conn, &ids)? {
        if p.maintenance_note.is_some() {
            let m = describe(conn, &p)?;
            out.push((p.name, m));
        }
    }
    Ok(out)
}

/// Puts a printer past one of its limits into maintenance (after a job ended, or a limit was
/// lowered). Returns true when it did.
pub fn maintenance_due(c: &mut DbConn, printer_id: PrinterId, now: NaiveDateTime) -> Result<bool> {
    let Some(p) = Printer::find(c, printer_id)? else {
        return Ok(false);
    };
    if p.maintenance_note.is_some()
        || (p.maintenance_hours_limit.is_none() && p.maintenance_filament_limit_g.is_none())
    {
        return Ok(false);
    }
    let (hours, grams) = usage(c, &p)?;
    let note = match (p.maintenance_hours_limit, p.maintenance_filament_limit_g) {
        (Some(limit), _) if hours >= limit => {
            format!("Automatic: {hours} print hours since the last maintenance (limit {limit})")
        }
        (_, Some(limit)) if grams >= limit => {
            format!("Automatic: {grams} g of filament since the last maintenance (limit {limit} g)")
        }
        _ => return Ok(false),
    };
    Printer::set_maintenance(c, p.id, Some(&note), now)?;
    tracing::info!(printer = p.id.0, %note, "printer went into maintenance");
    Ok(true)
}
