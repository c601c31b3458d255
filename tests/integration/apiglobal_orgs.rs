//! Organizations, users, workgroups and the printer-type catalogue (calls 6, 12, 18, 19, 20,
//! 21, 26, 34), with their refusals, on both backends.

use crate::common;

use common::{assert_fail, TestApp, PASSWORD};
use diesel::prelude::*;
use printfarm::db::schema::{user_tokens, users};
use serde_json::{json, Value};

backend_tests!(
    workgroups_lifecycle_by_org_admin,
    workgroup_admin_manages_only_own_workgroups,
    members_and_other_organizations_are_refused,
    create_organization_user_and_invitation,
    invitation_refusals,
    other_organizations_emails_do_not_leak,
    update_user_settings_rules,
    printer_types_catalogue,
);

struct Org {
    admin: String,
    wg_admin: (i64, String),
    member: (i64, String),
}

async fn org(app: &TestApp, org_id: i64, tag: &str) -> Org {
    let (_, admin) = app
        .user_with_session(org_id, &format!("admin-{tag}@example.com"), 1)
        .await;
    let wg_admin = app
        .user_with_session(org_id, &format!("wgadmin-{tag}@example.com"), 2)
        .await;
    let member = app
        .user_with_session(org_id, &format!("member-{tag}@example.com"), 0)
        .await;
    Org {
        admin,
        wg_admin,
        member,
    }
}

async fn create_wg(app: &TestApp, session: &str, name: &str) -> i64 {
    let (status, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[
                ("session", session),
                ("name", name),
                ("password", "join-me"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["id"].as_i64().unwrap()
}

async fn workgroups_lifecycle_by_org_admin(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let wg = create_wg(app, &a.admin, "Lab 1").await;
    let wg2 = create_wg(app, &a.admin, "Lab 2").await;

    // Add the member with default rights (2) and re-add with rights 3.
    let (status, body) = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg.to_string()),
                ("email", "MEMBER-a@example.com"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"result": true, "message": {"user_id": a.member.0}})
        )
    );
    let (status, _) = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg2.to_string()),
                ("email", "member-a@example.com"),
                ("rights", "3"),
            ],
        )
        .await;
    assert_eq!(status, 200);

    // The member sees exactly their workgroups, ids and rights as JSON numbers.
    let (status, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &a.member.1)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["message"],
        json!([{"id": wg, "name": "Lab 1", "rights": 2}, {"id": wg2, "name": "Lab 2", "rights": 3}])
    );
    // The admin sees every workgroup of the organization.
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &a.admin)],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), 2);

    let (status, body) = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", &wg.to_string())],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["message"],
        json!([{"id": a.member.0, "email": "member-a@example.com", "name": "Test User", "monthly_quota": null, "balance": null}])
    );

    let (status, body) = app
        .post(
            "/apiglobal/delete_user_from_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg.to_string()),
                ("user_id", &a.member.0.to_string()),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": []}))
    );
    let again = app
        .post(
            "/apiglobal/delete_user_from_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg.to_string()),
                ("user_id", &a.member.0.to_string()),
            ],
        )
        .await;
    assert_fail(&again, 404);
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &a.member.1)],
        )
        .await;
    assert_eq!(
        body["message"],
        json!([{"id": wg2, "name": "Lab 2", "rights": 3}])
    );
}

async fn workgroup_admin_manages_only_own_workgroups(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let own = create_wg(app, &a.admin, "Own").await;
    let other = create_wg(app, &a.admin, "Other").await;
    let add = |wg: i64, session: String, email: &'static str| {
        let wg = wg.to_string();
        async move {
            app.post(
                "/apiglobal/add_user_to_workgroup",
                &[
                    ("session", &session),
                    ("workgroup_id", &wg),
                    ("email", email),
                ],
            )
            .await
        }
    };
    let (status, _) = add(own, a.admin.clone(), "wgadmin-a@example.com").await;
    assert_eq!(status, 200);
    // Now the workgroup admin manages "Own" …
    let (status, _) = add(own, a.wg_admin.1.clone(), "member-a@example.com").await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[
                ("session", &a.wg_admin.1),
                ("workgroup_id", &own.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["message"].as_array().unwrap().len(), 2);
    // … but not "Other", which they do not belong to.
    assert_fail(
        &add(other, a.wg_admin.1.clone(), "member-a@example.com").await,
        403,
    );
    let got = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[
                ("session", &a.wg_admin.1),
                ("workgroup_id", &other.to_string()),
            ],
        )
        .await;
    assert_fail(&got, 403);
    // Workgroup admins cannot create users or set balances.
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &a.wg_admin.1),
                ("email", "x@example.com"),
                ("gdpr", "1"),
            ],
        )
        .await;
    assert_fail(&got, 403);
}

