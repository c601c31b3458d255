//! Printers, shares and the printer-agent channel (calls 7, 13–17, 23, 35 and the
//! /apiprinter and /streamerapi protocol), on both backends. The "agent" here speaks the wire
//! protocol over HTTP, exactly as a 3DPrinterOS-style client does.

use crate::common;

use common::{assert_fail, Db, TestApp, PASSWORD};
use diesel::prelude::*;
use printfarm::db::schema::{camera_tokens, printer_commands, printers, registration_codes};
use serde_json::{json, Map, Value};

backend_tests!(
    registration_end_to_end,
    registration_code_refusals,
    visibility_and_share_refusals,
    shares_to_future_accounts_and_workgroups,
    organization_list_roles_and_filters,
    command_ordering_redelivery_and_no_double_execution,
    reports_are_merged_and_tolerated,
    long_poll_wakes_on_a_new_command,
    camera_frames_and_tokens,
    build_tray_and_agent_refusals,
    streamer_api_login,
    steady_polls_leave_the_registration_code_alone,
    junk_report_keys_are_not_stored,
    register_stores_a_bounded_device,
    re_pairing_needs_the_right_to_manage,
    maintenance_prunes_expired_agent_rows,
    volatile_reports_are_written_in_batches,
);
backend_cases!(
    forged_host_never_reaches_the_agent,
    notconnected_after_silence,
    held_poll_ends_when_its_client_goes_away,
    held_polls_end_when_the_server_shuts_down,
);

const PREFIX: &str = "/apiprinter/v1/printer";

