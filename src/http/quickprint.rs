//! `/quickprint?file_id=N`: where slicers send the person after "upload and print" (OrcaSlicer
//! opens it in the browser). The person signs in (the browser session of `http::browser`,
//! shared with the console), picks one of the printers they may use, and prints or queues the
//! file through the same `print_file` rule as the Global API. A plain page for now; the web
//! console will restyle it.

use crate::http::routes::Routes;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::db::models::{FileId, PrinterId};
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{self, browser_user, checked_user, csrf_token, see_other};
use crate::http::noauth::{error_page, escape, page};
use crate::services::{auth, jobs, login_tokens, quickprint};
use crate::AppState;

const TITLE: &str = "Print your file";

/// A refusal on these pages: the error's status with the page's own error view, so handlers
/// use `?` like the API handlers do.
#[derive(Debug)]
struct PageError(Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError(e)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }
    fn error_response(&self) -> HttpResponse {
        error_page(TITLE, &self.0)
    }
}

type PageResult = Result<HttpResponse, PageError>;

pub fn routes(r: &mut Routes) {
    r.at("/quickprint").get(show).post(print);
    r.at("/quickprint/sign_in").post(sign_in);
    r.at("/quickprint/sign_out").post(sign_out);
    r.at("/myfiles").get(my_files);
    r.at("/noauth/login_with_auth_token/{token}")
        .get(browser_link_form)
        .post(browser_link_sign_in);
}

fn file_id_of(raw: Option<&str>) -> Result<i64, Error> {
    raw.and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::invalid("file_id must be a file id (a positive number)"))
}

/// The sign-in form; after it, the person returns to the file's print page, or to their files.
fn sign_in_form(file_id: Option<i64>, message: Option<&str>) -> String {
    let (intro, field) = match file_id {
        Some(id) => (
            format!("Sign in to print file {id}."),
            format!("<input type=\"hidden\" name=\"file_id\" value=\"{id}\">"),
        ),
        None => ("Sign in to see your files.".to_string(), String::new()),
    };
    format!(
        "<p>{intro}</p>{}\
         <form method=\"post\" action=\"/quickprint/sign_in\">{field}\
         <label>Email<input type=\"email\" name=\"username\" required autocomplete=\"username\"></label>\
         <label>Password<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label>\
         <button type=\"submit\">Sign in</button></form>",
        message
            .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
            .unwrap_or_default()
    )
}

fn query_file_id(req: &HttpRequest) -> Result<i64, Error> {
    let q = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "file_id")
        .map(|(_, v)| v.into_owned());
    file_id_of(q.as_deref())
}

async fn show(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let file_id = query_file_id(&req)?;
    let Some((user, session)) = browser_user(&state, &req).await else {
        return Ok(page(
            StatusCode::OK,
            TITLE,
            &sign_in_form(Some(file_id), None),
        ));
    };
    let offline = chrono::Duration::seconds(state.config.printers.offline_after_secs);
    let email = user.email.clone();
    let offer = state
        .db(move |c| quickprint::offer(c, &user, FileId(file_id), offline, crate::db::now()))
        .await?;
    let who = format!(
        "<form method=\"post\" action=\"/quickprint/sign_out\" class=\"muted\">Signed in as <b>{}</b>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"file_id\" value=\"{file_id}\">\
         <button type=\"submit\">Sign out</button></form>",
        escape(&email),
        csrf_token(&session)
    );
    let file = format!(
        "<p>File <b>{}</b> ({} bytes).</p>",
        escape(&offer.file.filename),
        offer.file.size
    );
    if offer.choices.is_empty() {
        return Ok(page(
            StatusCode::OK,
            TITLE,
            &format!(
                "{who}{file}<p class=\"error\">There is no printer you may use for this file \
                 (ask an admin for access to a printer of its type).</p>"
            ),
        ));
    }
    let options: String = offer
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "<label class=\"choice\"><input type=\"radio\" name=\"printer_id\" value=\"{}\"{}>\
                 <span><b>{}</b> · {} · {}{}</span></label>",
                c.printer.id,
                if i == 0 { " checked" } else { "" },
                escape(&c.printer.name),
                escape(c.type_name.as_deref().unwrap_or("unknown type")),
                escape(&c.state),
                if c.may_start { "" } else { " · queue only" }
            )
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        TITLE,
        &format!(
            "{who}{file}<form method=\"post\" action=\"/quickprint\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"file_id\" value=\"{file_id}\">\
             <fieldset><legend>Printer</legend>{options}</fieldset>\
             <button type=\"submit\" name=\"action\" value=\"print\">Print now</button>\
             <button type=\"submit\" name=\"action\" value=\"queue\">Add to the queue</button></form>",
            csrf_token(&session)
        ),
    ))
}

async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> PageResult {
    let Form(p) = form?;
    let file_id = p.str("file_id").map(|v| file_id_of(Some(v))).transpose()?;
    let username = p.str("username").unwrap_or_default().to_string();
    let password = p.raw("password").unwrap_or_default().to_string();
    let signed_in = browser::sign_in(&state, &req, username, password).await;
    Ok(match signed_in {
        Ok(token) => {
            let next = file_id.map_or_else(
                || "/myfiles".to_string(),
                |id| format!("/quickprint?file_id={id}"),
            );
            see_other(&next)
                .cookie(browser::new_session_cookie(&state, token))
                .finish()
        }
        // A refused sign-in stays on the form, with the reason.
        Err(e) => page(
            e.status_code(),
            TITLE,
            &sign_in_form(file_id, Some(&e.to_string())),
        ),
    })
}

