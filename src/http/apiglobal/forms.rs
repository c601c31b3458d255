//! The parameters of each Global API call: each struct is both the call's documented schema
//! (OpenAPI) and what its handler receives, decoded leniently (`decode.rs`: numbers as strings,
//! booleans as 1/0/true/on, `name[]` lists, JSON strings). `upload` streams its multipart body
//! and `loginout` answers a missing session with 401: those two read their parameters by hand.
// `session` fields are documented and decoded but read by `Signed`, which checks them first.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;

use super::decode::{NameList, RawText, RequiredIds};
use utoipa::ToSchema;

/// 1 `login`. Some clients send the account as `email` instead of `username`.
#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// Required, unless `email` names the account.
    #[schema(example = "admin@printfarm.local")]
    pub username: Option<String>,
    /// The account, for clients that send it under this name.
    pub email: Option<String>,
    /// Taken exactly as sent (not trimmed).
    #[schema(value_type = String)]
    pub password: RawText,
}

/// Calls that take only the session (`loginout`, `check_session`, `get_projects`, …).
#[derive(Deserialize, ToSchema)]
pub struct SessionOnly {
    /// The session token from `login`.
    pub session: String,
}

/// 4 `upload` (multipart/form-data).
#[derive(Deserialize, ToSchema)]
pub struct Upload {
    pub session: String,
    /// G-code (`.gcode`, `.gco`, `.g`, also zipped), STL, 3MF or OBJ.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub project_id: Option<i64>,
    pub project_name: Option<String>,
    pub project_color: Option<String>,
    /// 7 for a plugin upload.
    pub upload_type_id: Option<i32>,
    pub upload_soft_name: Option<String>,
    /// Store the G-code zipped.
    pub zip: Option<bool>,
}

/// 7 `get_organization_printers_list`.
#[derive(Deserialize, ToSchema)]
pub struct OrganizationPrinters {
    pub session: String,
    pub printer_id: Option<i64>,
    pub workgroup_id: Option<i64>,
}

/// 8 `get_printer_jobs`.
#[derive(Deserialize, ToSchema)]
pub struct PrinterJobs {
    pub session: String,
    pub printer_id: i64,
    /// 1–1000, default 20.
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[schema(minimum = 0)]
    pub offset: Option<i64>,
    /// `0` for the first request, then the `time` of the previous answer: only jobs
    /// changed since are listed.
    pub prev_time: Option<i64>,
    /// Only queued/printing jobs and those ended within the organization's period.
    pub is_actual: Option<bool>,
}

/// Calls on one job (`get_job_info`, `job_start`, `job_pause`, `job_unpause`).
#[derive(Deserialize, ToSchema)]
pub struct JobId {
    pub session: String,
    pub job_id: i64,
}

/// 33 `job_cancel`.
#[derive(Deserialize, ToSchema)]
pub struct JobCancel {
    pub session: String,
    pub job_id: i64,
    /// printfarm extension: why the person cancels, one of the listed codes (its label, e.g.
    /// `Print quality`, is accepted too; anything else is refused with 400). The report's
    /// "Cancel Reason" shows its label.
    pub reason: Option<crate::services::job_states::CancelReason>,
    /// printfarm extension: free text, at most 1000 characters; the report's "Cancel Details".
    #[schema(max_length = 1000, example = "the first layer did not stick")]
    pub details: Option<String>,
}

/// printfarm extension `job_feedback`.
#[derive(Deserialize, ToSchema)]
pub struct JobFeedback {
    pub session: String,
    pub job_id: i64,
    /// At most 2000 characters; empty or absent clears it.
    #[schema(max_length = 2000, example = "Great print, thanks")]
    pub feedback: Option<String>,
}

/// Calls on one file (`get_slicer_settings_for_gcode`).
#[derive(Deserialize, ToSchema)]
pub struct FileId {
    pub session: String,
    pub file_id: i64,
}

/// One file's changes in `file_update`.
#[derive(Deserialize, ToSchema)]
pub struct FileChange {
    /// Printer type id.
    pub ptype: Option<i64>,
    /// Slicer name (Simplify3D, Cura, …).
    pub gtype: Option<String>,
    /// Store the G-code zipped (true) or plain (false).
    pub zip: Option<bool>,
}

