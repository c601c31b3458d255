//! printfarm extensions for the farm queue: the queue with reasons and estimates, cancelling
//! and retrying farm jobs, printer maintenance and power circuits. Farm jobs are made by
//! `print_file` with a farm target (`jobs.rs`).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures};
use super::{forms, Signed};
use crate::db::models::{JobId, PrinterId};
use crate::error::{Error, Result};
use crate::services::farm::{self, CircuitView, FarmJobView};
use crate::services::maintenance::{self, Maintenance, MaintenanceChange};
use crate::AppState;

/// The farm queue: the caller's farm jobs (all of the organization's for its admins), newest
/// first, each with its copies' counts, the one reason its next copy waits, and estimates of
/// when the next copy starts and the last one ends.
#[utoipa::path(post, path = "/apiglobal/get_farm_queue", tag = "printfarm extensions",
    request_body(content = forms::FarmQueue, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The farm jobs", body = Envelope<Vec<FarmJobView>>), Failures))]
pub async fn get_farm_queue(
    state: web::Data<AppState>,
    call: Signed<forms::FarmQueue>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        let refused = Err(Error::invalid("limit must be between 1 and 500"));
        return caller.valid(&state, refused).await;
    }
    let ctx = state.job_context();
    let list = caller
        .db(&state, move |c, me| {
            farm::queue(c, me, p.farm_job_id, limit, &ctx)
        })
        .await?;
    Ok(ok(list))
}

