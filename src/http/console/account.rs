//! The signed-in person's own page: their jobs on every printer, their balance and monthly
//! quota, and their `/v1` API tokens (made here, shown once, revoked here) — the same rules as
//! `create_api_token`, `list_api_tokens` and `revoke_api_token`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{job_outcome, posted, refused, render, to_login, Chrome, Stamp};
use crate::db::models::Organization;
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{browser_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::{api_tokens, jobs};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/account").get(page);
    r.at("/account/tokens").post(create_token);
    r.at("/account/tokens/{id}/revoke").post(revoke_token);
}

struct MyJob {
    filename: String,
    printer: String,
    created: Stamp,
    outcome: String,
    tone: &'static str,
}

struct TokenView {
    id: i64,
    name: String,
    created: Stamp,
    last_used: Option<Stamp>,
    expires: Option<Stamp>,
    state: &'static str,
    live: bool,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    name: String,
    balance: Option<String>,
    quota: Option<String>,
    jobs: Vec<MyJob>,
    tokens: Vec<TokenView>,
    /// A token just made: shown once.
    new_token: Option<(String, String)>,
}

async fn account_page(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    new_token: Option<(String, String)>,
) -> HttpResponse {
    let Some((user, session)) = browser_user(state, req).await else {
        return to_login(req);
    };
    let me = user.clone();
    let loaded = state
        .db(move |c| {
            let org = Organization::find(c, me.organization_id)?;
            let jobs = jobs::my_jobs(c, &me, 50)?;
            let tokens = api_tokens::list(c, &me)?;
            Ok((org, jobs, tokens))
        })
        .await;
    let (org, my_jobs, tokens) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(state, req, e).await,
    };
    let now = crate::db::now();
    let currency = org.map(|o| o.currency).unwrap_or_default();
    render(
        StatusCode::OK,
        &AccountPage {
            chrome: Chrome::new(Some((&user, &session)), "account"),
            csrf: csrf_token(&session),
            email: user.email.clone(),
            name: user.full_name(),
            balance: user
                .balance
                .map(|b| format!("{b:.2} {currency}").trim().to_string()),
            quota: user.monthly_quota.map(|q| {
                format!(
                    "{} of {q} prints used this month",
                    jobs::quota_used(&user, now)
                )
            }),
            jobs: my_jobs
                .iter()
                .map(|(j, file, printer)| {
                    let (outcome, tone) = job_outcome(j);
                    MyJob {
                        filename: file.clone(),
                        printer: printer.clone(),
                        created: Stamp::new(j.created_at),
                        outcome,
                        tone,
                    }
                })
                .collect(),
            tokens: tokens
                .iter()
                .map(|t| {
                    let expired = t.expires_at.is_some_and(|e| e <= now);
                    let state = if t.revoked_at.is_some() {
                        "Revoked"
                    } else if expired {
                        "Expired"
                    } else {
                        "Active"
                    };
                    TokenView {
                        id: t.id,
                        name: t.name.clone(),
                        created: Stamp::new(t.created_at),
                        last_used: t.last_used_at.map(Stamp::new),
                        expires: t.expires_at.map(Stamp::new),
                        live: state == "Active",
                        state,
                    }
                })
                .collect(),
            new_token,
        },
    )
}

async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    account_page(&state, &req, None).await
}

/// A new token: shown once on the page that answers (never stored in clear, never again).
async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let name = p.str("name").unwrap_or_default().to_string();
        let days = p.i64("days")?;
        state
            .db(move |c| api_tokens::create(c, &user, &name, days))
            .await
    }
    .await;
    match outcome {
        Ok((token, jwt)) => account_page(&state, &req, Some((token.name, jwt))).await,
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn revoke_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = path.into_inner();
    let outcome = async {
        let (_, user, _) = posted(&state, &req, form).await?;
        state.db(move |c| api_tokens::revoke(c, &user, id)).await
    }
    .await;
    match outcome {
        Ok(()) => see_other("/account#tokens").finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}
