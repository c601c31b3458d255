//! The web console at `/`: server-rendered pages (askama templates under `templates/console/`,
//! escaped by default) over the same services as the APIs, with one small script for live
//! printer cards (server-sent events). Everything it shows is what the API would answer to the
//! same person: the pages call the services, never a copy of a rule.

mod account;
mod admin;
mod assets;
mod farm;
mod files;
mod google;
mod links;
mod printer;
mod reports;

use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use futures_util::{stream, StreamExt};

use crate::db::models::{JobId, PrinterId, PrinterState, User};
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{self, browser_user, checked_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::job_states::CancelReason;
use crate::services::printers::{self, PrinterCard};
use crate::services::{jobs, sessions};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/").get(dashboard);
    r.at("/login").get(login_form).post(login);
    r.at("/logout").post(logout);
    r.at("/console/events").get(events);
    // pause, resume or cancel
    r.at("/jobs/{job_id}/{action}").post(job_action);
    r.at("/assets/{file}").get(assets::serve);
    files::routes(r);
    farm::routes(r);
    admin::routes(r);
    links::routes(r);
    printer::routes(r);
    account::routes(r);
    reports::routes(r);
    google::routes(r);
}

/// Scripts and styles only from here, no inline script, no framing, forms post back here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn html(status: StatusCode, body: String, csp: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Content-Security-Policy", csp))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(body)
}

pub(super) fn render(status: StatusCode, t: &impl Template) -> HttpResponse {
    render_with(status, t, CSP)
}

fn render_with(status: StatusCode, t: &impl Template, csp: &str) -> HttpResponse {
    match t.render() {
        Ok(body) => html(status, body, csp),
        Err(e) => Error::internal(format!("template: {e}")).error_response(),
    }
}

/// The signed-in person, as the page header shows them.
pub struct Me {
    pub email: String,
    pub csrf: String,
    /// Sees the admin pages (organization or workgroup admin).
    pub admin: bool,
    pub org_admin: bool,
}

/// What every page's frame needs.
pub struct Chrome {
    pub me: Option<Me>,
    pub css: &'static str,
    pub js: &'static str,
    pub nav: &'static str,
}

impl Chrome {
    pub(super) fn new(me: Option<(&User, &str)>, nav: &'static str) -> Chrome {
        Chrome {
            me: me.map(|(u, session)| Me {
                email: u.email.clone(),
                csrf: csrf_token(session),
                admin: admin::is_admin(u),
                org_admin: crate::services::orgs::is_org_admin(u),
            }),
            css: assets::url("console.css"),
            js: assets::url("console.js"),
            nav,
        }
    }
}

/// A moment shown in the viewer's time zone: the page carries UTC (`datetime`, and as text
/// for browsers without scripts); the console script rewrites the text in local time.
pub struct Stamp {
    pub iso: String,
    pub text: String,
}

