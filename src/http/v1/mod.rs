//! The `/v1` REST API, field for field compatible with Cloud Slicer: account, uploads,
//! printability, files and instant quotes, with `Authorization: Bearer <API token>`.
//! Errors answer `{"detail": "…"}` (validation errors 422 `{"detail": [{"loc", "msg", "type"}]}`)
//! as Cloud Slicer's (FastAPI) clients expect.

use std::time::Duration;

use crate::http::routes::Routes;
use actix_web::http::Method;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use chrono::Datelike;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::response::Response;
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, ToSchema};

use crate::db::models::{FileId, FileState, Quote, QuoteStatus, StoredFile, User};
use crate::error::Error;
use crate::http::upload;
use crate::services::files::UploadMeta;
use crate::services::quotes::{self, QuoteConfig};
use crate::services::{api_tokens, auth, upload_ids};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.route(Method::GET, "/v1/user", user);
    r.route(Method::GET, "/v1/user/uploads", uploads);
    r.route(Method::POST, "/v1/printability/{file_id}", printability);
    r.route(Method::GET, "/v1/file/upload-id", upload_id);
    r.route(Method::POST, "/v1/file/public/{upload_id}", public_upload);
    r.route(Method::OPTIONS, "/v1/file/public/{upload_id}", preflight);
    r.route(Method::POST, "/v1/file", file_upload);
    r.route(Method::POST, "/v1/file/quote/{file_id}", create_quote);
    r.route(Method::GET, "/v1/file/{file_id}", file_download);
    r.route(Method::DELETE, "/v1/file/{file_id}", file_delete);
    r.route(Method::GET, "/v1/quote/gcode/{quote_id}", quote_gcode);
    r.route(Method::POST, "/v1/quote/{file_id}", create_quote);
    r.route(Method::GET, "/v1/quote/{quote_id}", get_quote);
    r.route(Method::DELETE, "/v1/quote/{quote_id}", delete_quote);
}

/// `/v1` errors in Cloud Slicer's shape.
#[derive(Debug)]
pub enum V1Error {
    App(Error),
    Validation(Vec<(Vec<String>, String)>),
}

impl std::fmt::Display for V1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V1Error::App(e) => write!(f, "{e}"),
            V1Error::Validation(v) => write!(f, "{} validation errors", v.len()),
        }
    }
}

impl<E: Into<Error>> From<E> for V1Error {
    fn from(e: E) -> Self {
        V1Error::App(e.into())
    }
}

impl ResponseError for V1Error {
    fn status_code(&self) -> StatusCode {
        match self {
            V1Error::App(e) => e.status_code(),
            V1Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            V1Error::App(e) => {
                if let Error::Internal(d) = e {
                    tracing::error!(detail = %d, "internal error");
                }
                let detail = e.client_message();
                let mut res = HttpResponse::build(e.status_code());
                if e.status_code() == StatusCode::UNAUTHORIZED {
                    res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
                }
                res.json(ErrorBody {
                    detail: Detail::Message(detail),
                })
            }
            V1Error::Validation(items) => HttpResponse::UnprocessableEntity().json(ErrorBody {
                detail: Detail::Problems(
                    items
                        .iter()
                        .map(|(loc, msg)| ValidationItem {
                            loc: loc.clone(),
                            msg: msg.clone(),
                            r#type: "value_error".into(),
                        })
                        .collect(),
                ),
            }),
        }
    }
}

type V1Result<T = HttpResponse> = Result<T, V1Error>;

/// One validation problem, as FastAPI writes them.
#[derive(Serialize, ToSchema)]
pub struct ValidationItem {
    /// Where: `["body", "printer_config"]`, `["path", "file_id"]`, …
    pub loc: Vec<String>,
    pub msg: String,
    #[schema(example = "value_error")]
    pub r#type: String,
}

/// `detail` is a message, or for validation errors (422) a list of problems.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Detail {
    Message(String),
    Problems(Vec<ValidationItem>),
}

/// Every `/v1` error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: Detail,
}

/// The failures every `/v1` call may answer, each with the `ErrorBody`.
pub struct V1Failures;

