//! Calls 1–3: login, loginout (alias logout), check_session.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::decode::RawText;
use super::envelope::{ok, Envelope, Failures, Nothing};
use super::{client_addr, forms, Args, Form, Signed};
use crate::error::Error;
use crate::services::sessions;
use crate::AppState;

/// A new session.
#[derive(Serialize, ToSchema)]
pub struct SessionMessage {
    pub session: String,
}

/// 1. User login.
#[utoipa::path(post, path = "/apiglobal/login", tag = "Sessions",
    request_body(content = forms::Login, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Signed in", body = Envelope<SessionMessage>), Failures))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Args(p): Args<forms::Login>,
) -> Result<HttpResponse, Error> {
    // Some clients send the account as `email`.
    let username = p
        .username
        .or(p.email)
        .ok_or_else(|| Error::invalid("missing required parameter 'username'"))?;
    let RawText(password) = p.password;
    if password.is_empty() {
        return Err(Error::invalid("missing required parameter 'password'"));
    }
    let addr = client_addr(&req, state.config.server.trust_forwarded_for);
    let st = state.clone();
    let outcome = web::block(move || {
        sessions::login(
            &st.pool,
            &st.hasher,
            &st.session_policy,
            &username,
            &password,
            &addr,
        )
    })
    .await??;
    Ok(ok(SessionMessage {
        session: outcome.token,
    }))
}

/// 2. User logout (`logout` is an alias of the documented `loginout`).
#[utoipa::path(post, path = "/apiglobal/loginout", tag = "Sessions",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The session is over", body = Envelope<Nothing>), Failures))]
pub async fn logout(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse, Error> {
    // Read by hand, not decoded: a missing session is 401 here, not a missing parameter.
    let token = p
        .str("session")
        .ok_or_else(|| Error::Unauthenticated("missing required parameter 'session'".into()))?
        .to_string();
    state.db(move |c| sessions::logout(c, &token)).await?;
    Ok(ok(Nothing))
}

/// 3. Check session.
#[utoipa::path(post, path = "/apiglobal/check_session", tag = "Sessions",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Session is valid`", body = Envelope<String>), Failures))]
pub async fn check_session(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse, Error> {
    call.caller.authenticated(&state).await?;
    Ok(ok("Session is valid"))
}