async fn agent(app: &TestApp, action: &str, body: Value) -> Value {
    let res = app
        .client
        .post(app.url(&format!("{PREFIX}/{action}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{action}");
    assert_eq!(res.status().canonical_reason(), Some("OK"));
    res.json().await.unwrap()
}

fn device(snr: &str) -> Value {
    json!({"mac": "aa:bb:cc:dd:ee:ff", "version": "test-1.0", "VID": "OCTO", "PID": "OCTO", "SNR": snr, "type": "PRUSA_MK4S"})
}

/// Registers a printer for the signed-in user; returns (printer id, agent token).
async fn register(app: &TestApp, session: &str, snr: &str) -> (i64, String) {
    let first = agent(app, "register", device(snr)).await;
    let code = first["registration_code"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", session), ("registration_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["printer_id"].as_i64().unwrap();
    let mut with_code = device(snr);
    with_code["registration_code"] = json!(code);
    let got = agent(app, "register", with_code).await;
    (id, got["auth_token"].as_str().unwrap().to_string())
}

async fn report(app: &TestApp, token: &str, extra: Value) -> Value {
    let mut body = json!({"auth_token": token, "report": {"state": "ready", "percent": 0, "temps": [22.5, 24.1], "target_temps": [0, 0]}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    agent(app, "command", body).await
}

async fn registration_end_to_end(app: &TestApp) {
    let session = app.login_new_user("owner@example.com").await;
    let first = agent(app, "register", device("SN-1")).await;
    let code = first["registration_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 9, "{code}");
    // Until redeemed, polls with the code get the same code back.
    let mut with_code = device("SN-1");
    with_code["registration_code"] = json!(code);
    assert_eq!(
        agent(app, "register", with_code.clone()).await,
        json!({"registration_code": code})
    );
    // Users may type it sloppily.
    let sloppy = code.to_lowercase().replace('-', " ");
    let (status, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", &session), ("registration_code", &sloppy)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["printer_id"].as_i64().unwrap();
    assert_eq!(body["message"], json!({"printer_id": id}));

    let got = agent(app, "register", with_code.clone()).await;
    let token = got["auth_token"].as_str().unwrap().to_string();
    assert_eq!(got["email"], "owner@example.com");
    assert_eq!(token.len(), 64);
    // A lost answer can be collected again until the token is used.
    assert_eq!(
        agent(app, "register", with_code.clone()).await["auth_token"],
        json!(token)
    );
    assert_eq!(report(app, &token, json!({})).await, json!({}));
    let again = agent(app, "register", with_code).await;
    assert_eq!(again["error"]["code"], json!(31), "{again}");
    {
        let mut c = app.conn();
        let pending: Option<String> = registration_codes::table
            .select(registration_codes::pending_auth_token)
            .first(&mut *c)
            .unwrap();
        assert_eq!(pending, None, "the plain token is forgotten once used");
    }
    let (status, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    let list = body["message"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let p = &list[0];
    assert_eq!(
        (p["id"].clone(), p["printer_id"].clone()),
        (json!(id), json!(id))
    );
    assert_eq!(p["type"], "PRUSA_MK4S");
    assert_eq!(p["state"], "ready");
    assert_eq!(p["name"], "Prusa MK4S SN-1");
    assert_eq!(p["filaments"], Value::Null);
    assert_eq!(p["local_ip"], "");
}

async fn registration_code_refusals(app: &TestApp) {
    let session = app.login_new_user("owner@example.com").await;
    let first = agent(app, "register", device("SN-2")).await;
    let code = first["registration_code"].as_str().unwrap().to_string();
    // Another device cannot collect this code's token.
    let mut thief = device("SN-OTHER");
    thief["registration_code"] = json!(code);
    assert_eq!(
        agent(app, "register", thief).await["error"]["code"],
        json!(31)
    );
    // A code is single use.
    let redeem = |code: String| {
        let session = session.clone();
        async move {
            app.post(
                "/apiglobal/add_printer_by_registration_code",
                &[("session", &session), ("registration_code", &code)],
            )
            .await
        }
    };
    assert_eq!(redeem(code.clone()).await.0, 200);
    assert_fail(&redeem(code.clone()).await, 410);
    assert_fail(&redeem("ZZZZ-ZZZZ".into()).await, 404);
    assert!(assert_fail(
        &app.post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", &session)]
        )
        .await,
        400
    )
    .contains("registration_code"));
    // Expired codes.
    let second = agent(app, "register", device("SN-3")).await;
    let code2 = second["registration_code"].as_str().unwrap().to_string();
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
        diesel::update(registration_codes::table.filter(registration_codes::code.eq(&code2)))
            .set(registration_codes::expires_at.eq(past))
            .execute(&mut *c)
            .unwrap();
    }
    let mut with_code = device("SN-3");
    with_code["registration_code"] = json!(code2);
    assert_eq!(
        agent(app, "register", with_code).await["error"]["code"],
        json!(31)
    );
    assert_fail(&redeem(code2).await, 410);
    // No serial number, no code.
    assert!(agent(app, "register", json!({"VID": "X"})).await["error"].is_object());
    let mut c = app.conn();
    let n: i64 = printers::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 1);
}

async fn visibility_and_share_refusals(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let colleague = app.login_new_user("colleague@example.com").await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let org2 = app.create_org("Elsewhere");
    let (_, stranger) = app.user_with_session(org2, "stranger@example.com", 1).await;
    let (id, _) = register(app, &owner, "SN-V").await;
    let pid = id.to_string();

    // Nobody else in the organization sees it without a share or workgroup; the admin does.
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &colleague)])
        .await;
    assert_eq!(body["message"], json!([]));
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &admin)])
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), 1);
    // Another organization's admin: 404, like a missing printer.
    for call in [
        "get_printer_shares",
        "printer_clear_build_tray",
        "get_camera_list_token",
    ] {
        let got = app
            .post(
                &format!("/apiglobal/{call}"),
                &[("session", &stranger), ("printer_id", &pid)],
            )
            .await;
        assert_fail(&got, 404);
    }
    let got = app
        .post(
            "/apiglobal/share_printer",
            &[
                ("session", &stranger),
                ("printer_id", &pid),
                ("role_id", "2"),
                ("user_email", "stranger@example.com"),
            ],
        )
        .await;
    assert_fail(&got, 404);
    let (_, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", &stranger), ("printer_id", &pid)],
        )
        .await;
    assert_eq!(body["message"], json!([]));

    // Share with the colleague (can queue, 3 prints).
    let (status, body) = app
        .post(
            "/apiglobal/share_printer",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("role_id", "5"),
                ("user_email", "Colleague@Example.com"),
                ("number_of_prints", "3"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let share_id = body["message"]["id"].as_i64().unwrap();
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &colleague)])
        .await;
    assert_eq!(body["message"][0]["id"], json!(id));
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_shares",
            &[("session", &owner), ("printer_id", &pid)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["message"],
        json!([{"id": share_id, "email": "colleague@example.com", "number_of_prints": 3, "printer_ownership_id": 5}])
    );
    // The colleague sees the printer but may not manage its shares.
    assert_fail(
        &app.post(
            "/apiglobal/get_printer_shares",
            &[("session", &colleague), ("printer_id", &pid)],
        )
        .await,
        403,
    );
    let got = app
        .post(
            "/apiglobal/share_printer",
            &[
                ("session", &colleague),
                ("printer_id", &pid),
                ("role_id", "2"),
                ("user_email", "x@example.com"),
            ],
        )
        .await;
    assert_fail(&got, 403);
    assert_fail(
        &app.post(
            "/apiglobal/unshare_printer",
            &[("session", &colleague), ("share_id", &share_id.to_string())],
        )
        .await,
        404,
    );
    assert_fail(
        &app.post(
            "/apiglobal/unshare_printer",
            &[("session", &stranger), ("share_id", &share_id.to_string())],
        )
        .await,
        404,
    );
    // Bad input.
    for (k, v) in [
        ("role_id", "3"),
        ("number_of_prints", "-1"),
        ("user_email", "nope"),
    ] {
        let mut form = vec![
            ("session", owner.as_str()),
            ("printer_id", pid.as_str()),
            ("role_id", "2"),
            ("user_email", "a@example.com"),
        ];
        form.retain(|(key, _)| *key != k);
        form.push((k, v));
        assert_fail(&app.post("/apiglobal/share_printer", &form).await, 400);
    }
    // Re-sharing updates the terms of the same share.
    let (_, body) = app
        .post(
            "/apiglobal/share_printer",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("role_id", "2"),
                ("user_email", "colleague@example.com"),
            ],
        )
        .await;
    assert_eq!(body["message"]["id"], json!(share_id));
    let (status, body) = app
        .post(
            "/apiglobal/unshare_printer",
            &[("session", &owner), ("share_id", &share_id.to_string())],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": []}))
    );
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &colleague)])
        .await;
    assert_eq!(body["message"], json!([]));
}

async fn shares_to_future_accounts_and_workgroups(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (id, _) = register(app, &owner, "SN-F").await;
    let pid = id.to_string();
    app.post(
        "/apiglobal/share_printer",
        &[
            ("session", &owner),
            ("printer_id", &pid),
            ("role_id", "2"),
            ("user_email", "later@example.com"),
        ],
    )
    .await;
    // The account is created afterwards, even in another organization: the share applies.
    let org2 = app.create_org("Guests");
    let (_, later) = app.user_with_session(org2, "later@example.com", 0).await;
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &later)])
        .await;
    assert_eq!(body["message"][0]["id"], json!(id));

    // Workgroup membership gives access too.
    let (status, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", &admin), ("name", "Lab")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let wg = body["message"]["id"].as_i64().unwrap().to_string();
    let member = app.login_new_user("member@example.com").await;
    app.post(
        "/apiglobal/add_user_to_workgroup",
        &[
            ("session", &admin),
            ("workgroup_id", &wg),
            ("email", "member@example.com"),
        ],
    )
    .await;
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &member)])
        .await;
    assert_eq!(body["message"], json!([]));
    assert_fail(
        &app.post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", &member),
                ("printer_id", &pid),
                ("workgroup_id[]", &wg),
            ],
        )
        .await,
        404,
    );
    let (status, _) = app
        .post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("workgroup_id[]", &wg),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &member)])
        .await;
    assert_eq!(body["message"][0]["id"], json!(id));
    // A workgroup of another organization cannot be assigned.
    let (_, guest_admin) = app
        .user_with_session(org2, "guestadmin@example.com", 1)
        .await;
    let (_, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", &guest_admin), ("name", "Theirs")],
        )
        .await;
    let foreign = body["message"]["id"].as_i64().unwrap().to_string();
    assert_fail(
        &app.post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("workgroup_id[]", &foreign),
            ],
        )
        .await,
        404,
    );
}