impl IntoResponses for V1Failures {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        crate::http::openapi::failure_responses(
            &[
                (
                    "400",
                    "The request cannot be served as asked (e.g. the file is not a model)",
                ),
                ("401", "No, an invalid, expired or revoked API token"),
                ("403", "Not allowed"),
                ("404", "No such thing visible to the caller"),
                ("405", "Wrong method"),
                ("409", "The thing is in a state that does not allow it"),
                (
                    "410",
                    "A one-time upload id was already used or has expired",
                ),
                (
                    "413",
                    "The upload is too large, or the storage limit is reached",
                ),
                (
                    "422",
                    "Validation error (a list of problems), or a failed slice",
                ),
                ("429", "The monthly quote limit is reached"),
                ("500", "The server failed"),
                (
                    "503",
                    "The database is unreachable or busy; retry after the `Retry-After` seconds",
                ),
                ("507", "The server's storage is full; nothing was kept"),
            ],
            "ErrorBody",
        )
    }
}

fn invalid(loc: &[&str], msg: impl Into<String>) -> V1Error {
    V1Error::Validation(vec![(
        loc.iter().map(|s| s.to_string()).collect(),
        msg.into(),
    )])
}

/// The caller, from `Authorization: Bearer <API token>`.
pub struct ApiUser(pub User);

impl FromRequest for ApiUser {
    type Error = V1Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, V1Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        Box::pin(async move {
            let state = state.ok_or_else(|| Error::internal("no app state"))?;
            let token = token.ok_or_else(|| {
                Error::Unauthenticated(
                    "Not authenticated: send Authorization: Bearer <API token>".into(),
                )
            })?;
            let user = state.db(move |c| api_tokens::verify(c, &token)).await?;
            Ok(ApiUser(user))
        })
    }
}

fn ts(t: chrono::NaiveDateTime) -> String {
    t.and_utc().to_rfc3339()
}

fn file_path(f: &StoredFile) -> String {
    format!("files/{}/{}", f.id, f.filename)
}

fn parse_id(raw: &str, what: &str) -> V1Result<i64> {
    raw.parse()
        .map_err(|_| invalid(&["path", what], format!("{what} must be an integer id")))
}

#[derive(Serialize, ToSchema)]
pub struct DataUsage {
    /// Quotes made this calendar month (UTC).
    pub quotes_used: i64,
    /// 0 for no limit.
    pub quotes_limit: i64,
    /// MB (MiB, like `v1.storage_limit_mb`).
    pub storage_used: f64,
    /// MB; 0 for no limit.
    pub storage_limit: f64,
    pub files: i64,
    pub days_till_reset: i64,
    #[schema(example = "2027-01-01")]
    pub reset_date: String,
    pub last_updated: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountInfo {
    pub user_id: String,
    pub email: String,
    pub user_name: Option<String>,
    pub created_at: String,
    pub data_usage: DataUsage,
}

/// Account details and usage.
#[utoipa::path(get, path = "/v1/user", tag = "v1 Account", security(("api_token" = [])),
    responses((status = 200, body = AccountInfo), V1Failures))]
async fn user(state: web::Data<AppState>, ApiUser(u): ApiUser) -> V1Result {
    let me = u.clone();
    let usage = state.db(move |c| quotes::usage(c, &me)).await?;
    let now = crate::db::now();
    let next_month = if now.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
    }
    .unwrap_or(now.date());
    let cfg = &state.config.v1;
    Ok(HttpResponse::Ok().json(AccountInfo {
        user_id: u.id.to_string(),
        user_name: Some(u.full_name()).filter(|n| !n.is_empty()),
        email: u.email,
        created_at: ts(u.created_at),
        data_usage: DataUsage {
            quotes_used: usage.quotes_used,
            quotes_limit: cfg.quotes_per_month,
            storage_used: megabytes(usage.storage_used),
            storage_limit: cfg.storage_limit_mb as f64,
            files: usage.files,
            days_till_reset: (next_month - now.date()).num_days(),
            reset_date: next_month.to_string(),
            last_updated: ts(now),
        },
    }))
}

/// Cloud Slicer gives sizes in megabytes: here MiB (the unit of `v1.storage_limit_mb`),
/// to the byte (six decimals).
fn megabytes(bytes: i64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 1e6).round() / 1e6
}

/// An uploaded file.
#[derive(Serialize, ToSchema)]
pub struct UploadRecord {
    pub user_id: String,
    pub file_id: String,
    pub file_path: String,
    #[schema(example = "success")]
    pub status: String,
    pub timestamp: String,
    pub file_name: String,
    /// MB (MiB).
    pub file_size: f64,
}