impl Stamp {
    pub fn new(at: chrono::NaiveDateTime) -> Stamp {
        Stamp {
            iso: at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            text: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    message: Option<String>,
    email: String,
    next: String,
    google: Option<google::Button>,
}

/// The sign-in form, with a refusal's reason and the email kept when there was one, and the
/// Google button when Google sign-in is on.
fn login_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    message: Option<String>,
    email: String,
    next: String,
) -> HttpResponse {
    let google = google::button(state, req);
    let csp = if google.is_some() { google::CSP } else { CSP };
    render_with(
        status,
        &LoginPage {
            chrome: Chrome::new(None, ""),
            message,
            email,
            next,
            google,
        },
        csp,
    )
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    cards: Vec<CardView>,
    csrf: String,
    reasons: &'static [(&'static str, &'static str)],
    back: &'static str,
}

#[derive(Template)]
#[template(path = "console/cards.html")]
struct CardsFragment {
    cards: Vec<CardView>,
    csrf: String,
    reasons: &'static [(&'static str, &'static str)],
    back: &'static str,
}

#[derive(Template)]
#[template(path = "console/refused.html")]
struct RefusedPage {
    chrome: Chrome,
    message: String,
}

/// The cancel reasons people choose from: (code, label), as `job_cancel` takes them.
pub(super) static REASONS: std::sync::LazyLock<Vec<(&'static str, &'static str)>> =
    std::sync::LazyLock::new(|| {
        CancelReason::ALL
            .iter()
            .map(|r| (r.code(), r.label()))
            .collect()
    });

/// A printer card, formatted for people.
pub(super) struct CardView {
    id: i64,
    name: String,
    type_name: String,
    state: String,
    state_word: String,
    tone: &'static str,
    nozzle: String,
    bed: String,
    percent: i64,
    paused: bool,
    /// Progress is shown while a job runs, ours or one started at the printer.
    busy: bool,
    job: Option<JobView>,
    idle: &'static str,
    queue: String,
}

struct JobView {
    id: i64,
    may_control: bool,
    filename: String,
    owner: String,
    left: String,
}

/// The label and colour of a state; unknown agent words are shown as they are.
fn state_label(state: &PrinterState) -> (&'static str, &'static str) {
    match state {
        PrinterState::Ready => ("Ready", "ready"),
        PrinterState::Printing => ("Printing", "busy"),
        PrinterState::Paused => ("Paused", "warn"),
        PrinterState::Downloading => ("Downloading", "busy"),
        PrinterState::Connecting => ("Connecting", "warn"),
        PrinterState::Error => ("Error", "bad"),
        PrinterState::Cancel => ("Cancelling", "warn"),
        PrinterState::LocalMode => ("Local mode", "warn"),
        PrinterState::BedNotClear => ("Clear the bed", "warn"),
        PrinterState::NotConnected => ("Offline", "off"),
        PrinterState::Other(_) => ("", "off"),
    }
}

/// A state word as a badge shows it: its label (an unknown agent word made readable) and tone.
pub(super) fn state_badge(word: &str) -> (String, &'static str) {
    let state = PrinterState::parse(word);
    let (label, tone) = state_label(&state);
    match &state {
        PrinterState::Other(word) => (humanize(word), tone),
        _ => (label.to_string(), tone),
    }
}

/// An agent's own word, readable: `printing_locally` → `Printing locally`.
fn humanize(word: &str) -> String {
    let spaced = word.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_else(|| "Unknown".into())
}

/// `actual / target °C`; the agent reports `[bed, tool0, …]`.
fn temperature(
    actual: Option<&Vec<Option<i64>>>,
    target: Option<&Vec<Option<i64>>>,
    i: usize,
) -> String {
    let at = |l: Option<&Vec<Option<i64>>>| l.and_then(|v| v.get(i).copied().flatten());
    match (at(actual), at(target)) {
        (Some(a), Some(t)) if t > 0 => format!("{a} / {t} °C"),
        (Some(a), _) => format!("{a} °C"),
        _ => "–".into(),
    }
}

fn duration_left(seconds: i64) -> String {
    let m = (seconds + 59) / 60;
    match m {
        0 => "finishing".into(),
        1..=59 => format!("{m} min left"),
        _ => format!("{} h {:02} min left", m / 60, m % 60),
    }
}

pub(super) fn card_view(c: PrinterCard) -> CardView {
    let state = PrinterState::parse(&c.item.state);
    // Idle in maintenance: legacy clients read `local_mode`, people read why.
    let resting = c.maintenance.is_some() && state == PrinterState::LocalMode;
    let (label, tone) = if resting {
        ("Maintenance".to_string(), "warn")
    } else {
        state_badge(&c.item.state)
    };
    CardView {
        id: c.item.id.0,
        name: c.item.name,
        type_name: c.item.r#type,
        state: label,
        state_word: c.item.state.clone(),
        tone,
        nozzle: temperature(c.item.temps.as_ref(), c.item.target_temps.as_ref(), 1),
        bed: temperature(c.item.temps.as_ref(), c.item.target_temps.as_ref(), 0),
        percent: c.item.percent,
        busy: state.is_busy() || c.job.is_some(),
        paused: state == PrinterState::Paused,
        job: c.job.map(|j| JobView {
            id: j.id.0,
            may_control: j.may_control,
            filename: j.filename,
            owner: j.owner,
            left: j.seconds_left.map(duration_left).unwrap_or_default(),
        }),
        idle: match state {
            _ if resting => "In maintenance: it takes no jobs until it is back in service.",
            PrinterState::NotConnected => "Not connected: is its agent running?",
            PrinterState::Error => "Needs attention at the printer.",
            _ if state.is_busy() => "Busy with a job started at the printer.",
            _ if !c.item.tray_clear => "Waiting for the build tray to be cleared.",
            _ => "Idle.",
        },
        queue: match c.queued {
            0 => "Queue empty".into(),
            1 => "1 job queued".into(),
            n => format!("{n} jobs queued"),
        },
    }
}

async fn card_views(state: &web::Data<AppState>, user: User) -> Result<Vec<CardView>, Error> {
    let offline = chrono::Duration::seconds(state.config.printers.offline_after_secs);
    let cards = state
        .db(move |c| printers::cards(c, &user, offline, crate::db::now()))
        .await?;
    Ok(cards.into_iter().map(card_view).collect())
}

pub(super) fn to_login(req: &HttpRequest) -> HttpResponse {
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let next = url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
    see_other(&format!("/login?next={next}")).finish()
}

async fn dashboard(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let chrome = Chrome::new(Some((&user, &session)), "printers");
    match card_views(&state, user).await {
        Ok(cards) => render(
            StatusCode::OK,
            &DashboardPage {
                chrome,
                cards,
                csrf: csrf_token(&session),
                reasons: &REASONS,
                back: "/",
            },
        ),
        Err(e) => e.error_response(),
    }
}

pub(super) fn query(req: &HttpRequest, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn login_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let next = browser::local_path(query(&req, "next").as_deref()).unwrap_or_else(|| "/".into());
    if browser_user(&state, &req).await.is_some() {
        return see_other(&next).finish();
    }
    login_page(&state, &req, StatusCode::OK, None, String::new(), next)
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return e.error_response(),
    };
    let next = browser::local_path(p.str("next")).unwrap_or_else(|| "/".into());
    if browser::from_another_site(&state, &req) {
        return refused(
            &state,
            &req,
            Error::denied("This sign-in did not come from this site's sign-in page"),
        )
        .await;
    }
    let email = p.str("username").unwrap_or_default().to_string();
    let password = p.raw("password").unwrap_or_default().to_string();
    match browser::sign_in(&state, &req, email.clone(), password).await {
        Ok(token) => see_other(&next)
            .cookie(browser::new_session_cookie(&state, token))
            .finish(),
        // A refused sign-in stays on the form, with the reason and the email kept.
        Err(e) => {
            if matches!(e, Error::Internal(_)) {
                return e.error_response();
            }
            login_page(
                &state,
                &req,
                e.status_code(),
                Some(e.client_message()),
                email,
                next,
            )
        }
    }
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return e.error_response(),
    };
    match checked_user(&state, &req, p.str("csrf").unwrap_or_default()).await {
        Ok((_, session)) => {
            browser::sign_out(&state, session).await;
            see_other("/login")
                .cookie(browser::cleared_cookie(&state))
                .finish()
        }
        // Already signed out: nothing to end.
        Err(Error::Unauthenticated(_)) => see_other("/login").finish(),
        Err(e) => e.error_response(),
    }
}