/// Copies of a farm job by state, after a change.
#[derive(Serialize, ToSchema)]
pub struct CopyCountsView {
    pub waiting: i64,
    pub printing: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// Cancels a farm job (its owner or an organization admin): copies not started are
/// cancelled; with `cancel_printing=1` the copies printing now are cancelled too.
#[utoipa::path(post, path = "/apiglobal/farm_job_cancel", tag = "printfarm extensions",
    request_body(content = forms::FarmJobCancel, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The copies by state after the cancel", body = Envelope<CopyCountsView>), Failures))]
pub async fn farm_job_cancel(
    state: web::Data<AppState>,
    call: Signed<forms::FarmJobCancel>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let and_printing = p.cancel_printing.unwrap_or(false);
    let n = caller
        .db(&state, move |c, me| {
            farm::cancel(c, me, p.farm_job_id, and_printing)
        })
        .await?;
    Ok(ok(CopyCountsView {
        waiting: n.waiting,
        printing: n.printing,
        done: n.done,
        failed: n.failed,
        cancelled: n.cancelled,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct PriorityView {
    pub priority: i32,
}

/// Changes a farm job's place in line (organization admins): its `priority`, or first in
/// line without one. Waiting jobs start by priority, then age.
#[utoipa::path(post, path = "/apiglobal/farm_job_priority", tag = "printfarm extensions",
    request_body(content = forms::FarmJobPriority, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The farm job's priority now", body = Envelope<PriorityView>), Failures))]
pub async fn farm_job_priority(
    state: web::Data<AppState>,
    call: Signed<forms::FarmJobPriority>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let priority = caller
        .valid(&state, super::jobs::int32("priority", p.priority))
        .await?;
    let priority = caller
        .db(&state, move |c, me| {
            farm::set_priority(c, me, p.farm_job_id, priority)
        })
        .await?;
    Ok(ok(PriorityView { priority }))
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    /// Copies waiting again.
    pub requeued: usize,
}

/// Queues a farm job's failed copies again (or the one a given job printed): same file, same
/// target and constraints. A copy that printed is never printed again.
#[utoipa::path(post, path = "/apiglobal/farm_job_retry", tag = "printfarm extensions",
    request_body(content = forms::FarmJobRetry, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "How many copies wait again", body = Envelope<Requeued>), Failures))]
pub async fn farm_job_retry(
    state: web::Data<AppState>,
    call: Signed<forms::FarmJobRetry>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let ctx = state.job_context();
    let requeued = caller
        .db(&state, move |c, me| {
            let n = farm::retry(c, me, p.farm_job_id, p.job_id.map(JobId))?;
            farm::dispatch_now(c, &ctx);
            Ok(n)
        })
        .await?;
    Ok(ok(Requeued { requeued }))
}

/// A printer's maintenance: in maintenance or not (a printer in maintenance takes no jobs and
/// shows `local_mode` in the printer lists once idle), the note, print hours and filament since
/// the last maintenance, and the limits past which it goes into maintenance by itself.
/// Changing any of it is for those who manage the printer.
#[utoipa::path(post, path = "/apiglobal/printer_maintenance", tag = "printfarm extensions",
    request_body(content = forms::PrinterMaintenance, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The printer's maintenance after the change", body = Envelope<Maintenance>), Failures))]
pub async fn printer_maintenance(
    state: web::Data<AppState>,
    call: Signed<forms::PrinterMaintenance>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = PrinterId(p.printer_id);
    let limit = |v: Option<f64>| v.map(|v| (v != 0.0).then_some(v));
    let change = MaintenanceChange {
        on: p.maintenance,
        note: p.note,
        hours_limit: limit(p.hours_limit),
        filament_limit_g: limit(p.filament_limit_g),
    };
    let reads_only =
        change.on.is_none() && change.hours_limit.is_none() && change.filament_limit_g.is_none();
    let ctx = state.job_context();
    let m = caller
        .db(&state, move |c, me| {
            if reads_only {
                return maintenance::of_printer(c, me, printer);
            }
            let m = maintenance::change(c, me, printer, change)?;
            if !m.in_maintenance {
                // Back in service: the farm queue may have a copy for it.
                farm::dispatch_now(c, &ctx);
            }
            Ok(m)
        })
        .await?;
    Ok(ok(m))
}

/// The organization's power circuits (or locations): limits, printers, and how many of them
/// heat and download now.
#[utoipa::path(post, path = "/apiglobal/get_power_circuits", tag = "printfarm extensions",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The circuits", body = Envelope<Vec<CircuitView>>), Failures))]
pub async fn get_power_circuits(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse> {
    let caller = call.caller;
    let ctx = state.job_context();
    let list = caller
        .db(&state, move |c, me| farm::circuits(c, me, &ctx))
        .await?;
    Ok(ok(list))
}

/// Creates or changes a power circuit (organization admins): staggered starts allow at most
/// `max_heating` of its printers to heat and `max_downloads` to download at once; the rest
/// wait their turn (the farm queue's reason says so).
#[utoipa::path(post, path = "/apiglobal/set_power_circuit", tag = "printfarm extensions",
    request_body(content = forms::SetPowerCircuit, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The circuit (`Ok` when removed)", body = Envelope<CircuitView>), Failures))]
pub async fn set_power_circuit(
    state: web::Data<AppState>,
    call: Signed<forms::SetPowerCircuit>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let int = |name: &str, v: Option<i64>| -> Result<Option<i32>> {
        v.map(|v| i32::try_from(v).map_err(|_| Error::invalid(format!("{name} is out of range"))))
            .transpose()
    };
    let limits = int("max_heating", p.max_heating)
        .and_then(|h| Ok((h, int("max_downloads", p.max_downloads)?)));
    let (heating, downloads) = caller.valid(&state, limits).await?;
    let change = farm::CircuitChange {
        name: p.name,
        max_heating: heating,
        max_downloads: downloads,
        printers: p.printer_id.map(|l| l.into_iter().map(PrinterId).collect()),
        remove: p.remove.unwrap_or(false),
    };
    let ctx = state.job_context();
    let view = caller
        .db(&state, move |c, me| farm::set_circuit(c, me, &change, &ctx))
        .await?;
    state.farm_wake.notify_one();
    Ok(match view {
        Some(v) => ok(v),
        None => ok("Ok"),
    })
}