fn upload_record(f: &StoredFile) -> UploadRecord {
    UploadRecord {
        user_id: f.user_id.to_string(),
        file_id: f.id.to_string(),
        file_path: file_path(f),
        status: "success".into(),
        timestamp: ts(f.created_at),
        file_name: f.filename.clone(),
        file_size: megabytes(f.size),
    }
}

/// The caller's uploads, newest first.
#[utoipa::path(get, path = "/v1/user/uploads", tag = "v1 Account", security(("api_token" = [])),
    responses((status = 200, body = Vec<UploadRecord>), V1Failures))]
async fn uploads(state: web::Data<AppState>, ApiUser(u): ApiUser) -> V1Result {
    let list = state.db(move |c| quotes::uploads(c, &u)).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(upload_record).collect::<Vec<_>>()))
}

/// The printer's build volume, mm.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BedDimensions {
    #[serde(default = "d210")]
    #[schema(default = 210.0)]
    x: f64,
    #[serde(default = "d210")]
    #[schema(default = 210.0)]
    y: f64,
    #[serde(default = "d250")]
    #[schema(default = 250.0)]
    z: f64,
}
fn d210() -> f64 {
    210.0
}
fn d250() -> f64 {
    250.0
}

/// A JSON body, or the defaults when there is none (or `null`); problems answer 422.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> V1Result<T> {
    let trimmed = bytes.trim_ascii();
    let text = if trimmed.is_empty() || trimmed == b"null" {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| invalid(&["body"], e.to_string()))
}

async fn own_file(state: &AppState, u: &User, id: i64) -> V1Result<StoredFile> {
    let uid = u.id;
    Ok(state
        .db(move |c| {
            StoredFile::find_owned(c, uid, FileId(id))?
                .filter(|f| f.state == FileState::Ready)
                .ok_or_else(|| Error::not_found(format!("File {id} not found")))
        })
        .await?)
}

#[derive(Serialize, ToSchema)]
pub struct Dimensions {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[derive(Serialize, ToSchema)]
pub struct Printability {
    pub user_id: String,
    pub file_path: String,
    /// The model fits the build volume (in any of its upright rotations by 90°).
    pub fits_printer: bool,
    pub model_dimensions: Dimensions,
    pub printer_dimensions: Dimensions,
}

/// Does the model fit the printer?
#[utoipa::path(post, path = "/v1/printability/{file_id}", tag = "v1 Part info", security(("api_token" = [])),
    params(("file_id" = i64, Path, description = "A model file of the caller")),
    request_body(content = Option<BedDimensions>, content_type = "application/json"),
    responses((status = 200, body = Printability), V1Failures))]