/// 11 `file_update`: `updates` as a JSON object or as `updates[<file_id>][ptype]=…` keys.
#[derive(Deserialize, ToSchema)]
pub struct FileUpdate {
    pub session: String,
    #[schema(example = json!({"12": {"ptype": 5, "gtype": "Cura", "zip": true}}),
        value_type = std::collections::BTreeMap<String, FileChange>)]
    pub updates: Value,
}

/// 12 `get_printer_types` (21 takes the same filters without a session).
#[derive(Deserialize, ToSchema)]
pub struct PrinterTypes {
    pub session: String,
    /// The calling slicer's printer model: the matching types are answered, or every type
    /// when none matches (the slicer then asks the user to pick).
    pub description: Option<String>,
    /// The calling application (e.g. `OrcaSlicer`); accepted, never a filter.
    pub software_version: Option<String>,
}

/// 21 `get_printer_types_detailed`: no session.
#[derive(Deserialize, ToSchema)]
pub struct PrinterTypesDetailed {
    pub description: Option<String>,
    pub software_version: Option<String>,
}

/// Calls on one printer (`get_printer_shares`).
#[derive(Deserialize, ToSchema)]
pub struct PrinterId {
    pub session: String,
    pub printer_id: i64,
}

/// 14 `share_printer`.
#[derive(Deserialize, ToSchema)]
pub struct SharePrinter {
    pub session: String,
    pub printer_id: i64,
    /// 2 can print, 5 can queue.
    pub role_id: i64,
    pub user_email: String,
    pub number_of_prints: Option<i64>,
}

/// 15 `unshare_printer`.
#[derive(Deserialize, ToSchema)]
pub struct UnsharePrinter {
    pub session: String,
    pub share_id: i64,
}

/// 16 `add_printer_by_registration_code`.
#[derive(Deserialize, ToSchema)]
pub struct RegistrationCode {
    pub session: String,
    #[schema(example = "K7QM-W3XR")]
    pub registration_code: String,
}

/// 17 `get_printers_list`.
#[derive(Deserialize, ToSchema)]
pub struct PrintersList {
    pub session: String,
    /// Printer short type, e.g. `K_PORTRAIT`.
    pub printer_type: Option<String>,
    /// One id, or several as `printer_id[]=1&printer_id[]=2`.
    pub printer_id: Option<Vec<i64>>,
}

/// 18 `get_workgroup_users`.
#[derive(Deserialize, ToSchema)]
pub struct WorkgroupId {
    pub session: String,
    pub workgroup_id: i64,
}

/// 19 `add_user_to_workgroup`.
#[derive(Deserialize, ToSchema)]
pub struct AddUserToWorkgroup {
    pub session: String,
    pub workgroup_id: i64,
    pub email: String,
    /// printfarm extension: 2 can print (default), 3 can queue.
    pub rights: Option<i64>,
}

/// 20 `delete_user_from_workgroup`.
#[derive(Deserialize, ToSchema)]
pub struct DeleteUserFromWorkgroup {
    pub session: String,
    pub workgroup_id: i64,
    pub user_id: i64,
}

/// 22 `get_custom_report`.
#[derive(Deserialize, ToSchema)]
pub struct CustomReport {
    pub session: String,
    /// `Y-m-d`, default today − 31 days.
    #[schema(example = "2026-11-01")]
    pub from: Option<String>,
    /// `Y-m-d`, default today; at most 365 days after `from`.
    #[schema(example = "2026-11-30")]
    pub to: Option<String>,
    /// `CSV` (default) or `json`.
    #[schema(example = "json", value_type = Option<String>)]
    pub r#type: Option<super::reports::Format>,
    /// Add the workgroup columns.
    pub workgroups: Option<bool>,
    /// Comma-separated field names (see the description).
    #[schema(example = "job_id,printer_name,status", value_type = Option<String>)]
    pub fields: Option<NameList>,
    /// All fields; `fields` is then ignored.
    pub all_fields: Option<bool>,
}

