//! The 3DPrinterOS Global API (`/apiglobal/*`): the one route table, the lenient parameter
//! extractor, and the handlers, one file per group of calls.

pub(crate) mod catalogue;
pub mod decode;
pub mod envelope;
pub(crate) mod farm;
pub(crate) mod files;
pub mod form;
pub(crate) mod forms;
pub(crate) mod google;
pub(crate) mod jobs;
pub(crate) mod printers;
pub(crate) mod reports;
pub(crate) mod sessions;
pub(crate) mod slicing;
pub(crate) mod tokens;
pub(crate) mod users;

use std::future::Future;
use std::pin::Pin;

use crate::http::routes::Routes;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::db::models::signed::{self, Gate};
use crate::db::models::User;
use crate::db::DbConn;
use crate::error::Error;
use crate::services::sessions as session_check;
use crate::services::sessions::Authenticated;
use crate::AppState;
use form::Params;

/// Where a Global API call comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// One of the 35 calls of the Global API v2.1 document, with its number there.
    Seed(u8),
    /// Called by real clients but not in the document (slicer sign-in flows).
    Extra,
    /// printfarm's own call beside the 3DPrinterOS ones.
    Extension,
}

/// One Global API call: its name (`/apiglobal/<name>`) and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub name: &'static str,
    pub kind: CallKind,
}

/// The one table of Global API calls: each line is a call's kind, name and handler, and
/// from it come the routes (`routes`), the call catalogue (`CALLS`) and the OpenAPI paths
/// (`CallsDoc`, from each handler's `#[utoipa::path]`). Seed calls are in the document's order.
/// `also "x"` routes a second name to the same call (what clients send where the document
/// spells it otherwise); it is neither catalogued nor documented.
macro_rules! global_api {
    ($( $kind:ident $(($number:literal))? $name:literal $(also $alias:literal)?
        => $module:ident :: $handler:ident, )*) => {
        /// Every Global API call, in table order.
        pub const CALLS: &[Call] = &[
            $( Call { name: $name, kind: CallKind::$kind $(($number))? }, )*
        ];

        pub fn routes(r: &mut Routes) {
            $(
                call(r, $name, $module::$handler);
                $( call(r, $alias, $module::$handler); )?
            )*
        }

        /// The OpenAPI paths of the calls.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($( $module::$handler, )*))]
        pub(crate) struct CallsDoc;
    };
}

global_api! {
    Seed(1) "login" => sessions::login,
    Seed(2) "loginout" also "logout" => sessions::logout,
    Seed(3) "check_session" => sessions::check_session,
    Seed(4) "upload" => files::upload,
    Seed(5) "get_projects" => files::get_projects,
    Seed(6) "get_workgroups_simple_list" => users::get_workgroups_simple_list,
    Seed(7) "get_organization_printers_list" => printers::get_organization_printers_list,
    Seed(8) "get_printer_jobs" => jobs::get_printer_jobs,
    Seed(9) "get_job_info" => jobs::get_job_info,
    Seed(10) "get_slicer_settings_for_gcode" => files::get_slicer_settings_for_gcode,
    Seed(11) "file_update" => files::file_update,
    Seed(12) "get_printer_types" => catalogue::get_printer_types,
    Seed(13) "get_printer_shares" => printers::get_printer_shares,
    Seed(14) "share_printer" => printers::share_printer,
    Seed(15) "unshare_printer" => printers::unshare_printer,
    Seed(16) "add_printer_by_registration_code" => printers::add_printer_by_registration_code,
    Seed(17) "get_printers_list" => printers::get_printers_list,
    Seed(18) "get_workgroup_users" => users::get_workgroup_users,
    Seed(19) "add_user_to_workgroup" => users::add_user_to_workgroup,
    Seed(20) "delete_user_from_workgroup" => users::delete_user_from_workgroup,
    Seed(21) "get_printer_types_detailed" => catalogue::get_printer_types_detailed,
    Seed(22) "get_custom_report" => reports::get_custom_report,
    Seed(23) "get_camera_list_token" => printers::get_camera_list_token,
    Seed(24) "google_login" => google::google_login,
    Seed(25) "gdpr_registration" => google::gdpr_registration,
    Seed(26) "create_organization_user" => users::create_organization_user,
    Seed(27) "get_finished_jobs_report" => reports::get_finished_jobs_report,
    Seed(28) "slice" => slicing::slice,
    Seed(29) "print_file" => jobs::print_file,
    Seed(30) "job_start" => jobs::job_start,
    Seed(31) "job_pause" => jobs::job_pause,
    Seed(32) "job_unpause" => jobs::job_unpause,
    Seed(33) "job_cancel" => jobs::job_cancel,
    Seed(34) "update_user_settings" => users::update_user_settings,
    Seed(35) "printer_clear_build_tray" => printers::printer_clear_build_tray,
    Extra "generate_login_token" => google::generate_login_token,
    Extra "login_with_token" => google::login_with_token,
    Extra "generate_auth_token" => google::generate_auth_token,
    Extension "create_api_token" => tokens::create_api_token,
    Extension "list_api_tokens" => tokens::list_api_tokens,
    Extension "revoke_api_token" => tokens::revoke_api_token,
    Extension "get_slice_status" => slicing::get_slice_status,
    Extension "create_workgroup" => users::create_workgroup,
    Extension "set_printer_workgroups" => printers::set_printer_workgroups,
    Extension "update_organization_settings" => jobs::update_organization_settings,
    Extension "job_feedback" => jobs::job_feedback,
    Extension "get_farm_queue" => farm::get_farm_queue,
    Extension "farm_job_cancel" => farm::farm_job_cancel,
    Extension "farm_job_retry" => farm::farm_job_retry,
    Extension "farm_job_priority" => farm::farm_job_priority,
    Extension "printer_maintenance" => farm::printer_maintenance,
    Extension "get_power_circuits" => farm::get_power_circuits,
    Extension "set_power_circuit" => farm::set_power_circuit,
}