/// How often an open dashboard is re-rendered without a local change: changes made through
/// another server instance reach it this late at most.
const REFRESH: Duration = Duration::from_secs(5);
/// Bursts of reports (many printers polling) are merged into one update per this period.
const COALESCE: Duration = Duration::from_millis(300);

fn sse_event(name: &str, html: &str) -> web::Bytes {
    let mut out = format!("event: {name}\n");
    for line in html.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    web::Bytes::from(out)
}

fn rendered(t: &impl Template) -> Option<String> {
    t.render()
        .map_err(|e| tracing::error!(error = %e, "console live template"))
        .ok()
}

/// What one open dashboard was last sent: the cards' order and a digest of each card's HTML,
/// so an update sends only the cards that changed (200 printers reporting every 2 s change a
/// few cards' figures, not the page).
#[derive(Default)]
struct Sent {
    /// Something was sent already (the first event waits for nothing).
    started: bool,
    order: Vec<i64>,
    digests: std::collections::HashMap<i64, [u8; 32]>,
}

impl Sent {
    /// The next event: every card (`printers`) when the set or order of printers changed,
    /// else the changed cards (`cards`), else a comment that keeps the stream warm.
    fn update(&mut self, cards: Vec<CardView>, csrf: &str) -> Option<web::Bytes> {
        use sha2::{Digest, Sha256};
        let order: Vec<i64> = cards.iter().map(|c| c.id).collect();
        let mut singles = Vec::with_capacity(cards.len());
        for card in cards {
            let id = card.id;
            let html = rendered(&CardsFragment {
                cards: vec![card],
                csrf: csrf.to_string(),
                reasons: &REASONS,
                back: "/",
            })?;
            singles.push((id, html));
        }
        let digests: std::collections::HashMap<i64, [u8; 32]> = singles
            .iter()
            .map(|(id, html)| (*id, Sha256::digest(html.as_bytes()).into()))
            .collect();
        let event = if !self.started || order != self.order || order.is_empty() {
            let all = if singles.is_empty() {
                rendered(&CardsFragment {
                    cards: Vec::new(),
                    csrf: csrf.to_string(),
                    reasons: &REASONS,
                    back: "/",
                })?
            } else {
                singles.iter().map(|(_, h)| h.as_str()).collect::<String>()
            };
            sse_event("printers", &all)
        } else {
            let changed: String = singles
                .iter()
                .filter(|(id, _)| self.digests.get(id) != digests.get(id))
                .map(|(_, h)| h.as_str())
                .collect();
            if changed.is_empty() {
                web::Bytes::from_static(b":\n\n")
            } else {
                sse_event("cards", &changed)
            }
        };
        self.order = order;
        self.digests = digests;
        self.started = true;
        Some(event)
    }
}

