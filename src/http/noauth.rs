//! Small HTML pages reached from links, without a session: choosing a password from an
//! invitation, and confirming a slicer's sign-in token.

use crate::http::routes::Routes;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::error::Error;
use crate::http::apiglobal::{client_addr, Form};
use crate::services::{login_tokens, orgs, sessions};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/noauth/set_password/{token}")
        .get(set_password_form)
        .post(set_password);
    r.at("/noauth/apiglobal_login_with_token/{token}")
        .get(confirm_login_form)
        .post(confirm_login);
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        // Nothing but the page's own inline style and forms posting back here.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · printfarm</title>\
             <style>*{{box-sizing:border-box}}body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}\
             label,input,button{{display:block;width:100%;margin:.4rem 0}}label.choice{{display:flex;gap:.5rem;align-items:center}}label.choice input{{width:auto}}.muted{{color:#666}}form.muted button{{display:inline;width:auto;padding:.1rem .6rem;margin-left:.6rem}}input,button{{padding:.5rem}}\
             .error{{color:#a00}}table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #ddd}}td.n,td.t{{white-space:nowrap}}td.n{{text-align:right}}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title),
        ))
}

pub(crate) fn error_page(title: &str, e: &Error) -> HttpResponse {
    page(
        e.status_code(),
        title,
        &format!("<p class=\"error\">{}</p>", escape(&e.to_string())),
    )
}

fn set_password_html(email: &str, message: Option<&str>) -> String {
    format!(
        "<p>Choose a password for <b>{}</b>.</p>{}\
         <form method=\"post\"><label>New password<input type=\"password\" name=\"password\" minlength=\"8\" required autocomplete=\"new-password\"></label>\
         <label>Repeat it<input type=\"password\" name=\"password2\" minlength=\"8\" required autocomplete=\"new-password\"></label>\
         <button type=\"submit\">Set password</button></form>",
        escape(email),
        message.map(|m| format!("<p class=\"error\">{}</p>", escape(m))).unwrap_or_default()
    )
}

async fn set_password_form(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let token = path.into_inner();
    if !crate::services::auth::is_token_shaped(&token) {
        return error_page(
            "Set your password",
            &Error::not_found("This invitation link is not valid"),
        );
    }
    match state.db(move |c| orgs::check_invitation(c, &token)).await {
        Ok((_, user)) => page(
            StatusCode::OK,
            "Set your password",
            &set_password_html(&user.email, None),
        ),
        Err(e) => error_page("Set your password", &e),
    }
}

async fn set_password(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let token = path.into_inner();
    let title = "Set your password";
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return error_page(title, &e),
    };
    if !crate::services::auth::is_token_shaped(&token) {
        return error_page(
            title,
            &Error::not_found("This invitation link is not valid"),
        );
    }
    let password = p.raw("password").unwrap_or_default().to_string();
    if p.raw("password2").unwrap_or_default() != password {
        let t = token.clone();
        return match state.db(move |c| orgs::check_invitation(c, &t)).await {
            Ok((_, user)) => page(
                StatusCode::BAD_REQUEST,
                title,
                &set_password_html(&user.email, Some("The two passwords differ.")),
            ),
            Err(e) => error_page(title, &e),
        };
    }
    let st = state.clone();
    match state
        .db(move |c| orgs::accept_invitation(c, &st.hasher, &token, &password))
        .await
    {
        Ok(user) => page(
            StatusCode::OK,
            "Password set",
            &format!(
                "<p>You can now sign in as <b>{}</b>.</p>",
                escape(&user.email)
            ),
        ),
        Err(e) => error_page(title, &e),
    }
}

const CONFIRM_FORM: &str = "<p>A slicer or another application asks to sign in to printfarm as you. \
    Sign in here to allow it; close this page to refuse.</p>\
    <form method=\"post\"><label>Email<input type=\"email\" name=\"username\" required autocomplete=\"username\"></label>\
    <label>Password<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label>\
    <button type=\"submit\">Allow sign-in</button></form>";

async fn confirm_login_form(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let token = path.into_inner();
    let title = "Confirm sign-in";
    if !crate::services::auth::is_token_shaped(&token) {
        return error_page(title, &Error::not_found("Unknown login token"));
    }
    match state.db(move |c| login_tokens::check(c, &token)).await {
        Ok(()) => page(StatusCode::OK, title, CONFIRM_FORM),
        Err(e) => error_page(title, &e),
    }
}

/// Confirms with the user's password, or with a live `session` for clients that hold one.
async fn confirm_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let token = path.into_inner();
    let title = "Confirm sign-in";
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return error_page(title, &e),
    };
    if !crate::services::auth::is_token_shaped(&token) {
        return error_page(title, &Error::not_found("Unknown login token"));
    }
    let user = if let Some(session) = p.str("session").map(str::to_string) {
        let policy = state.session_policy.clone();
        state
            .db(move |c| sessions::authenticate(c, &policy, &session).map(|a| a.user))
            .await
    } else {
        let username = p.str("username").unwrap_or_default().to_string();
        let password = p.raw("password").unwrap_or_default().to_string();
        let addr = client_addr(&req, state.config.server.trust_forwarded_for);
        let st = state.clone();
        web::block(move || {
            sessions::verify_credentials(
                &st.pool,
                &st.hasher,
                &st.session_policy,
                &username,
                &password,
                &addr,
            )
        })
        .await
        .map_err(Error::from)
        .and_then(|r| r)
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => return error_page(title, &e),
    };
    let email = user.email.clone();
    match state.db(move |c| login_tokens::confirm(c, &token, &user)).await {
        Ok(()) => page(
            StatusCode::OK,
            "Sign-in allowed",
            &format!(
                "<p>Signed in as <b>{}</b>. You can close this page and return to your application.</p>",
                escape(&email)
            ),
        ),
        Err(e) => error_page(title, &e),
    }
}
