//! Calls 6, 18, 19, 20, 26, 34 (workgroups and organization users) and the printfarm
//! extension `create_workgroup`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures, Nothing};
use super::{forms, Signed};
use crate::db::models::{rights, signed, UserId};
use crate::error::Error;
use crate::services::orgs::{self, OrgUserRequest};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct WorkgroupItem {
    pub id: i64,
    pub name: String,
    /// 2 can print, 3 can queue.
    pub rights: i32,
}

#[derive(Serialize, ToSchema)]
pub struct WorkgroupUser {
    pub id: i64,
    pub email: String,
    /// First and last name.
    pub name: String,
    /// Prints per month, or null for no quota.
    pub monthly_quota: Option<i32>,
    pub balance: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserIdMessage {
    pub user_id: i64,
}

/// The seed's empty object `{}`.
#[derive(Serialize, ToSchema)]
pub struct EmptyObject {}

#[derive(Serialize, ToSchema)]
pub struct WorkgroupCreated {
    pub id: i64,
    pub name: String,
}

#[utoipa::path(post, path = "/apiglobal/get_workgroups_simple_list", tag = "Workgroups and users",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The caller's workgroups (all of the organization's for admins)", body = Envelope<Vec<WorkgroupItem>>), Failures))]
pub async fn get_workgroups_simple_list(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse, Error> {
    let caller = call.caller;
    let list = caller
        .read(
            &state,
            |c, gate| {
                Ok(
                    signed::org_workgroups(c, gate)?.map(|(session, (role, rows))| {
                        (session, orgs::workgroups_of_org_rows(role, rows))
                    }),
                )
            },
            orgs::workgroups_for,
        )
        .await?;
    Ok(ok(list
        .iter()
        .map(|(wg, r)| WorkgroupItem {
            id: wg.id,
            name: wg.name.clone(),
            rights: *r,
        })
        .collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/apiglobal/get_workgroup_users", tag = "Workgroups and users",
    request_body(content = forms::WorkgroupId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The workgroup's members", body = Envelope<Vec<WorkgroupUser>>), Failures))]
pub async fn get_workgroup_users(
    state: web::Data<AppState>,
    call: Signed<forms::WorkgroupId>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let wg = p.workgroup_id;
    let users = caller
        .db(&state, move |c, me| orgs::workgroup_users(c, me, wg))
        .await?;
    Ok(ok(users
        .iter()
        .map(|u| WorkgroupUser {
            id: u.id.0,
            email: u.email.clone(),
            name: u.full_name(),
            monthly_quota: u.monthly_quota,
            balance: u.balance,
        })
        .collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/apiglobal/add_user_to_workgroup", tag = "Workgroups and users",
    request_body(content = forms::AddUserToWorkgroup, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The member's user id", body = Envelope<UserIdMessage>), Failures))]
pub async fn add_user_to_workgroup(
    state: web::Data<AppState>,
    call: Signed<forms::AddUserToWorkgroup>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let wg = p.workgroup_id;
    let email = p.email;
    // printfarm extension: the member's rights (default 2, can print).
    let r = p.rights.map_or(Ok(rights::CAN_PRINT), |r| {
        i32::try_from(r).map_err(|_| Error::invalid("rights must be 2 or 3"))
    });
    let r = caller.valid(&state, r).await?;
    let user_id = caller
        .db(&state, move |c, me| {
            orgs::add_user_to_workgroup(c, me, wg, &email, r)
        })
        .await?;
    Ok(ok(UserIdMessage { user_id: user_id.0 }))
}

#[utoipa::path(post, path = "/apiglobal/delete_user_from_workgroup", tag = "Workgroups and users",
    request_body(content = forms::DeleteUserFromWorkgroup, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Removed", body = Envelope<Nothing>), Failures))]
pub async fn delete_user_from_workgroup(
    state: web::Data<AppState>,
    call: Signed<forms::DeleteUserFromWorkgroup>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let wg = p.workgroup_id;
    let user = UserId(p.user_id);
    caller
        .db(&state, move |c, me| {
            orgs::delete_user_from_workgroup(c, me, wg, user)
        })
        .await?;
    Ok(ok(Nothing))
}

#[utoipa::path(post, path = "/apiglobal/create_organization_user", tag = "Workgroups and users",
    request_body(content = forms::CreateOrganizationUser, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Created; `printfarm admin invite-link` prints the user's set-password link", body = Envelope<EmptyObject>), Failures))]
pub async fn create_organization_user(
    state: web::Data<AppState>,
    call: Signed<forms::CreateOrganizationUser>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let email = p.email;
    let gdpr = p.gdpr;
    let role = p.access_role.unwrap_or(0);
    let (firstname, lastname, company) = (
        p.firstname.unwrap_or_default(),
        p.lastname.unwrap_or_default(),
        p.company.unwrap_or_default(),
    );
    let ttl = chrono::Duration::hours(state.config.auth.invitation_hours);
    let st = state.clone();
    let (org, created) = caller
        .db(&state, move |c, me| {
            let created = orgs::create_organization_user(
                c,
                &st.hasher,
                me,
                &OrgUserRequest {
                    email: &email,
                    gdpr: i32::try_from(gdpr).unwrap_or(-1),
                    firstname: &firstname,
                    lastname: &lastname,
                    company: &company,
                    access_role: i32::try_from(role).unwrap_or(-1),
                },
                ttl,
            )?;
            Ok((me.organization_id, created))
        })
        .await?;
    match created {
        Some((user, _token)) => tracing::info!(
            user = user.id.0,
            email = %user.email,
            "organization user created; `printfarm admin invite-link --email …` prints a set-password link"
        ),
        None => tracing::warn!(
            organization = org.0,
            "create_organization_user: the email belongs to another organization's account; \
             nothing was created (the caller was not told)"
        ),
    }
    Ok(ok(EmptyObject {}))
}

#[utoipa::path(post, path = "/apiglobal/update_user_settings", tag = "Workgroups and users",
    request_body(content = forms::UpdateUserSettings, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`Ok`", body = Envelope<String>), Failures))]
pub async fn update_user_settings(
    state: web::Data<AppState>,
    call: Signed<forms::UpdateUserSettings>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let user = UserId(p.user_id);
    let balance = p.balance;
    let quota = p.quota;
    caller
        .db(&state, move |c, me| {
            orgs::update_user_settings(c, me, user, balance, quota)
        })
        .await?;
    Ok(ok("Ok"))
}

/// printfarm extension: an organization admin creates a workgroup (`name`, `password`).
#[utoipa::path(post, path = "/apiglobal/create_workgroup", tag = "printfarm extensions",
    request_body(content = forms::CreateWorkgroup, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The new workgroup", body = Envelope<WorkgroupCreated>), Failures))]
pub async fn create_workgroup(
    state: web::Data<AppState>,
    call: Signed<forms::CreateWorkgroup>,
) -> Result<HttpResponse, Error> {
    let (caller, p) = (call.caller, call.params);
    let name = p.name;
    let password = p.password.unwrap_or_default();
    let wg = caller
        .db(&state, move |c, me| {
            orgs::create_workgroup(c, me, &name, &password)
        })
        .await?;
    Ok(ok(WorkgroupCreated {
        id: wg.id,
        name: wg.name,
    }))
}