/// 27 `get_finished_jobs_report`.
#[derive(Deserialize, ToSchema)]
pub struct FinishedJobsReport {
    pub session: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// 23 `get_camera_list_token`.
#[derive(Deserialize, ToSchema)]
pub struct CameraListToken {
    pub session: String,
    pub printer_id: Option<i64>,
}

/// 24 `google_login`.
#[derive(Deserialize, ToSchema)]
pub struct GoogleLogin {
    /// A Google ID token (RS256 JWT).
    pub token: String,
}

/// 25 `gdpr_registration`.
#[derive(Deserialize, ToSchema)]
pub struct GdprRegistration {
    /// The session from `google_login` with `gdpr_needed` (401 without it).
    pub session: Option<String>,
    /// Must be on (`on`, `1`, `true`).
    #[schema(example = "on")]
    pub gdpr1: Option<bool>,
    pub gdpr2: Option<bool>,
    /// Any non-empty value drops the pending registration.
    pub cancel: Option<String>,
}

/// 26 `create_organization_user`.
#[derive(Deserialize, ToSchema)]
pub struct CreateOrganizationUser {
    pub session: String,
    pub email: String,
    /// 1 or 3.
    pub gdpr: i64,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub company: Option<String>,
    /// 0 member, 1 admin, 2 workgroup admin.
    pub access_role: Option<i64>,
}

/// 28 `slice`.
#[derive(Deserialize, ToSchema)]
pub struct Slice {
    pub session: String,
    /// The caller's STL, 3MF or OBJ file.
    pub file_id: i64,
    /// 61 (default), 51 and 3 slice with PrusaSlicer here.
    pub slicer_id: Option<i64>,
    /// A JSON object (or JSON string) of PrusaSlicer keys and/or Cloud Slicer
    /// `printer_config` names.
    #[schema(value_type = Object, example = json!({"layer_height": 0.2, "fill_density": 20}))]
    pub profile: Value,
    pub add_print_job_to_printer_id: Option<i64>,
    pub start_print_job: Option<bool>,
    /// Farm queue (printfarm extension): when done, print on any printer of this type (the
    /// G-code is then offered for that type only).
    pub printer_type_id: Option<i64>,
    /// Farm queue: any printer of this workgroup.
    pub workgroup_id: Option<i64>,
    /// Farm queue: any of these printers.
    pub printer_ids: Option<Vec<i64>>,
    /// Farm queue: how many copies (1–1000); with `add_print_job_to_printer_id`, on it alone.
    pub copies: Option<i64>,
    /// Farm queue: the material that must be loaded.
    pub material: Option<String>,
    /// Farm queue: the colour that must be loaded, `#RRGGBB`.
    pub color: Option<String>,
    /// Farm queue: higher starts first (organization admins).
    pub priority: Option<i64>,
}

/// printfarm extension `get_slice_status`.
#[derive(Deserialize, ToSchema)]
pub struct SliceStatus {
    pub session: String,
    /// The `job_id` (UUID) `slice` answered.
    pub job_id: String,
}

/// 29 `print_file`. The printfarm farm queue (extension): instead of `printer_id`, name a
/// printer type, a workgroup or a list of printers, and optionally copies, a material and a
/// colour; the dispatcher starts each copy on an eligible printer as one becomes free.
#[derive(Deserialize, ToSchema)]
pub struct PrintFile {
    pub session: String,
    pub file_id: i64,
    /// The printer (a job of its own queue). Give this or one farm target.
    pub printer_id: Option<i64>,
    /// Only queue the job, do not start it.
    pub only_queue: Option<bool>,
    /// Farm queue: any printer of this type.
    pub printer_type_id: Option<i64>,
    /// Farm queue: any printer of this workgroup.
    pub workgroup_id: Option<i64>,
    /// Farm queue: any of these printers (`printer_ids[]=1&printer_ids[]=2` or a JSON array).
    pub printer_ids: Option<Vec<i64>>,
    /// Farm queue: how many copies (1–1000, default 1). With `printer_id`, that printer only.
    #[schema(minimum = 1, maximum = 1000)]
    pub copies: Option<i64>,
    /// Farm queue: the material that must be loaded (`PETG`).
    pub material: Option<String>,
    /// Farm queue: the colour that must be loaded, `#RRGGBB`.
    pub color: Option<String>,
    /// Farm queue: higher starts first (organization admins; -100 to 100, default 0).
    pub priority: Option<i64>,
}

/// printfarm extension `get_farm_queue`.
#[derive(Deserialize, ToSchema)]
pub struct FarmQueue {
    pub session: String,
    /// Only this farm job, with each of its copies.
    pub farm_job_id: Option<i64>,
    /// At most this many farm jobs, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// printfarm extension `farm_job_cancel`.
#[derive(Deserialize, ToSchema)]
pub struct FarmJobCancel {
    pub session: String,
    pub farm_job_id: i64,
    /// Also cancel the copies printing now (default: they finish).
    pub cancel_printing: Option<bool>,
}

/// printfarm extension `farm_job_priority` (organization admins).
#[derive(Deserialize, ToSchema)]
pub struct FarmJobPriority {
    pub session: String,
    pub farm_job_id: i64,
    /// -100 to 100, higher first; absent: first in line.
    pub priority: Option<i64>,
}

/// printfarm extension `farm_job_retry`.
#[derive(Deserialize, ToSchema)]
pub struct FarmJobRetry {
    pub session: String,
    pub farm_job_id: i64,
    /// Only the copy this (failed or aborted) job printed; default: every failed copy.
    pub job_id: Option<i64>,
}

/// printfarm extension `printer_maintenance`. Without `maintenance`, `hours_limit` and
/// `filament_limit_g` it only answers the printer's maintenance and counters.
#[derive(Deserialize, ToSchema)]
pub struct PrinterMaintenance {
    pub session: String,
    pub printer_id: i64,
    /// 1 puts the printer in maintenance (it takes no jobs), 0 ends it (the counters restart).
    pub maintenance: Option<bool>,
    /// Why (shown in the console and the farm queue's reasons).
    pub note: Option<String>,
    /// Into maintenance by itself past this many print hours (0 removes the limit).
    pub hours_limit: Option<f64>,
    /// Into maintenance by itself past this many grams of filament (0 removes the limit).
    pub filament_limit_g: Option<f64>,
}

/// printfarm extension `set_power_circuit` (organization admins).
#[derive(Deserialize, ToSchema)]
pub struct SetPowerCircuit {
    pub session: String,
    /// The circuit or location, e.g. `Lab A`; made when new.
    pub name: String,
    /// At most this many of its printers heat at once (absent: no limit).
    pub max_heating: Option<i64>,
    /// At most this many of its printers download G-code at once (absent: no limit).
    pub max_downloads: Option<i64>,
    /// Exactly the printers in it (`printer_id[]=…` or a JSON array); absent: unchanged.
    pub printer_id: Option<Vec<i64>>,
    /// 1 removes the circuit.
    pub remove: Option<bool>,
}

/// 34 `update_user_settings`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateUserSettings {
    pub session: String,
    pub user_id: i64,
    pub balance: Option<f64>,
    pub quota: Option<i64>,
}

/// 35 `printer_clear_build_tray`.
#[derive(Deserialize, ToSchema)]
pub struct ClearBuildTray {
    pub session: String,
    pub printer_id: i64,
    /// Default true: the tray is clear.
    pub is_clear: Option<bool>,
}

/// `login_with_token`: the token `generate_login_token` answered.
#[derive(Deserialize, ToSchema)]
pub struct LoginWithToken {
    pub token: String,
}

/// printfarm extension `create_api_token`.
#[derive(Deserialize, ToSchema)]
pub struct CreateApiToken {
    pub session: String,
    pub name: String,
    /// The token stops working after this many days; never when absent.
    #[schema(minimum = 1)]
    pub expires_in_days: Option<i64>,
}

/// printfarm extension `revoke_api_token`.
#[derive(Deserialize, ToSchema)]
pub struct RevokeApiToken {
    pub session: String,
    pub token_id: i64,
}

/// printfarm extension `create_workgroup`.
#[derive(Deserialize, ToSchema)]
pub struct CreateWorkgroup {
    pub session: String,
    pub name: String,
    pub password: Option<String>,
}

/// printfarm extension `set_printer_workgroups`: an empty list takes the printer out of all.
#[derive(Deserialize, ToSchema)]
pub struct SetPrinterWorkgroups {
    pub session: String,
    pub printer_id: i64,
    /// `workgroup_id[]=1&workgroup_id[]=2`, or a JSON array; sent empty, it clears them.
    #[schema(value_type = Vec<i64>)]
    pub workgroup_id: RequiredIds,
}

/// printfarm extension `update_organization_settings` (organization admins).
#[derive(Deserialize, ToSchema)]
pub struct OrganizationSettings {
    pub session: String,
    /// Start the next queued job when a tray is cleared.
    pub auto_start_queue: Option<bool>,
    /// The period `is_actual` keeps ended jobs for.
    pub actual_jobs_hours: Option<i64>,
    /// Price per kg by material, e.g. `{"PLA": 25}`.
    #[schema(value_type = Option<Object>)]
    pub material_prices: Option<Value>,
    /// Three letters.
    pub currency: Option<String>,
    /// Comma list of `get_custom_report` fields, or `default`.
    #[schema(value_type = Option<String>)]
    pub report_fields: Option<NameList>,
}