async fn print(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> PageResult {
    let Form(p) = form?;
    let (user, _) = checked_user(&state, &req, p.str("csrf").unwrap_or_default()).await?;
    let file_id = file_id_of(p.str("file_id"))?;
    let printer_id = p
        .str("printer_id")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| Error::invalid("Choose a printer"))?;
    let only_queue = match p.str("action") {
        Some("print") => false,
        Some("queue") => true,
        _ => return Err(Error::invalid("action must be \"print\" or \"queue\"").into()),
    };
    let ctx = state.job_context();
    let c = state
        .db(move |c| {
            jobs::print_file(
                c,
                &user,
                FileId(file_id),
                PrinterId(printer_id),
                only_queue,
                &ctx,
            )
        })
        .await?;
    let what = if c.started {
        "is starting"
    } else {
        "is in the printer's queue"
    };
    Ok(page(
        StatusCode::OK,
        "Sent to the printer",
        &format!("<p>Job {} {what}. You can close this page.</p>", c.job.id),
    ))
}

async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> PageResult {
    let Form(p) = form?;
    let (_, session) = checked_user(&state, &req, p.str("csrf").unwrap_or_default()).await?;
    browser::sign_out(&state, session).await;
    let back = file_id_of(p.str("file_id"))
        .map(|id| format!("/quickprint?file_id={id}"))
        .unwrap_or_else(|_| "/quickprint".into());
    Ok(see_other(&back)
        .cookie(browser::cleared_cookie(&state))
        .finish())
}

/// `/myfiles`: the signed-in person's files, newest first, each with a link to print it (where
/// the Cura plugin's "go to cloud" button lands).
async fn my_files(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    const FILES: &str = "Your files";
    let Some((user, session)) = browser_user(&state, &req).await else {
        return Ok(page(StatusCode::OK, FILES, &sign_in_form(None, None)));
    };
    let email = user.email.clone();
    let files = state
        .db(move |c| quickprint::recent_files(c, &user))
        .await?;
    let who = format!(
        "<form method=\"post\" action=\"/quickprint/sign_out\" class=\"muted\">Signed in as <b>{}</b>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
        escape(&email),
        csrf_token(&session)
    );
    if files.is_empty() {
        return Ok(page(
            StatusCode::OK,
            FILES,
            &format!("{who}<p>You have no files yet. Upload one from your slicer.</p>"),
        ));
    }
    let rows: String = files
        .iter()
        .map(|f| {
            let action = if f.is_printable() {
                format!("<a href=\"/quickprint?file_id={}\">Print…</a>", f.id)
            } else {
                // Models are sliced before they can print.
                format!("<span class=\"muted\">{} model</span>", escape(&f.kind.as_str().to_uppercase()))
            };
            format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"t\">{}</td><td>{action}</td></tr>",
                escape(&f.filename),
                human_size(f.size),
                f.created_at.format("%Y-%m-%d %H:%M"),
            )
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        FILES,
        &format!(
            "{who}<table><thead><tr><th>File</th><th>Size</th><th>Uploaded (UTC)</th><th></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        ),
    ))
}

/// Bytes as people read them: `684 B`, `166.8 kB`, `12.4 MB`.
fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1000.0 {
        format!("{bytes} B")
    } else if b < 1_000_000.0 {
        format!("{:.1} kB", b / 1000.0)
    } else {
        format!("{:.1} MB", b / 1_000_000.0)
    }
}

/// The page a browser sign-in link opens: it names the account and asks before signing in,
/// so that a link preview or a prefetch cannot use up the one-time link, and a person sees
/// whose account they are entering.
async fn browser_link_form(state: web::Data<AppState>, path: web::Path<String>) -> PageResult {
    let token = path.into_inner();
    if !auth::is_token_shaped(&token) {
        return Err(Error::not_found("Unknown sign-in link").into());
    }
    let user = state
        .db(move |c| login_tokens::browser_link_user(c, &token))
        .await?;
    Ok(page(
        StatusCode::OK,
        "Continue in the browser",
        &format!(
            "<p>Continue as <b>{}</b>?</p><form method=\"post\"><button type=\"submit\">Continue</button></form>",
            escape(&user.email)
        ),
    ))
}

async fn browser_link_sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let token = path.into_inner();
    if !auth::is_token_shaped(&token) {
        return Err(Error::not_found("Unknown sign-in link").into());
    }
    // Only our own confirmation page may post here: another site must not sign a visitor into
    // an account of its choosing (login CSRF). Browsers send Origin on every POST.
    let origin = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let ours = crate::http::public_base(&state.config, Some(&req));
    if origin.is_some_and(|o| o != ours.trim_end_matches('/')) {
        return Err(Error::denied("This form did not come from this site").into());
    }
    let policy = state.session_policy.clone();
    let session = state
        .db(move |c| login_tokens::redeem_browser(c, &policy, &token))
        .await?;
    Ok(see_other("/myfiles")
        .cookie(browser::new_session_cookie(&state, session))
        .finish())
}