async fn organization_list_roles_and_filters(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (_, wg_admin) = app
        .user_with_session(app.org_id, "wgadmin@example.com", 2)
        .await;
    let (a, token) = register(app, &owner, "SN-A").await;
    let (b, _) = register(app, &owner, "SN-B").await;
    let (_, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", &admin), ("name", "Lab")],
        )
        .await;
    let wg = body["message"]["id"].as_i64().unwrap();
    app.post(
        "/apiglobal/set_printer_workgroups",
        &[
            ("session", &admin),
            ("printer_id", &b.to_string()),
            ("workgroup_id", &format!("[{wg}]")),
        ],
    )
    .await;
    app.post(
        "/apiglobal/add_user_to_workgroup",
        &[
            ("session", &admin),
            ("workgroup_id", &wg.to_string()),
            ("email", "wgadmin@example.com"),
        ],
    )
    .await;
    report(app, &token, json!({"report": {"state": "printing", "percent": 41.6, "temps": [60.4, 214.6], "target_temps": [60, 215]}})).await;

    let (status, body) = app
        .post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &admin)],
        )
        .await;
    assert_eq!(status, 200);
    let list = body["message"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let pa = list.iter().find(|p| p["id"] == json!(a)).unwrap();
    let keys: Vec<&str> = pa.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "type",
            "snr",
            "host_num",
            "local_ip",
            "workgroups",
            "state",
            "temps",
            "target_temps",
            "percent"
        ]
    );
    assert_eq!(pa["state"], "printing");
    assert_eq!(pa["temps"], json!([60, 215]));
    assert_eq!(pa["target_temps"], json!([60, 215]));
    assert_eq!(pa["percent"], json!(42));
    assert_eq!(pa["workgroups"], Value::Null);
    assert_eq!(pa["snr"], "SN-A");
    let pb = list.iter().find(|p| p["id"] == json!(b)).unwrap();
    assert_eq!(pb["workgroups"], json!([wg]));
    assert_eq!(pb["state"], "notconnected", "never polled");

    let (_, body) = app
        .post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &admin), ("workgroup_id", &wg.to_string())],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), 1);
    let (_, body) = app
        .post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &admin), ("printer_id", &a.to_string())],
        )
        .await;
    assert_eq!(body["message"][0]["id"], json!(a));
    // Workgroup admins see their workgroups' printers only; members are refused.
    let (_, body) = app
        .post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &wg_admin)],
        )
        .await;
    assert_eq!(
        body["message"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(b)]
    );
    assert_fail(
        &app.post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &owner)],
        )
        .await,
        403,
    );
    let org2 = app.create_org("Elsewhere");
    let (_, stranger) = app.user_with_session(org2, "stranger@example.com", 1).await;
    assert_fail(
        &app.post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &stranger), ("printer_id", &a.to_string())],
        )
        .await,
        404,
    );
    assert_fail(
        &app.post(
            "/apiglobal/get_organization_printers_list",
            &[("session", &stranger), ("workgroup_id", &wg.to_string())],
        )
        .await,
        404,
    );
    // get_printers_list filters: by type and by several ids.
    let (_, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", &owner), ("printer_type", "prusa_mk4s")],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), 2);
    let (_, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", &owner), ("printer_type", "BAMBU_X1C")],
        )
        .await;
    assert_eq!(body["message"], json!([]));
    let (_, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[
                ("session", &owner),
                ("printer_id[]", &a.to_string()),
                ("printer_id[]", &b.to_string()),
            ],
        )
        .await;
    assert_eq!(body["message"].as_array().unwrap().len(), 2);
    let (_, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", &owner), ("printer_id", &b.to_string())],
        )
        .await;
    assert_eq!(body["message"][0]["printer_id"], json!(b));
}

fn statuses(app: &TestApp, printer: i64) -> Vec<(i64, String)> {
    let mut c = app.conn();
    printer_commands::table
        .filter(printer_commands::printer_id.eq(printer))
        .order(printer_commands::number)
        .select((printer_commands::number, printer_commands::status))
        .load(&mut *c)
        .unwrap()
}

