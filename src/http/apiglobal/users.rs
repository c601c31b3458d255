//! Calls 6, 18, 19, 20, 26, 34 (workgroups and organization users) and the printfarm
//! extension `create_workgroup`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::envelope::ok;
use super::{authenticate, Form};
use crate::db::models::rights;
use crate::error::Error;
use crate::services::orgs::{self, OrgUserRequest};
use crate::AppState;

pub async fn get_workgroups_simple_list(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let list = state.db(move |c| orgs::workgroups_for(c, &me)).await?;
    Ok(ok(list
        .iter()
        .map(|(wg, r)| json!({"id": wg.id, "name": wg.name, "rights": r}))
        .collect::<Vec<_>>()))
}

pub async fn get_workgroup_users(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let wg = p.required_i64("workgroup_id")?;
    let users = state.db(move |c| orgs::workgroup_users(c, &me, wg)).await?;
    Ok(ok(users
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "email": u.email,
                "name": u.full_name(),
                "monthly_quota": u.monthly_quota,
                "balance": u.balance,
            })
        })
        .collect::<Vec<_>>()))
}

pub async fn add_user_to_workgroup(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let wg = p.required_i64("workgroup_id")?;
    let email = p.required_str("email")?.to_string();
    // printfarm extension: the member's rights (default 2, can print).
    let r = p.i64("rights")?.map_or(Ok(rights::CAN_PRINT), |r| {
        i32::try_from(r).map_err(|_| Error::bad_request("rights must be 2 or 3"))
    })?;
    let user_id = state
        .db(move |c| orgs::add_user_to_workgroup(c, &me, wg, &email, r))
        .await?;
    Ok(ok(json!({ "user_id": user_id })))
}

pub async fn delete_user_from_workgroup(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let wg = p.required_i64("workgroup_id")?;
    let user = p.required_i64("user_id")?;
    state
        .db(move |c| orgs::delete_user_from_workgroup(c, &me, wg, user))
        .await?;
    Ok(ok(json!([])))
}

pub async fn create_organization_user(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let email = p.required_str("email")?.to_string();
    let gdpr = p.required_i64("gdpr")?;
    let role = p.i64("access_role")?.unwrap_or(0);
    let text = |k: &str| p.str(k).unwrap_or_default().to_string();
    let (firstname, lastname, company) = (text("firstname"), text("lastname"), text("company"));
    let ttl = chrono::Duration::hours(state.config.auth.invitation_hours);
    let st = state.clone();
    let (user, _token) = state
        .db(move |c| {
            orgs::create_organization_user(
                c,
                &st.hasher,
                &me,
                &OrgUserRequest {
                    email: &email,
                    gdpr: i32::try_from(gdpr).unwrap_or(-1),
                    firstname: &firstname,
                    lastname: &lastname,
                    company: &company,
                    access_role: i32::try_from(role).unwrap_or(-1),
                },
                ttl,
            )
        })
        .await?;
    tracing::info!(
        user = user.id,
        email = %user.email,
        "organization user created; `printfarm admin invite-link --email …` prints a set-password link"
    );
    Ok(ok(json!({})))
}

pub async fn update_user_settings(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let user = p.required_i64("user_id")?;
    let balance = p.f64("balance")?;
    let quota = p.i64("quota")?;
    state
        .db(move |c| orgs::update_user_settings(c, &me, user, balance, quota))
        .await?;
    Ok(ok("Ok"))
}

/// printfarm extension: an organization admin creates a workgroup (`name`, `password`).
pub async fn create_workgroup(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse, Error> {
    let me = authenticate(&state, &p).await?.user;
    let name = p.required_str("name")?.to_string();
    let password = p.str("password").unwrap_or_default().to_string();
    let wg = state
        .db(move |c| orgs::create_workgroup(c, &me, &name, &password))
        .await?;
    Ok(ok(json!({"id": wg.id, "name": wg.name})))
}
