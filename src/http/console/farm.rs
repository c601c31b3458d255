//! The farm queue in the console: farm jobs with their copies, the one reason each waits and
//! its estimates, cancel and retry; printers in maintenance; power circuits and their
//! staggered starts. New farm jobs come from a file's page; maintenance is set on a printer's
//! page. Everything goes through the same services as `get_farm_queue`, `print_file` (farm
//! target), `farm_job_cancel`, `farm_job_retry` and `printer_maintenance`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{posted, refused, render, to_login, Chrome, Stamp};
use crate::db::models::{FileId, PrinterId};
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{browser_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::farm::{self, CircuitView, FarmJobView};
use crate::services::maintenance::{self, MaintenanceChange};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/farm").get(page);
    r.at("/farm/jobs").post(create);
    r.at("/farm/jobs/{id}/{action}").post(job_action);
    r.at("/printers/{printer_id}/maintenance")
        .post(set_maintenance);
}

/// A farm job as a row of the queue.
struct JobRow {
    id: i64,
    file_id: i64,
    file_name: String,
    owner: String,
    target: String,
    wants: Option<String>,
    copies: i32,
    done: i64,
    printing: i64,
    waiting: i64,
    failed: i64,
    cancelled: i64,
    /// Percent of the copies printed, for the bar.
    progress: i64,
    state: &'static str,
    tone: &'static str,
    reason: Option<String>,
    next_start: Option<Stamp>,
    done_by: Option<Stamp>,
    may_cancel: bool,
    may_retry: bool,
    /// Waiting, and the viewer orders the queue (organization admins).
    may_raise: bool,
    priority: i32,
}

fn stamp_of(text: Option<&str>) -> Option<Stamp> {
    chrono::NaiveDateTime::parse_from_str(text?, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(Stamp::new)
}

fn job_row(v: FarmJobView, orders: bool) -> JobRow {
    let (state, tone) = match v.state.as_str() {
        "waiting" => ("Waiting", "warn"),
        "printing" => ("Printing", "busy"),
        "done" => ("Done", "ready"),
        "failed" => ("Copies failed", "bad"),
        _ => ("Cancelled", "off"),
    };
    let wants = match (&v.material, &v.color_hex) {
        (None, None) => None,
        (Some(m), None) => Some(m.clone()),
        (None, Some(c)) => Some(c.clone()),
        (Some(m), Some(c)) => Some(format!("{m} {c}")),
    };
    let live = v.state != "cancelled";
    JobRow {
        id: v.farm_job_id,
        file_id: v.file_id.0,
        file_name: v.file_name,
        owner: v.user_email,
        target: v.target_name,
        wants,
        copies: v.copies,
        done: v.done,
        printing: v.printing,
        waiting: v.waiting,
        failed: v.failed,
        cancelled: v.cancelled,
        progress: if v.copies > 0 {
            v.done * 100 / i64::from(v.copies)
        } else {
            0
        },
        state,
        tone,
        reason: v.reason,
        next_start: stamp_of(v.eta_next_start.as_deref()),
        done_by: stamp_of(v.eta_done.as_deref()),
        may_cancel: live && (v.waiting > 0 || v.printing > 0),
        may_retry: live && v.failed > 0,
        may_raise: orders && v.state == "waiting",
        priority: v.priority,
    }
}

struct MaintenanceRow {
    printer_id: i64,
    name: String,
    note: String,
    since: Option<Stamp>,
    usage: String,
}

struct CircuitRow {
    name: String,
    heating: String,
    downloading: String,
    printers: usize,
    full: bool,
}

fn limit_text(now: i32, max: Option<i32>) -> String {
    match max {
        Some(m) => format!("{now} of {m}"),
        None => format!("{now} (no limit)"),
    }
}

fn circuit_row(c: CircuitView) -> CircuitRow {
    CircuitRow {
        full: c.max_heating.is_some_and(|m| c.heating >= m)
            || c.max_downloads.is_some_and(|m| c.downloading >= m),
        heating: limit_text(c.heating, c.max_heating),
        downloading: limit_text(c.downloading, c.max_downloads),
        printers: c.printer_ids.len(),
        name: c.name,
    }
}

#[derive(Template)]
#[template(path = "console/farm.html")]
struct FarmPage {
    chrome: Chrome,
    csrf: String,
    jobs: Vec<JobRow>,
    waiting: i64,
    printing: i64,
    maintenance: Vec<MaintenanceRow>,
    circuits: Vec<CircuitRow>,
}

async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let me = user.clone();
    let ctx = state.job_context();
    let loaded = state
        .db(move |c| {
            let jobs = farm::queue(c, &me, None, 100, &ctx)?;
            let down = maintenance::in_maintenance(c, &me)?;
            let circuits = farm::circuits(c, &me, &ctx)?;
            Ok((jobs, down, circuits))
        })
        .await;
    let (jobs, down, circuits) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(&state, &req, e).await,
    };
    let orders = crate::services::orgs::is_org_admin(&user);
    let waiting = jobs.iter().map(|j| j.waiting).sum();
    let printing = jobs.iter().map(|j| j.printing).sum();
    let maintenance = down
        .into_iter()
        .map(|(name, m)| MaintenanceRow {
            printer_id: m.printer_id.0,
            name,
            note: m.note.unwrap_or_default(),
            since: stamp_of(m.since.as_deref()),
            usage: format!(
                "{} print hours and {} g of filament since {}",
                m.print_hours,
                m.filament_g,
                if m.last_maintained.is_some() {
                    "the last maintenance"
                } else {
                    "it was added"
                }
            ),
        })
        .collect();
    render(
        StatusCode::OK,
        &FarmPage {
            chrome: Chrome::new(Some((&user, &session)), "farm"),
            csrf: csrf_token(&session),
            jobs: jobs.into_iter().map(|j| job_row(j, orders)).collect(),
            waiting,
            printing,
            maintenance,
            circuits: circuits.into_iter().map(circuit_row).collect(),
        },
    )
}

