//! Calls 24 and 25 (Google sign-in, GDPR registration) and the slicer sign-in flow
//! (`generate_login_token`, `login_with_token`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::envelope::ok;
use super::{client_addr, Form};
use crate::error::Error;
use crate::services::google::{self, SignIn};
use crate::services::login_tokens;
use crate::AppState;

pub async fn google_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let token = p.required_str("token")?;
    let who = state.google.verify(token).await?;
    let addr = client_addr(&req, state.config.server.trust_forwarded_for);
    let st = state.clone();
    let outcome = state
        .db(move |c| google::sign_in(c, &st.session_policy, st.google.config(), &who, &addr))
        .await?;
    Ok(match outcome {
        SignIn::Session { token, email } => ok(json!({"session": token, "email": email})),
        SignIn::GdprNeeded { token } => ok(json!({"session": token, "gdpr_needed": true})),
    })
}

pub async fn gdpr_registration(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let session = p
        .str("session")
        .ok_or_else(|| Error::Unauthorized("missing required parameter 'session'".into()))?
        .to_string();
    let gdpr1 = p.bool("gdpr1")?.unwrap_or(false);
    let gdpr2 = p.bool("gdpr2")?.unwrap_or(false);
    let cancel = p.str("cancel").is_some();
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
        Some((session, email)) => ok(json!({"session": session, "email": email})),
        None => ok(json!([])),
    })
}

pub async fn generate_login_token(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let ttl = chrono::Duration::minutes(state.config.auth.login_token_minutes);
    let token = state.db(move |c| login_tokens::generate(c, ttl)).await?;
    let url = format!(
        "{}/noauth/apiglobal_login_with_token/{token}",
        crate::http::public_base(&state.config, Some(&req))
    );
    Ok(ok(json!({"token": token, "url": url})))
}

/// The slicer's poll: `result: true` without a session means "keep waiting".
pub async fn login_with_token(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let token = p.required_str("token")?.to_string();
    let st = state.clone();
    let outcome = state
        .db(move |c| login_tokens::poll(c, &st.session_policy, &token))
        .await?;
    Ok(match outcome {
        Some((session, email)) => ok(json!({"session": session, "email": email})),
        None => ok(json!({"waiting": true})),
    })
}
