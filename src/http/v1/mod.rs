//! The `/v1` REST API, field for field compatible with Cloud Slicer: account, uploads,
//! printability, files and instant quotes, with `Authorization: Bearer <API token>`.
//! Errors answer `{"detail": "…"}` (validation errors 422 `{"detail": [{"loc", "msg", "type"}]}`)
//! as Cloud Slicer's (FastAPI) clients expect.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use chrono::Datelike;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::models::{Quote, StoredFile, User};
use crate::db::schema::{files, upload_ids};
use crate::error::Error;
use crate::http::upload;
use crate::services::files::UploadMeta;
use crate::services::quotes::{self, QuoteConfig};
use crate::services::{api_tokens, auth};
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/user", web::get().to(user))
            .route("/user/uploads", web::get().to(uploads))
            .route("/printability/{file_id}", web::post().to(printability))
            .route("/file/upload-id", web::get().to(upload_id))
            .route("/file/public/{upload_id}", web::post().to(public_upload))
            .route(
                "/file/public/{upload_id}",
                web::method(actix_web::http::Method::OPTIONS).to(preflight),
            )
            .route("/file", web::post().to(file_upload))
            .route("/file/quote/{file_id}", web::post().to(create_quote))
            .route("/file/{file_id}", web::get().to(file_download))
            .route("/file/{file_id}", web::delete().to(file_delete))
            .route("/quote/gcode/{quote_id}", web::get().to(quote_gcode))
            .route("/quote/{file_id}", web::post().to(create_quote))
            .route("/quote/{quote_id}", web::get().to(get_quote))
            .route("/quote/{quote_id}", web::delete().to(delete_quote)),
    );
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
                let detail = if matches!(e, Error::Internal(_)) { "Internal server error".to_string() } else { e.to_string() };
                let mut res = HttpResponse::build(e.status_code());
                if e.status_code() == StatusCode::UNAUTHORIZED {
                    res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
                }
                res.json(json!({ "detail": detail }))
            }
            V1Error::Validation(items) => HttpResponse::UnprocessableEntity().json(json!({
                "detail": items.iter().map(|(loc, msg)| json!({"loc": loc, "msg": msg, "type": "value_error"})).collect::<Vec<_>>()
            })),
        }
    }
}

type V1Result<T = HttpResponse> = Result<T, V1Error>;

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
                Error::Unauthorized(
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
    Ok(HttpResponse::Ok().json(json!({
        "user_id": u.id.to_string(),
        "email": u.email,
        "user_name": Some(u.full_name()).filter(|n| !n.is_empty()),
        "created_at": ts(u.created_at),
        "data_usage": {
            "quotes_used": usage.quotes_used,
            "quotes_limit": cfg.quotes_per_month,
            "storage_used": usage.storage_used,
            "storage_limit": cfg.storage_limit_mb * 1024 * 1024,
            "files": usage.files,
            "days_till_reset": (next_month - now.date()).num_days(),
            "reset_date": next_month.to_string(),
            "last_updated": ts(now),
        },
    })))
}

fn upload_record(f: &StoredFile) -> Value {
    json!({
        "user_id": f.user_id.to_string(),
        "file_id": f.id.to_string(),
        "file_path": file_path(f),
        "status": "success",
        "timestamp": ts(f.created_at),
        "file_name": f.filename,
        "file_size": f.size,
    })
}

async fn uploads(state: web::Data<AppState>, ApiUser(u): ApiUser) -> V1Result {
    use diesel::prelude::*;
    let list: Vec<StoredFile> = state
        .db(move |c| {
            Ok(files::table
                .filter(files::user_id.eq(u.id))
                .filter(files::state.eq("ready"))
                .order(files::id.desc())
                .load(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.iter().map(upload_record).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BedDimensions {
    #[serde(default = "d210")]
    x: f64,
    #[serde(default = "d210")]
    y: f64,
    #[serde(default = "d250")]
    z: f64,
}
fn d210() -> f64 {
    210.0
}
fn d250() -> f64 {
    250.0
}

/// A JSON body, or the defaults when there is none; problems answer 422.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> V1Result<T> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
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
            StoredFile::find_owned(c, uid, id)?
                .filter(|f| f.state == "ready")
                .ok_or_else(|| Error::not_found(format!("File {id} not found")))
        })
        .await?)
}

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
        .ok_or_else(|| Error::bad_request(format!("File {id} is not a model")))?;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": u.id.to_string(),
        "file_path": file_path(&f),
        "fits_printer": crate::mesh::fits(&a, [bed.x, bed.y, bed.z]),
        "model_dimensions": {"x": a.size[0], "y": a.size[1], "z": a.size[2]},
        "printer_dimensions": {"x": bed.x, "y": bed.y, "z": bed.z},
    })))
}