/// A farm job from a file's page: the file, a printer type, copies, and what must be loaded.
async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let file = p
            .i64("file_id")?
            .ok_or_else(|| Error::invalid("Missing parameter file_id"))?;
        let printer_type = p
            .i64("printer_type_id")?
            .ok_or_else(|| Error::invalid("Choose a printer type"))?;
        let copies = p.i64("copies")?.unwrap_or(1);
        let request = farm::FarmRequest {
            file_id: FileId(file),
            target: farm::Target::PrinterType(printer_type),
            copies: i32::try_from(copies)
                .map_err(|_| Error::invalid("copies must be between 1 and 1000"))?,
            material: p.str("material").map(str::to_string),
            color: p.str("color").map(str::to_string),
            priority: None,
        };
        let ctx = state.job_context();
        let fj = state
            .db(move |c| {
                let fj = farm::create(c, &user, request, &ctx)?;
                farm::dispatch_now(c, &ctx);
                Ok(fj)
            })
            .await?;
        state.farm_wake.notify_one();
        state.notifier.printers_changed();
        Ok(fj.id)
    }
    .await;
    match outcome {
        Ok(id) => see_other(&format!("/farm#farm-job-{id}")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// `cancel` (copies not started; `printing` in the form also cancels those printing),
/// `retry` (every failed copy) or `first` (first in line, organization admins).
async fn job_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let ctx = state.job_context();
        match action.as_str() {
            "cancel" => {
                let and_printing = p.str("printing").is_some();
                state
                    .db(move |c| farm::cancel(c, &user, id, and_printing))
                    .await?;
            }
            "first" => {
                state
                    .db(move |c| farm::set_priority(c, &user, id, None))
                    .await?;
            }
            "retry" => {
                state
                    .db(move |c| {
                        farm::retry(c, &user, id, None)?;
                        farm::dispatch_now(c, &ctx);
                        Ok(())
                    })
                    .await?;
                state.farm_wake.notify_one();
            }
            _ => return Err(Error::not_found("No such action")),
        }
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/farm#farm-job-{id}")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// A limit from the printer page's form: empty or 0 removes it.
fn limit_field(p: &crate::http::apiglobal::form::Params, name: &str) -> Result<Option<f64>, Error> {
    match p.str(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .map(|v| (v != 0.0).then_some(v))
            .map_err(|_| Error::invalid(format!("{name} must be a number"))),
    }
}

/// Starts or ends a printer's maintenance (`action` = `start` | `end` | `limits`), from its page.
async fn set_maintenance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = PrinterId(path.into_inner());
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let change = match p.str("action") {
            Some("start") => MaintenanceChange {
                on: Some(true),
                note: p.str("note").map(str::to_string),
                ..Default::default()
            },
            Some("end") => MaintenanceChange {
                on: Some(false),
                ..Default::default()
            },
            Some("limits") => MaintenanceChange {
                hours_limit: Some(limit_field(&p, "hours_limit")?),
                filament_limit_g: Some(limit_field(&p, "filament_limit_g")?),
                ..Default::default()
            },
            _ => return Err(Error::invalid("action must be start, end or limits")),
        };
        let ctx = state.job_context();
        state
            .db(move |c| {
                let m = maintenance::change(c, &user, id, change)?;
                if !m.in_maintenance {
                    farm::dispatch_now(c, &ctx);
                }
                Ok(())
            })
            .await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/printers/{id}#maintenance")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}
