//! Call 28 `slice` and the printfarm extension `get_slice_status`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures};
use super::jobs::Named;
use super::{forms, Signed};
use crate::db::models::{FileId, PrinterId};
use crate::error::{Error, Result};
use crate::services::farm::{FarmRequest, Target};
use crate::services::slicing::{self, SliceRequest};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct SliceMessage {
    /// The slice's UUID, for `get_slice_status`.
    pub job_id: String,
    /// True when the slice waits for a free slicer.
    pub job_waiting: bool,
    pub running_jobs_limit: i64,
    pub output_file_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SliceStatusMessage {
    pub job_id: String,
    /// `pending`, `running`, `done` or `failed`.
    #[schema(example = "done")]
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    pub output_file_id: Option<i64>,
    /// The print job it queued, as the job ids of the Global API (a string).
    pub print_job_id: Option<String>,
    /// printfarm extension: the farm job it made (asked for with a farm target).
    pub farm_job_id: Option<i64>,
    pub attempts: i32,
}

#[utoipa::path(post, path = "/apiglobal/slice", tag = "Slicing",
    request_body(content = forms::Slice, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The slice is queued; `output_file_id` becomes the G-code file when it ends", body = Envelope<SliceMessage>), Failures))]
pub async fn slice(state: web::Data<AppState>, call: Signed<forms::Slice>) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let req = caller.valid(&state, slice_request(p)).await?;
    let requested = caller
        .db(&state, move |c, me| slicing::request(c, me, &req))
        .await?;
    state.slice_wake.notify_waiters();
    let output_file_id = requested
        .job
        .output_file_id
        .ok_or_else(|| Error::internal("a slice without a reserved output file"))?;
    Ok(ok(SliceMessage {
        job_id: requested.job.uuid,
        job_waiting: requested.waiting,
        running_jobs_limit: state.config.slicer.max_concurrent as i64,
        output_file_id: output_file_id.0,
    }))
}

/// `slice`'s request, from its parameters.
fn slice_request(p: forms::Slice) -> Result<SliceRequest> {
    let file_id = p.file_id;
    let profile = match p.profile {
        v @ Value::Object(_) => v,
        _ => {
            return Err(Error::invalid(
                "profile must be a JSON object of slicer settings",
            ))
        }
    };
    let named = super::jobs::farm_target(
        p.add_print_job_to_printer_id,
        p.printer_type_id,
        p.workgroup_id,
        p.printer_ids,
        p.copies.is_some(),
    )?;
    let (printer_id, farm) = match named {
        Named::Nothing => (None, None),
        Named::Printer(id) => (Some(PrinterId(id)), None),
        Named::Farm(target) => {
            if p.start_print_job == Some(false) {
                return Err(Error::invalid(
                    "start_print_job=0 applies to one printer's queue; farm copies start as printers become free",
                ));
            }
            let plan = FarmRequest {
                // Replaced by the slice's output when the slice is queued.
                file_id: FileId(file_id),
                target,
                copies: super::jobs::int32("copies", p.copies)?.unwrap_or(1),
                material: p.material,
                color: p.color,
                priority: super::jobs::int32("priority", p.priority)?,
            };
            (None, Some(plan))
        }
    };
    let printer_type_id = match &farm {
        Some(FarmRequest {
            target: Target::PrinterType(t),
            ..
        }) => Some(*t),
        _ => None,
    };
    Ok(SliceRequest {
        file_id: FileId(file_id),
        slicer_id: p.slicer_id,
        profile,
        printer_id,
        start_print: p.start_print_job.unwrap_or(false),
        printer_type_id,
        farm,
    })
}

/// printfarm extension: a slice's state (`pending`, `running`, `done`, `failed`), its error,
/// the output file and the print job it queued.
#[utoipa::path(post, path = "/apiglobal/get_slice_status", tag = "printfarm extensions",
    request_body(content = forms::SliceStatus, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The slice's state", body = Envelope<SliceStatusMessage>), Failures))]
pub async fn get_slice_status(
    state: web::Data<AppState>,
    call: Signed<forms::SliceStatus>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let uuid = p.job_id;
    let job = caller
        .db(&state, move |c, me| slicing::status(c, me, &uuid))
        .await?;
    Ok(ok(SliceStatusMessage {
        job_id: job.uuid,
        status: job.status.as_str().into(),
        error: job.error,
        output_file_id: job.output_file_id.map(|f| f.0),
        print_job_id: job.print_job_id.map(|j| j.to_string()),
        farm_job_id: job.farm_job_id,
        attempts: job.attempts,
    }))
}
