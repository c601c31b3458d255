//! printfarm extensions: API tokens for the `/v1` API (`create_api_token`, `list_api_tokens`,
//! `revoke_api_token`).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::envelope::ok;
use super::{authenticate, Form};
use crate::error::Result;
use crate::services::api_tokens;
use crate::AppState;

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// `name`, optional `expires_in_days`; the token is shown once.
pub async fn create_api_token(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let name = p.required_str("name")?.to_string();
    let days = p.i64("expires_in_days")?;
    let (row, jwt) = state
        .db(move |c| api_tokens::create(c, &me, &name, days))
        .await?;
    Ok(ok(json!({
        "id": row.id,
        "name": row.name,
        "token": jwt,
        "expires_at": row.expires_at.map(|e| e.format(DATETIME).to_string()),
    })))
}

pub async fn list_api_tokens(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let rows = state.db(move |c| api_tokens::list(c, &me)).await?;
    let fmt = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.format(DATETIME).to_string());
    Ok(ok(rows
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "created_at": t.created_at.format(DATETIME).to_string(),
                "last_used_at": fmt(t.last_used_at),
                "expires_at": fmt(t.expires_at),
                "revoked": t.revoked_at.is_some(),
            })
        })
        .collect::<Vec<_>>()))
}

pub async fn revoke_api_token(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let id = p.required_i64("token_id")?;
    state.db(move |c| api_tokens::revoke(c, &me, id)).await?;
    Ok(ok("Ok"))
}
