//! printfarm extensions: API tokens for the `/v1` API (`create_api_token`, `list_api_tokens`,
//! `revoke_api_token`).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{datetime, ok, Envelope, Failures};
use super::{forms, Signed};
use crate::error::Result;
use crate::services::api_tokens;
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct NewApiToken {
    pub id: i64,
    pub name: String,
    /// `Authorization: Bearer <token>` for `/v1`.
    pub token: String,
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenItem {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked: bool,
}

/// `name`, optional `expires_in_days`; the token is shown once.
#[utoipa::path(post, path = "/apiglobal/create_api_token", tag = "printfarm extensions",
    request_body(content = forms::CreateApiToken, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The new token, shown only this once", body = Envelope<NewApiToken>), Failures))]
pub async fn create_api_token(
    state: web::Data<AppState>,
    call: Signed<forms::CreateApiToken>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let name = p.name;
    let days = p.expires_in_days;
    let (row, jwt) = caller
        .db(&state, move |c, me| api_tokens::create(c, me, &name, days))
        .await?;
    Ok(ok(NewApiToken {
        id: row.id,
        name: row.name,
        token: jwt,
        expires_at: row.expires_at.as_ref().map(datetime),
    }))
}

#[utoipa::path(post, path = "/apiglobal/list_api_tokens", tag = "printfarm extensions",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The caller's tokens (without their secrets)", body = Envelope<Vec<ApiTokenItem>>), Failures))]
pub async fn list_api_tokens(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse> {
    let caller = call.caller;
    let rows = caller.db(&state, api_tokens::list).await?;
    let fmt = |t: Option<chrono::NaiveDateTime>| t.as_ref().map(datetime);
    Ok(ok(rows
        .iter()
        .map(|t| ApiTokenItem {
            id: t.id,
            name: t.name.clone(),
            created_at: datetime(&t.created_at),
            last_used_at: fmt(t.last_used_at),
            expires_at: fmt(t.expires_at),
            revoked: t.revoked_at.is_some(),
        })
        .collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/apiglobal/revoke_api_token", tag = "printfarm extensions",
    request_body(content = forms::RevokeApiToken, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`; the token stops working at once", body = Envelope<String>), Failures))]
pub async fn revoke_api_token(
    state: web::Data<AppState>,
    call: Signed<forms::RevokeApiToken>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let id = p.token_id;
    caller
        .db(&state, move |c, me| api_tokens::revoke(c, me, id))
        .await?;
    Ok(ok("Ok"))
}
