//! The printer-agent channel: the 3DPrinterOS printer protocol. JSON over POST, always
//! `200 OK` for protocol answers, `{}` for "nothing to do", errors as
//! `{"error": {"code", "message"}}`.

use std::time::Duration;

use crate::http::routes::Routes;
use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::db::models::{JobId, Printer};
use crate::error::{AgentCode, Error};
use crate::services::agent::{self, Poll};
use crate::services::auth::random_token;
use crate::services::printers::{self, DeviceInfo, Registration};
use crate::services::{jobs, sessions};
use crate::AppState;

const MAX_COMMAND_BODY: usize = 256 * 1024;
/// `register`, `user_login` and `printer_login` carry a device description and credentials:
/// a few hundred bytes in real clients.
const MAX_LOGIN_BODY: usize = 16 * 1024;
const MAX_CAMERA_BODY: usize = 4 * 1024 * 1024;

pub fn routes(r: &mut Routes) {
    for prefix in ["/apiprinter/v1/printer", "/apiprinter/v1/{vendor}/printer"] {
        r.route(Method::POST, &format!("{prefix}/register"), register);
        r.route(Method::POST, &format!("{prefix}/command"), command);
        r.route(Method::POST, &format!("{prefix}/camera"), camera);
        let profiles = format!("{prefix}/get_printer_profiles");
        r.route(Method::POST, &profiles, printer_profiles);
        r.route(
            Method::POST,
            &format!("{prefix}/get_queued_jobs"),
            queued_jobs,
        );
        let start = format!("{prefix}/start_queued_job");
        r.route(Method::POST, &start, start_queued_job);
    }
    r.route(
        Method::GET,
        "/apiprinter/v1/download/{job_id}/{token}",
        download,
    );
    r.route(Method::POST, "/streamerapi/user_login", user_login);
    r.route(Method::POST, "/streamerapi/printer_login", printer_login);
    r.route(Method::POST, "/streamerapi/command", command);
    r.route(Method::POST, "/streamerapi/camera", camera);
    r.route(Method::POST, "/streamerapi/get_queued_jobs", queued_jobs);
    let start = "/streamerapi/start_queued_job";
    r.route(Method::POST, start, start_queued_job);
}

fn answer(v: Value) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

/// An error in the protocol's shape. Refusals the agent acts on (`AgentRefused`) answer
/// `200 OK` with their code; anything else keeps its HTTP status (agents retry), with the
/// status as the code.
fn render(e: Error) -> HttpResponse {
    if let Error::AgentRefused(code, message) = e {
        return refusal(code.code(), message);
    }
    let status = e.status_code();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "agent request failed");
    }
    HttpResponse::build(status)
        .json(json!({"error": {"code": status.as_u16(), "message": e.client_message()}}))
}

fn refusal(code: i32, message: String) -> HttpResponse {
    answer(json!({"error": {"code": code, "message": message}}))
}

/// For the StreamerAPI logins: bad credentials are a bad token to the agent.
fn credentials_refused(e: Error) -> Error {
    match e {
        Error::Unauthenticated(m) | Error::Denied(m) | Error::RateLimited(m) => {
            Error::AgentRefused(AgentCode::BadToken, m)
        }
        other => other,
    }
}