async fn printability(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> V1Result {
    let id = parse_id(&path, "file_id")?;
    let bed: BedDimensions = json_body(&body)?;
    let f = own_file(&state, &u, id).await?;
    let a: crate::mesh::MeshAnalysis = f
        .analysis
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| Error::invalid(format!("File {id} is not a model")))?;
    Ok(HttpResponse::Ok().json(Printability {
        user_id: u.id.to_string(),
        file_path: file_path(&f),
        fits_printer: crate::mesh::fits(&a, [bed.x, bed.y, bed.z]),
        model_dimensions: Dimensions {
            x: a.size[0],
            y: a.size[1],
            z: a.size[2],
        },
        printer_dimensions: Dimensions {
            x: bed.x,
            y: bed.y,
            z: bed.z,
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FileUploadLink {
    pub user_id: String,
    /// For `POST /v1/file/public/{upload_id}`: single use, valid for an hour.
    pub upload_id: String,
    /// The id the uploaded file will have, so the shop's server can quote the browser's
    /// upload with it (`POST /v1/quote/{file_id}`) once it has arrived.
    #[schema(example = "42")]
    pub file_id: String,
    pub timestamp: String,
}

/// One-time id for a browser upload that does not go through the shop's backend, with the id
/// the uploaded file will have.
#[utoipa::path(get, path = "/v1/file/upload-id", tag = "v1 Files", security(("api_token" = [])),
    responses((status = 200, body = FileUploadLink), V1Failures))]
async fn upload_id(state: web::Data<AppState>, ApiUser(u): ApiUser) -> V1Result {
    let id = auth::random_token();
    let now = crate::db::now();
    let (uid, idc) = (u.id, id.clone());
    let file_id = state
        .db(move |c| upload_ids::reserve(c, &idc, uid, now))
        .await?;
    Ok(HttpResponse::Ok().json(FileUploadLink {
        user_id: u.id.to_string(),
        upload_id: id,
        file_id: file_id.to_string(),
        timestamp: ts(now),
    }))
}

fn cors(res: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "3600"))
}

async fn preflight() -> HttpResponse {
    cors(&mut HttpResponse::NoContent()).finish()
}

fn model_only(f: &StoredFile) -> V1Result<()> {
    if matches!(f.kind.as_str(), "stl" | "3mf" | "obj") {
        Ok(())
    } else {
        Err(invalid(
            &["body", "file"],
            "only .stl, .3mf and .obj models are accepted",
        ))
    }
}

async fn receive_model(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    user: &User,
    reserved_id: Option<FileId>,
) -> V1Result<StoredFile> {
    // A body without its `file` part is a validation error in Cloud Slicer's contract (422,
    // located at body.file), like every other one.
    let (_, staged) = upload::receive(state, req, payload.into_inner())
        .await
        .map_err(|e| match e {
            Error::Invalid(m) => invalid(&["body", "file"], m),
            other => other.into(),
        })?;
    let name = staged.filename.to_lowercase();
    if !(name.ends_with(".stl") || name.ends_with(".3mf") || name.ends_with(".obj")) {
        return Err(invalid(
            &["body", "file"],
            "only .stl, .3mf and .obj models are accepted",
        ));
    }
    {
        let (me, size) = (user.clone(), staged.size);
        // 0 (or a negative setting) is no limit.
        let limit_mb = u64::try_from(state.config.v1.storage_limit_mb).unwrap_or(0);
        state
            .db(move |c| quotes::check_storage(c, &me, size, limit_mb))
            .await?;
    }
    let meta = UploadMeta {
        reserved_id,
        ..UploadMeta::default()
    };
    let (file, _) = upload::store(state, user, &meta, staged, false).await?;
    model_only(&file)?;
    Ok(file)
}

/// A model upload: multipart with the file in the part `file`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the body `upload::receive` streams
pub struct ModelUpload {
    /// An `.stl`, `.3mf` or `.obj` model.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Browser upload with a one-time id: no token, single use, one hour, CORS.
#[utoipa::path(post, path = "/v1/file/public/{upload_id}", tag = "v1 Files",
    params(("upload_id" = String, Path, description = "From `GET /v1/file/upload-id`")),
    request_body(content = ModelUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = UploadRecord), V1Failures))]
async fn public_upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, V1Error> {
    let id = path.into_inner();
    // Ids are ours (random_token); anything else names no upload, and must not reach the
    // database (Postgres text refuses NUL).
    if !auth::is_token_shaped(&id) {
        return Err(Error::not_found("Unknown upload id").into());
    }
    let idc = id.clone();
    let user = state.db(move |c| upload_ids::claim(c, &idc)).await;
    let result = match user {
        Ok((u, reserved)) => receive_model(&state, &req, payload, &u, reserved).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(f) => {
            // Links the used id to its file (the reservation already named the same id).
            let fid = f.id;
            state
                .db(move |c| upload_ids::link_file(c, &id, fid))
                .await?;
            Ok(cors(&mut HttpResponse::Ok()).json(upload_record(&f)))
        }
        Err(e) => {
            let mut res = e.error_response();
            res.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                header::HeaderValue::from_static("*"),
            );
            Ok(res)
        }
    }
}

/// Server-side upload (keep the token out of browsers; they use the public upload).
#[utoipa::path(post, path = "/v1/file", tag = "v1 Files", security(("api_token" = [])),
    request_body(content = ModelUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = UploadRecord), V1Failures))]
async fn file_upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiUser(u): ApiUser,
    payload: web::Payload,
) -> V1Result {
    let f = receive_model(&state, &req, payload, &u, None).await?;
    Ok(HttpResponse::Ok().json(upload_record(&f)))
}

/// The original file; `Range` requests answer 206.
#[utoipa::path(get, path = "/v1/file/{file_id}", tag = "v1 Files", security(("api_token" = [])),
    params(("file_id" = i64, Path)),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
        V1Failures))]