async fn members_and_other_organizations_are_refused(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let org_b = app.create_org("Other Org");
    let b = org(app, org_b, "b").await;
    let wg_a = create_wg(app, &a.admin, "A lab").await;
    let wg_b = create_wg(app, &b.admin, "B lab").await;

    // A member calling admin calls.
    assert_fail(
        &app.post(
            "/apiglobal/create_workgroup",
            &[("session", &a.member.1), ("name", "x")],
        )
        .await,
        403,
    );
    let got = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[
                ("session", &a.member.1),
                ("workgroup_id", &wg_a.to_string()),
            ],
        )
        .await;
    assert_fail(&got, 403);
    let got = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &a.member.1),
                ("workgroup_id", &wg_a.to_string()),
                ("email", "member-a@example.com"),
            ],
        )
        .await;
    assert_fail(&got, 403);
    let got = app
        .post(
            "/apiglobal/update_user_settings",
            &[
                ("session", &a.member.1),
                ("user_id", &a.member.0.to_string()),
                ("balance", "100"),
            ],
        )
        .await;
    assert_fail(&got, 403);

    // Another organization's workgroup answers exactly like a missing one.
    let foreign = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", &wg_b.to_string())],
        )
        .await;
    let missing = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", "999999")],
        )
        .await;
    assert_eq!(
        assert_fail(&foreign, 404).replace(&wg_b.to_string(), "N"),
        assert_fail(&missing, 404).replace("999999", "N")
    );
    let got = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg_b.to_string()),
                ("email", "member-a@example.com"),
            ],
        )
        .await;
    assert_fail(&got, 404);
    // Another organization's user cannot be added to our workgroup, nor removed, nor updated.
    let got = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &a.admin),
                ("workgroup_id", &wg_a.to_string()),
                ("email", "member-b@example.com"),
            ],
        )
        .await;
    assert_fail(&got, 404);
    let got = app
        .post(
            "/apiglobal/update_user_settings",
            &[
                ("session", &a.admin),
                ("user_id", &b.member.0.to_string()),
                ("balance", "5"),
            ],
        )
        .await;
    assert_fail(&got, 404);
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &a.admin)],
        )
        .await;
    assert_eq!(
        body["message"],
        json!([{"id": wg_a, "name": "A lab", "rights": 2}])
    );
    // Bad parameters are named.
    let got = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", "abc")],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("workgroup_id"));
    let got = app
        .post("/apiglobal/get_workgroup_users", &[("session", &a.admin)])
        .await;
    assert!(assert_fail(&got, 400).contains("workgroup_id"));
    // No session at all.
    assert_fail(
        &app.post("/apiglobal/get_workgroups_simple_list", &[]).await,
        401,
    );
}

fn stored_invitation(app: &TestApp, email: &str) -> String {
    let mut c = app.conn();
    let user: i64 = users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(&mut *c)
        .unwrap();
    // What `printfarm admin invite-link` does: a fresh token replaces the stored one.
    printfarm::services::orgs::issue_invitation(
        &mut c,
        printfarm::db::models::UserId(user),
        chrono::Duration::hours(1),
    )
    .unwrap()
}

