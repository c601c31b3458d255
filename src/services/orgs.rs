//! Organizations, their users and workgroups, and who may manage what.
//!
//! Roles: organization admins manage their whole organization; workgroup admins (org role 2)
//! manage the workgroups they belong to; members see their own memberships. Ids from another
//! organization answer 404, exactly like ids that do not exist.

use crate::db::models::{
    access_role, rights, OrgId, OrgSettingsChange, Organization, Printer, PrinterId,
    PrinterWorkgroups, User, UserId, UserToken, Workgroup, WorkgroupMember,
};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::services::auth::{random_token, token_hash, PasswordHasher};
use crate::services::bootstrap::{create_user, NewAccount};

pub const INVITATION: &str = "invitation";

pub fn is_org_admin(user: &User) -> bool {
    user.access_role == access_role::ADMIN
}

pub fn require_org_admin(user: &User) -> Result<()> {
    if is_org_admin(user) {
        Ok(())
    } else {
        Err(Error::denied("Only organization admins may do this"))
    }
}

/// A workgroup of the caller's organization, or 404.
pub fn visible_workgroup(conn: &mut DbConn, caller: &User, id: i64) -> Result<Workgroup> {
    Workgroup::find_in_org(conn, caller.organization_id, id)?
        .ok_or_else(|| Error::not_found(format!("Workgroup {id} not found")))
}

/// A workgroup the caller may manage: 404 outside the organization, 403 inside without rights.
pub fn manageable_workgroup(conn: &mut DbConn, caller: &User, id: i64) -> Result<Workgroup> {
    let wg = visible_workgroup(conn, caller, id)?;
    if is_org_admin(caller) {
        return Ok(wg);
    }
    if caller.access_role == access_role::WORKGROUP_ADMIN
        && WorkgroupMember::find(conn, wg.id, caller.id)?.is_some()
    {
        return Ok(wg);
    }
    Err(Error::denied(
        "Only organization admins and this workgroup's admins may manage it",
    ))
}

/// `get_workgroups_simple_list`: admins see every workgroup of the organization, others their own.
pub fn workgroups_for(conn: &mut DbConn, caller: &User) -> Result<Vec<(Workgroup, i32)>> {
    let mine = Workgroup::of_user(conn, caller.id)?;
    if !is_org_admin(caller) {
        return Ok(mine);
    }
    let all = Workgroup::all_in_org(conn, caller.organization_id)?;
    Ok(all
        .into_iter()
        .map(|wg| {
            let r = mine
                .iter()
                .find(|(m, _)| m.id == wg.id)
                .map_or(rights::CAN_PRINT, |(_, r)| *r);
            (wg, r)
        })
        .collect())
}

/// [`workgroups_for`] from the organization's workgroups with the caller's rights in each
/// (`signed::org_workgroups`): all of them for an admin, otherwise those the caller belongs to.
pub fn workgroups_of_org_rows(
    role: i32,
    rows: Vec<(Workgroup, Option<i32>)>,
) -> Vec<(Workgroup, i32)> {
    let admin = role == access_role::ADMIN;
    rows.into_iter()
        .filter_map(|(wg, r)| match r {
            Some(r) => Some((wg, r)),
            None => admin.then_some((wg, rights::CAN_PRINT)),
        })
        .collect()
}

pub fn workgroup_users(conn: &mut DbConn, caller: &User, workgroup_id: i64) -> Result<Vec<User>> {
    let wg = manageable_workgroup(conn, caller, workgroup_id)?;
    Ok(WorkgroupMember::users_of(conn, wg.id)?)
}

/// Adds a user of the same organization (by email) to a workgroup; an existing member gets the
/// given rights. Returns the user's id.
pub fn add_user_to_workgroup(
    conn: &mut DbConn,
    caller: &User,
    workgroup_id: i64,
    email: &str,
    member_rights: i32,
) -> Result<UserId> {
    if !rights::is_valid(member_rights) {
        return Err(Error::invalid(
            "rights must be 2 (can print) or 3 (can queue)",
        ));
    }
    db::write_transaction(conn, |c| {
        let wg = manageable_workgroup(c, caller, workgroup_id)?;
        let user = User::find_by_email(c, email)?
            .filter(|u| u.organization_id == caller.organization_id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "No user with email {} in your organization",
                    email.trim()
                ))
            })?;
        match WorkgroupMember::find(c, wg.id, user.id)? {
            Some(m) => WorkgroupMember::set_rights(c, m.id, member_rights)?,
            None => WorkgroupMember::insert(c, wg.id, user.id, member_rights)?,
        };
        Ok(user.id)
    })
}