/// One-time id for a browser upload that does not go through the shop's backend.
async fn upload_id(state: web::Data<AppState>, ApiUser(u): ApiUser) -> V1Result {
    use diesel::prelude::*;
    let id = auth::random_token();
    let now = crate::db::now();
    let uid = u.id;
    let idc = id.clone();
    state
        .db(move |c| {
            diesel::insert_into(upload_ids::table)
                .values((
                    upload_ids::upload_id.eq(&idc),
                    upload_ids::user_id.eq(uid),
                    upload_ids::created_at.eq(now),
                    upload_ids::expires_at.eq(now + chrono::Duration::hours(1)),
                ))
                .execute(c)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": u.id.to_string(),
        "upload_id": id,
        "file_id": null,
        "timestamp": ts(now),
    })))
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
) -> V1Result<StoredFile> {
    let (_, staged) = upload::receive(state, req, payload.into_inner()).await?;
    let name = staged.filename.to_lowercase();
    if !(name.ends_with(".stl") || name.ends_with(".3mf") || name.ends_with(".obj")) {
        return Err(invalid(
            &["body", "file"],
            "only .stl, .3mf and .obj models are accepted",
        ));
    }
    if state.config.v1.storage_limit_mb > 0 {
        let me = user.clone();
        let used = state.db(move |c| quotes::usage(c, &me)).await?.storage_used;
        if used as u64 + staged.size > state.config.v1.storage_limit_mb as u64 * 1024 * 1024 {
            return Err(Error::PayloadTooLarge(
                "Your storage limit is reached; delete files first".into(),
            )
            .into());
        }
    }
    let (file, _) = upload::store(state, user, &UploadMeta::default(), staged, false).await?;
    model_only(&file)?;
    Ok(file)
}

/// Browser upload with a one-time id: no token, single use, one hour, CORS.
async fn public_upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, V1Error> {
    use diesel::prelude::*;
    let id = path.into_inner();
    let idc = id.clone();
    // Claim the id first, so two uploads racing on one id cannot both succeed.
    let user = state
        .db(move |c| {
            crate::db::write_transaction(c, |c| {
                let row: Option<(i64, chrono::NaiveDateTime, Option<chrono::NaiveDateTime>)> =
                    upload_ids::table
                        .filter(upload_ids::upload_id.eq(&idc))
                        .select((
                            upload_ids::user_id,
                            upload_ids::expires_at,
                            upload_ids::used_at,
                        ))
                        .first(c)
                        .optional()?;
                let (uid, expires, used) =
                    row.ok_or_else(|| Error::not_found("Unknown upload id"))?;
                if used.is_some() {
                    return Err(Error::Gone("This upload id was already used".into()));
                }
                if expires <= crate::db::now() {
                    return Err(Error::Gone("This upload id has expired".into()));
                }
                diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(&idc)))
                    .set(upload_ids::used_at.eq(Some(crate::db::now())))
                    .execute(c)?;
                User::find(c, uid)?.ok_or_else(|| Error::not_found("Unknown upload id"))
            })
        })
        .await;
    let result = match user {
        Ok(u) => receive_model(&state, &req, payload, &u).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(f) => {
            let fid = f.id;
            state
                .db(move |c| {
                    diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(&id)))
                        .set(upload_ids::file_id.eq(Some(fid)))
                        .execute(c)?;
                    Ok(())
                })
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

async fn file_upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiUser(u): ApiUser,
    payload: web::Payload,
) -> V1Result {
    let f = receive_model(&state, &req, payload, &u).await?;
    Ok(HttpResponse::Ok().json(upload_record(&f)))
}

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