async fn create_organization_user_and_invitation(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let form = [
        ("session", a.admin.as_str()),
        ("email", "New.Person@Example.com"),
        ("gdpr", "3"),
        ("firstname", "New"),
        ("lastname", "Person"),
        ("company", "ACME"),
        ("access_role", "2"),
    ];
    let (status, body) = app.post("/apiglobal/create_organization_user", &form).await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": {}}))
    );
    assert_fail(
        &app.post("/apiglobal/create_organization_user", &form).await,
        409,
    );
    {
        let mut c = app.conn();
        let row: (i64, i32, i32, String, Option<String>) = users::table
            .filter(users::email.eq("new.person@example.com"))
            .select((
                users::organization_id,
                users::access_role,
                users::gdpr,
                users::company,
                users::password_hash,
            ))
            .first(&mut *c)
            .unwrap();
        assert_eq!(row, (app.org_id, 2, 3, "ACME".to_string(), None));
        let invitations: i64 = user_tokens::table
            .filter(user_tokens::purpose.eq("invitation"))
            .count()
            .get_result(&mut *c)
            .unwrap();
        assert_eq!(invitations, 1, "the call stores an invitation");
    }
    // No password yet: password login fails.
    let got = app
        .post(
            "/apiglobal/login",
            &[("username", "new.person@example.com"), ("password", "")],
        )
        .await;
    assert_fail(&got, 400);

    let token = stored_invitation(app, "new.person@example.com");
    let page = app
        .client
        .get(app.url(&format!("/noauth/set_password/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("new.person@example.com"));
    let res = app
        .client
        .post(app.url(&format!("/noauth/set_password/{token}")))
        .form(&[("password", "a-new-password"), ("password2", "different")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let res = app
        .client
        .post(app.url(&format!("/noauth/set_password/{token}")))
        .form(&[
            ("password", "a-new-password"),
            ("password2", "a-new-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    app.login("new.person@example.com", "a-new-password").await;

    // Bad input.
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &a.admin),
                ("email", "x@example.com"),
                ("gdpr", "2"),
            ],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("gdpr"));
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[("session", &a.admin), ("gdpr", "1")],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("email"));
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &a.admin),
                ("email", "not-an-email"),
                ("gdpr", "1"),
            ],
        )
        .await;
    assert_fail(&got, 400);
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &a.admin),
                ("email", "y@example.com"),
                ("gdpr", "1"),
                ("access_role", "7"),
            ],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("access_role"));
}

