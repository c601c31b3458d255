//! The browser session shared by the web console and the slicer pages (`/quickprint`,
//! `/myfiles`): the session token in an HttpOnly cookie, a CSRF token derived from it for
//! every form that changes something, and signing in and out through the same rules as the
//! Global API's `login`.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::db::models::User;
use crate::error::Error;
use crate::http::apiglobal::client_addr;
use crate::services::{auth, sessions};
use crate::AppState;

pub const COOKIE: &str = "printfarm_session";

/// The token that proves a form comes from one of our pages: derived from the session, so
/// another site can neither read nor forge it.
pub fn csrf_token(session: &str) -> String {
    hex::encode(Sha256::digest(
        format!("quickprint-csrf:{session}").as_bytes(),
    ))
}

/// The session cookie. `SameSite=Lax` keeps it off cross-site POSTs (the CSRF token guards
/// them besides) while links from mail or a slicer still arrive signed in; `Secure` when the
/// server is reached over HTTPS.
pub fn session_cookie(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.server.public_url.starts_with("https://"))
        .max_age(max_age)
        .finish()
}

/// The cookie that ends the browser's session.
pub fn cleared_cookie(state: &AppState) -> Cookie<'static> {
    session_cookie(state, String::new(), CookieDuration::ZERO)
}

/// A fresh session's cookie. It lives as long as the session can (its hard cap, else its idle
/// time): the server ends an idle session anyway, while an open tab (a wall screen) that keeps
/// its session in use must not lose the cookie first, since a live page sets no new cookie.
pub fn new_session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let policy = &state.session_policy;
    let life = if policy.max_age > chrono::Duration::zero() {
        policy.max_age
    } else {
        policy.idle
    };
    session_cookie(state, token, CookieDuration::seconds(life.num_seconds()))
}

/// The signed-in user of this browser, with the session token.
pub async fn browser_user(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Option<(User, String)> {
    let token = req.cookie(COOKIE)?.value().to_string();
    if !auth::is_token_shaped(&token) {
        return None;
    }
    let policy = state.session_policy.clone();
    let t = token.clone();
    let user = state
        .db(move |c| sessions::authenticate(c, &policy, &t).map(|a| a.user))
        .await
        .ok()?;
    Some((user, token))
}

/// The signed-in user of a form post, once its CSRF token matches the session.
pub async fn checked_user(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    csrf: &str,
) -> Result<(User, String), Error> {
    let (user, session) = browser_user(state, req)
        .await
        .ok_or_else(|| Error::Unauthenticated("Sign in first (your session ended)".into()))?;
    if !auth::same_secret(csrf, &csrf_token(&session)) {
        return Err(Error::denied(
            "This form did not come from this page; reload it and try again",
        ));
    }
    Ok((user, session))
}

/// Signs in with email and password (rate limits and lockouts as for `login`); answers the
/// new session's token.
pub async fn sign_in(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    username: String,
    password: String,
) -> Result<String, Error> {
    let addr = client_addr(req, state.config.server.trust_forwarded_for);
    let st = state.clone();
    web::block(move || {
        sessions::login(
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
    .map(|o| o.token)
}

/// Ends the session on the server (the caller clears the cookie).
pub async fn sign_out(state: &web::Data<AppState>, session: String) {
    let _ = state.db(move |c| sessions::logout(c, &session)).await;
}

/// A POST that a page of another site made (browsers send `Origin` on every POST). Pages that
/// sign someone in check it: another site must not sign a visitor into an account of its
/// choosing (login CSRF), which a CSRF token cannot prevent before there is a session.
pub fn from_another_site(state: &AppState, req: &HttpRequest) -> bool {
    let origin = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let ours = crate::http::public_base(&state.config, Some(req));
    origin.is_some_and(|o| o != ours.trim_end_matches('/'))
}

/// Post/redirect/get: a 303 to a page of ours, never cached.
pub fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::SeeOther();
    b.insert_header(("Location", location.to_string()))
        .insert_header(("Cache-Control", "no-store"));
    b
}

/// Where to go after signing in: a path on this server only (`/…`, not `//host` or a URL),
/// so a crafted link cannot send the person elsewhere.
pub fn local_path(next: Option<&str>) -> Option<String> {
    next.map(str::trim)
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .filter(|n| !n.chars().any(char::is_control))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            local_path(Some("/quickprint?file_id=3")).as_deref(),
            Some("/quickprint?file_id=3")
        );
        assert_eq!(local_path(Some("//evil.example/x")), None);
        assert_eq!(local_path(Some("https://evil.example/")), None);
        assert_eq!(local_path(Some("/\\evil.example")), None);
        assert_eq!(local_path(Some("/a\nb")), None);
        assert_eq!(local_path(None), None);
    }
}
