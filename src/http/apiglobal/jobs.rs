//! Calls 8, 9, 29–33 (the job queue and print control) and the printfarm extension
//! `update_organization_settings`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::envelope::ok;
use super::{authenticate, Form};
use crate::db::models::{Job, StoredFile, User};
use crate::error::{Error, Result};
use crate::services::jobs;
use crate::AppState;

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

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

pub async fn print_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let file = p.required_i64("file_id")?;
    let printer = p.required_i64("printer_id")?;
    let only_queue = p.bool("only_queue")?.unwrap_or(false);
    let ctx = state.job_context(Some(&req));
    let created = state
        .db(move |c| jobs::print_file(c, &me, file, printer, only_queue, &ctx))
        .await?;
    if created.started {
        state.notifier.wake(created.job.printer_id);
    }
    Ok(ok(json!({"job_id": created.job.id.to_string()})))
}

pub async fn job_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let job = p.required_i64("job_id")?;
    let ctx = state.job_context(Some(&req));
    let job = state
        .db(move |c| jobs::job_start(c, &me, job, &ctx))
        .await?;
    state.notifier.wake(job.printer_id);
    Ok(ok("Ok"))
}

async fn forward(
    state: &AppState,
    p: &super::form::Params,
    command: &'static str,
) -> Result<HttpResponse> {
    let me = authenticate(state, p).await?.user;
    let job = p.required_i64("job_id")?;
    let cmd = state
        .db(move |c| jobs::job_command(c, &me, job, command))
        .await?;
    state.notifier.wake(cmd.printer_id);
    Ok(ok("Ok"))
}

pub async fn job_pause(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    forward(&state, &p, "pause").await
}

pub async fn job_unpause(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    forward(&state, &p, "unpause").await
}

pub async fn job_cancel(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let job = p.required_i64("job_id")?;
    // printfarm extension: why, kept as the job's cancel details.
    let details = p.str("reason").map(str::to_string);
    if let Some(printer) = state
        .db(move |c| jobs::job_cancel(c, &me, job, details.as_deref()))
        .await?
    {
        state.notifier.wake(printer);
    }
    Ok(ok("Ok"))
}

pub async fn get_printer_jobs(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.required_i64("printer_id")?;
    let limit = p.i64("limit")?.unwrap_or(20);
    let offset = p.i64("offset")?.unwrap_or(0);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad_request("limit must be between 1 and 1000"));
    }
    if offset < 0 {
        return Err(Error::bad_request("offset must not be negative"));
    }
    let prev = p.i64("prev_time")?;
    let actual = p.bool("is_actual")?.unwrap_or(false);
    let page = state
        .db(move |c| jobs::printer_jobs(c, &me, printer, limit, offset, prev, actual))
        .await?;
    let list: Vec<Value> = page
        .jobs
        .iter()
        .map(|(j, filename, email)| {
            json!({
                "id": j.id.to_string(),
                "status_id": j.status_id.to_string(),
                "filename": filename,
                "datetime": j.created_at.format(DATETIME).to_string(),
                "email": email,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"result": true, "message": list, "time": page.cursor})))
}

fn job_info(job: &Job, file: &StoredFile, email: &str) -> Value {
    json!({
        "id": job.id.to_string(),
        "status_id": job.status_id.to_string(),
        "datetime": job.created_at.format(DATETIME).to_string(),
        "printer_id": job.printer_id.to_string(),
        "print_time": job.print_time.to_string(),
        "gif_image": null,
        "picture": file.picture,
        "notes": job.notes,
        "file_id": file.id.to_string(),
        "filename": file.filename,
        "file_size": file.size.to_string(),
        "printing_duration": job.printing_duration.to_string(),
        "material_type": job.material_type,
        "layer_height": num(job.layer_height),
        "color_numbers": job.color_numbers.to_string(),
        "extruders": job.extruders,
        "weight": num(job.weight),
        "heated_bed": tf(job.heated_bed),
        "heated_bed_temperature": job.heated_bed_temperature.to_string(),
        "raft": tf(job.raft),
        "supports": tf(job.supports),
        "file_cost": job.file_cost.map(num),
        "cost": job.cost.map(num),
        "email": email,
    })
}

pub async fn get_job_info(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let job = p.required_i64("job_id")?;
    let info = state
        .db(move |c| {
            let job = jobs::visible_job(c, &me, job)?;
            let file = StoredFile::find(c, job.file_id)?
                .ok_or_else(|| Error::internal("job without file"))?;
            let email = User::find(c, job.user_id)?
                .map(|u| u.email)
                .unwrap_or_default();
            Ok(job_info(&job, &file, &email))
        })
        .await?;
    Ok(ok(info))
}

/// printfarm extension: `auto_start_queue` (bool), `actual_jobs_hours` (int), `material_prices`
/// (JSON object, price per kg by material), `currency` (3 letters), `report_fields` (comma list
/// of `get_custom_report` fields, or `default`). Organization admins.
pub async fn update_organization_settings(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let auto = p.bool("auto_start_queue")?;
    let hours = p.i64("actual_jobs_hours")?;
    let prices = p.value("material_prices")?;
    let currency = p.str("currency").map(str::to_string);
    let report_fields = super::reports::name_list(&p, "report_fields")?;
    state
        .db(move |c| {
            jobs::update_org_settings(
                c,
                &me,
                auto,
                hours,
                prices,
                currency.as_deref(),
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
