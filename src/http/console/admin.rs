//! Running the organization from the console: people (add, invite, role, disable), workgroups
//! (members and their rights, which printers they reach) and printers (add one by its
//! registration code, see where each is reachable). Each page and action calls the same
//! services as the Global API's calls, so the same people may do the same things: organization
//! admins everything, workgroup admins their own workgroups; others are refused (403), and ids
//! from elsewhere answer 404.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{posted, refused, render, to_login, Chrome};
use crate::db::models::{access_role, rights, PrinterId, User, UserId, Workgroup};
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{browser_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::orgs::{self, OrgUserRequest};
use crate::services::printers;
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/admin").get(home);
    r.at("/admin/people").get(people_page).post(add_person);
    r.at("/admin/people/{user_id}").post(person_action);
    r.at("/admin/workgroups")
        .get(workgroups_page)
        .post(add_workgroup);
    r.at("/admin/workgroups/{id}").get(workgroup_page);
    r.at("/admin/workgroups/{id}/members").post(add_member);
    r.at("/admin/workgroups/{id}/members/{user_id}/remove")
        .post(remove_member);
    r.at("/admin/workgroups/{id}/printers").post(set_printers);
    r.at("/admin/printers").get(printers_page).post(add_printer);
    r.at("/admin/demo/remove").post(remove_demo);
    r.at("/admin/settings")
        .get(settings_page)
        .post(save_settings);
}

/// Whether the console shows someone the admin pages at all.
pub fn is_admin(user: &User) -> bool {
    matches!(
        user.access_role,
        access_role::ADMIN | access_role::WORKGROUP_ADMIN
    )
}

fn role_label(role: i32) -> &'static str {
    match role {
        access_role::ADMIN => "Organization admin",
        access_role::WORKGROUP_ADMIN => "Workgroup admin",
        _ => "Member",
    }
}

const ROLES: &[(i32, &str)] = &[
    (access_role::MEMBER, "Member"),
    (access_role::WORKGROUP_ADMIN, "Workgroup admin"),
    (access_role::ADMIN, "Organization admin"),
];

const RIGHTS: &[(i32, &str)] = &[
    (rights::CAN_PRINT, "Can print"),
    (rights::CAN_QUEUE, "Can only queue"),
];

/// The signed-in person of a page, or the way to the sign-in form.
async fn page_user(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<(User, String), HttpResponse> {
    browser_user(state, req).await.ok_or_else(|| to_login(req))
}

/// `/admin`: the first admin page this person may use.
async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (user, _) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match user.access_role {
        access_role::ADMIN => see_other("/admin/people").finish(),
        access_role::WORKGROUP_ADMIN => see_other("/admin/workgroups").finish(),
        _ => {
            refused(
                &state,
                &req,
                Error::denied("Only organization and workgroup admins manage the farm"),
            )
            .await
        }
    }
}

struct PersonView {
    id: i64,
    email: String,
    name: String,
    role: i32,
    role_label: &'static str,
    status: &'static str,
    tone: &'static str,
    disabled: bool,
    me: bool,
}

#[derive(Template)]
#[template(path = "console/admin_people.html")]
struct PeoplePage {
    chrome: Chrome,
    tab: &'static str,
    csrf: String,
    people: Vec<PersonView>,
    roles: &'static [(i32, &'static str)],
}