async fn file_download(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let id = parse_id(&path, "file_id")?;
    let f = own_file(&state, &u, id).await?;
    Ok(crate::http::files::serve_file(&state, &req, &f).await?)
}

async fn remove_keys(state: &AppState, keys: &[String]) {
    for k in keys {
        let _ = state.storage.delete(k).await;
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeletedFile {
    pub user_id: String,
    pub status: String,
    pub timestamp: String,
    pub file_id: String,
    pub removed_file_path: String,
}

/// Deletes the file, its quotes and their G-code.
#[utoipa::path(delete, path = "/v1/file/{file_id}", tag = "v1 Files", security(("api_token" = [])),
    params(("file_id" = i64, Path)),
    responses((status = 200, body = DeletedFile), V1Failures))]
async fn file_delete(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let id = parse_id(&path, "file_id")?;
    let me = u.clone();
    let (f, removed) = state
        .db(move |c| quotes::delete_file(c, &me, FileId(id)))
        .await?;
    remove_keys(&state, &removed).await;
    Ok(HttpResponse::Ok().json(DeletedFile {
        user_id: u.id.to_string(),
        status: "success".into(),
        timestamp: ts(crate::db::now()),
        file_id: f.id.to_string(),
        removed_file_path: file_path(&f),
    }))
}

/// Cloud Slicer's `printer_config`: every field is optional. PrusaSlicer keys
/// (`perimeter_speed`, `machine_max_acceleration_x`, …) are accepted beside these names;
/// unknown keys answer 422 naming them.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the object `slicer::Profile::from_json` reads
pub struct PrinterConfig {
    #[schema(default = 210)]
    bed_size_x: Option<f64>,
    #[schema(default = 210)]
    bed_size_y: Option<f64>,
    /// Models taller than this are refused before slicing.
    #[schema(default = 250)]
    bed_size_z: Option<f64>,
    /// mm/s
    #[schema(default = 100)]
    print_speed: Option<f64>,
    #[schema(default = 50)]
    first_layer_speed: Option<f64>,
    #[schema(default = 0.4)]
    nozzle_diameter: Option<f64>,
    #[schema(default = 0.2)]
    layer_height: Option<f64>,
    #[schema(default = 3)]
    perimeters: Option<i64>,
    #[schema(default = 3)]
    top_solid_layers: Option<i64>,
    #[schema(default = 3)]
    bottom_solid_layers: Option<i64>,
    /// Percent, 0–100.
    #[schema(default = 20)]
    fill_density: Option<f64>,
    #[schema(default = false)]
    support_material: Option<bool>,
    #[schema(default = "white")]
    color: Option<String>,
    #[schema(default = "PLA")]
    filament_type: Option<String>,
    #[schema(default = 210)]
    temperature: Option<f64>,
    #[schema(default = 60)]
    bed_temperature: Option<f64>,
    /// printfarm extension, mm.
    #[schema(default = 1.75)]
    filament_diameter: Option<f64>,
    /// printfarm extension, g/cm³.
    #[schema(default = 1.24)]
    filament_density: Option<f64>,
}

/// The quote request.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(default)]
    #[schema(value_type = Option<PrinterConfig>)]
    printer_config: Option<Value>,
    #[serde(default)]
    quote_config: Option<QuoteConfig>,
}