/// Registers one call: POST on the path with and without a trailing slash, 405 otherwise.
fn call<F, Args>(r: &mut Routes, name: &str, handler: F)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let path = format!("/apiglobal/{name}");
    r.at_paths(vec![path.clone(), format!("{path}/")])
        .post(handler)
        .otherwise("405", method_not_allowed);
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    envelope::fail(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; Global API calls use POST",
            req.method(),
            req.path()
        ),
    )
}

/// The parameters of one call, read leniently from the body (any content type) and the
/// query string. Bodies over `server.max_form_bytes` answer 413.
pub struct Form(pub Params);

impl FromRequest for Form {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.server.max_form_bytes)
            .unwrap_or(1 << 20);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let query = req.query_string().to_string();
        let is_multipart = content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/"));
        let headers = req.headers().clone();
        let payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut params = if is_multipart {
                let mut params = Params::default();
                params.extend_pairs(multipart_text_fields(&headers, payload, limit).await?);
                params
            } else {
                Params::parse(content_type.as_deref(), &read_body(payload, limit).await?)?
            };
            if !query.is_empty() {
                let pairs = url::form_urlencoded::parse(query.as_bytes()).into_owned();
                params.extend_pairs(pairs);
            }
            refuse_nul(&params)?;
            Ok(Form(params))
        })
    }
}

/// Refuses parameters holding NUL characters (Postgres text cannot store them).
pub(crate) fn refuse_nul(params: &Params) -> Result<(), Error> {
    match params.with_nul() {
        Some(name) => Err(Error::invalid(format!(
            "parameter '{}' contains a NUL character",
            name.replace('\0', "\\0")
        ))),
        None => Ok(()),
    }
}

fn too_large(limit: usize) -> Error {
    Error::TooLarge(format!("Request body is larger than {limit} bytes"))
}