/// Server-sent events: the signed-in person's printer cards, sent again whenever a printer
/// changes (an agent report, a command), at most every `COALESCE`.
async fn events(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, session)) = browser_user(&state, &req).await else {
        return Error::Unauthenticated("Sign in first (your session ended)".into())
            .error_response();
    };
    // One printer's page follows that printer; the dashboard all of them.
    let printer = match query(&req, "printer").map(|p| p.parse::<i64>()) {
        None => None,
        Some(Ok(id)) => Some(PrinterId(id)),
        Some(Err(_)) => return Error::invalid("printer must be a printer id").error_response(),
    };
    let csrf = csrf_token(&session);
    let mut sent = Sent::default();
    // The first event before the stream starts, so a refusal (a printer out of reach is not
    // found, as on its page) or a database away is an ordinary answer.
    let first = match live_event(&state, user, &csrf, printer, &mut sent).await {
        Ok(chunk) => chunk,
        Err(e) => return e.error_response(),
    };
    let changes = state.notifier.changes();
    let rest = stream::unfold(
        (state, session, csrf, changes, sent),
        move |(state, session, csrf, mut changes, mut sent)| async move {
            tokio::select! {
                r = changes.changed() => { r.ok()?; }
                _ = tokio::time::sleep(REFRESH) => {}
                _ = state.notifier.shutting_down() => return None,
            }
            tokio::time::sleep(COALESCE).await;
            changes.borrow_and_update();
            // The session is checked again for every update: a signed-out or expired session
            // (or a disabled account) ends the stream, and the browser reconnecting is told.
            let policy = state.session_policy.clone();
            let token = session.clone();
            let user = state
                .db(move |c| sessions::authenticate(c, &policy, &token).map(|a| a.user))
                .await
                .ok()?;
            // The database may be away (or the printer out of reach now): end the stream;
            // the browser reconnects.
            let chunk = live_event(&state, user, &csrf, printer, &mut sent)
                .await
                .ok()?;
            Some((Ok::<_, Error>(chunk), (state, session, csrf, changes, sent)))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream::once(async move { Ok::<_, Error>(first) }).chain(rest))
}

/// The next event of a live view: one printer's page, or the dashboard's cards (all, the
/// changed ones, or a keep-alive comment; see [`Sent`]).
async fn live_event(
    state: &web::Data<AppState>,
    user: User,
    csrf: &str,
    printer: Option<PrinterId>,
    sent: &mut Sent,
) -> Result<web::Bytes, Error> {
    let failed = || Error::internal("console live template");
    match printer {
        Some(id) => {
            let page = printer::load(state, user, csrf.to_string(), id).await?;
            Ok(sse_event("printers", &rendered(&page).ok_or_else(failed)?))
        }
        None => {
            let cards = card_views(state, user).await?;
            sent.update(cards, csrf).ok_or_else(failed)
        }
    }
}