async fn file_delete(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let id = parse_id(&path, "file_id")?;
    let me = u.clone();
    let (f, removed) = state.db(move |c| quotes::delete_file(c, &me, id)).await?;
    remove_keys(&state, &removed).await;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": u.id.to_string(),
        "status": "success",
        "timestamp": ts(crate::db::now()),
        "file_id": f.id.to_string(),
        "removed_file_path": file_path(&f),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProfileConfig {
    #[serde(default)]
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

async fn quote_body(state: &AppState, q: &Quote, details: bool) -> V1Result<Value> {
    let gcode = match q.gcode_file_id {
        Some(id) => state.db(move |c| Ok(StoredFile::find(c, id)?)).await?,
        None => None,
    };
    let fid = q.file_id;
    let model = state.db(move |c| Ok(StoredFile::find(c, fid)?)).await?;
    let secs = q.estimated_time_seconds.unwrap_or(0);
    let mut v = json!({
        "quote_id": q.uuid,
        "user_id": q.user_id.to_string(),
        "status": q.status,
        "timestamp": ts(q.created_at),
        "quote_duration": q.finished_at.map_or(0.0, |f| (f - q.created_at).num_milliseconds() as f64 / 1000.0),
        "file_path": model.as_ref().map(file_path).unwrap_or_default(),
        "gcode_path": gcode.as_ref().map(|g| format!("quotes/{}/{}", q.uuid, g.filename)),
        "gcode_name": gcode.as_ref().map(|g| g.filename.clone()),
        "gcode_file_size": gcode.as_ref().map_or(0.0, |g| g.size as f64 / 1_000_000.0),
        "estimated_time": human(secs),
        "estimated_time_seconds": secs,
        "filament_weight": q.filament_weight.unwrap_or(0.0),
        "filament_cost": q.filament_cost.unwrap_or(0.0),
        "total_price": q.total_price.unwrap_or(0.0),
        "currency": q.currency,
        "time_cost": q.time_cost.unwrap_or(0.0),
        "filament_used_mm": q.filament_used_mm.unwrap_or(0.0),
        "error": q.error,
    });
    if details {
        v["printer_config"] = serde_json::from_str(&q.printer_config).unwrap_or(json!({}));
        v["quote_config"] = serde_json::from_str(&q.quote_config).unwrap_or(json!({}));
    }
    Ok(v)
}

async fn quote_answer(state: &AppState, q: &Quote, details: bool) -> V1Result {
    let body = quote_body(state, q, details).await?;
    Ok(match q.status.as_str() {
        "pending" => HttpResponse::Accepted().json(body),
        "error" => HttpResponse::UnprocessableEntity().json(json!({
            "detail": [{"loc": ["body", "file"], "msg": q.error.clone().unwrap_or_default(), "type": "slicing_error"}],
            "quote_id": q.uuid,
            "status": "error",
        })),
        _ => HttpResponse::Ok().json(body),
    })
}

/// Slices and prices a model: answers 200 when the slice ends within `v1.quote_wait_secs`,
/// else 202 with the pending quote (poll `GET /v1/quote/{quote_id}`).
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
        .db(move |c| quotes::create(c, &me, id, &printer_config, &quote_config, limit))
        .await?;
    state.slice_wake.notify_waiters();
    let deadline = std::time::Instant::now() + Duration::from_secs(state.config.v1.quote_wait_secs);
    let mut q = q;
    loop {
        let (me, uuid) = (u.clone(), q.uuid.clone());
        q = state.db(move |c| quotes::get(c, &me, &uuid)).await?;
        if q.status != "pending" || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quote_answer(&state, &q, false).await
}

async fn get_quote(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let uuid = path.into_inner();
    let q = state.db(move |c| quotes::get(c, &u, &uuid)).await?;
    quote_answer(&state, &q, true).await
}

async fn delete_quote(
    state: web::Data<AppState>,
    ApiUser(u): ApiUser,
    path: web::Path<String>,
) -> V1Result {
    let uuid = path.into_inner();
    let me = u.clone();
    let (q, removed) = state
        .db(move |c| quotes::delete_quote(c, &me, &uuid))
        .await?;
    remove_keys(&state, &removed).await;
    Ok(HttpResponse::Ok().json(json!({
        "user_id": u.id.to_string(),
        "quote_id": q.uuid,
        "status": "success",
        "timestamp": ts(crate::db::now()),
        "removed_gcode_path": removed.iter().find(|k| k.starts_with("files/")),
    })))
}

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
