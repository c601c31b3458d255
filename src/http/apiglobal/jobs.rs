//! Calls 8, 9, 29–33 (the job queue and print control) and the printfarm extension
//! `update_organization_settings`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::decode::NameList;
use super::envelope::{datetime, ok, Envelope, Failures};
use super::{forms, Signed};
use crate::db::models::{signed, FileId, Job, JobId, PrinterId, StoredFile};
use crate::error::{Error, Result};
use crate::services::{farm, jobs, slicing};
use crate::AppState;

/// Numbers as the Global API writes them in job records: strings, no trailing ".0".
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn tf(b: bool) -> &'static str {
    if b {
        "t"
    } else {
        "f"
    }
}

#[utoipa::path(post, path = "/apiglobal/print_file", tag = "Jobs",
    request_body(content = forms::PrintFile, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The new job (`11` queued, or started at once); for the farm queue (printfarm extension) the new farm job and the copies started at once", body = Envelope<PrintFileMessage>), Failures))]
pub async fn print_file(
    state: web::Data<AppState>,
    call: Signed<forms::PrintFile>,
) -> Result<HttpResponse> {
    let (caller, mut p) = (call.caller, call.params);
    let ctx = state.job_context();
    let named = farm_target(
        p.printer_id,
        p.printer_type_id,
        p.workgroup_id,
        p.printer_ids.take(),
        p.copies.is_some(),
    );
    let target = match caller.valid(&state, named).await? {
        Named::Printer(id) => {
            let only_queue = p.only_queue.unwrap_or(false);
            let created = caller
                .db(&state, move |c, me| {
                    jobs::print_file(c, me, FileId(p.file_id), PrinterId(id), only_queue, &ctx)
                })
                .await?;
            return Ok(ok(PrintFileMessage {
                job_id: Some(created.job.id.to_string()),
                ..PrintFileMessage::default()
            }));
        }
        Named::Farm(target) => target,
        Named::Nothing => {
            let refused = Err(Error::invalid(
                "Missing parameter printer_id (or, for the farm queue, printer_type_id, workgroup_id or printer_ids)",
            ));
            return caller.valid(&state, refused).await;
        }
    };
    let request = caller.valid(&state, farm_request(target, p)).await?;
    let queued = caller
        .db(&state, move |c, me| {
            Ok(match slicing::farm_print(c, me, request, &ctx)? {
                slicing::FarmQueued::Farm(fj) => {
                    // Free printers take their copies now; the rest follow as printers free up.
                    farm::dispatch_now(c, &ctx);
                    let started = farm::started_jobs(c, fj.id)?;
                    PrintFileMessage {
                        farm_job_id: Some(fj.id),
                        job_ids: Some(started.iter().map(ToString::to_string).collect()),
                        ..PrintFileMessage::default()
                    }
                }
                slicing::FarmQueued::Slicing(job) => PrintFileMessage {
                    slice_job_id: Some(job.uuid),
                    output_file_id: job.output_file_id.map(|f| f.0),
                    ..PrintFileMessage::default()
                },
            })
        })
        .await?;
    state.farm_wake.notify_one();
    state.slice_wake.notify_waiters();
    Ok(ok(queued))
}

/// `print_file`'s farm job, from its parameters.
fn farm_request(target: farm::Target, p: forms::PrintFile) -> Result<farm::FarmRequest> {
    if p.only_queue == Some(true) {
        return Err(Error::invalid(
            "only_queue applies to one printer's queue; farm jobs start as printers become free",
        ));
    }
    Ok(farm::FarmRequest {
        file_id: FileId(p.file_id),
        target,
        copies: int32("copies", p.copies)?.unwrap_or(1),
        material: p.material,
        color: p.color,
        priority: int32("priority", p.priority)?,
    })
}

/// What a job is for: one printer, or (printfarm extension) the farm queue.
pub(crate) enum Named {
    Nothing,
    Printer(i64),
    Farm(farm::Target),
}

/// The target a call names: one of `printer_id`, `printer_type_id`, `workgroup_id` and
/// `printer_ids`; a printer with `copies` is a farm job on that printer alone.
pub(crate) fn farm_target(
    printer: Option<i64>,
    printer_type: Option<i64>,
    workgroup: Option<i64>,
    printers: Option<Vec<i64>>,
    copies: bool,
) -> Result<Named> {
    Ok(match (printer, printer_type, workgroup, printers) {
        (Some(id), None, None, None) if !copies => Named::Printer(id),
        (Some(id), None, None, None) => Named::Farm(farm::Target::Printers(vec![PrinterId(id)])),
        (None, Some(t), None, None) => Named::Farm(farm::Target::PrinterType(t)),
        (None, None, Some(w), None) => Named::Farm(farm::Target::Workgroup(w)),
        (None, None, None, Some(list)) => Named::Farm(farm::Target::Printers(
            list.into_iter().map(PrinterId).collect(),
        )),
        (None, None, None, None) => Named::Nothing,
        _ => {
            return Err(Error::invalid(
                "Name one target: printer_id, printer_type_id, workgroup_id or printer_ids",
            ))
        }
    })
}

/// A number parameter that must fit 32 bits.
pub(crate) fn int32(name: &str, v: Option<i64>) -> Result<Option<i32>> {
    v.map(|v| i32::try_from(v).map_err(|_| Error::invalid(format!("{name} is out of range"))))
        .transpose()
}

#[utoipa::path(post, path = "/apiglobal/job_start", tag = "Jobs",
    request_body(content = forms::JobId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`: the job is printing (`21`)", body = Envelope<String>), Failures))]
pub async fn job_start(
    state: web::Data<AppState>,
    call: Signed<forms::JobId>,
) -> Result<HttpResponse> {
    let (caller, job) = (call.caller, call.params.job_id);
    let ctx = state.job_context();
    caller
        .db(&state, move |c, me| {
            jobs::job_start(c, me, JobId(job), &ctx)
        })
        .await?;
    Ok(ok("Ok"))
}

async fn forward(
    state: &AppState,
    call: Signed<forms::JobId>,
    command: &'static str,
) -> Result<HttpResponse> {
    let (caller, job) = (call.caller, call.params.job_id);
    caller
        .db(state, move |c, me| {
            jobs::job_command(c, me, JobId(job), command)
        })
        .await?;
    Ok(ok("Ok"))
}

#[utoipa::path(post, path = "/apiglobal/job_pause", tag = "Jobs",
    request_body(content = forms::JobId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`: the pause is on its way to the printer", body = Envelope<String>), Failures))]
pub async fn job_pause(
    state: web::Data<AppState>,
    call: Signed<forms::JobId>,
) -> Result<HttpResponse> {
    forward(&state, call, "pause").await
}

#[utoipa::path(post, path = "/apiglobal/job_unpause", tag = "Jobs",
    request_body(content = forms::JobId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`: the resume is on its way to the printer", body = Envelope<String>), Failures))]
pub async fn job_unpause(
    state: web::Data<AppState>,
    call: Signed<forms::JobId>,
) -> Result<HttpResponse> {
    forward(&state, call, "unpause").await
}

#[utoipa::path(post, path = "/apiglobal/job_cancel", tag = "Jobs",
    request_body(content = forms::JobCancel, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`: a queued job is aborted; a printing one is cancelled on the printer", body = Envelope<String>), Failures))]
pub async fn job_cancel(
    state: web::Data<AppState>,
    call: Signed<forms::JobCancel>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    // printfarm extension: the reason chosen from the list, and free text beside it.
    caller
        .db(&state, move |c, me| {
            jobs::job_cancel(c, me, JobId(p.job_id), p.reason, p.details.as_deref())
        })
        .await?;
    Ok(ok("Ok"))
}

/// printfarm extension: feedback on a job that has ended (finished, cancelled or failed), by
/// the job's owner or whoever manages its printer; the report's "Feedback" column shows it.
#[utoipa::path(post, path = "/apiglobal/job_feedback", tag = "printfarm extensions",
    request_body(content = forms::JobFeedback, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`: the feedback is kept (an empty one clears it)", body = Envelope<String>), Failures))]
pub async fn job_feedback(
    state: web::Data<AppState>,
    call: Signed<forms::JobFeedback>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    caller
        .db(&state, move |c, me| {
            jobs::job_feedback(c, me, JobId(p.job_id), p.feedback.as_deref())
        })
        .await?;
    Ok(ok("Ok"))
}

/// 8. The printer's jobs, newest first. The answer's top-level `time` is a change cursor:
/// send it back as `prev_time` to get only the jobs changed since.
#[utoipa::path(post, path = "/apiglobal/get_printer_jobs", tag = "Jobs",
    request_body(content = forms::PrinterJobs, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The jobs and the change cursor", body = PrinterJobsAnswer), Failures))]
pub async fn get_printer_jobs(
    state: web::Data<AppState>,
    call: Signed<forms::PrinterJobs>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let limit = p.limit.unwrap_or(20);
    let offset = p.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) {
        let refused = Err(Error::invalid("limit must be between 1 and 1000"));
        return caller.valid(&state, refused).await;
    }
    if offset < 0 {
        let refused = Err(Error::invalid("offset must not be negative"));
        return caller.valid(&state, refused).await;
    }
    let prev = p.prev_time;
    let actual = p.is_actual.unwrap_or(false);
    let plain = !actual && prev.is_none_or(|p| p <= 0);
    let page = caller
        .read(
            &state,
            move |c, gate| {
                if !plain {
                    return Ok(None);
                }
                let page = signed::printer_jobs(c, gate, PrinterId(printer), limit, offset)?;
                Ok(page.map(|(session, (cursor, jobs))| (session, jobs::JobPage { jobs, cursor })))
            },
            move |c, me| jobs::printer_jobs(c, me, PrinterId(printer), limit, offset, prev, actual),
        )
        .await?;
    let message = page
        .jobs
        .iter()
        .map(|(j, filename, email)| JobListItem {
            id: j.id.to_string(),
            status_id: j.status_id.id().to_string(),
            filename: filename.clone(),
            datetime: datetime(&j.created_at),
            email: email.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PrinterJobsAnswer {
        result: true,
        message,
        time: page.cursor,
    }))
}

/// One job of `get_printer_jobs`: every value is a string, as the seed writes them.
#[derive(Serialize, ToSchema)]
pub struct JobListItem {
    #[schema(example = "26590")]
    pub id: String,
    /// 11 queued, 21 in progress, 43 failed, 45 aborted, 77 finished.
    #[schema(example = "11")]
    pub status_id: String,
    pub filename: String,
    #[schema(example = "2016-08-18 20:39:52")]
    pub datetime: String,
    pub email: String,
}

/// `get_printer_jobs` answers the cursor beside the envelope.
#[derive(Serialize, ToSchema)]
pub struct PrinterJobsAnswer {
    #[schema(example = true)]
    pub result: bool,
    pub message: Vec<JobListItem>,
    /// The change cursor for `prev_time`.
    pub time: i64,
}

#[derive(Serialize, ToSchema, Default)]
pub struct PrintFileMessage {
    /// The new job's id (a string, like every job id of the Global API); absent for a farm job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// printfarm extension: the farm job, when the call named a farm target or copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub farm_job_id: Option<i64>,
    /// printfarm extension: the jobs of the copies that started at once (strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_ids: Option<Vec<String>>,
    /// printfarm extension: a model is sliced for the printer type first; this slice
    /// (`get_slice_status`) makes the farm job when it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice_job_id: Option<String>,
    /// printfarm extension: the G-code file the slice makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_file_id: Option<i64>,
}

/// `get_job_info`: the seed's keys and types (numbers as strings, `t`/`f` flags,
/// `extruders` a JSON-encoded string).
#[derive(Serialize, ToSchema)]
pub struct JobInfo {
    pub id: String,
    pub status_id: String,
    pub datetime: String,
    pub printer_id: String,
    /// Real print time, seconds.
    pub print_time: String,
    /// Always null: no GIF recordings here.
    #[schema(value_type = Option<String>)]
    pub gif_image: Option<()>,
    /// The preview's name, served at `/render/<picture>`.
    pub picture: Option<String>,
    pub notes: Option<String>,
    pub file_id: String,
    pub filename: String,
    /// Bytes.
    pub file_size: String,
    /// Estimated print time, seconds.
    pub printing_duration: String,
    #[schema(example = "PLA")]
    pub material_type: String,
    pub layer_height: String,
    pub color_numbers: String,
    /// JSON-encoded target temperatures (and weight/material per extruder).
    #[schema(example = "{\"R\":230,\"L\":0}")]
    pub extruders: String,
    /// Estimated filament weight, grams.
    pub weight: String,
    /// `t` or `f`.
    #[schema(example = "t")]
    pub heated_bed: &'static str,
    pub heated_bed_temperature: String,
    pub raft: &'static str,
    pub supports: &'static str,
    pub file_cost: Option<String>,
    pub cost: Option<String>,
    pub email: String,
}

fn job_info(job: &Job, file: &StoredFile, email: &str) -> JobInfo {
    JobInfo {
        id: job.id.to_string(),
        status_id: job.status_id.id().to_string(),
        datetime: datetime(&job.created_at),
        printer_id: job.printer_id.to_string(),
        print_time: job.print_time.to_string(),
        gif_image: None,
        picture: file.picture.clone(),
        notes: job.notes.clone(),
        file_id: file.id.to_string(),
        filename: file.filename.clone(),
        file_size: file.size.to_string(),
        printing_duration: job.printing_duration.to_string(),
        material_type: job.material_type.clone(),
        layer_height: num(job.layer_height),
        color_numbers: job.color_numbers.to_string(),
        extruders: job.extruders.clone(),
        weight: num(job.weight),
        heated_bed: tf(job.heated_bed),
        heated_bed_temperature: job.heated_bed_temperature.to_string(),
        raft: tf(job.raft),
        supports: tf(job.supports),
        file_cost: job.file_cost.map(num),
        cost: job.cost.map(num),
        email: email.to_string(),
    }
}

#[utoipa::path(post, path = "/apiglobal/get_job_info", tag = "Jobs",
    request_body(content = forms::JobId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The job, with the seed's string-typed fields", body = Envelope<JobInfo>), Failures))]
pub async fn get_job_info(
    state: web::Data<AppState>,
    call: Signed<forms::JobId>,
) -> Result<HttpResponse> {
    let (caller, job) = (call.caller, call.params.job_id);
    let (job, file, email) = caller
        .read(
            &state,
            move |c, gate| Ok(signed::job_info(c, gate, JobId(job))?),
            move |c, me| jobs::job_info(c, me, JobId(job)),
        )
        .await?;
    let info = job_info(&job, &file, &email);
    Ok(ok(info))
}

/// printfarm extension: `auto_start_queue` (bool), `actual_jobs_hours` (int), `material_prices`
/// (JSON object, price per kg by material), `currency` (3 letters), `report_fields` (comma list
/// of `get_custom_report` fields, or `default`). Organization admins.
#[utoipa::path(post, path = "/apiglobal/update_organization_settings", tag = "printfarm extensions",
    request_body(content = forms::OrganizationSettings, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`", body = Envelope<String>), Failures))]
pub async fn update_organization_settings(
    state: web::Data<AppState>,
    call: Signed<forms::OrganizationSettings>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let report_fields = p.report_fields.map(|NameList(names)| names);
    caller
        .db(&state, move |c, me| {
            crate::services::orgs::update_org_settings(
                c,
                me,
                p.auto_start_queue,
                p.actual_jobs_hours,
                p.material_prices,
                p.currency.as_deref(),
                report_fields.as_deref(),
            )
        })
        .await?;
    Ok(ok("Ok"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_print_like_the_seed() {
        assert_eq!(super::num(0.0), "0");
        assert_eq!(super::num(0.11), "0.11");
        assert_eq!(super::num(0.2), "0.2");
        assert_eq!(super::num(110.0), "110");
        assert_eq!(super::num(3.825), "3.825");
    }
}