pub fn delete_user_from_workgroup(
    conn: &mut DbConn,
    caller: &User,
    workgroup_id: i64,
    user_id: UserId,
) -> Result<()> {
    db::write_transaction(conn, |c| {
        let wg = manageable_workgroup(c, caller, workgroup_id)?;
        if WorkgroupMember::delete(c, wg.id, user_id)? == 0 {
            return Err(Error::not_found(format!(
                "User {user_id} is not a member of workgroup {workgroup_id}"
            )));
        }
        Ok(())
    })
}

pub fn create_workgroup(
    conn: &mut DbConn,
    caller: &User,
    name: &str,
    join_password: &str,
) -> Result<Workgroup> {
    require_org_admin(caller)?;
    create_workgroup_in(conn, caller.organization_id, name, join_password)
}

pub fn create_workgroup_in(
    conn: &mut DbConn,
    org: OrgId,
    name: &str,
    join_password: &str,
) -> Result<Workgroup> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("workgroup name must not be empty"));
    }
    if Organization::find(conn, org)?.is_none() {
        return Err(Error::not_found(format!("organization {org} not found")));
    }
    Ok(Workgroup::insert(conn, org, name, join_password)?)
}

pub struct OrgUserRequest<'a> {
    pub email: &'a str,
    pub gdpr: i32,
    pub firstname: &'a str,
    pub lastname: &'a str,
    pub company: &'a str,
    pub access_role: i32,
}

/// `create_organization_user`: a user without a password, with a set-password invitation.
/// Returns the user and the invitation token (shown to nobody but the admin CLI and tests).
pub fn create_organization_user(
    conn: &mut DbConn,
    hasher: &PasswordHasher,
    caller: &User,
    req: &OrgUserRequest,
    invitation_ttl: chrono::Duration,
) -> Result<Option<(User, String)>> {
    require_org_admin(caller)?;
    if req.gdpr != 1 && req.gdpr != 3 {
        return Err(Error::invalid("gdpr must be 1 or 3"));
    }
    db::write_transaction(conn, |c| {
        // Emails are unique across organizations, but whether one is taken elsewhere is not
        // this admin's to learn: such a request answers like a creation and creates nothing
        // (`None`; the handler tells the operator's log).
        if User::find_by_email(c, req.email)?
            .is_some_and(|u| u.organization_id != caller.organization_id)
        {
            return Ok(None);
        }
        let user = create_user(
            c,
            hasher,
            &NewAccount {
                organization_id: caller.organization_id,
                email: req.email,
                password: None,
                firstname: req.firstname.trim(),
                lastname: req.lastname.trim(),
                company: req.company.trim(),
                access_role: req.access_role,
                gdpr: req.gdpr,
            },
        )?;
        let token = issue_invitation(c, user.id, invitation_ttl)?;
        Ok(Some((user, token)))
    })
}

/// A fresh set-password invitation; earlier unused ones stop working.
pub fn issue_invitation(
    conn: &mut DbConn,
    user_id: UserId,
    ttl: chrono::Duration,
) -> Result<String> {
    let token = random_token();
    UserToken::delete_unused_for_user(conn, INVITATION, user_id)?;
    UserToken::insert(
        conn,
        INVITATION,
        &token_hash(&token),
        Some(user_id),
        db::now() + ttl,
    )?;
    Ok(token)
}

/// The user an invitation is for, if it is still usable.
pub fn check_invitation(conn: &mut DbConn, token: &str) -> Result<(UserToken, User)> {
    let t = UserToken::find(conn, INVITATION, &token_hash(token))?
        .ok_or_else(|| Error::not_found("This invitation link is not valid"))?;
    if t.used_at.is_some() {
        return Err(Error::Gone("This invitation link was already used".into()));
    }
    if t.expires_at <= db::now() {
        return Err(Error::Gone(
            "This invitation link has expired; ask your admin for a new one".into(),
        ));
    }
    let user = t
        .user_id
        .and_then(|id| User::find(conn, id).transpose())
        .transpose()?
        .ok_or_else(|| Error::not_found("This invitation link is not valid"))?;
    Ok((t, user))
}