async fn command_ordering_redelivery_and_no_double_execution(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-C").await;
    for cmd in ["pause", "unpause", "cancel"] {
        let mut extra = Map::new();
        extra.insert("reason".into(), json!(cmd));
        app.state
            .send_command(printfarm::db::models::PrinterId(id), cmd, extra, None)
            .await
            .unwrap();
    }
    let c1 = report(app, &token, json!({})).await;
    assert_eq!(
        c1,
        json!({"command": "pause", "number": 1, "reason": "pause"})
    );
    // The agent reconnects without acknowledging: the same command comes again.
    assert_eq!(report(app, &token, json!({})).await, c1);
    let c2 = report(
        app,
        &token,
        json!({"command_ack": {"number": 1, "result": true}}),
    )
    .await;
    assert_eq!(
        (c2["command"].clone(), c2["number"].clone()),
        (json!("unpause"), json!(2))
    );
    let c3 = report(
        app,
        &token,
        json!({"command_ack": {"number": 2, "result": false}}),
    )
    .await;
    assert_eq!(c3["number"], json!(3));
    assert_eq!(
        report(app, &token, json!({"command_ack": {"number": "3"}})).await,
        json!({})
    );
    // A repeated acknowledgement changes nothing and nothing is handed out twice.
    assert_eq!(
        report(
            app,
            &token,
            json!({"command_ack": {"number": 3, "result": false}})
        )
        .await,
        json!({})
    );
    assert_eq!(
        statuses(app, id),
        vec![
            (1, "acked".into()),
            (2, "failed".into()),
            (3, "acked".into())
        ]
    );
    // Numbers keep growing per printer; another printer has its own sequence.
    let (other, other_token) = register(app, &owner, "SN-D").await;
    app.state
        .send_command(
            printfarm::db::models::PrinterId(other),
            "pause",
            Map::new(),
            None,
        )
        .await
        .unwrap();
    app.state
        .send_command(
            printfarm::db::models::PrinterId(id),
            "pause",
            Map::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        report(app, &other_token, json!({})).await,
        json!({"command": "pause", "number": 1})
    );
    assert_eq!(
        report(app, &token, json!({})).await,
        json!({"command": "pause", "number": 4})
    );
}