async fn body_json(payload: web::Payload, limit: usize) -> Result<Value, HttpResponse> {
    let bytes = crate::http::apiglobal::read_body(payload.into_inner(), limit)
        .await
        .map_err(|_| {
            render(Error::agent(
                AgentCode::BodyTooLarge,
                format!("request body over {limit} bytes"),
            ))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            render(Error::agent(
                AgentCode::BadRequest,
                "the body must be a JSON object",
            ))
        })
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.chars().take(128).collect(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn device_from(v: &Value) -> DeviceInfo {
    DeviceInfo {
        vid: text(v, "VID"),
        pid: text(v, "PID"),
        snr: text(v, "SNR"),
        mac: text(v, "mac"),
        version: Some(text(v, "version")).filter(|s| !s.is_empty()),
        type_alias: Some(text(v, "type")).filter(|s| !s.is_empty()),
        local_ip: text(v, "local_ip"),
        raw: DeviceInfo::bounded_raw(v),
    }
}

async fn register(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let body = match body_json(payload, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let device = device_from(&body);
    let code = body
        .get("registration_code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ttl = chrono::Duration::minutes(state.config.printers.registration_code_minutes);
    match state
        .db(move |c| printers::agent_register(c, &device, code.as_deref(), ttl))
        .await
    {
        Ok(Registration::Code(code)) => answer(json!({"registration_code": code})),
        Ok(Registration::Token { token, email }) => {
            answer(json!({"auth_token": token, "email": email}))
        }
        Err(e) => render(e),
    }
}

/// The printer token of a request: `auth_token` (APIPrinter) or `printer_token` (StreamerAPI).
fn printer_token(body: &Value) -> String {
    body.get("auth_token")
        .or_else(|| body.get("printer_token"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A protocol request from a printer: its JSON body and its printer token, checked by
/// [`as_printer`] on the connection that then does the request's work.
async fn printer_request(
    payload: web::Payload,
    limit: usize,
) -> Result<(Value, String), HttpResponse> {
    let body = body_json(payload, limit).await?;
    let token = printer_token(&body);
    Ok((body, token))
}

/// Runs `f` for the printer `token` names (refused with the protocol's bad-token code
/// otherwise): one checkout and one blocking hop for the whole request.
async fn as_printer<T, F>(state: &AppState, token: String, f: F) -> Result<T, HttpResponse>
where
    F: FnOnce(&mut crate::db::DbConn, Printer) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    state
        .db(move |c| {
            let printer = agent::authenticate(c, &token)?;
            f(c, printer)
        })
        .await
        .map_err(render)
}

/// A command on the wire. Print links stored as paths (no `server.public_url`) are made
/// absolute with `base`, the base of the agent's own poll: 3DPrinterOS clients need a full URL.
fn command_answer(cmd: Option<crate::db::models::PrinterCommand>, base: &str) -> HttpResponse {
    match cmd {
        Some(c) => {
            let mut v = agent::command_json(&c);
            if let Some(p) = v.get_mut("payload") {
                if let Some(path) = p.as_str().filter(|s| s.starts_with('/')) {
                    *p = Value::String(format!("{base}{path}"));
                }
            }
            answer(v)
        }
        None => answer(json!({})),
    }
}

/// The agent's poll: report in, at most one command out. With `wait` (printfarm extension,
/// seconds) the request is held until a command arrives or the time is up.
async fn command(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (body, token) = match printer_request(payload, MAX_COMMAND_BODY).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let poll = Poll::from_json(&body);
    let wait = body
        .get("wait")
        .and_then(Value::as_f64)
        .filter(|w| w.is_finite() && *w > 0.0)
        .map(|w| w.min(state.config.printers.long_poll_max_secs as f64));
    // A held poll keeps nothing of its report: a thousand held polls kept ~1.5 MiB of parsed
    // JSON alive for nothing.
    drop(body);
    let ctx = state.job_context();
    let base = crate::http::public_base(&state.config, Some(&req));
    let heartbeats = state.heartbeats.clone();
    let polled = state
        .db(move |c| {
            let (printer, waiting) = agent::authenticate_poll(c, &token)?;
            let id = printer.id;
            let (command, wrote) = agent::poll(c, printer, waiting, &poll, &ctx, &heartbeats)?;
            Ok((id, command, wrote))
        })
        .await
        .map_err(render);
    let (id, first, wrote) = match polled {
        Ok(r) => r,
        Err(r) => return r,
    };
    if wrote {
        // The report is committed: open dashboards show it.
        state.notifier.printers_changed();
    }
    let Some(wait) = wait.filter(|_| first.is_none()) else {
        return command_answer(first, &base);
    };
    let notifier = &state.notifier;
    if notifier.is_shutting_down() {
        return closing();
    }
    let _held = notifier.hold();
    let handle = notifier.handle(id.0);
    let deadline = tokio::time::Instant::now() + hold_time(wait, rand::random());
    // A wake-up can find nothing to deliver (a late NOTIFY of a command already delivered,
    // one another instance delivered): the hold then goes on until its deadline.
    loop {
        let notified = handle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // A command may have been queued between the last look and arming the wake-up.
        match state.db(move |c| agent::deliver(c, id)).await {
            Ok(Some(cmd)) => return command_answer(Some(cmd), &base),
            Ok(None) => {}
            Err(e) => return render(e),
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = notified => {}
            // Nothing was delivered: the agent simply polls again (elsewhere, or after restart).
            _ = notifier.shutting_down() => return closing(),
        }
    }
    match state
        .db(move |c| {
            agent::touch(c, id)?;
            agent::deliver(c, id)
        })
        .await
    {
        Ok(cmd) => command_answer(cmd, &base),
        Err(e) => render(e),
    }
}

/// Share of a long poll's wait that is randomised: holds end between 75 % and 100 % of the
/// wait, so agents that started together (a restart, a network blip) drift apart instead of
/// re-polling in one herd every `wait` seconds.
const HOLD_JITTER: f64 = 0.25;

/// How long to hold a poll that asked for `wait` seconds; `r` is uniform in [0, 1).
fn hold_time(wait: f64, r: f64) -> Duration {
    Duration::from_secs_f64(wait * (1.0 - HOLD_JITTER * r.clamp(0.0, 1.0)))
}

/// "Nothing to do" while the server shuts down; the connection closes so the agent's next
/// poll goes to a server that is still running.
fn closing() -> HttpResponse {
    HttpResponse::Ok().force_close().json(json!({}))
}

async fn camera(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let (body, token) = match printer_request(payload, MAX_CAMERA_BODY).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let image = body
        .get("image")
        .or_else(|| body.get("file_data"))
        .and_then(Value::as_str)
        .unwrap_or("S")
        .to_string();
    match as_printer(&state, token, move |c, printer| {
        agent::camera_frame(c, &printer, &image)
    })
    .await
    {
        Ok(watched) => answer(json!({"state": i32::from(watched)})),
        Err(r) => r,
    }
}

/// We ship no client-side printer profiles: agents keep their own.
async fn printer_profiles(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let token = match printer_request(payload, MAX_COMMAND_BODY).await {
        Ok((_, token)) => token,
        Err(r) => return r,
    };
    match as_printer(&state, token, |_, _| Ok(())).await {
        Ok(()) => answer(json!([])),
        Err(r) => r,
    }
}

/// The printer's queue, next job first.
async fn queued_jobs(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let token = match printer_request(payload, MAX_COMMAND_BODY).await {
        Ok((_, token)) => token,
        Err(r) => return r,
    };
    match as_printer(&state, token, |c, printer| {
        agent::queued_jobs(c, printer.id)
    })
    .await
    {
        Ok(l) => answer(json!(l)),
        Err(r) => r,
    }
}

/// The agent starts a job of its own queue (e.g. after a print, with `automatic: true`).
async fn start_queued_job(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let (body, token) = match printer_request(payload, MAX_COMMAND_BODY).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(job_id) = body
        .get("job_id")
        .and_then(|j| j.as_i64().or_else(|| j.as_str()?.trim().parse().ok()))
    else {
        return render(Error::agent(AgentCode::BadRequest, "job_id is required"));
    };
    let ctx = state.job_context();
    let started = as_printer(&state, token, move |c, printer| {
        // The agent shows why its queue's job cannot start, and goes on polling.
        Ok(jobs::agent_start(c, &printer, JobId(job_id), &ctx))
    })
    .await;
    match started {
        Ok(Ok(_)) => answer(json!([])),
        Ok(Err(e @ (Error::Conflict(..) | Error::NotFound(_) | Error::Denied(_)))) => {
            refusal(e.status_code().as_u16().into(), e.to_string())
        }
        Ok(Err(e)) => render(e),
        Err(r) => r,
    }
}

/// A started job's G-code, for its printer's agent: the link carries the job's secret.
/// Content-Length and `Range` let the agent verify and resume the download.
async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, Error> {
    let (job_id, token) = path.into_inner();
    let file = state
        .db(move |c| jobs::download_target(c, JobId(job_id), &token))
        .await?;
    crate::http::files::serve_file(&state, &req, &file).await
}

/// StreamerAPI: an agent signs in as a user and gets a user token (a session).
async fn user_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let body = match body_json(payload, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let login = body.get("login").cloned().unwrap_or(Value::Null);
    let user = text(&login, "user");
    let password = login
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let addr = crate::http::apiglobal::client_addr(&req, state.config.server.trust_forwarded_for);
    let st = state.clone();
    let outcome = web::block(move || {
        sessions::login(
            &st.pool,
            &st.hasher,
            &st.session_policy,
            &user,
            &password,
            &addr,
        )
    })
    .await;
    match outcome.map_err(Error::from).and_then(|r| r) {
        // The 2015 client wants all_profiles as a JSON string.
        Ok(o) => answer(json!({"user_token": o.token, "all_profiles": "[]"})),
        Err(e) => render(credentials_refused(e)),
    }
}

/// StreamerAPI: a signed-in agent attaches a printer (created in the user's organization the
/// first time) and gets its printer token.
async fn printer_login(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let body = match body_json(payload, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let user_token = text(&body, "user_token");
    let device = device_from(body.get("printer").unwrap_or(&Value::Null));
    if device.snr.is_empty() {
        return render(Error::agent(
            AgentCode::SerialMissing,
            "printer.SNR is required",
        ));
    }
    let policy = state.session_policy.clone();
    let result = state
        .db(move |c| {
            let user = sessions::authenticate(c, &policy, &user_token)?.user;
            let token = random_token();
            let printer = printers::pair_device(c, &user, &device, None, &token)?;
            Ok((printer, token))
        })
        .await;
    match result {
        Ok((printer, token)) => {
            answer(json!({"printer_token": token, "printer_profile": "{}", "name": printer.name}))
        }
        Err(e) => render(credentials_refused(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_end_in_the_last_quarter_of_the_wait() {
        assert_eq!(hold_time(20.0, 0.0), Duration::from_secs(20));
        assert_eq!(hold_time(20.0, 0.5), Duration::from_secs_f64(17.5));
        assert_eq!(hold_time(20.0, 0.999_999).as_secs(), 15);
        // Out-of-range randomness cannot make a hold longer than asked or negative.
        assert_eq!(hold_time(20.0, -3.0), Duration::from_secs(20));
        assert_eq!(hold_time(20.0, 7.0), Duration::from_secs(15));
        // Real draws spread out.
        let holds: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| hold_time(20.0, rand::random())).collect();
        assert!(holds.len() > 40, "{holds:?}");
        assert!(holds
            .iter()
            .all(|h| *h >= Duration::from_secs(15) && *h <= Duration::from_secs(20)));
    }
}
