//! Calls 7, 13, 14, 15, 16, 17, 23, 35 (printers, shares, registration, camera, build tray)
//! and the printfarm extension `set_printer_workgroups`.

use actix_web::{web, HttpResponse};
use chrono::Duration;
use serde_json::json;

use super::envelope::ok;
use super::{authenticate, Form};
use crate::error::{Error, Result};
use crate::services::printers;
use crate::AppState;

fn offline_after(state: &AppState) -> Duration {
    Duration::seconds(state.config.printers.offline_after_secs)
}

pub async fn get_organization_printers_list(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer_id = p.i64("printer_id")?;
    let workgroup_id = p.i64("workgroup_id")?;
    let offline = offline_after(&state);
    let items = state
        .db(move |c| {
            let list = printers::organization_printers(c, &me, printer_id, workgroup_id)?;
            let ctx = printers::list_context(c, &list, offline)?;
            let now = crate::db::now();
            Ok(list
                .iter()
                .map(|p| printers::org_list_item(&ctx, p, now))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(ok(items))
}

pub async fn get_printers_list(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer_type = p.str("printer_type").map(str::to_string);
    let ids = p.i64_list("printer_id")?;
    let offline = offline_after(&state);
    let items = state
        .db(move |c| {
            let list = printers::user_printers(c, &me, printer_type.as_deref(), &ids)?;
            let ctx = printers::list_context(c, &list, offline)?;
            let now = crate::db::now();
            Ok(list
                .iter()
                .map(|p| printers::user_list_item(&ctx, p, now))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(ok(items))
}

pub async fn get_printer_shares(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.required_i64("printer_id")?;
    let shares = state.db(move |c| printers::shares(c, &me, printer)).await?;
    Ok(ok(shares
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "email": s.email,
                "number_of_prints": s.number_of_prints.map(|n| (n - s.prints_used).max(0)),
                "printer_ownership_id": s.role_id,
            })
        })
        .collect::<Vec<_>>()))
}

pub async fn share_printer(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.required_i64("printer_id")?;
    let role = p.required_i64("role_id")?;
    let email = p.required_str("user_email")?.to_string();
    let prints = p.i64("number_of_prints")?;
    let share = state
        .db(move |c| printers::share(c, &me, printer, role, &email, prints))
        .await?;
    Ok(ok(json!({ "id": share.id })))
}

pub async fn unshare_printer(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let share = p.required_i64("share_id")?;
    state.db(move |c| printers::unshare(c, &me, share)).await?;
    Ok(ok(json!([])))
}

pub async fn add_printer_by_registration_code(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let code = p.required_str("registration_code")?.to_string();
    let printer = state
        .db(move |c| printers::redeem_code(c, &me, &code))
        .await?;
    Ok(ok(json!({ "printer_id": printer.id })))
}

pub async fn get_camera_list_token(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.i64("printer_id")?;
    let ttl = Duration::seconds(state.config.printers.camera_token_secs);
    let token = state
        .db(move |c| printers::camera_token(c, &me, printer, ttl))
        .await?;
    Ok(ok(json!({"token": token, "webcam_id": 0, "rotate": false})))
}

pub async fn printer_clear_build_tray(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.required_i64("printer_id")?;
    let clear = p.bool("is_clear")?.unwrap_or(true);
    let ctx = state.job_context(Some(&req));
    let started = state
        .db(move |c| {
            crate::db::write_transaction(c, |c| {
                let printer = printers::set_tray(c, &me, printer, clear)?;
                // A cleared tray lets the next queued job start (when the organization auto-starts).
                if clear {
                    crate::services::jobs::auto_start(c, printer.id, &ctx)
                } else {
                    Ok(None)
                }
            })
        })
        .await?;
    if let Some(job) = started {
        state.notifier.wake(job.printer_id);
    }
    Ok(ok("Ok"))
}

/// printfarm extension: the printer's owner or an organization admin puts it into workgroups
/// (`workgroup_id[]=…`; an empty list takes it out of all).
pub async fn set_printer_workgroups(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let printer = p.required_i64("printer_id")?;
    let groups = p.i64_list("workgroup_id")?;
    if p.raw("workgroup_id").is_none() && p.value("workgroup_id")?.is_none() {
        return Err(Error::bad_request(
            "missing required parameter 'workgroup_id'",
        ));
    }
    state
        .db(move |c| printers::set_workgroups(c, &me, printer, &groups))
        .await?;
    Ok(ok("Ok"))
}