async fn reports_are_merged_and_tolerated(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-R").await;
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[
            ("session", &owner),
            ("printer_id", &id.to_string()),
            ("is_clear", "false"),
        ],
    )
    .await;
    let body = json!({
        "auth_token": token,
        "report": {"state": "printing", "percent": 12.5, "temps": [60.2, [215.4, 2], null, "x"], "target_temps": [60, [215, 2]], "filename": "cube.gcode", "line_number": 10},
        "error": [{"code": 604, "message": "printer busy", "level": 20}],
    });
    assert_eq!(agent(app, "command", body).await, json!({}));
    // The next report omits unchanged fields.
    let body = json!({"auth_token": token, "report": {"state": "printing", "percent": 13, "temps": [60, 215], "target_temps": [60, 215], "line_number": 20}, "bed_clear": true});
    agent(app, "command", body).await;
    let mut c = app.conn();
    let (report_text, last_error, tray, state): (Option<String>, Option<String>, bool, String) =
        printers::table
            .find(id)
            .select((
                printers::report,
                printers::last_error,
                printers::tray_clear,
                printers::state,
            ))
            .first(&mut *c)
            .unwrap();
    let r: Value = serde_json::from_str(&report_text.unwrap()).unwrap();
    assert_eq!(
        (r["filename"].clone(), r["line_number"].clone()),
        (json!("cube.gcode"), json!(20))
    );
    let e: Value = serde_json::from_str(&last_error.unwrap()).unwrap();
    assert_eq!(e[0]["code"], json!(604), "the latest error is kept");
    assert!(tray, "bed_clear from the agent clears the tray");
    assert_eq!(state, "printing");
    // Odd temperature entries were tolerated on the way in.
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let got = agent(app, "command", json!({"auth_token": token, "report": {"state": "printing", "temps": [1, [2, 3], null, "4"]}})).await;
    assert_eq!(got, json!({}));
    // Only temperatures changed: the list shows them once the heartbeats are written (about
    // a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = app
            .post(
                "/apiglobal/get_organization_printers_list",
                &[("session", &admin)],
            )
            .await;
        if body["message"][0]["temps"] == json!([1, 2, null, 4]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn long_poll_wakes_on_a_new_command(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-L").await;
    let run = |app_base: String, token: String| async move {
        let client = reqwest::Client::new();
        let res = client
            .post(format!("{app_base}{PREFIX}/command"))
            .json(&json!({"auth_token": token, "report": {"state": "ready"}, "wait": 25}))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()
    };
    let waiting = actix_web::rt::spawn(run(app.base.clone(), token.clone()));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    app.state
        .send_command(
            printfarm::db::models::PrinterId(id),
            "pause",
            Map::new(),
            None,
        )
        .await
        .unwrap();
    // Well before the 25 s hold ends, the held request answers with the command.
    let got = actix_web::rt::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(got, json!({"command": "pause", "number": 1}));

    // On Postgres, a command queued through another server instance wakes the agent too.
    if app.db_url.starts_with("postgres") {
        let other = app.second_instance().await;
        let waiting = actix_web::rt::spawn(run(app.base.clone(), token.clone()));
        actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
        // Ack the first command via the held request's successor: queue on the other instance.
        other
            .state
            .send_command(
                printfarm::db::models::PrinterId(id),
                "unpause",
                Map::new(),
                None,
            )
            .await
            .unwrap();
        let got = actix_web::rt::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("woken via NOTIFY")
            .unwrap();
        // The unacknowledged command 1 comes first, in order.
        assert_eq!(got["number"], json!(1));
        other.stop().await;
    }
}

async fn camera_frames_and_tokens(app: &TestApp) {
    use base64::Engine;
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-CAM").await;
    let (other_id, _) = register(app, &owner, "SN-CAM2").await;
    let jpeg = b"\xFF\xD8\xFF\xE0printfarm-test-frame\xFF\xD9".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg);
    assert_eq!(
        agent(app, "camera", json!({"auth_token": token, "image": b64})).await,
        json!({"state": 0})
    );
    assert_eq!(
        agent(app, "camera", json!({"auth_token": token, "image": "S"})).await,
        json!({"state": 0})
    );

    let (status, body) = app
        .post(
            "/apiglobal/get_camera_list_token",
            &[("session", &owner), ("printer_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200);
    let m = &body["message"];
    assert_eq!(
        (m["webcam_id"].clone(), m["rotate"].clone()),
        (json!(0), json!(false))
    );
    let cam = m["token"].as_str().unwrap().to_string();
    let res = app
        .client
        .get(app.url(&format!("/camera/{cam}/{id}.jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), jpeg);
    // Someone is watching now: the agent is asked for full frames.
    assert_eq!(
        agent(app, "camera", json!({"auth_token": token, "image": "S"})).await,
        json!({"state": 1})
    );
    // The token is bound to its printer.
    let res = app
        .client
        .get(app.url(&format!("/camera/{cam}/{other_id}.jpg")))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 404);
    // The MJPEG stream starts with the frame.
    let mut res = app
        .client
        .get(app.url(&format!("/camera/{cam}/{id}.mjpeg")))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("multipart/x-mixed-replace"));
    let chunk = res.chunk().await.unwrap().unwrap();
    assert!(chunk.windows(jpeg.len()).any(|w| w == jpeg.as_slice()));
    drop(res);
    // Expired tokens, unknown tokens, and bad frames.
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
        diesel::update(camera_tokens::table)
            .set(camera_tokens::expires_at.eq(past))
            .execute(&mut *c)
            .unwrap();
    }
    let res = app
        .client
        .get(app.url(&format!("/camera/{cam}/{id}.jpg")))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 410);
    let res = app
        .client
        .get(app.url(&format!("/camera/{}/{id}.jpg", "ab".repeat(32))))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 404);
    let bad = agent(
        app,
        "camera",
        json!({"auth_token": token, "image": "not base64!!"}),
    )
    .await;
    assert!(bad["error"]["code"].is_i64());
    let not_jpeg = base64::engine::general_purpose::STANDARD.encode(b"GIF89a");
    assert!(agent(
        app,
        "camera",
        json!({"auth_token": token, "image": not_jpeg})
    )
    .await["error"]
        .is_object());
    // A user who cannot see the printer gets no token for it.
    let other_user = app.login_new_user("other@example.com").await;
    assert_fail(
        &app.post(
            "/apiglobal/get_camera_list_token",
            &[("session", &other_user), ("printer_id", &id.to_string())],
        )
        .await,
        404,
    );
}

async fn build_tray_and_agent_refusals(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, _) = register(app, &owner, "SN-T").await;
    let pid = id.to_string();
    let tray = |app: &TestApp| {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::tray_clear)
            .first::<bool>(&mut *c)
            .unwrap()
    };
    let (status, body) = app
        .post(
            "/apiglobal/printer_clear_build_tray",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("is_clear", "false"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": "Ok"}))
    );
    assert!(!tray(app));
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[("session", &owner), ("printer_id", &pid)],
    )
    .await;
    assert!(tray(app));
    assert_fail(
        &app.post(
            "/apiglobal/printer_clear_build_tray",
            &[
                ("session", &owner),
                ("printer_id", &pid),
                ("is_clear", "maybe"),
            ],
        )
        .await,
        400,
    );
    let other = app.login_new_user("other@example.com").await;
    assert_fail(
        &app.post(
            "/apiglobal/printer_clear_build_tray",
            &[("session", &other), ("printer_id", &pid)],
        )
        .await,
        404,
    );

    // Agent-side refusals: bad token, malformed body — 200 with the protocol's error shape.
    let got = agent(
        app,
        "command",
        json!({"auth_token": "nope", "report": {"state": "ready"}}),
    )
    .await;
    assert_eq!(got["error"]["code"], json!(3));
    let res = app
        .client
        .post(app.url(&format!("{PREFIX}/command")))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.json::<Value>().await.unwrap()["error"]["message"].is_string());
    // The vendor prefix works too.
    let got = app
        .client
        .post(app.url("/apiprinter/v1/apv1/printer/get_printer_profiles"))
        .json(&json!({"auth_token": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.json::<Value>().await.unwrap()["error"]["code"],
        json!(3)
    );
}

async fn streamer_api_login(app: &TestApp) {
    app.create_user(app.org_id, "streamer@example.com", 0);
    let post = |path: &'static str, body: Value| async move {
        app.client
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let bad = post(
        "/streamerapi/user_login",
        json!({"login": {"user": "streamer@example.com", "password": "wrong-password"}}),
    )
    .await;
    assert_eq!(bad["error"]["code"], json!(3));
    let got = post("/streamerapi/user_login", json!({"login": {"user": "streamer@example.com", "password": PASSWORD}, "platform": "linux"})).await;
    let user_token = got["user_token"].as_str().unwrap().to_string();
    assert_eq!(got["all_profiles"], json!("[]"));
    let got = post(
        "/streamerapi/printer_login",
        json!({"user_token": user_token, "printer": device("SN-S")}),
    )
    .await;
    let printer_token = got["printer_token"].as_str().unwrap().to_string();
    assert_eq!(got["name"], "Prusa MK4S SN-S");
    assert!(got["printer_profile"].is_string());
    let got = post(
        "/streamerapi/command",
        json!({"printer_token": printer_token, "report": {"state": "ready"}}),
    )
    .await;
    assert_eq!(got, json!({}));
    let s = app.login("streamer@example.com", PASSWORD).await;
    let (_, body) = app
        .post("/apiglobal/get_printers_list", &[("session", &s)])
        .await;
    assert_eq!(body["message"][0]["state"], "ready");
    let got = post(
        "/streamerapi/printer_login",
        json!({"user_token": "bogus", "printer": device("SN-S")}),
    )
    .await;
    assert_eq!(got["error"]["code"], json!(3));
}

async fn notconnected_after_silence(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_PRINTERS__OFFLINE_AFTER_SECS", "1")]).await
    else {
        return;
    };
    let owner = app.login_new_user("owner@example.com").await;
    let (_, token) = register(&app, &owner, "SN-N").await;
    report(&app, &token, json!({})).await;
    let state = |body: Value| body["message"][0]["state"].clone();
    assert_eq!(
        state(
            app.post("/apiglobal/get_printers_list", &[("session", &owner)])
                .await
                .1
        ),
        json!("ready")
    );
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        state(
            app.post("/apiglobal/get_printers_list", &[("session", &owner)])
                .await
                .1
        ),
        json!("notconnected")
    );
    report(&app, &token, json!({})).await;
    assert_eq!(
        state(
            app.post("/apiglobal/get_printers_list", &[("session", &owner)])
                .await
                .1
        ),
        json!("ready")
    );
    app.stop().await;
}