/// Sets the invited user's password; the invitation then stops working.
pub fn accept_invitation(
    conn: &mut DbConn,
    hasher: &PasswordHasher,
    token: &str,
    password: &str,
) -> Result<User> {
    crate::services::auth::check_new_password(password)?;
    let hash = hasher.hash(password)?;
    db::write_transaction(conn, |c| {
        let (t, user) = check_invitation(c, token)?;
        if !UserToken::mark_used(c, t.id, db::now())? {
            return Err(Error::Gone("This invitation link was already used".into()));
        }
        User::set_password_hash(c, user.id, &hash)?;
        Ok(user)
    })
}

/// The organization's people (organization admins).
pub fn organization_users(conn: &mut DbConn, caller: &User) -> Result<Vec<User>> {
    require_org_admin(caller)?;
    Ok(User::of_org(conn, caller.organization_id)?)
}

/// A person of the admin's organization other than the admin: nobody takes their own admin
/// rights away or locks themselves out (another admin can).
fn other_member(conn: &mut DbConn, caller: &User, user_id: UserId) -> Result<User> {
    require_org_admin(caller)?;
    let user = User::find_in_org(conn, caller.organization_id, user_id)?
        .ok_or_else(|| Error::not_found(format!("User {user_id} not found")))?;
    if user.id == caller.id {
        return Err(Error::Conflict(
            crate::error::Conflict::WrongState,
            "You cannot change your own role or disable yourself; ask another admin".into(),
        ));
    }
    Ok(user)
}

/// An organization admin gives a person a role (0 member, 1 admin, 2 workgroup admin).
pub fn set_user_role(conn: &mut DbConn, caller: &User, user_id: UserId, role: i32) -> Result<()> {
    if !access_role::is_valid(role) {
        return Err(Error::invalid(
            "role must be 0 (member), 1 (organization admin) or 2 (workgroup admin)",
        ));
    }
    db::write_transaction(conn, |c| {
        let user = other_member(c, caller, user_id)?;
        User::set_role(c, user.id, role)?;
        Ok(())
    })
}

/// An organization admin disables a person (they can no longer sign in, and their sessions
/// and API tokens stop working at once) or enables them again.
pub fn set_user_disabled(
    conn: &mut DbConn,
    caller: &User,
    user_id: UserId,
    disabled: bool,
) -> Result<()> {
    db::write_transaction(conn, |c| {
        let user = other_member(c, caller, user_id)?;
        User::set_disabled(c, user.id, disabled)?;
        Ok(())
    })
}

/// A new set-password link for a person of the admin's organization (a first invitation that
/// got lost, or a forgotten password); earlier links stop working.
pub fn reissue_invitation(
    conn: &mut DbConn,
    caller: &User,
    user_id: UserId,
    ttl: chrono::Duration,
) -> Result<(User, String)> {
    require_org_admin(caller)?;
    db::write_transaction(conn, |c| {
        let user = User::find_in_org(c, caller.organization_id, user_id)?
            .ok_or_else(|| Error::not_found(format!("User {user_id} not found")))?;
        let token = issue_invitation(c, user.id, ttl)?;
        Ok((user, token))
    })
}

/// The caller's workgroups (as `workgroups_for`) with how many members and printers each has,
/// in two queries whatever their number.
pub fn workgroup_overview(conn: &mut DbConn, caller: &User) -> Result<Vec<(Workgroup, i64, i64)>> {
    let workgroups: Vec<Workgroup> = workgroups_for(conn, caller)?
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    let ids: Vec<i64> = workgroups.iter().map(|w| w.id).collect();
    let members: std::collections::HashMap<i64, i64> =
        WorkgroupMember::counts(conn, &ids)?.into_iter().collect();
    let mut printers: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for (_, wg) in PrinterWorkgroups::printers_in(conn, &ids)? {
        *printers.entry(wg).or_default() += 1;
    }
    Ok(workgroups
        .into_iter()
        .map(|w| {
            let (m, p) = (
                members.get(&w.id).copied().unwrap_or(0),
                printers.get(&w.id).copied().unwrap_or(0),
            );
            (w, m, p)
        })
        .collect())
}

/// A workgroup's members with their rights (its admins and organization admins).
pub fn workgroup_members(
    conn: &mut DbConn,
    caller: &User,
    workgroup_id: i64,
) -> Result<Vec<(User, i32)>> {
    let wg = manageable_workgroup(conn, caller, workgroup_id)?;
    Ok(WorkgroupMember::members_of(conn, wg.id)?)
}

