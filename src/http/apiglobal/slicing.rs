//! Call 28 `slice` and the printfarm extension `get_slice_status`.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::envelope::ok;
use super::{authenticate, Form};
use crate::error::{Error, Result};
use crate::services::slicing::{self, SliceRequest};
use crate::AppState;

pub async fn slice(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let file_id = p.required_i64("file_id")?;
    let profile = match p.value("profile")? {
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(Error::bad_request(
                "profile must be a JSON object of slicer settings",
            ))
        }
        None => return Err(Error::bad_request("missing required parameter 'profile'")),
    };
    let req = SliceRequest {
        file_id,
        slicer_id: p.i64("slicer_id")?,
        profile,
        printer_id: p.i64("add_print_job_to_printer_id")?,
        start_print: p.bool("start_print_job")?.unwrap_or(false),
    };
    let requested = state.db(move |c| slicing::request(c, &me, &req)).await?;
    state.slice_wake.notify_waiters();
    Ok(ok(json!({
        "job_id": requested.job.uuid,
        "job_waiting": requested.waiting,
        "running_jobs_limit": state.config.slicer.max_concurrent,
        "output_file_id": requested.job.output_file_id,
    })))
}

/// printfarm extension: a slice's state (`pending`, `running`, `done`, `failed`), its error,
/// the output file and the print job it queued.
pub async fn get_slice_status(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let uuid = p.required_str("job_id")?.to_string();
    let job = state.db(move |c| slicing::status(c, &me, &uuid)).await?;
    Ok(ok(json!({
        "job_id": job.uuid,
        "status": job.status,
        "error": job.error,
        "output_file_id": job.output_file_id,
        "print_job_id": job.print_job_id.map(|j| j.to_string()),
        "attempts": job.attempts,
    })))
}