fn pending_tokens(app: &TestApp, printer: i64) -> Vec<Option<String>> {
    let mut c = app.conn();
    registration_codes::table
        .filter(registration_codes::printer_id.eq(printer))
        .order(registration_codes::id)
        .select(registration_codes::pending_auth_token)
        .load(&mut *c)
        .unwrap()
}

async fn steady_polls_leave_the_registration_code_alone(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-F").await;
    report(app, &token, json!({})).await;
    assert_eq!(
        pending_tokens(app, id),
        vec![None],
        "forgotten on first use"
    );
    // A plain token put back after that first use stays: steady-state polls do not write
    // registration_codes any more.
    {
        let mut c = app.conn();
        diesel::update(registration_codes::table.filter(registration_codes::printer_id.eq(id)))
            .set(registration_codes::pending_auth_token.eq(Some("sentinel")))
            .execute(&mut *c)
            .unwrap();
    }
    report(app, &token, json!({})).await;
    assert_eq!(pending_tokens(app, id), vec![Some("sentinel".to_string())]);
    // Re-pairing the device (a new code redeemed) issues a new token; its first use
    // forgets the plain copies again.
    let (again, new_token) = register(app, &owner, "SN-F").await;
    assert_eq!(again, id, "the same device is re-paired");
    assert_ne!(new_token, token);
    assert_eq!(pending_tokens(app, id).iter().flatten().count(), 2);
    report(app, &new_token, json!({})).await;
    assert_eq!(pending_tokens(app, id), vec![None, None]);
    // The old token is dead.
    assert_eq!(
        report(app, &token, json!({})).await["error"]["code"],
        json!(3)
    );
}

/// Waits (generously: these are not speed checks) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Holds may last 10 minutes here, so a hold that is not cancelled cannot pass for one
/// that is.
const LONG_HOLDS: [(&str, &str); 1] = [("PRINTFARM_PRINTERS__LONG_POLL_MAX_SECS", "600")];