pub(crate) async fn read_body(mut payload: Payload, limit: usize) -> Result<web::BytesMut, Error> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Error::invalid(format!("Cannot read request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Some clients send plain calls as multipart/form-data (HTTP libraries do when any file
/// part is attached). Text parts become parameters; file parts are refused here because only
/// `upload` takes files.
async fn multipart_text_fields(
    headers: &header::HeaderMap,
    payload: Payload,
    limit: usize,
) -> Result<Vec<(String, String)>, Error> {
    let mut parts = actix_multipart::Multipart::new(headers, payload);
    let mut pairs = Vec::new();
    let mut total = 0usize;
    while let Some(field) = parts.next().await {
        let mut field =
            field.map_err(|e| Error::invalid(format!("Malformed multipart body: {e}")))?;
        let disposition = field.content_disposition().cloned();
        let name = disposition
            .as_ref()
            .and_then(|d| d.get_name())
            .unwrap_or_default()
            .to_string();
        if disposition
            .as_ref()
            .and_then(|d| d.get_filename())
            .is_some()
        {
            return Err(Error::invalid(format!(
                "part '{name}' is a file; this call takes no files"
            )));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk =
                chunk.map_err(|e| Error::invalid(format!("Malformed multipart body: {e}")))?;
            total += chunk.len();
            if total > limit {
                return Err(too_large(limit));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| Error::invalid(format!("part '{name}' is not valid UTF-8 text")))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The address failed logins are counted against.
pub fn client_addr(req: &HttpRequest, trust_forwarded: bool) -> String {
    let info = req.connection_info();
    let addr = if trust_forwarded {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    addr.map(|a| {
        // Strip the port so one client's connections share a counter.
        a.parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| a.to_string())
    })
    .unwrap_or_else(|| "unknown".to_string())
}

/// A call made with a session: who is calling (checked in the same database hop as the call's
/// own work, so a call costs one checkout) and the call's typed parameters. A bad session
/// answers 401 whatever else is wrong: a missing one at once, an invalid one before the call's
/// own checks (they run inside [`Caller::db`] after the session) and before a parameter error.
pub struct Signed<T> {
    pub caller: Caller,
    pub params: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Signed<T> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = Form::from_request(req, payload);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Form(p) = form.await?;
            let caller = Caller::from_params(&p)?;
            match p.decode() {
                Ok(params) => Ok(Signed { caller, params }),
                Err(e) => {
                    // Rare (a client's mistake): worth a hop to keep 401 ahead of 400.
                    let state =
                        state.ok_or_else(|| Error::internal("application state is not set"))?;
                    caller.valid(&state, Err(e.into())).await
                }
            }
        })
    }
}

/// The session a signed call names, not yet checked: [`Caller::db`] checks it on the
/// connection that then does the call's work.
pub struct Caller {
    token: String,
    /// Whether the session was (or is being) checked: a call that forgets to check it is a
    /// bug caught where it happens (see `Drop`).
    checked: std::cell::Cell<bool>,
}

impl Drop for Caller {
    fn drop(&mut self) {
        if !self.checked.get() && !std::thread::panicking() {
            tracing::error!("a signed call ended without checking its session");
            debug_assert!(false, "a signed call ended without checking its session");
        }
    }
}

impl Caller {
    fn from_params(params: &Params) -> Result<Caller, Error> {
        let token = params
            .str("session")
            .ok_or_else(|| Error::Unauthenticated("missing required parameter 'session'".into()))?;
        Ok(Caller {
            token: token.to_string(),
            checked: std::cell::Cell::new(false),
        })
    }

    /// Checks the session (401/403 when it is not live), then runs `f` with the caller's user:
    /// one checkout and one blocking hop for the whole call.
    pub async fn db<R, F>(&self, state: &AppState, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut crate::db::DbConn, &User) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let token = self.token.clone();
        let policy = state.session_policy.clone();
        self.checked.set(true);
        state
            .db(move |c| {
                let me = crate::services::sessions::authenticate(c, &policy, &token)?;
                f(c, &me.user)
            })
            .await
    }

    /// A read call whose common case is one statement: `signed` reads the data with the
    /// session check in the same statement (`db::models::signed`); when it finds no live session
    /// that may read it, `exact` runs after the full session check and says why (or answers
    /// what `signed` does not cover). One checkout and one blocking hop either way.
    pub async fn read<R, S, F>(&self, state: &AppState, signed: S, exact: F) -> Result<R, Error>
    where
        S: FnOnce(&mut DbConn, &Gate) -> Result<signed::Signed<R>, Error> + Send + 'static,
        F: FnOnce(&mut DbConn, &User) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let token = self.token.clone();
        let policy = state.session_policy.clone();
        let counts = state.metrics.signed_reads().clone();
        self.checked.set(true);
        state
            .db(move |c| {
                if !token.is_empty() {
                    let now = crate::db::now();
                    let hash = crate::services::auth::token_hash(&token);
                    let gate = Gate {
                        token_hash: &hash,
                        now,
                    };
                    if let Some((session, answer)) = signed(c, &gate)? {
                        session_check::slide(c, &policy, &session, now)?;
                        counts.count(true);
                        return Ok(answer);
                    }
                }
                counts.count(false);
                let me = session_check::authenticate(c, &policy, &token)?;
                exact(c, &me.user)
            })
            .await
    }

    /// `checked` as it is, once the session is known to be live: a parameter refused by the
    /// call's own checks (before its database work) still answers 401 for a bad session.
    pub async fn valid<T>(&self, state: &AppState, checked: Result<T, Error>) -> Result<T, Error> {
        if checked.is_err() {
            self.authenticated(state).await?;
        }
        checked
    }

    /// The caller's live session and user, for a call whose work is not database work.
    pub async fn authenticated(&self, state: &AppState) -> Result<Authenticated, Error> {
        let token = self.token.clone();
        let policy = state.session_policy.clone();
        self.checked.set(true);
        state
            .db(move |c| crate::services::sessions::authenticate(c, &policy, &token))
            .await
    }
}

/// The typed parameters of a call made without a session (sign-in, registration).
pub struct Args<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Args<T> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = Form::from_request(req, payload);
        Box::pin(async move {
            let Form(p) = form.await?;
            Ok(Args(p.decode()?))
        })
    }
}

/// The caller's live session, from the `session` parameter.
pub async fn authenticate(state: &AppState, params: &Params) -> Result<Authenticated, Error> {
    Caller::from_params(params)?.authenticated(state).await
}