fn human(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds % 86400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// A quote: Cloud Slicer's `QuoteResponse` fields plus printfarm's `currency`, `time_cost`,
/// `filament_used_mm` and `error`. `GET /v1/quote/{quote_id}` adds the configs.
#[derive(Serialize, ToSchema)]
pub struct QuoteBody {
    pub quote_id: String,
    pub user_id: String,
    /// `pending`, `success` or `error`.
    #[schema(example = "success")]
    pub status: String,
    pub timestamp: String,
    /// Seconds the quote took.
    pub quote_duration: f64,
    pub file_path: String,
    pub gcode_path: Option<String>,
    pub gcode_name: Option<String>,
    /// MB.
    pub gcode_file_size: f64,
    #[schema(example = "1h 10m 14s")]
    pub estimated_time: String,
    pub estimated_time_seconds: i64,
    /// Grams.
    pub filament_weight: f64,
    pub filament_cost: f64,
    pub total_price: f64,
    pub currency: String,
    pub time_cost: f64,
    pub filament_used_mm: f64,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub printer_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub quote_config: Option<Value>,
}

/// A failed slice: the error as a validation problem, with the quote's id.
#[derive(Serialize, ToSchema)]
pub struct FailedQuote {
    pub detail: Vec<ValidationItem>,
    pub quote_id: String,
    #[schema(example = "error")]
    pub status: String,
}

async fn quote_body(state: &AppState, q: &Quote, details: bool) -> V1Result<QuoteBody> {
    let gcode = match q.gcode_file_id {
        Some(id) => state.db(move |c| Ok(StoredFile::find(c, id)?)).await?,
        None => None,
    };
    let fid = q.file_id;
    let model = state.db(move |c| Ok(StoredFile::find(c, fid)?)).await?;
    let secs = q.estimated_time_seconds.unwrap_or(0);
    let given = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(json!({}));
    Ok(QuoteBody {
        quote_id: q.uuid.clone(),
        user_id: q.user_id.to_string(),
        status: q.status.as_str().into(),
        timestamp: ts(q.created_at),
        quote_duration: q.finished_at.map_or(0.0, |f| {
            (f - q.created_at).num_milliseconds() as f64 / 1000.0
        }),
        file_path: model.as_ref().map(file_path).unwrap_or_default(),
        gcode_path: gcode
            .as_ref()
            .map(|g| format!("quotes/{}/{}", q.uuid, g.filename)),
        gcode_name: gcode.as_ref().map(|g| g.filename.clone()),
        gcode_file_size: gcode.as_ref().map_or(0.0, |g| megabytes(g.size)),
        estimated_time: human(secs),
        estimated_time_seconds: secs,
        filament_weight: q.filament_weight.unwrap_or(0.0),
        filament_cost: q.filament_cost.unwrap_or(0.0),
        total_price: q.total_price.unwrap_or(0.0),
        currency: q.currency.clone(),
        time_cost: q.time_cost.unwrap_or(0.0),
        filament_used_mm: q.filament_used_mm.unwrap_or(0.0),
        error: q.error.clone(),
        printer_config: details.then(|| quotes::printer_config_used(&given(&q.printer_config))),
        quote_config: details.then(|| quotes::quote_config_used(&given(&q.quote_config))),
    })
}

async fn quote_answer(state: &AppState, q: &Quote, details: bool) -> V1Result {
    let body = quote_body(state, q, details).await?;
    Ok(match q.status {
        QuoteStatus::Pending => HttpResponse::Accepted().json(body),
        QuoteStatus::Error => HttpResponse::UnprocessableEntity().json(FailedQuote {
            detail: vec![ValidationItem {
                loc: vec!["body".into(), "file".into()],
                msg: q.error.clone().unwrap_or_default(),
                r#type: "slicing_error".into(),
            }],
            quote_id: q.uuid.clone(),
            status: QuoteStatus::Error.as_str().into(),
        }),
        QuoteStatus::Success => HttpResponse::Ok().json(body),
    })
}

/// Slices and prices a model: answers 200 when the slice ends within `v1.quote_wait_secs`,
/// else 202 with the pending quote (poll `GET /v1/quote/{quote_id}`).
#[utoipa::path(post, path = "/v1/quote/{file_id}", tag = "v1 Quotes", security(("api_token" = [])),
    params(("file_id" = i64, Path, description = "A model file of the caller")),
    request_body(content = Option<ProfileConfig>, content_type = "application/json"),
    responses(
        (status = 200, description = "The quote", body = QuoteBody),
        (status = 202, description = "Still slicing: poll `GET /v1/quote/{quote_id}`", body = QuoteBody),
        (status = 422, description = "Invalid configuration, or the slice failed", body = FailedQuoteOrError),
        V1Failures))]