async fn held_poll_ends_when_its_client_goes_away(db: Db) {
    use tokio::io::AsyncWriteExt;
    let Some(app) = TestApp::start(db, &LONG_HOLDS).await else {
        return;
    };
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(&app, &owner, "SN-GONE").await;
    let body = json!({"auth_token": token, "report": {"state": "ready"}, "wait": 600}).to_string();
    let mut conn = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {PREFIX}/command HTTP/1.1\r\nHost: printfarm\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let notifier = app.state.notifier.clone();
    eventually("the poll is held", || notifier.held() == 1).await;
    // The agent goes away (crash, network change): the server stops holding its poll.
    drop(conn);
    eventually("the held poll is dropped", || notifier.held() == 0).await;
    // So a command queued now is not handed to the departed client: it waits, pending,
    // for the agent's next poll.
    app.state
        .send_command(
            printfarm::db::models::PrinterId(id),
            "pause",
            Map::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(statuses(&app, id), vec![(1, "pending".to_string())]);
    assert_eq!(
        report(&app, &token, json!({})).await,
        json!({"command": "pause", "number": 1})
    );
    app.stop().await;
}

async fn held_polls_end_when_the_server_shuts_down(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(&app, &owner, "SN-STOP").await;
    // A second instance on the same database: the real `printfarm serve` process, which
    // gets SIGTERM like a deployment would send it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_printfarm"))
        .arg("serve")
        .env("DATABASE_URL", &app.db_url)
        .env("PRINTFARM_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("PRINTFARM_SERVER__WORKERS", "2")
        // Both long: only an ended hold lets the process exit within the test's patience.
        .env("PRINTFARM_SERVER__SHUTDOWN_TIMEOUT_SECS", "600")
        .env(LONG_HOLDS[0].0, LONG_HOLDS[0].1)
        .env("PRINTFARM_SLICER__IN_PROCESS_WORKERS", "false")
        .env("PRINTFARM_STORAGE__FILES_DIR", dir.path().join("files"))
        .env("PRINTFARM_STORAGE__STAGING_DIR", dir.path().join("staging"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start printfarm serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..600 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "printfarm serve did not come up");

    let held = actix_web::rt::spawn({
        let url = format!("{base}{PREFIX}/command");
        let body = json!({"auth_token": token, "report": {"state": "ready", "percent": 42.5}, "wait": 600});
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    });
    // The poll's report is in: the request is being held (or about to be).
    eventually("the poll reached the server", || {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::percent)
            .first::<f64>(&mut *c)
            .unwrap()
            == 42.5
    })
    .await;
    // (kill(2) itself: a minimal machine has no `kill` program)
    // SAFETY: a signal to our own child process; no memory is involved.
    let killed = unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(killed, 0);
    // The held poll answers "nothing to do" (the agent polls again) …
    let answer = actix_web::rt::time::timeout(std::time::Duration::from_secs(120), held)
        .await
        .expect("the held poll was answered at shutdown")
        .unwrap();
    assert_eq!(answer, (200, json!({})));
    // … and the process exits cleanly instead of waiting out the hold.
    let mut status = None;
    for _ in 0..1200 {
        status = server.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = server.kill();
        panic!("printfarm serve did not exit after SIGTERM");
    };
    assert!(status.success(), "{status}");
    app.stop().await;
}

/// Issue #13 item 3: a start requested with forged `Host` / `X-Forwarded-Host` / `Forwarded`
/// headers (forwarded headers not trusted by default) must not put the forger's host into the
/// agent's download link; the link follows the agent's own poll and still downloads.
/// Issue #13 item 3: with no `server.public_url`, a member who starts a print with a forged
/// `Host` (and forwarding headers the server does not trust) must not decide where the agent
/// downloads from: the link the agent gets names the server as the agent itself reached it.
async fn forged_host_never_reaches_the_agent(db: common::Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_SERVER__PUBLIC_URL", "")]).await else {
        return;
    };
    let app = &app;
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-HOST").await;
    assert_eq!(report(app, &token, json!({})).await, json!({}));
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(&owner, "cube.gcode", gcode.clone(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let file = body["message"]["file_id"].as_i64().unwrap().to_string();
    // A raw request, so the forged Host really is the one sent (HTTP clients set their own).
    let form = format!("session={owner}&file_id={file}&printer_id={id}");
    let request = format!(
        "POST /apiglobal/print_file HTTP/1.1\r\nHost: evil.example\r\n\
         X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\
         Forwarded: host=evil.example;proto=https\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    );
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing stored for the agent names the forged host.
    let mut c = app.conn();
    let stored: Vec<Option<String>> = printer_commands::table
        .filter(printer_commands::printer_id.eq(id))
        .select(printer_commands::payload)
        .load(&mut *c)
        .unwrap();
    drop(c);
    assert!(!stored.is_empty());
    assert!(
        stored.iter().flatten().all(|p| !p.contains("evil")),
        "{stored:?}"
    );
    let cmd = report(app, &token, json!({})).await;
    assert_eq!(cmd["command"], "gcodes", "{cmd}");
    let link = cmd["payload"].as_str().unwrap();
    assert!(
        link.starts_with(&app.url("/apiprinter/v1/download/")),
        "{link}"
    );
    let res = app.client.get(link).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), gcode.len());
}

/// Issue #13 item 8: reports are merged poll after poll, so unknown keys and oversized values
/// must not be kept; 150 polls with junk keys leave the stored report small.
async fn junk_report_keys_are_not_stored(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-JUNK").await;
    let junk = "x".repeat(20_000);
    for i in 0..150 {
        let body = json!({"auth_token": token, "report": {
            "state": "ready", "percent": 0, "temps": [20, 21], "target_temps": [0, 0],
            format!("junk{i}"): junk,
            "filename": junk,
            "coords": vec![1.5; 5_000],
            "ext": {"status_bin": 1, format!("more{i}"): junk},
        }});
        assert_eq!(agent(app, "command", body).await, json!({}));
    }
    let mut c = app.conn();
    let text: Option<String> = printers::table
        .find(id)
        .select(printers::report)
        .first(&mut *c)
        .unwrap();
    let text = text.unwrap();
    assert!(text.len() < 4096, "stored report is {} bytes", text.len());
    let r: Value = serde_json::from_str(&text).unwrap();
    assert!(r.get("junk149").is_none());
    assert_eq!(r["filename"].as_str().unwrap().len(), 256);
    assert_eq!(r["coords"].as_array().unwrap().len(), 16);
    assert_eq!(r["ext"], json!({"status_bin": 1}));
    assert_eq!(r["state"], json!("ready"));
}

/// Issue #13 item 7: `register` refuses big bodies and stores only a bounded device description.
async fn register_stores_a_bounded_device(app: &TestApp) {
    let mut big = device("SN-BIG");
    big["junk"] = json!("x".repeat(64 * 1024));
    let got = agent(app, "register", big).await;
    assert_eq!(got["error"]["code"], json!(413), "{got}");
    let mut c = app.conn();
    let none: i64 = registration_codes::table
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(none, 0, "a refused register stores nothing");
    drop(c);
    let mut odd = device("SN-ODD");
    odd["nested"] = json!({"a": "x".repeat(4000), "b": [1, 2, 3]});
    odd["long"] = json!("y".repeat(4000));
    for i in 0..100 {
        odd[format!("k{i}")] = json!(i);
    }
    let got = agent(app, "register", odd).await;
    assert!(got["registration_code"].is_string(), "{got}");
    let mut c = app.conn();
    let info: String = registration_codes::table
        .select(registration_codes::agent_info)
        .first(&mut *c)
        .unwrap();
    assert!(info.len() < 2048, "stored {} bytes", info.len());
    let v: Value = serde_json::from_str(&info).unwrap();
    assert!(v.get("nested").is_none());
    assert_eq!(v["long"].as_str().unwrap().len(), 128);
}

/// Issue #13 item 2: re-pairing a known device hands out a new agent token, so only someone
/// who may manage that printer may do it. A member of the same organization is refused (both
/// the registration-code and the streamerapi path); a user of another organization gets a
/// separate printer of their own. The real agent keeps its token and gets the owner's print.
async fn re_pairing_needs_the_right_to_manage(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (victim, token) = register(app, &owner, "SN-V").await;
    assert_eq!(report(app, &token, json!({})).await, json!({}));
    let member = app.login_new_user("member@example.com").await;

    // Registration code redeemed by a plain member for the victim's device.
    let first = agent(app, "register", device("SN-V")).await;
    let code = first["registration_code"].as_str().unwrap().to_string();
    let got = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", &member), ("registration_code", &code)],
        )
        .await;
    assert_fail(&got, 403);
    let mut with_code = device("SN-V");
    with_code["registration_code"] = json!(code);
    let got = agent(app, "register", with_code).await;
    assert!(got.get("auth_token").is_none(), "{got}");

    // StreamerAPI login by the member for the same device.
    let got = app
        .client
        .post(app.url("/streamerapi/user_login"))
        .json(&json!({"login": {"user": "member@example.com", "password": PASSWORD}}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let user_token = got["user_token"].as_str().unwrap().to_string();
    let got = app
        .client
        .post(app.url("/streamerapi/printer_login"))
        .json(&json!({"user_token": user_token, "printer": device("SN-V")}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(got.get("printer_token").is_none(), "{got}");
    assert!(got["error"]["code"].is_number(), "{got}");

    // A user of another organization pairs the same device: a separate printer.
    let other_org = app.create_org("Elsewhere");
    app.create_user(other_org, "outsider@example.com", 1);
    let outsider = app.login("outsider@example.com", PASSWORD).await;
    let (theirs, their_token) = register(app, &outsider, "SN-V").await;
    assert_ne!(theirs, victim);

    // The real agent still holds the printer and gets the owner's next print.
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(&owner, "cube.gcode", gcode, &[]).await;
    assert_eq!(status, 200, "{body}");
    let file = body["message"]["file_id"].as_i64().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &owner),
                ("file_id", &file),
                ("printer_id", &victim.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(report(app, &their_token, json!({})).await, json!({}));
    let cmd = report(app, &token, json!({})).await;
    assert_eq!(cmd["command"], "gcodes", "{cmd}");
}

/// Issue #13 item 7: the maintenance pass deletes expired registration codes and camera
/// tokens (rows made over HTTP, then aged) and keeps live ones.
async fn maintenance_prunes_expired_agent_rows(app: &TestApp) {
    agent(app, "register", device("SN-OLD")).await;
    agent(app, "register", device("SN-NEW")).await;
    let owner = app.login_new_user("owner@example.com").await;
    let (id, _) = register(app, &owner, "SN-CAM").await;
    let (status, body) = app
        .post(
            "/apiglobal/get_camera_list_token",
            &[("session", &owner), ("printer_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
    let mut c = app.conn();
    diesel::update(
        registration_codes::table.filter(registration_codes::device_key.like("%SN-OLD")),
    )
    .set(registration_codes::expires_at.eq(past))
    .execute(&mut *c)
    .unwrap();
    diesel::update(camera_tokens::table)
        .set(camera_tokens::expires_at.eq(past))
        .execute(&mut *c)
        .unwrap();
    let (codes, cams, _) = printfarm::services::agent::prune_expired(&mut c).unwrap();
    assert_eq!((codes, cams), (1, 1));
    let left: Vec<String> = registration_codes::table
        .select(registration_codes::device_key)
        .load(&mut *c)
        .unwrap();
    assert!(left.iter().any(|k| k.ends_with("SN-NEW")), "{left:?}");
    assert!(!left.iter().any(|k| k.ends_with("SN-OLD")), "{left:?}");
}

/// Reports that only refresh temperatures or progress are kept in memory and written for all
/// printers about once a second; a report that changes something lasting is in the database
/// when its answer arrives.
async fn volatile_reports_are_written_in_batches(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (id, token) = register(app, &owner, "SN-BEAT").await;
    type Row = (String, f64, Option<String>, Option<String>);
    let row = || -> Row {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select((
                printers::state,
                printers::percent,
                printers::temps,
                printers::report,
            ))
            .first(&mut *c)
            .unwrap()
    };
    let temps =
        |r: &Row| -> Value { serde_json::from_str(r.2.as_deref().unwrap_or("null")).unwrap() };
    // A new state: written before the answer.
    report(app, &token, json!({})).await;
    let first = row();
    assert_eq!(first.0, "ready");
    assert_eq!(temps(&first), json!([22.5, 24.1]));

    // Temperatures, then progress alone: the second report is merged onto the first in
    // memory, so both reach the row.
    report(app, &token, json!({"report": {"temps": [30, 31]}})).await;
    report(app, &token, json!({"report": {"percent": 7}})).await;
    eventually("the heartbeats were written", || {
        let r = row();
        r.1 == 7.0 && temps(&r) == json!([30.0, 31.0])
    })
    .await;
    let merged: Value = serde_json::from_str(row().3.as_deref().unwrap()).unwrap();
    assert_eq!(merged["state"], "ready", "{merged}");
    assert_eq!(merged["temps"], json!([30, 31]), "{merged}");
    assert_eq!(merged["percent"], 7, "{merged}");
    let (status, body) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", owner.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("printer {id} not listed: {body}"));
    assert_eq!(listed["temps"], json!([30, 31]), "{listed}");

    // A lasting change is there as soon as the poll is answered, with the volatile values the
    // same report carries.
    report(
        app,
        &token,
        json!({"report": {"state": "error", "temps": [40, 41]}}),
    )
    .await;
    let after = row();
    assert_eq!(after.0, "error");
    assert_eq!(temps(&after), json!([40.0, 41.0]));

    // The same report again (an idle printer's steady readings) writes nothing, not even the
    // time it was seen: the row says it all and was written recently. A new reading is
    // written with the next batch.
    let seen = || -> Option<chrono::NaiveDateTime> {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::last_seen_at)
            .first(&mut *c)
            .unwrap()
    };
    let seen_before = seen();
    let same = json!({"report": {"state": "error", "temps": [40, 41]}});
    for _ in 0..3 {
        report(app, &token, same.clone()).await;
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    assert_eq!(seen(), seen_before, "a steady report was written");
    assert_eq!(row(), after);
    report(
        app,
        &token,
        json!({"report": {"state": "error", "temps": [42, 41]}}),
    )
    .await;
    eventually("the new reading was written", || {
        temps(&row()) == json!([42.0, 41.0]) && seen() > seen_before
    })
    .await;
}
