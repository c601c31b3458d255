//! Calls 7, 13, 14, 15, 16, 17, 23, 35 (printers, shares, registration, camera, build tray)
//! and the printfarm extension `set_printer_workgroups`.

use actix_web::{web, HttpResponse};
use chrono::Duration;
use serde::Serialize;
use utoipa::ToSchema;

use super::decode::RequiredIds;
use super::envelope::{ok, Envelope, Failures, Nothing};
use super::{forms, Signed};
use crate::db::models::{signed, PrinterId};
use crate::error::Result;
use crate::services::printers;
use crate::AppState;

/// One share of a printer.
#[derive(Serialize, ToSchema)]
pub struct ShareItem {
    /// The share id for `unshare_printer`.
    pub id: i64,
    pub email: String,
    /// Prints left, or null for no limit.
    pub number_of_prints: Option<i32>,
    /// The share's role: 2 can print, 5 can queue.
    pub printer_ownership_id: i32,
}

#[derive(Serialize, ToSchema)]
pub struct ShareId {
    pub id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PrinterIdMessage {
    #[schema(value_type = i64)]
    pub printer_id: PrinterId,
}

#[derive(Serialize, ToSchema)]
pub struct CameraToken {
    pub token: String,
    pub webcam_id: i64,
    pub rotate: bool,
}

fn offline_after(state: &AppState) -> Duration {
    Duration::seconds(state.config.printers.offline_after_secs)
}

#[utoipa::path(post, path = "/apiglobal/get_organization_printers_list", tag = "Printers",
    request_body(content = forms::OrganizationPrinters, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The organization's printers (admins and workgroup admins)", body = Envelope<Vec<printers::OrgPrinterItem>>), Failures))]
pub async fn get_organization_printers_list(
    state: web::Data<AppState>,
    call: Signed<forms::OrganizationPrinters>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer_id = p.printer_id;
    let workgroup_id = p.workgroup_id;
    let offline = offline_after(&state);
    let items = caller
        .db(&state, move |c, me| {
            let list =
                printers::organization_printers(c, me, printer_id.map(PrinterId), workgroup_id)?;
            let ctx = printers::org_list_context(c, &list, offline)?;
            let now = crate::db::now();
            Ok(list
                .iter()
                .map(|p| printers::org_list_item(&ctx, p, now))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(ok(items))
}

#[utoipa::path(post, path = "/apiglobal/get_printers_list", tag = "Printers",
    request_body(content = forms::PrintersList, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The printers the caller may use", body = Envelope<Vec<printers::UserPrinterItem>>), Failures))]
pub async fn get_printers_list(
    state: web::Data<AppState>,
    call: Signed<forms::PrintersList>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer_type = p.printer_type;
    let ids: Vec<PrinterId> = p
        .printer_id
        .unwrap_or_default()
        .into_iter()
        .map(PrinterId)
        .collect();
    let offline = offline_after(&state);
    let items = caller
        .db(&state, move |c, me| {
            let list = printers::user_printers(c, me, printer_type.as_deref(), &ids)?;
            let ctx = printers::list_context(c, offline)?;
            let now = crate::db::now();
            Ok(list
                .iter()
                .map(|p| printers::user_list_item(&ctx, p, now))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(ok(items))
}

#[utoipa::path(post, path = "/apiglobal/get_printer_shares", tag = "Printers",
    request_body(content = forms::PrinterId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The printer's shares", body = Envelope<Vec<ShareItem>>), Failures))]
pub async fn get_printer_shares(
    state: web::Data<AppState>,
    call: Signed<forms::PrinterId>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let shares = caller
        .read(
            &state,
            move |c, gate| Ok(signed::managed_printer_shares(c, gate, PrinterId(printer))?),
            move |c, me| printers::shares(c, me, PrinterId(printer)),
        )
        .await?;
    Ok(ok(shares
        .iter()
        .map(|s| ShareItem {
            id: s.id,
            email: s.email.clone(),
            number_of_prints: s.number_of_prints.map(|n| (n - s.prints_used).max(0)),
            printer_ownership_id: s.role_id,
        })
        .collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/apiglobal/share_printer", tag = "Printers",
    request_body(content = forms::SharePrinter, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The share's id", body = Envelope<ShareId>), Failures))]
pub async fn share_printer(
    state: web::Data<AppState>,
    call: Signed<forms::SharePrinter>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let role = p.role_id;
    let email = p.user_email;
    let prints = p.number_of_prints;
    let share = caller
        .db(&state, move |c, me| {
            printers::share(c, me, PrinterId(printer), role, &email, prints)
        })
        .await?;
    Ok(ok(ShareId { id: share.id }))
}

#[utoipa::path(post, path = "/apiglobal/unshare_printer", tag = "Printers",
    request_body(content = forms::UnsharePrinter, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Removed", body = Envelope<Nothing>), Failures))]
pub async fn unshare_printer(
    state: web::Data<AppState>,
    call: Signed<forms::UnsharePrinter>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let share = p.share_id;
    caller
        .db(&state, move |c, me| printers::unshare(c, me, share))
        .await?;
    Ok(ok(Nothing))
}

#[utoipa::path(post, path = "/apiglobal/add_printer_by_registration_code", tag = "Printers",
    request_body(content = forms::RegistrationCode, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The new printer's id", body = Envelope<PrinterIdMessage>), Failures))]
pub async fn add_printer_by_registration_code(
    state: web::Data<AppState>,
    call: Signed<forms::RegistrationCode>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let code = p.registration_code;
    let printer = caller
        .db(&state, move |c, me| printers::redeem_code(c, me, &code))
        .await?;
    Ok(ok(PrinterIdMessage {
        printer_id: printer.id,
    }))
}

#[utoipa::path(post, path = "/apiglobal/get_camera_list_token", tag = "Printers",
    request_body(content = forms::CameraListToken, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "A short-lived token for `/camera/<token>/<printer_id>.jpg` and `.mjpeg`", body = Envelope<CameraToken>), Failures))]
pub async fn get_camera_list_token(
    state: web::Data<AppState>,
    call: Signed<forms::CameraListToken>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let ttl = Duration::seconds(state.config.printers.camera_token_secs);
    let token = caller
        .db(&state, move |c, me| {
            printers::camera_token(c, me, printer.map(PrinterId), ttl)
        })
        .await?;
    Ok(ok(CameraToken {
        token,
        webcam_id: 0,
        rotate: false,
    }))
}

#[utoipa::path(post, path = "/apiglobal/printer_clear_build_tray", tag = "Printers",
    request_body(content = forms::ClearBuildTray, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`", body = Envelope<String>), Failures))]
pub async fn printer_clear_build_tray(
    state: web::Data<AppState>,
    call: Signed<forms::ClearBuildTray>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let clear = p.is_clear.unwrap_or(true);
    let ctx = state.job_context();
    caller
        .db(&state, move |c, me| {
            crate::services::farm::clear_build_tray(c, me, PrinterId(printer), clear, &ctx)
        })
        .await?;
    Ok(ok("Ok"))
}

/// printfarm extension: the printer's owner or an organization admin puts it into workgroups
/// (`workgroup_id[]=…`; an empty list takes it out of all).
#[utoipa::path(post, path = "/apiglobal/set_printer_workgroups", tag = "printfarm extensions",
    request_body(content = forms::SetPrinterWorkgroups, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`", body = Envelope<String>), Failures))]
pub async fn set_printer_workgroups(
    state: web::Data<AppState>,
    call: Signed<forms::SetPrinterWorkgroups>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let printer = p.printer_id;
    let RequiredIds(groups) = p.workgroup_id;
    caller
        .db(&state, move |c, me| {
            printers::set_workgroups(c, me, PrinterId(printer), &groups)
        })
        .await?;
    Ok(ok("Ok"))
}