async fn invitation_refusals(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    app.post(
        "/apiglobal/create_organization_user",
        &[
            ("session", &a.admin),
            ("email", "inv@example.com"),
            ("gdpr", "1"),
        ],
    )
    .await;
    let set = |token: String| async move {
        app.client
            .post(app.url(&format!("/noauth/set_password/{token}")))
            .form(&[
                ("password", "long-enough-pw"),
                ("password2", "long-enough-pw"),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Reused.
    let token = stored_invitation(app, "inv@example.com");
    assert_eq!(set(token.clone()).await, 200);
    assert_eq!(set(token.clone()).await, 410);
    let page = app
        .client
        .get(app.url(&format!("/noauth/set_password/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 410);
    // Expired.
    let token = stored_invitation(app, "inv@example.com");
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
        diesel::update(user_tokens::table.filter(user_tokens::used_at.is_null()))
            .set(user_tokens::expires_at.eq(past))
            .execute(&mut *c)
            .unwrap();
    }
    assert_eq!(set(token).await, 410);
    // Superseded by a newer link, unknown and malformed tokens.
    let old = stored_invitation(app, "inv@example.com");
    let _new = stored_invitation(app, "inv@example.com");
    assert_eq!(set(old).await, 404);
    assert_eq!(set("ab".repeat(32)).await, 404);
    assert_eq!(set("not-a-token".into()).await, 404);
    // Too short a password.
    let token = stored_invitation(app, "inv@example.com");
    let res = app
        .client
        .post(app.url(&format!("/noauth/set_password/{token}")))
        .form(&[("password", "short"), ("password2", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

async fn update_user_settings_rules(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let wg = create_wg(app, &a.admin, "Lab").await;
    app.post(
        "/apiglobal/add_user_to_workgroup",
        &[
            ("session", &a.admin),
            ("workgroup_id", &wg.to_string()),
            ("email", "member-a@example.com"),
        ],
    )
    .await;
    let uid = a.member.0.to_string();
    let (status, body) = app
        .post(
            "/apiglobal/update_user_settings",
            &[
                ("session", &a.admin),
                ("user_id", &uid),
                ("balance", "12.5"),
                ("quota", "5"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": "Ok"}))
    );
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", &wg.to_string())],
        )
        .await;
    assert_eq!(body["message"][0]["balance"], json!(12.5));
    assert_eq!(body["message"][0]["monthly_quota"], json!(5));
    // Only the balance.
    app.post(
        "/apiglobal/update_user_settings",
        &[("session", &a.admin), ("user_id", &uid), ("balance", "3")],
    )
    .await;
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroup_users",
            &[("session", &a.admin), ("workgroup_id", &wg.to_string())],
        )
        .await;
    assert_eq!(
        (
            body["message"][0]["balance"].clone(),
            body["message"][0]["monthly_quota"].clone()
        ),
        (json!(3.0), json!(5))
    );

    for bad in [
        ("balance", "-1"),
        ("quota", "-2"),
        ("balance", "lots"),
        ("quota", "1.5"),
    ] {
        let got = app
            .post(
                "/apiglobal/update_user_settings",
                &[("session", &a.admin), ("user_id", &uid), bad],
            )
            .await;
        assert_fail(&got, 400);
    }
    assert_fail(
        &app.post(
            "/apiglobal/update_user_settings",
            &[("session", &a.admin), ("user_id", &uid)],
        )
        .await,
        400,
    );
    assert_fail(
        &app.post(
            "/apiglobal/update_user_settings",
            &[("session", &a.admin), ("user_id", "424242"), ("quota", "1")],
        )
        .await,
        404,
    );
    assert_fail(
        &app.post(
            "/apiglobal/update_user_settings",
            &[
                ("session", &a.wg_admin.1),
                ("user_id", &uid),
                ("quota", "1"),
            ],
        )
        .await,
        403,
    );
}

async fn printer_types_catalogue(app: &TestApp) {
    let session = app.login_new_user("types@example.com").await;
    assert_fail(&app.post("/apiglobal/get_printer_types", &[]).await, 401);
    let (status, body) = app
        .post("/apiglobal/get_printer_types", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    let all = body["message"].as_array().unwrap();
    assert!(all.len() >= 25, "{}", all.len());
    for t in all {
        assert!(t["id"].is_i64());
        assert!(t["description"].is_string());
        assert_eq!(t.as_object().unwrap().len(), 2);
    }
    let names: Vec<&str> = all
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("Form 4")),
        "industrial types are not listed: {names:?}"
    );

    let (_, body) = app
        .post(
            "/apiglobal/get_printer_types",
            &[("session", &session), ("description", "prusa")],
        )
        .await;
    let prusa = body["message"].as_array().unwrap();
    assert!(!prusa.is_empty());
    assert!(prusa
        .iter()
        .all(|t| t["description"].as_str().unwrap().contains("Prusa")));
    // software_version names the calling application: never a filter.
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_types",
            &[("session", &session), ("software_version", "OrcaSlicer")],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), all.len());
    // A slicer model with a suffix still finds its type; an unknown one gets every type.
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_types",
            &[
                ("session", &session),
                ("description", "Prusa  MK4S HF0.4 nozzle"),
                ("software_version", "OrcaSlicer"),
            ],
        )
        .await;
    assert_eq!(body["message"][0]["description"], "Prusa MK4S", "{body}");
    assert_eq!(body["message"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_types",
            &[("session", &session), ("description", "no such printer")],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), all.len());

    // The detailed list needs no session and carries printer_parameters as an object of strings.
    let (status, body) = app.post("/apiglobal/get_printer_types_detailed", &[]).await;
    assert_eq!(status, 200);
    let detailed = body["message"].as_array().unwrap();
    assert_eq!(detailed.len(), all.len());
    for t in detailed {
        let params = t["printer_parameters"].as_object().unwrap();
        for key in ["x", "y", "z", "filament_diameter", "offset_x", "offset_y"] {
            assert!(params[key].is_string(), "{key} in {t}");
        }
    }
    let mk4 = detailed
        .iter()
        .find(|t| t["description"] == "Prusa MK4S")
        .unwrap();
    assert_eq!(mk4["printer_parameters"]["x"], Value::String("250".into()));
    let _ = PASSWORD;
}

/// An admin must not learn that an email has an account in another organization: the answer
/// is the one a creation gets, and nothing is created or changed.
async fn other_organizations_emails_do_not_leak(app: &TestApp) {
    let a = org(app, app.org_id, "a").await;
    let other = app.create_org("Other Org");
    let b = org(app, other, "b").await;
    let create = |email: &'static str| {
        let session = b.admin.clone();
        async move {
            app.post(
                "/apiglobal/create_organization_user",
                &[
                    ("session", session.as_str()),
                    ("email", email),
                    ("gdpr", "1"),
                ],
            )
            .await
        }
    };
    let taken = create("member-a@example.com").await;
    let fresh = create("brand-new@example.com").await;
    assert_eq!(taken, fresh);
    assert_eq!(taken, (200, json!({"result": true, "message": {}})));
    let mut c = app.conn();
    let owners: Vec<i64> = users::table
        .filter(users::email.eq("member-a@example.com"))
        .select(users::organization_id)
        .load(&mut *c)
        .unwrap();
    assert_eq!(
        owners,
        vec![app.org_id],
        "the victim's account moved or was duplicated"
    );
    drop(c);
    // The victim keeps signing in as before.
    app.login("member-a@example.com", common::PASSWORD).await;
    // Within one's own organization a taken email is still named (it is the admin's own data).
    let got = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", a.admin.as_str()),
                ("email", "member-a@example.com"),
                ("gdpr", "1"),
            ],
        )
        .await;
    assert_fail(&got, 409);
}
