//! Calls 24 and 25 (Google sign-in, GDPR registration) and the slicer sign-in flow
//! (`generate_login_token`, `login_with_token`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures, Nothing};
use super::{client_addr, forms, Args, Signed};
use crate::error::Error;
use crate::services::google::{self, SignIn};
use crate::services::login_tokens;
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub session: String,
    pub email: String,
}

/// A new user: the session may only call `gdpr_registration`.
#[derive(Serialize, ToSchema)]
pub struct GdprPending {
    pub session: String,
    pub gdpr_needed: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum GoogleLoginMessage {
    SignedIn(SignedIn),
    GdprNeeded(GdprPending),
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum GdprMessage {
    SignedIn(SignedIn),
    Cancelled(Nothing),
}

#[derive(Serialize, ToSchema)]
pub struct Waiting {
    pub waiting: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenLoginMessage {
    SignedIn(SignedIn),
    Waiting(Waiting),
}

#[utoipa::path(post, path = "/apiglobal/google_login", tag = "Sessions",
    request_body(content = forms::GoogleLogin, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "A session for a known user, or a GDPR-pending one for a new user", body = Envelope<GoogleLoginMessage>), Failures))]
pub async fn google_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Args(p): Args<forms::GoogleLogin>,
) -> Result<HttpResponse, Error> {
    let who = state.google.verify(&p.token).await?;
    let addr = client_addr(&req, state.config.server.trust_forwarded_for);
    let st = state.clone();
    let outcome = state
        .db(move |c| google::sign_in(c, &st.session_policy, st.google.config(), &who, &addr))
        .await?;
    Ok(match outcome {
        SignIn::Session { token, email } => ok(GoogleLoginMessage::SignedIn(SignedIn {
            session: token,
            email,
        })),
        SignIn::GdprNeeded { token } => ok(GoogleLoginMessage::GdprNeeded(GdprPending {
            session: token,
            gdpr_needed: true,
        })),
    })
}

#[utoipa::path(post, path = "/apiglobal/gdpr_registration", tag = "Sessions",
    request_body(content = forms::GdprRegistration, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The registered user's session, or `[]` after `cancel`", body = Envelope<GdprMessage>), Failures))]
pub async fn gdpr_registration(
    state: web::Data<AppState>,
    Args(p): Args<forms::GdprRegistration>,
) -> Result<HttpResponse, Error> {
    let session = p
        .session
        .ok_or_else(|| Error::Unauthenticated("missing required parameter 'session'".into()))?;
    let gdpr1 = p.gdpr1.unwrap_or(false);
    let gdpr2 = p.gdpr2.unwrap_or(false);
    let cancel = p.cancel.is_some();
    let st = state.clone();
    let done = state
        .db(move |c| {
            google::complete_registration(
                c,
                &st.hasher,
                st.google.config(),
                &session,
                gdpr1,
                gdpr2,
                cancel,
            )
        })
        .await?;
    Ok(match done {
        Some((session, email)) => ok(GdprMessage::SignedIn(SignedIn { session, email })),
        None => ok(GdprMessage::Cancelled(Nothing)),
    })
}

/// Slicer sign-in: `message` is the token itself (slicers read it as a string); the slicer
/// opens `/noauth/apiglobal_login_with_token/<token>` in a browser and calls `login_with_token`.
#[utoipa::path(post, path = "/apiglobal/generate_login_token", tag = "Sessions",
    responses((status = 200, description = "A login token (the `message` string); the user confirms it at `/noauth/apiglobal_login_with_token/<token>`", body = Envelope<String>), Failures))]
pub async fn generate_login_token(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let ttl = chrono::Duration::minutes(state.config.auth.login_token_minutes);
    let token = state.db(move |c| login_tokens::generate(c, ttl)).await?;
    Ok(ok(token))
}

/// A one-time link (`message`: its token) that signs a browser in as the caller: the 3DPrinterOS
/// Cura plugin opens `/noauth/login_with_auth_token/<token>` with it. Usable once, for five
/// minutes, after the person confirms on that page.
#[utoipa::path(post, path = "/apiglobal/generate_auth_token", tag = "Sessions",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The token of a one-time browser sign-in link, `/noauth/login_with_auth_token/<token>` (the `message` string)", body = Envelope<String>), Failures))]
pub async fn generate_auth_token(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse, Error> {
    let caller = call.caller;
    let token = caller.db(&state, login_tokens::generate_browser).await?;
    Ok(ok(token))
}

/// The slicer's poll. Slicers give up after ~10 quick polls, so the request is held open until
/// the user confirms (or `auth.login_token_hold_secs` pass, or the server shuts down); only
/// then does it answer `result: true` without a session, meaning "keep waiting".
#[utoipa::path(post, path = "/apiglobal/login_with_token", tag = "Sessions",
    request_body(content = forms::LoginWithToken, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The session once the user confirmed in the browser (the request waits for it, up to `auth.login_token_hold_secs`); `{waiting: true}` when the wait ran out", body = Envelope<TokenLoginMessage>), Failures))]
pub async fn login_with_token(
    state: web::Data<AppState>,
    Args(p): Args<forms::LoginWithToken>,
) -> Result<HttpResponse, Error> {
    let token = p.token;
    let hold = std::time::Duration::from_secs(state.config.auth.login_token_hold_secs);
    let deadline = tokio::time::Instant::now() + hold;
    let _held = state.notifier.hold();
    // The first pass polls at once, so unknown, expired and used tokens answer without waiting.
    let mut confirmed = true;
    loop {
        if confirmed {
            let (st, t) = (state.clone(), token.clone());
            let outcome = state
                .db(move |c| login_tokens::poll(c, &st.session_policy, &t))
                .await?;
            if let Some((session, email)) = outcome {
                return Ok(ok(TokenLoginMessage::SignedIn(SignedIn { session, email })));
            }
        }
        if tokio::time::Instant::now() >= deadline || state.notifier.is_shutting_down() {
            return Ok(ok(TokenLoginMessage::Waiting(Waiting { waiting: true })));
        }
        tokio::select! {
            _ = tokio::time::sleep_until((tokio::time::Instant::now() + CONFIRM_CHECK_EVERY).min(deadline)) => {}
            _ = state.notifier.shutting_down() => {}
        }
        // The confirmation may happen on another server instance, so the row is what is
        // watched (a read; sign-ins are rare, a check every 250 ms per waiting slicer is cheap).
        let t = token.clone();
        confirmed = state.db(move |c| login_tokens::is_confirmed(c, &t)).await?;
    }
}

const CONFIRM_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