async fn people_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (user, session) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let me = user.clone();
    let people = match state.db(move |c| orgs::organization_users(c, &me)).await {
        Ok(p) => p,
        Err(e) => return refused(&state, &req, e).await,
    };
    let people = people
        .into_iter()
        .map(|p| {
            let (status, tone) = if p.disabled {
                ("Disabled", "off")
            } else if p.password_hash.is_none() && p.google_sub.is_none() {
                ("Invited", "warn")
            } else {
                ("Active", "ready")
            };
            PersonView {
                id: p.id.0,
                name: p.full_name(),
                role: p.access_role,
                role_label: role_label(p.access_role),
                status,
                tone,
                disabled: p.disabled,
                me: p.id == user.id,
                email: p.email,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &PeoplePage {
            chrome: Chrome::new(Some((&user, &session)), "admin"),
            tab: "people",
            csrf: csrf_token(&session),
            people,
            roles: ROLES,
        },
    )
}

#[derive(Template)]
#[template(path = "console/admin_link.html")]
struct LinkPage {
    chrome: Chrome,
    title: String,
    email: String,
    link: String,
    hours: i64,
}

/// The set-password link for a person, shown once to the admin who made it.
fn link_page(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    (admin, session): (&User, &str),
    title: &str,
    person: &User,
    token: &str,
) -> HttpResponse {
    let base = crate::http::public_base(&state.config, Some(req));
    render(
        StatusCode::OK,
        &LinkPage {
            chrome: Chrome::new(Some((admin, session)), "admin"),
            title: title.to_string(),
            email: person.email.clone(),
            link: format!("{}/noauth/set_password/{token}", base.trim_end_matches('/')),
            hours: state.config.auth.invitation_hours,
        },
    )
}

/// Adds a person (`create_organization_user`): no password yet, a set-password link instead.
async fn add_person(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, session) = posted(&state, &req, form).await?;
        let email = p
            .str("email")
            .filter(|e| e.contains('@'))
            .ok_or_else(|| Error::invalid("Give the person's email address"))?
            .to_string();
        let firstname = p.str("firstname").unwrap_or_default().to_string();
        let lastname = p.str("lastname").unwrap_or_default().to_string();
        let role = p.i64("role")?.unwrap_or(0);
        let ttl = chrono::Duration::hours(state.config.auth.invitation_hours);
        let (st, me) = (state.clone(), user.clone());
        let created = state
            .db(move |c| {
                orgs::create_organization_user(
                    c,
                    &st.hasher,
                    &me,
                    &OrgUserRequest {
                        email: &email,
                        // The person agrees to the terms when they set their password.
                        gdpr: 1,
                        firstname: &firstname,
                        lastname: &lastname,
                        company: "",
                        access_role: i32::try_from(role).unwrap_or(-1),
                    },
                    ttl,
                )
            })
            .await?;
        // An email that belongs to another organization's account is not this admin's to learn
        // (as for the API): it reads like a clash with no detail.
        let (person, token) = created.ok_or_else(|| {
            Error::Conflict(
                crate::error::Conflict::AlreadyExists,
                "This email cannot be added; ask the person which address to use".into(),
            )
        })?;
        Ok((user, session, person, token))
    }
    .await;
    match outcome {
        Ok((user, session, person, token)) => link_page(
            &state,
            &req,
            (&user, &session),
            "Person added",
            &person,
            &token,
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// One person: `role` (with `role`), `disable`, `enable`, or `invite` (a new set-password
/// link).
async fn person_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let target = UserId(path.into_inner());
    let outcome = async {
        let (p, user, session) = posted(&state, &req, form).await?;
        let me = user.clone();
        let link = match p.str("action") {
            Some("role") => {
                let role = p
                    .i64("role")?
                    .and_then(|r| i32::try_from(r).ok())
                    .ok_or_else(|| Error::invalid("Choose a role"))?;
                state
                    .db(move |c| orgs::set_user_role(c, &me, target, role))
                    .await?;
                None
            }
            Some(a @ ("disable" | "enable")) => {
                let disabled = a == "disable";
                state
                    .db(move |c| orgs::set_user_disabled(c, &me, target, disabled))
                    .await?;
                None
            }
            Some("invite") => {
                let ttl = chrono::Duration::hours(state.config.auth.invitation_hours);
                Some(
                    state
                        .db(move |c| orgs::reissue_invitation(c, &me, target, ttl))
                        .await?,
                )
            }
            _ => {
                return Err(Error::invalid(
                    "action must be role, disable, enable or invite",
                ))
            }
        };
        Ok((user, session, link))
    }
    .await;
    match outcome {
        Ok((user, session, Some((person, token)))) => link_page(
            &state,
            &req,
            (&user, &session),
            "New set-password link",
            &person,
            &token,
        ),
        Ok(_) => see_other("/admin/people").finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

struct WorkgroupRow {
    id: i64,
    name: String,
    members: i64,
    printers: i64,
}

#[derive(Template)]
#[template(path = "console/admin_workgroups.html")]
struct WorkgroupsPage {
    chrome: Chrome,
    tab: &'static str,
    csrf: String,
    workgroups: Vec<WorkgroupRow>,
    org_admin: bool,
}

async fn workgroups_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (user, session) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !is_admin(&user) {
        return refused(
            &state,
            &req,
            Error::denied("Only organization and workgroup admins manage workgroups"),
        )
        .await;
    }
    let me = user.clone();
    let rows = state
        // Admins see the organization's; workgroup admins the ones they belong to.
        .db(move |c| orgs::workgroup_overview(c, &me))
        .await;
    match rows {
        Ok(list) => render(
            StatusCode::OK,
            &WorkgroupsPage {
                chrome: Chrome::new(Some((&user, &session)), "admin"),
                tab: "workgroups",
                csrf: csrf_token(&session),
                org_admin: orgs::is_org_admin(&user),
                workgroups: list
                    .into_iter()
                    .map(|(w, members, printers)| WorkgroupRow {
                        id: w.id,
                        name: w.name,
                        members,
                        printers,
                    })
                    .collect(),
            },
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn add_workgroup(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let name = p.str("name").unwrap_or_default().to_string();
        state
            .db(move |c| orgs::create_workgroup(c, &user, &name, ""))
            .await
    }
    .await;
    match outcome {
        Ok(wg) => see_other(&format!("/admin/workgroups/{}", wg.id)).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

struct MemberView {
    id: i64,
    email: String,
    name: String,
    rights: i32,
}

struct PrinterPick {
    id: i64,
    name: String,
    type_name: String,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "console/admin_workgroup.html")]
struct WorkgroupPage {
    chrome: Chrome,
    tab: &'static str,
    csrf: String,
    workgroup: Workgroup,
    members: Vec<MemberView>,
    rights: &'static [(i32, &'static str)],
    printers: Vec<PrinterPick>,
    org_admin: bool,
    /// What the last action on this page changed, said back to the person.
    saved: Option<&'static str>,
}

async fn workgroup_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> HttpResponse {
    let id = path.into_inner();
    let (user, session) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let me = user.clone();
    let loaded = state
        .db(move |c| {
            let wg = orgs::manageable_workgroup(c, &me, id)?;
            let members = orgs::workgroup_members(c, &me, wg.id)?;
            let inside: Vec<PrinterId> =
                printers::organization_printers(c, &me, None, Some(wg.id))?
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
            // Organization admins choose among all the organization's printers; workgroup
            // admins see the workgroup's.
            let all = printers::organization_printers(c, &me, None, None)?;
            let types = crate::db::models::PrinterType::all(c)?;
            let picks = all
                .into_iter()
                .filter(|p| orgs::is_org_admin(&me) || inside.contains(&p.id))
                .map(|p| PrinterPick {
                    id: p.id.0,
                    chosen: inside.contains(&p.id),
                    type_name: p
                        .printer_type_id
                        .and_then(|t| types.iter().find(|pt| pt.id == t))
                        .map(|pt| pt.description.clone())
                        .unwrap_or_default(),
                    name: p.name,
                })
                .collect::<Vec<_>>();
            Ok((wg, members, picks))
        })
        .await;
    let (workgroup, members, picks) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(&state, &req, e).await,
    };
    render(
        StatusCode::OK,
        &WorkgroupPage {
            chrome: Chrome::new(Some((&user, &session)), "admin"),
            tab: "workgroups",
            csrf: csrf_token(&session),
            workgroup,
            members: members
                .into_iter()
                .map(|(u, r)| MemberView {
                    id: u.id.0,
                    name: u.full_name(),
                    email: u.email,
                    rights: r,
                })
                .collect(),
            rights: RIGHTS,
            printers: picks,
            org_admin: orgs::is_org_admin(&user),
            saved: match super::query(&req, "saved").as_deref() {
                Some("members") => Some("Members saved."),
                Some("printers") => Some("Printers saved: members see them now."),
                _ => None,
            },
        },
    )
}

/// Adds a person to the workgroup by email, or gives a member other rights.
async fn add_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = path.into_inner();
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let email = p
            .str("email")
            .ok_or_else(|| Error::invalid("Give the person's email address"))?
            .to_string();
        let member_rights = p
            .i64("rights")?
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or(rights::CAN_PRINT);
        state
            .db(move |c| orgs::add_user_to_workgroup(c, &user, id, &email, member_rights))
            .await
    }
    .await;
    match outcome {
        Ok(_) => see_other(&format!("/admin/workgroups/{id}?saved=members")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn remove_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let (id, member) = path.into_inner();
    let outcome = async {
        let (_, user, _) = posted(&state, &req, form).await?;
        state
            .db(move |c| orgs::delete_user_from_workgroup(c, &user, id, UserId(member)))
            .await
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/admin/workgroups/{id}?saved=members")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// The printers the workgroup reaches: exactly the ticked ones.
async fn set_printers(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = path.into_inner();
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let ids: Vec<PrinterId> = p.i64_list("printer")?.into_iter().map(PrinterId).collect();
        state
            .db(move |c| orgs::set_workgroup_printers(c, &user, id, &ids))
            .await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/admin/workgroups/{id}?saved=printers")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

struct OrgPrinterView {
    id: i64,
    name: String,
    type_name: String,
    state: String,
    tone: &'static str,
    workgroups: String,
}

#[derive(Template)]
#[template(path = "console/admin_printers.html")]
struct PrintersPage {
    chrome: Chrome,
    tab: &'static str,
    csrf: String,
    printers: Vec<OrgPrinterView>,
    /// The demo farm, when this admin may remove it.
    demo: Option<crate::db::models::DemoCounts>,
    demo_removed: bool,
}

async fn printers_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (user, session) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let me = user.clone();
    let offline = chrono::Duration::seconds(state.config.printers.offline_after_secs);
    let loaded = state
        .db(move |c| {
            let demo = crate::services::demo::status(c, &me)?;
            let list = printers::organization_printers(c, &me, None, None)?;
            let ctx = printers::org_list_context(c, &list, offline)?;
            let names: Vec<(i64, String)> = orgs::workgroups_for(c, &me)?
                .into_iter()
                .map(|(w, _)| (w.id, w.name))
                .collect();
            let now = crate::db::now();
            let views = list
                .iter()
                .map(|p| {
                    let item = printers::org_list_item(&ctx, p, now);
                    let (state, tone) = super::state_badge(&item.state);
                    OrgPrinterView {
                        id: p.id.0,
                        name: p.name.clone(),
                        type_name: item.r#type.clone(),
                        state,
                        tone,
                        workgroups: item
                            .workgroups
                            .iter()
                            .flatten()
                            .filter_map(|w| names.iter().find(|(id, _)| id == w))
                            .map(|(_, n)| n.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
                .collect::<Vec<_>>();
            Ok((views, demo))
        })
        .await;
    match loaded {
        Ok((printers, demo)) => render(
            StatusCode::OK,
            &PrintersPage {
                chrome: Chrome::new(Some((&user, &session)), "admin"),
                tab: "printers",
                csrf: csrf_token(&session),
                printers,
                demo,
                demo_removed: super::query(&req, "demo").as_deref() == Some("removed"),
            },
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// `add_printer_by_registration_code`: the code the printer's agent shows.
async fn add_printer(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        if !is_admin(&user) {
            return Err(Error::denied(
                "Only organization and workgroup admins add printers here",
            ));
        }
        let code = p
            .str("code")
            .ok_or_else(|| Error::invalid("Type the registration code the printer shows"))?
            .to_string();
        let printer = state
            .db(move |c| printers::redeem_code(c, &user, &code))
            .await?;
        state.notifier.printers_changed();
        Ok(printer)
    }
    .await;
    match outcome {
        Ok(_) => see_other("/admin/printers").finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// Removes the demo farm (`serve --demo`) with everything it made.
async fn remove_demo(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (_, user, _) = posted(&state, &req, form).await?;
        state.remove_demo(Some(user)).await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other("/admin/printers?demo=removed").finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// Materials always offered a price, besides those the organization already priced.
const PRICED: &[&str] = &["PLA", "PETG", "ABS", "ASA", "TPU", "PA", "PC"];

#[derive(Template)]
#[template(path = "console/admin_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    tab: &'static str,
    csrf: String,
    auto_start: bool,
    actual_hours: i32,
    currency: String,
    /// (material, price per kg or empty)
    prices: Vec<(String, String)>,
    fields: Vec<(&'static str, bool)>,
    saved: bool,
}

async fn settings_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (user, session) = match page_user(&state, &req).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let me = user.clone();
    let org = state
        .db(move |c| {
            orgs::require_org_admin(&me)?;
            crate::db::models::Organization::find(c, me.organization_id)?
                .ok_or_else(|| Error::internal("user without organization"))
        })
        .await;
    let org = match org {
        Ok(o) => o,
        Err(e) => return refused(&state, &req, e).await,
    };
    let priced: serde_json::Map<String, serde_json::Value> = org
        .material_prices
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let mut prices: Vec<(String, String)> = PRICED
        .iter()
        .map(|m| (m.to_string(), String::new()))
        .collect();
    for (m, v) in &priced {
        let price = v.as_f64().map(|p| p.to_string()).unwrap_or_default();
        match prices.iter_mut().find(|(name, _)| name == m) {
            Some(slot) => slot.1 = price,
            None => prices.push((m.clone(), price)),
        }
    }
    let fields = crate::services::reports::organization_fields(&org);
    render(
        StatusCode::OK,
        &SettingsPage {
            chrome: Chrome::new(Some((&user, &session)), "admin"),
            tab: "settings",
            csrf: csrf_token(&session),
            auto_start: org.auto_start_queue,
            actual_hours: org.actual_jobs_hours,
            currency: org.currency,
            prices,
            fields: crate::services::reports::Field::ALL
                .iter()
                .map(|f| (f.name(), fields.contains(f)))
                .collect(),
            saved: super::query(&req, "saved").is_some(),
        },
    )
}

/// A material name as a price key: letters, digits, spaces, `+` and `-`, 1 to 20 of them.
fn material_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty()
        && name.chars().count() <= 20
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '+' | '-')))
    .then_some(name)
}

/// `update_organization_settings`, from the settings form.
async fn save_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let auto_start = p.str("auto_start").is_some();
        let hours = p
            .i64("actual_hours")?
            .ok_or_else(|| Error::invalid("Give the hours jobs stay listed after they end"))?;
        let currency = p.str("currency").unwrap_or_default().to_string();
        let mut prices = serde_json::Map::new();
        for name in p.names() {
            let Some(material) = name.strip_prefix("price.") else {
                continue;
            };
            let Some(value) = p.str(&name) else { continue };
            let material = material_name(material)
                .ok_or_else(|| Error::invalid(format!("'{material}' is not a material name")))?;
            let price: f64 = value
                .replace(',', ".")
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "The price of {material} must be a number of {currency} per kg"
                    ))
                })?;
            prices.insert(material.to_string(), serde_json::json!(price));
        }
        let fields: Vec<String> = p
            .value("fields")?
            .map(|v| match v {
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::String(s) => vec![s],
                _ => Vec::new(),
            })
            .unwrap_or_default();
        if fields.is_empty() {
            return Err(Error::invalid("Choose at least one report column"));
        }
        state
            .db(move |c| {
                orgs::update_org_settings(
                    c,
                    &user,
                    Some(auto_start),
                    Some(hours),
                    Some(serde_json::Value::Object(prices)),
                    Some(&currency),
                    Some(&fields),
                )
            })
            .await
    }
    .await;
    match outcome {
        Ok(()) => see_other("/admin/settings?saved=1").finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}