/// Organization admins choose which of the organization's printers a workgroup reaches; the
/// printers' other workgroups stay as they are.
pub fn set_workgroup_printers(
    conn: &mut DbConn,
    caller: &User,
    workgroup_id: i64,
    printer_ids: &[PrinterId],
) -> Result<()> {
    require_org_admin(caller)?;
    db::write_transaction(conn, |c| {
        let wg = visible_workgroup(c, caller, workgroup_id)?;
        let printers = Printer::in_org(c, caller.organization_id)?;
        if let Some(p) = printer_ids
            .iter()
            .find(|id| !printers.iter().any(|p| p.id == **id))
        {
            return Err(Error::not_found(format!("Printer {p} not found")));
        }
        let ids: Vec<PrinterId> = printers.iter().map(|p| p.id).collect();
        let current = PrinterWorkgroups::of(c, &ids)?;
        for p in &printers {
            let mut wgs: Vec<i64> = current
                .iter()
                .filter(|(pid, _)| *pid == p.id)
                .map(|(_, w)| *w)
                .filter(|w| *w != wg.id)
                .collect();
            let was = wgs.len() != current.iter().filter(|(pid, _)| *pid == p.id).count();
            let wanted = printer_ids.contains(&p.id);
            if wanted {
                wgs.push(wg.id);
            }
            if wanted != was {
                PrinterWorkgroups::set(c, p.id, &wgs)?;
            }
        }
        Ok(())
    })
}

/// `update_user_settings`: balance and monthly quota of a user of the admin's organization.
pub fn update_user_settings(
    conn: &mut DbConn,
    caller: &User,
    user_id: UserId,
    balance: Option<f64>,
    quota: Option<i64>,
) -> Result<()> {
    require_org_admin(caller)?;
    if balance.is_none() && quota.is_none() {
        return Err(Error::invalid("give balance and/or quota"));
    }
    if balance.is_some_and(|b| b < 0.0) {
        return Err(Error::invalid("balance must not be negative"));
    }
    let quota = quota
        .map(|q| i32::try_from(q).ok().filter(|q| *q >= 0))
        .map(|q| q.ok_or_else(|| Error::invalid("quota must be a non-negative integer")))
        .transpose()?;
    db::write_transaction(conn, |c| {
        let user = User::find_in_org(c, caller.organization_id, user_id)?
            .ok_or_else(|| Error::not_found(format!("User {user_id} not found")))?;
        User::set_balance_and_quota(c, user.id, balance.map(Some), quota.map(Some))?;
        Ok(())
    })
}

/// Organization settings that drive the queue and the reports' default fields (printfarm
/// extension, organization admins).
pub fn update_org_settings(
    conn: &mut DbConn,
    user: &User,
    auto_start: Option<bool>,
    actual_hours: Option<i64>,
    prices: Option<serde_json::Value>,
    currency: Option<&str>,
    report_fields: Option<&[String]>,
) -> Result<()> {
    require_org_admin(user)?;
    let org = user.organization_id;
    // Checked before anything is written.
    let report_fields = report_fields
        .map(crate::services::reports::report_fields_setting)
        .transpose()?;
    let mut change = OrgSettingsChange {
        report_fields,
        auto_start_queue: auto_start,
        ..Default::default()
    };
    if let Some(h) = actual_hours {
        let h = i32::try_from(h)
            .ok()
            .filter(|h| (1..=24 * 365).contains(h))
            .ok_or_else(|| Error::invalid("actual_jobs_hours must be 1..8760"))?;
        change.actual_jobs_hours = Some(h);
    }
    if let Some(p) = &prices {
        let valid = p
            .as_object()
            .is_some_and(|m| m.values().all(|v| v.as_f64().is_some_and(|x| x >= 0.0)));
        if !valid {
            return Err(Error::invalid("material_prices must be an object of non-negative prices per kg, e.g. {\"PLA\": 25}"));
        }
        change.material_prices = Some(Some(p.to_string()));
    }
    if let Some(cur) = currency {
        let cur = cur.trim().to_uppercase();
        if cur.len() != 3 || !cur.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Error::invalid("currency must be a 3-letter code"));
        }
        change.currency = Some(cur);
    }
    db::write_transaction(conn, |c| {
        Ok(Organization::update_settings(c, org, &change)?)
    })
}