/// How a job ended (or where it is), as a badge's words and colour.
pub(super) fn job_outcome(job: &crate::db::models::Job) -> (String, &'static str) {
    use crate::db::models::JobStatus;
    match job.status_id {
        JobStatus::Finished => ("Done".into(), "ready"),
        JobStatus::Failed => ("Failed".into(), "bad"),
        JobStatus::Aborted => (
            crate::services::reports::cancel_reason_text(
                job.cancel_reason.as_deref(),
                job.cancel_source.as_deref(),
            )
            .map_or_else(|| "Cancelled".into(), |r| format!("Cancelled: {r}")),
            "warn",
        ),
        JobStatus::InProgress => ("Printing".into(), "busy"),
        JobStatus::Queued => ("Queued".into(), "off"),
    }
}

/// A posted console form, once its CSRF token matches the signed-in person's session: its
/// parameters, the person and the session.
pub(super) async fn posted(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    form: Result<Form, Error>,
) -> Result<(crate::http::apiglobal::form::Params, User, String), Error> {
    let Form(p) = form?;
    let (user, session) = checked_user(state, req, p.str("csrf").unwrap_or_default()).await?;
    Ok((p, user, session))
}

/// A refused console action: its reason, with the status the API would answer.
pub(super) async fn refused(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    e: Error,
) -> HttpResponse {
    if matches!(
        e,
        Error::Internal(_) | Error::Transient | Error::Unavailable(_)
    ) {
        return e.error_response();
    }
    let me = browser_user(state, req).await;
    let chrome = Chrome::new(me.as_ref().map(|(u, s)| (u, s.as_str())), "printers");
    render(
        e.status_code(),
        &RefusedPage {
            chrome,
            message: e.client_message(),
        },
    )
}

/// A job action from a card or a queue (`pause`, `resume`, `cancel`, `start`, and `front`,
/// "print next"): CSRF-checked, then the same service call as the Global API's `job_pause`,
/// `job_unpause`, `job_cancel` and `job_start`; back to the page it came from (`back`, a local
/// path) or the dashboard.
async fn job_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let (job, action) = path.into_inner();
    let outcome = async {
        let command = match action.as_str() {
            "pause" => "pause",
            "resume" => "unpause",
            "cancel" => "cancel",
            "start" => "start",
            "front" => "front",
            _ => return Err(Error::not_found("No such job action")),
        };
        let (p, user, _) = posted(&state, &req, form).await?;
        let back = browser::local_path(p.str("back")).unwrap_or_else(|| "/".into());
        let job = JobId(job);
        if command == "front" {
            state
                .db(move |c| jobs::move_to_front(c, &user, job).map(|_| ()))
                .await?;
        } else if command == "start" {
            let ctx = state.job_context();
            state
                .db(move |c| jobs::job_start(c, &user, job, &ctx).map(|_| ()))
                .await?;
        } else if command == "cancel" {
            let reason = p
                .str("reason")
                .map(CancelReason::parse)
                .transpose()?
                .ok_or_else(|| Error::invalid("Choose why the job is cancelled"))?;
            let details = p.str("details").map(str::to_string);
            state
                .db(move |c| jobs::job_cancel(c, &user, job, Some(reason), details.as_deref()))
                .await?;
        } else {
            state
                .db(move |c| jobs::job_command(c, &user, job, command).map(|_| ()))
                .await?;
        }
        state.notifier.printers_changed();
        Ok(back)
    }
    .await;
    match outcome {
        Ok(back) => see_other(&back).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// A page that says what was done, with where to go next.
#[derive(Template)]
#[template(path = "console/notice.html")]
pub(super) struct NoticePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    /// (href, label)
    pub links: Vec<(&'static str, &'static str)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_multiline_html() {
        let e = sse_event("printers", "<a>\n<b>");
        assert_eq!(&e[..], b"event: printers\ndata: <a>\ndata: <b>\n\n");
    }

    #[test]
    fn times_and_temperatures_read_well() {
        assert_eq!(duration_left(30), "1 min left");
        assert_eq!(duration_left(3600 + 120), "1 h 02 min left");
        let t = Some(vec![Some(60), Some(215)]);
        let g = Some(vec![Some(60), Some(0)]);
        assert_eq!(temperature(t.as_ref(), g.as_ref(), 0), "60 / 60 °C");
        assert_eq!(temperature(t.as_ref(), g.as_ref(), 1), "215 °C");
        assert_eq!(temperature(None, None, 1), "–");
        assert_eq!(humanize("printing_locally"), "Printing locally");
        assert_eq!(humanize(""), "Unknown");
    }
}