async fn create_quote(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> V1Result {
    let id = parse_id(&path, "file_id")?;
    let cfg: ProfileConfig = json_body(&body)?;
    let printer_config = cfg.printer_config.unwrap_or(json!({}));
    if let Err(msg) = crate::slicer::Profile::from_json(&printer_config) {
        return Err(invalid(&["body", "printer_config"], msg));
    }
    let quote_config = cfg.quote_config.unwrap_or_default();
    let limit = state.config.v1.quotes_per_month;
    let me = u.clone();
    let q = state
        .db(move |c| quotes::create(c, &me, FileId(id), &printer_config, &quote_config, limit))
        .await?;
    state.slice_wake.notify_waiters();
    let deadline = std::time::Instant::now() + Duration::from_secs(state.config.v1.quote_wait_secs);
    let mut q = q;
    loop {
        let (me, uuid) = (u.clone(), q.uuid.clone());
        q = state.db(move |c| quotes::get(c, &me, &uuid)).await?;
        if q.status != QuoteStatus::Pending || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quote_answer(&state, &q, false).await
}

/// Deprecated alias of `POST /v1/quote/{file_id}`.
#[utoipa::path(post, path = "/v1/file/quote/{file_id}", tag = "v1 Quotes", security(("api_token" = [])),
    params(("file_id" = i64, Path)),
    request_body(content = Option<ProfileConfig>, content_type = "application/json"),
    responses(
        (status = 200, description = "The quote", body = QuoteBody),
        (status = 202, description = "Still slicing", body = QuoteBody),
        (status = 422, description = "Invalid configuration, or the slice failed", body = FailedQuoteOrError),
        V1Failures))]
#[allow(dead_code)] // documents the alias route of `create_quote`
#[deprecated = "use POST /v1/quote/{file_id}"]
fn create_quote_deprecated() {}

/// 422 answers of quote calls: a failed slice, or a validation error (documentation only:
/// the handlers build the two bodies directly).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FailedQuoteOrError {
    Failed(FailedQuote),
    Invalid(ErrorBody),
}

/// The quote with the configs it was made with.
#[utoipa::path(get, path = "/v1/quote/{quote_id}", tag = "v1 Quotes", security(("api_token" = [])),
    params(("quote_id" = String, Path)),
    responses(
        (status = 200, description = "The quote", body = QuoteBody),
        (status = 202, description = "Still slicing", body = QuoteBody),
        (status = 422, description = "The slice failed", body = FailedQuoteOrError),
        V1Failures))]
async fn get_quote(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let uuid = path.into_inner();
    let q = state.db(move |c| quotes::get(c, &u, &uuid)).await?;
    quote_answer(&state, &q, true).await
}

#[derive(Serialize, ToSchema)]
pub struct DeletedQuote {
    pub user_id: String,
    pub quote_id: String,
    pub status: String,
    pub timestamp: String,
    pub removed_gcode_path: Option<String>,
}

/// Deletes the quote and its G-code.
#[utoipa::path(delete, path = "/v1/quote/{quote_id}", tag = "v1 Quotes", security(("api_token" = [])),
    params(("quote_id" = String, Path)),
    responses((status = 200, body = DeletedQuote), V1Failures))]
async fn delete_quote(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let uuid = path.into_inner();
    let me = u.clone();
    let (q, gcode, removed) = state
        .db(move |c| quotes::delete_quote(c, &me, &uuid))
        .await?;
    remove_keys(&state, &removed).await;
    // The path the quote answered as its `gcode_path` (null when it never had G-code).
    let gcode_path = gcode.map(|g| format!("quotes/{}/{}", q.uuid, g.filename));
    Ok(HttpResponse::Ok().json(DeletedQuote {
        user_id: u.id.to_string(),
        quote_id: q.uuid,
        status: "success".into(),
        timestamp: ts(crate::db::now()),
        removed_gcode_path: gcode_path,
    }))
}

/// The quote's G-code; `Range` requests answer 206.
#[utoipa::path(get, path = "/v1/quote/gcode/{quote_id}", tag = "v1 Quotes", security(("api_token" = [])),
    params(("quote_id" = String, Path)),
    responses(
        (status = 200, description = "The G-code", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
        V1Failures))]
async fn quote_gcode(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let uuid = path.into_inner();
    let q = state.db(move |c| quotes::get(c, &u, &uuid)).await?;
    let Some(gid) = q.gcode_file_id else {
        return Err(Error::not_found("This quote has no G-code (yet)").into());
    };
    let f = state
        .db(move |c| StoredFile::find(c, gid)?.ok_or_else(|| Error::not_found("G-code not found")))
        .await?;
    Ok(crate::http::files::serve_file(&state, &req, &f).await?)
}
