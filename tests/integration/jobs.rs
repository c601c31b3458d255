//! The print-job queue and print control (calls 8, 9, 29–33, agent get_queued_jobs /
//! start_queued_job) on both backends. The agent side speaks the printer protocol over HTTP.

use crate::common;

use std::collections::BTreeMap;

use common::{assert_fail, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{jobs, printers, users};
use serde_json::{json, Value};

backend_tests!(
    job_life_finished,
    job_cancelled_and_failed,
    queue_of_three_with_auto_start,
    refusals,
    charging_quota_balance_and_share_prints,
    racing_starts_never_start_two_jobs,
    live_updates_never_miss_a_change,
    listing_pages_and_is_actual,
    agent_queue_calls,
    cancel_reasons_and_feedback,
    old_cancel_codes_move_to_the_source_column,
    every_queued_command_wakes_a_held_poll,
);

struct Farm {
    session: String,
    printer: i64,
    token: String,
    file: i64,
}

async fn report(app: &TestApp, token: &str, report: Value, extra: Value) -> Value {
    let mut body = json!({"auth_token": token, "report": report});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    app.agent("command", body).await
}

async fn ready(app: &TestApp, token: &str) -> Value {
    report(
        app,
        token,
        json!({"state": "ready", "percent": 0, "temps": [22, 23], "target_temps": [0, 0]}),
        json!({}),
    )
    .await
}

async fn upload(app: &TestApp, session: &str) -> i64 {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(session, "cube.gcode", bytes, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["message"]["file_id"].as_i64().unwrap()
}

async fn farm(app: &TestApp, email: &str, snr: &str) -> Farm {
    let session = app.login_new_user(email).await;
    let (printer, token) = app.register_printer(&session, snr).await;
    assert_eq!(ready(app, &token).await, json!({}));
    let file = upload(app, &session).await;
    Farm {
        session,
        printer,
        token,
        file,
    }
}

async fn print_file(app: &TestApp, f: &Farm, only_queue: bool) -> (u16, Value) {
    app.post(
        "/apiglobal/print_file",
        &[
            ("session", &f.session),
            ("file_id", &f.file.to_string()),
            ("printer_id", &f.printer.to_string()),
            ("only_queue", if only_queue { "1" } else { "0" }),
        ],
    )
    .await
}

async fn new_job(app: &TestApp, f: &Farm, only_queue: bool) -> i64 {
    let (status, body) = print_file(app, f, only_queue).await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["job_id"]
        .as_str()
        .expect("job_id is a string");
    id.parse().unwrap()
}

async fn job_info(app: &TestApp, session: &str, job: i64) -> Value {
    let (status, body) = app
        .post(
            "/apiglobal/get_job_info",
            &[("session", session), ("job_id", &job.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"].clone()
}

async fn job_call(app: &TestApp, call: &str, session: &str, job: i64) -> (u16, Value) {
    app.post(
        &format!("/apiglobal/{call}"),
        &[("session", session), ("job_id", &job.to_string())],
    )
    .await
}

async fn status(app: &TestApp, session: &str, job: i64) -> String {
    job_info(app, session, job).await["status_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The agent takes the gcodes command of a started job, acks it and reports printing.
async fn agent_starts(app: &TestApp, f: &Farm, job: i64) -> Value {
    let cmd = ready(app, &f.token).await;
    assert_eq!(cmd["command"], "gcodes", "{cmd}");
    assert_eq!(cmd["job_id"], json!(job));
    let n = cmd["number"].clone();
    report(
        app,
        &f.token,
        json!({"state": "downloading", "percent": 50, "clouds_job_id": job}),
        json!({"command_ack": {"number": n, "result": true}}),
    )
    .await;
    report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 1, "clouds_job_id": job}),
        json!({}),
    )
    .await;
    cmd
}

async fn finish(app: &TestApp, f: &Farm, job: i64) {
    report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 100.0, "clouds_job_id": job}),
        json!({}),
    )
    .await;
    report(
        app,
        &f.token,
        json!({"state": "ready", "percent": 100.0}),
        json!({}),
    )
    .await;
}

async fn job_life_finished(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-1").await;
    let job = new_job(app, &f, false).await;
    assert_eq!(
        status(app, &f.session, job).await,
        "21",
        "started at once: ready printer, clear tray"
    );

    let cmd = ready(app, &f.token).await;
    assert_eq!(cmd["command"], "gcodes");
    assert_eq!(
        (
            cmd["is_link"].clone(),
            cmd["filename"].clone(),
            cmd["zip"].clone()
        ),
        (json!(true), json!("cube.gcode"), json!(false))
    );
    let original = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    assert_eq!(cmd["size"], json!(original.len()));
    assert_eq!(cmd["printing_duration"], json!(956));
    // The agent downloads with a plain GET (no session), checks the length and resumes.
    let url = cmd["payload"].as_str().unwrap();
    assert!(url.starts_with(&app.base), "{url}");
    let res = app.client.get(url).send().await.unwrap();
    assert_eq!(
        res.headers()["content-length"],
        original.len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), original);
    let res = app
        .client
        .get(url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        original[1000..].to_vec()
    );
    assert_eq!(
        app.client
            .get(format!("{}x", url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404,
        "a wrong secret finds nothing"
    );

    let n = cmd["number"].clone();
    report(
        app,
        &f.token,
        json!({"state": "downloading", "percent": 100}),
        json!({"command_ack": {"number": n, "result": true}}),
    )
    .await;
    report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 30, "clouds_job_id": job}),
        json!({}),
    )
    .await;

    let (status_code, body) = job_call(app, "job_pause", &f.session, job).await;
    assert_eq!(
        (status_code, body),
        (200, json!({"result": true, "message": "Ok"}))
    );
    let cmd = report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 31}),
        json!({}),
    )
    .await;
    assert_eq!(cmd["command"], "pause");
    report(
        app,
        &f.token,
        json!({"state": "paused", "percent": 31}),
        json!({"command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    assert_eq!(status(app, &f.session, job).await, "21");
    assert_eq!(job_call(app, "job_unpause", &f.session, job).await.0, 200);
    let cmd = report(
        app,
        &f.token,
        json!({"state": "paused", "percent": 31}),
        json!({}),
    )
    .await;
    assert_eq!(cmd["command"], "unpause");
    report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 60}),
        json!({"command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    finish(app, &f, job).await;

    let info = job_info(app, &f.session, job).await;
    assert_eq!(info["status_id"], "77");
    let keys = [
        "id",
        "status_id",
        "datetime",
        "printer_id",
        "print_time",
        "gif_image",
        "picture",
        "notes",
        "file_id",
        "filename",
        "file_size",
        "printing_duration",
        "material_type",
        "layer_height",
        "color_numbers",
        "extruders",
        "weight",
        "heated_bed",
        "heated_bed_temperature",
        "raft",
        "supports",
        "file_cost",
        "cost",
        "email",
    ];
    assert_eq!(
        info.as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        keys
    );
    for k in [
        "id",
        "status_id",
        "printer_id",
        "print_time",
        "file_id",
        "file_size",
        "printing_duration",
        "layer_height",
        "weight",
        "heated_bed_temperature",
        "color_numbers",
    ] {
        assert!(info[k].is_string(), "{k} must be a JSON string: {info}");
    }
    assert_eq!(
        (
            info["heated_bed"].clone(),
            info["raft"].clone(),
            info["supports"].clone()
        ),
        (json!("t"), json!("f"), json!("f"))
    );
    assert_eq!(info["layer_height"], "0.2");
    assert_eq!(info["heated_bed_temperature"], "60");
    assert_eq!(info["printing_duration"], "956");
    assert_eq!(info["weight"], "3.83");
    let extruders: Value = serde_json::from_str(info["extruders"].as_str().unwrap()).unwrap();
    assert_eq!(extruders["R"], json!(215));
    assert_eq!(
        (
            info["file_cost"].clone(),
            info["cost"].clone(),
            info["gif_image"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(info["email"], "maker@example.com");
    assert!(info["picture"].as_str().unwrap().ends_with(".png"));
    // The printer is free again, its tray not clear; the download link is dead.
    let mut c = app.conn();
    let (current, tray): (Option<i64>, bool) = printers::table
        .find(f.printer)
        .select((printers::current_job_id, printers::tray_clear))
        .first(&mut *c)
        .unwrap();
    assert_eq!((current, tray), (None, false));
    assert_eq!(
        app.client.get(url).send().await.unwrap().status().as_u16(),
        404
    );
}

async fn job_cancelled_and_failed(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-2").await;
    let clear = |f: &Farm| {
        let (s, p) = (f.session.clone(), f.printer.to_string());
        async move {
            app.post(
                "/apiglobal/printer_clear_build_tray",
                &[("session", &s), ("printer_id", &p)],
            )
            .await
        }
    };
    // Cancelled from the web → aborted 45.
    let job = new_job(app, &f, false).await;
    agent_starts(app, &f, job).await;
    assert_eq!(job_call(app, "job_cancel", &f.session, job).await.0, 200);
    let cmd = report(
        app,
        &f.token,
        json!({"state": "printing", "percent": 5}),
        json!({}),
    )
    .await;
    assert_eq!(cmd["command"], "cancel");
    report(
        app,
        &f.token,
        json!({"state": "cancel"}),
        json!({"command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    assert_eq!(status(app, &f.session, job).await, "45");
    {
        let mut c = app.conn();
        let (source, reason, by): (Option<String>, Option<String>, Option<i64>) = jobs::table
            .find(job)
            .select((
                jobs::cancel_source,
                jobs::cancel_reason,
                jobs::cancelled_by_user_id,
            ))
            .first(&mut *c)
            .unwrap();
        // The printer's "cancel" confirms the web cancel; it does not become the source.
        assert_eq!(source.as_deref(), Some("CANCELLED_WEB"));
        assert_eq!(reason, None, "nobody chose a reason");
        assert!(by.is_some());
    }
    // An agent error → failed 43.
    ready(app, &f.token).await;
    clear(&f).await;
    let job = new_job(app, &f, false).await;
    agent_starts(app, &f, job).await;
    report(
        app,
        &f.token,
        json!({"state": "error", "percent": 7}),
        json!({"error": [{"code": 610, "message": "thermal runaway", "level": 50}]}),
    )
    .await;
    assert_eq!(status(app, &f.session, job).await, "43");
    // reset_job after an agent restart → failed 43.
    ready(app, &f.token).await;
    clear(&f).await;
    let job = new_job(app, &f, false).await;
    agent_starts(app, &f, job).await;
    report(
        app,
        &f.token,
        json!({"state": "connecting"}),
        json!({"reset_job": true}),
    )
    .await;
    assert_eq!(status(app, &f.session, job).await, "43");
    // Queued jobs are cancelled at once; ended jobs cannot be cancelled.
    ready(app, &f.token).await;
    let queued = new_job(app, &f, true).await;
    assert_eq!(job_call(app, "job_cancel", &f.session, queued).await.0, 200);
    assert_eq!(status(app, &f.session, queued).await, "45");
    assert_fail(&job_call(app, "job_cancel", &f.session, queued).await, 409);
    assert_fail(&job_call(app, "job_pause", &f.session, queued).await, 409);
}

async fn queue_of_three_with_auto_start(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-3").await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (status_code, _) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &admin), ("auto_start_queue", "1")],
        )
        .await;
    assert_eq!(status_code, 200);
    let j1 = new_job(app, &f, false).await;
    let j2 = new_job(app, &f, false).await;
    let j3 = new_job(app, &f, true).await;
    assert_eq!(
        [
            status(app, &f.session, j1).await,
            status(app, &f.session, j2).await,
            status(app, &f.session, j3).await
        ],
        ["21", "11", "11"]
    );
    agent_starts(app, &f, j1).await;
    finish(app, &f, j1).await;
    // Finished, but the tray is not clear: nothing starts.
    assert_eq!(ready(app, &f.token).await, json!({}));
    assert_eq!(status(app, &f.session, j2).await, "11");
    let (status_code, _) = app
        .post(
            "/apiglobal/printer_clear_build_tray",
            &[
                ("session", &f.session),
                ("printer_id", &f.printer.to_string()),
            ],
        )
        .await;
    assert_eq!(status_code, 200);
    assert_eq!(status(app, &f.session, j2).await, "21");
    agent_starts(app, &f, j2).await;
    finish(app, &f, j2).await;
    // The agent's own bed-clear button works too.
    report(
        app,
        &f.token,
        json!({"state": "ready", "percent": 0}),
        json!({"bed_clear": true}),
    )
    .await;
    assert_eq!(status(app, &f.session, j3).await, "21");
    agent_starts(app, &f, j3).await;
    finish(app, &f, j3).await;
    assert_eq!(status(app, &f.session, j3).await, "77");
}

async fn refusals(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-4").await;
    let pid = f.printer.to_string();
    // Another user's file and an invisible printer.
    let other = farm(app, "other@example.com", "SN-5").await;
    let got = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &f.session),
                ("file_id", &other.file.to_string()),
                ("printer_id", &pid),
            ],
        )
        .await;
    assert_fail(&got, 404);
    let got = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &f.session),
                ("file_id", &f.file.to_string()),
                ("printer_id", &other.printer.to_string()),
            ],
        )
        .await;
    assert_fail(&got, 404);
    // Not G-code; G-code made for another printer type.
    let stl = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap();
    let (_, body) = app.upload(&f.session, "cube.stl", stl, &[]).await;
    let stl_id = body["message"]["file_id"].as_i64().unwrap().to_string();
    assert!(assert_fail(
        &app.post(
            "/apiglobal/print_file",
            &[
                ("session", &f.session),
                ("file_id", &stl_id),
                ("printer_id", &pid)
            ]
        )
        .await,
        400
    )
    .contains("G-code"));
    let typed = upload(app, &f.session).await;
    let updates = json!({typed.to_string(): {"ptype": 30}}).to_string();
    app.post(
        "/apiglobal/file_update",
        &[("session", &f.session), ("updates", &updates)],
    )
    .await;
    assert!(assert_fail(
        &app.post(
            "/apiglobal/print_file",
            &[
                ("session", &f.session),
                ("file_id", &typed.to_string()),
                ("printer_id", &pid)
            ]
        )
        .await,
        400
    )
    .contains("printer type"));
    assert!(assert_fail(
        &app.post(
            "/apiglobal/print_file",
            &[("session", &f.session), ("printer_id", &pid)]
        )
        .await,
        400
    )
    .contains("file_id"));

    // Queue-only rights through a share.
    app.post(
        "/apiglobal/share_printer",
        &[
            ("session", &f.session),
            ("printer_id", &pid),
            ("role_id", "5"),
            ("user_email", "queuer@example.com"),
        ],
    )
    .await;
    let queuer = Farm {
        session: app.login_new_user("queuer@example.com").await,
        printer: f.printer,
        token: f.token.clone(),
        file: 0,
    };
    let queuer = Farm {
        file: upload(app, &queuer.session).await,
        ..queuer
    };
    assert!(assert_fail(&print_file(app, &queuer, false).await, 403).contains("only queue"));
    let qjob = new_job(app, &queuer, true).await;
    assert_fail(
        &job_call(app, "job_start", &queuer.session, qjob).await,
        403,
    );

    // The owner (who manages the printer) may cancel someone else's job on it; then the
    // owner's job is first in line and starts.
    assert_eq!(job_call(app, "job_cancel", &f.session, qjob).await.0, 200);
    // Busy printer and tray not clear.
    let running = new_job(app, &f, false).await;
    assert_eq!(status(app, &f.session, running).await, "21");
    let waiting = new_job(app, &f, true).await;
    assert!(
        assert_fail(&job_call(app, "job_start", &f.session, waiting).await, 409).contains("busy")
    );
    agent_starts(app, &f, running).await;
    finish(app, &f, running).await;
    assert!(
        assert_fail(&job_call(app, "job_start", &f.session, waiting).await, 409).contains("tray")
    );
    // Printer in error, then offline.
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[("session", &f.session), ("printer_id", &pid)],
    )
    .await;
    report(
        app,
        &f.token,
        json!({"state": "error"}),
        json!({"error": [{"code": 99, "message": "printer gone", "level": 40}]}),
    )
    .await;
    assert!(
        assert_fail(&job_call(app, "job_start", &f.session, waiting).await, 409).contains("error")
    );
    assert!(assert_fail(&print_file(app, &f, false).await, 409).contains("error"));
    {
        let mut c = app.conn();
        let long_ago = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
        diesel::update(printers::table.find(f.printer))
            .set(printers::last_seen_at.eq(Some(long_ago)))
            .execute(&mut *c)
            .unwrap();
    }
    assert!(assert_fail(&print_file(app, &f, false).await, 409).contains("offline"));
    // Jobs of others: a stranger gets 404; the job's owner cannot act on others' jobs.
    assert_fail(
        &job_call(app, "job_cancel", &other.session, waiting).await,
        404,
    );
    assert_fail(
        &job_call(app, "get_job_info", &other.session, waiting).await,
        404,
    );
    assert_fail(
        &job_call(app, "job_cancel", &queuer.session, waiting).await,
        404,
    );
    // The queuer still sees jobs of a printer they can reach.
    assert_eq!(
        job_info(app, &queuer.session, waiting).await["status_id"],
        "11"
    );
    assert_fail(&job_call(app, "job_start", &f.session, 999_999).await, 404);
    assert_fail(
        &app.post(
            "/apiglobal/get_printer_jobs",
            &[("session", &other.session), ("printer_id", &pid)],
        )
        .await,
        404,
    );
}

async fn charging_quota_balance_and_share_prints(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-6").await;
    let pid = f.printer.to_string();
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let clear_and_finish = |job: i64| {
        let f = &f;
        async move {
            agent_starts(app, f, job).await;
            finish(app, f, job).await;
            app.post(
                "/apiglobal/printer_clear_build_tray",
                &[
                    ("session", &f.session),
                    ("printer_id", &f.printer.to_string()),
                ],
            )
            .await;
            ready(app, &f.token).await;
        }
    };
    // Material prices give jobs a cost; the balance pays for it once, at start.
    let (code, body) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &admin), ("material_prices", r#"{"PLA": 20}"#)],
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let uid = {
        let mut c = app.conn();
        users::table
            .filter(users::email.eq("maker@example.com"))
            .select(users::id)
            .first::<i64>(&mut *c)
            .unwrap()
    };
    app.post(
        "/apiglobal/update_user_settings",
        &[
            ("session", &admin),
            ("user_id", &uid.to_string()),
            ("balance", "0.1"),
            ("quota", "2"),
        ],
    )
    .await;
    let job = new_job(app, &f, false).await;
    let info = job_info(app, &f.session, job).await;
    assert_eq!(
        (info["file_cost"].clone(), info["cost"].clone()),
        (json!("0.08"), json!("0.08")),
        "3.83 g of PLA at 20/kg"
    );
    clear_and_finish(job).await;
    let balance = |app: &TestApp| {
        let mut c = app.conn();
        users::table
            .find(uid)
            .select((users::balance, users::quota_used))
            .first::<(Option<f64>, i32)>(&mut *c)
            .unwrap()
    };
    let (b, used) = balance(app);
    assert!((b.unwrap() - 0.02).abs() < 1e-9, "{b:?}");
    assert_eq!(used, 1);
    // The balance no longer covers a print.
    assert!(assert_fail(&print_file(app, &f, false).await, 403).contains("balance"));
    app.post(
        "/apiglobal/update_user_settings",
        &[
            ("session", &admin),
            ("user_id", &uid.to_string()),
            ("balance", "10"),
        ],
    )
    .await;
    let job = new_job(app, &f, false).await;
    clear_and_finish(job).await;
    // Quota 2 used up.
    assert!(assert_fail(&print_file(app, &f, false).await, 403).contains("quota"));
    assert_eq!(balance(app).1, 2, "charged exactly once per job");

    // A share with one print.
    app.post(
        "/apiglobal/share_printer",
        &[
            ("session", &f.session),
            ("printer_id", &pid),
            ("role_id", "2"),
            ("user_email", "guest@example.com"),
            ("number_of_prints", "1"),
        ],
    )
    .await;
    let guest_session = app.login_new_user("guest@example.com").await;
    let guest = Farm {
        file: upload(app, &guest_session).await,
        session: guest_session,
        printer: f.printer,
        token: f.token.clone(),
    };
    let job = new_job(app, &guest, false).await;
    assert_eq!(status(app, &guest.session, job).await, "21");
    clear_and_finish(job).await;
    assert!(assert_fail(&print_file(app, &guest, true).await, 403).contains("share"));
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_shares",
            &[("session", &f.session), ("printer_id", &pid)],
        )
        .await;
    assert_eq!(
        body["message"][0]["number_of_prints"],
        json!(0),
        "remaining prints"
    );
}

async fn racing_starts_never_start_two_jobs(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-7").await;
    let calls = (0..8).map(|_| print_file(app, &f, false));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    let mut c = app.conn();
    let statuses: Vec<i32> = jobs::table
        .filter(jobs::printer_id.eq(f.printer))
        .select(jobs::status_id)
        .load(&mut *c)
        .unwrap();
    assert_eq!(
        statuses.iter().filter(|s| **s == 21).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 11).count(), 7);
    // Racing job_start on one queued job, with the printer free again.
    let running: i64 = jobs::table
        .filter(jobs::status_id.eq(21))
        .select(jobs::id)
        .first(&mut *c)
        .unwrap();
    drop(c);
    agent_starts(app, &f, running).await;
    finish(app, &f, running).await;
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[
            ("session", &f.session),
            ("printer_id", &f.printer.to_string()),
        ],
    )
    .await;
    ready(app, &f.token).await;
    let mut c = app.conn();
    let queued: Vec<i64> = jobs::table
        .filter(jobs::status_id.eq(11))
        .order(jobs::id)
        .select(jobs::id)
        .load(&mut *c)
        .unwrap();
    drop(c);
    let calls = queued
        .iter()
        .flat_map(|j| [j, j])
        .map(|j| job_call(app, "job_start", &f.session, *j));
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 409));
    let mut c = app.conn();
    let started: i64 = jobs::table
        .filter(jobs::status_id.eq(21))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(started, 1);
    let commands: i64 = printfarm::db::schema::printer_commands::table
        .filter(printfarm::db::schema::printer_commands::command.eq("gcodes"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(commands, 2, "one gcodes command per started job");
}

async fn live_updates_never_miss_a_change(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-8").await;
    let pid = f.printer.to_string();
    let (status_code, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &f.session),
                ("printer_id", &pid),
                ("prev_time", "0"),
            ],
        )
        .await;
    assert_eq!(status_code, 200);
    assert_eq!(body["message"], json!([]));
    let mut cursor = body["time"].as_i64().expect("top-level time cursor");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    // Writers: many jobs created and cancelled concurrently, while a reader follows the cursor.
    let writers = async {
        let creates = (0..12).map(|_| new_job(app, &f, true));
        let ids = futures_util::future::join_all(creates).await;
        let cancels = ids
            .iter()
            .step_by(2)
            .map(|j| job_call(app, "job_cancel", &f.session, *j));
        futures_util::future::join_all(cancels).await;
        ids
    };
    let reader = async {
        for _ in 0..40 {
            let (_, body) = app
                .post(
                    "/apiglobal/get_printer_jobs",
                    &[
                        ("session", &f.session),
                        ("printer_id", &pid),
                        ("prev_time", &cursor.to_string()),
                        ("limit", "1000"),
                    ],
                )
                .await;
            for j in body["message"].as_array().unwrap() {
                seen.insert(
                    j["id"].as_str().unwrap().to_string(),
                    j["status_id"].as_str().unwrap().to_string(),
                );
            }
            cursor = body["time"].as_i64().unwrap();
            actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (ids, ()) = futures_util::join!(writers, reader);
    // One more read after the writers are done.
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &f.session),
                ("printer_id", &pid),
                ("prev_time", &cursor.to_string()),
                ("limit", "1000"),
            ],
        )
        .await;
    for j in body["message"].as_array().unwrap() {
        seen.insert(
            j["id"].as_str().unwrap().to_string(),
            j["status_id"].as_str().unwrap().to_string(),
        );
    }
    let mut c = app.conn();
    let truth: BTreeMap<String, String> = jobs::table
        .filter(jobs::printer_id.eq(f.printer))
        .select((jobs::id, jobs::status_id))
        .load::<(i64, i32)>(&mut *c)
        .unwrap()
        .into_iter()
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect();
    assert_eq!(truth.len(), ids.len());
    assert_eq!(
        seen, truth,
        "following the cursor saw every job in its final state"
    );
    // Nothing changed since: an empty answer, same cursor.
    let final_cursor = body["time"].as_i64().unwrap();
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &f.session),
                ("printer_id", &pid),
                ("prev_time", &final_cursor.to_string()),
            ],
        )
        .await;
    assert_eq!(
        (body["message"].clone(), body["time"].as_i64().unwrap()),
        (json!([]), final_cursor)
    );
}

async fn listing_pages_and_is_actual(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-9").await;
    let pid = f.printer.to_string();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_job(app, &f, true).await);
    }
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &f.session),
                ("printer_id", &pid),
                ("limit", "2"),
                ("offset", "1"),
            ],
        )
        .await;
    let got: Vec<String> = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        vec![ids[3].to_string(), ids[2].to_string()],
        "newest first"
    );
    let item = &body["message"][0];
    assert_eq!(
        item.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "status_id", "filename", "datetime", "email"]
    );
    assert_eq!(
        (
            item["status_id"].clone(),
            item["filename"].clone(),
            item["email"].clone()
        ),
        (json!("11"), json!("cube.gcode"), json!("maker@example.com"))
    );
    assert_eq!(item["datetime"].as_str().unwrap().len(), 19);
    // Two jobs end: one now, one two days ago; is_actual keeps the active ones and the recent end.
    job_call(app, "job_cancel", &f.session, ids[0]).await;
    job_call(app, "job_cancel", &f.session, ids[1]).await;
    {
        let mut c = app.conn();
        let old = chrono::Utc::now().naive_utc() - chrono::Duration::hours(48);
        diesel::update(jobs::table.find(ids[0]))
            .set(jobs::ended_at.eq(Some(old)))
            .execute(&mut *c)
            .unwrap();
    }
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &f.session),
                ("printer_id", &pid),
                ("is_actual", "1"),
            ],
        )
        .await;
    let got: Vec<String> = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ids[1..]
            .iter()
            .rev()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
    );
    for bad in [
        ("limit", "0"),
        ("limit", "x"),
        ("offset", "-1"),
        ("is_actual", "maybe"),
    ] {
        assert_fail(
            &app.post(
                "/apiglobal/get_printer_jobs",
                &[("session", &f.session), ("printer_id", &pid), bad],
            )
            .await,
            400,
        );
    }
}

async fn agent_queue_calls(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-10").await;
    let j1 = new_job(app, &f, true).await;
    let j2 = new_job(app, &f, true).await;
    let list = app
        .agent("get_queued_jobs", json!({"auth_token": f.token}))
        .await;
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![j1, j2], "next job first");
    assert_eq!(list[0]["filename"], "cube.gcode");
    assert_eq!(
        app.agent(
            "start_queued_job",
            json!({"auth_token": f.token, "job_id": j2, "automatic": true})
        )
        .await,
        json!([])
    );
    assert_eq!(status(app, &f.session, j2).await, "21");
    let cmd = ready(app, &f.token).await;
    assert_eq!(
        (cmd["command"].clone(), cmd["job_id"].clone()),
        (json!("gcodes"), json!(j2))
    );
    let busy = app
        .agent(
            "start_queued_job",
            json!({"auth_token": f.token, "job_id": j1}),
        )
        .await;
    assert_eq!(busy["error"]["code"], json!(409));
    let other = farm(app, "other@example.com", "SN-11").await;
    let foreign = app
        .agent(
            "start_queued_job",
            json!({"auth_token": other.token, "job_id": j1}),
        )
        .await;
    assert_eq!(foreign["error"]["code"], json!(404));
    assert_eq!(
        app.agent("get_queued_jobs", json!({"auth_token": "bad"}))
            .await["error"]["code"],
        json!(3)
    );
}

type Why = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// (cancel_source, cancel_reason, cancel_details, feedback) of a job.
fn why(app: &TestApp, job: i64) -> Why {
    let mut c = app.conn();
    jobs::table
        .find(job)
        .select((
            jobs::cancel_source,
            jobs::cancel_reason,
            jobs::cancel_details,
            jobs::feedback,
        ))
        .first(&mut *c)
        .unwrap()
}

async fn cancel(app: &TestApp, session: &str, job: i64, extra: &[(&str, &str)]) -> (u16, Value) {
    let id = job.to_string();
    let mut form = vec![("session", session), ("job_id", id.as_str())];
    form.extend_from_slice(extra);
    app.post("/apiglobal/job_cancel", &form).await
}

async fn feedback(app: &TestApp, session: &str, job: i64, text: &str) -> (u16, Value) {
    app.post(
        "/apiglobal/job_feedback",
        &[
            ("session", session),
            ("job_id", &job.to_string()),
            ("feedback", text),
        ],
    )
    .await
}

/// `job_cancel`'s reason comes from the documented list (code or label), free text goes to
/// the details, and feedback is left on an ended job by its owner or the printer's managers.
async fn cancel_reasons_and_feedback(app: &TestApp) {
    let f = farm(app, "maker@example.com", "SN-R1").await;
    let job = new_job(app, &f, true).await;
    let nothing: Why = (None, None, None, None);

    // An unknown reason names the valid ones; nothing is written.
    let msg = assert_fail(
        &cancel(app, &f.session, job, &[("reason", "ugly")]).await,
        400,
    );
    assert!(
        msg.contains("hardware_issue") && msg.contains("print_quality") && msg.contains("other"),
        "{msg}"
    );
    let long = "x".repeat(1001);
    let msg = assert_fail(
        &cancel(
            app,
            &f.session,
            job,
            &[("reason", "other"), ("details", &long)],
        )
        .await,
        400,
    );
    assert!(msg.contains("1000"), "{msg}");
    assert_eq!(status(app, &f.session, job).await, "11");
    assert_eq!(why(app, job), nothing);
    // Feedback waits for the job to end.
    assert_fail(&feedback(app, &f.session, job, "nice").await, 409);

    // The label is accepted as well as the code; the code is stored.
    let ok = cancel(
        app,
        &f.session,
        job,
        &[
            ("reason", "print QUALITY"),
            ("details", "  stringing everywhere "),
        ],
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(status(app, &f.session, job).await, "45");
    assert_eq!(
        why(app, job),
        (
            Some("CANCELLED_WEB".into()),
            Some("print_quality".into()),
            Some("stringing everywhere".into()),
            None
        )
    );
    // Ended: a second cancel is a conflict.
    assert_fail(
        &cancel(app, &f.session, job, &[("reason", "other")]).await,
        409,
    );

    // Feedback: bounded, by the owner, replaced by a second one.
    let msg = assert_fail(
        &feedback(app, &f.session, job, &"y".repeat(2001)).await,
        400,
    );
    assert!(msg.contains("2000"), "{msg}");
    assert_eq!(feedback(app, &f.session, job, "Lovely ✓").await.0, 200);
    assert_eq!(why(app, job).3.as_deref(), Some("Lovely ✓"));
    // An organization admin manages every printer of the organization.
    let (_, admin) = app
        .user_with_session(app.org_id, "boss@example.com", 1)
        .await;
    assert_eq!(feedback(app, &admin, job, "Checked by staff").await.0, 200);
    assert_eq!(why(app, job).3.as_deref(), Some("Checked by staff"));
    // A member who neither owns the job nor manages its printer, and someone of another
    // organization, get the same 404 as for a missing job.
    let member = app.login_new_user("peer@example.com").await;
    assert_fail(&feedback(app, &member, job, "meh").await, 404);
    let other_org = app.create_org("Elsewhere");
    let (_, stranger) = app
        .user_with_session(other_org, "stranger@example.com", 1)
        .await;
    assert_fail(&feedback(app, &stranger, job, "meh").await, 404);
    assert_fail(&cancel(app, &stranger, job, &[]).await, 404);
    assert_fail(&feedback(app, &f.session, 987_654, "meh").await, 404);
    assert_eq!(why(app, job).3.as_deref(), Some("Checked by staff"));

    // A finished job takes feedback too; the report shows the reason's label and the feedback.
    ready(app, &f.token).await;
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[
            ("session", &f.session),
            ("printer_id", &f.printer.to_string()),
        ],
    )
    .await;
    let done = new_job(app, &f, false).await;
    agent_starts(app, &f, done).await;
    finish(app, &f, done).await;
    assert_eq!(status(app, &f.session, done).await, "77");
    assert_eq!(feedback(app, &f.session, done, "Perfect").await.0, 200);
    let (code, body) = app
        .post(
            "/apiglobal/get_custom_report",
            &[
                ("session", &admin),
                ("type", "json"),
                (
                    "fields",
                    "job_id,status,cancel_reason,cancel_details,feedback",
                ),
            ],
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let rows = body["message"].as_array().unwrap();
    let row = |id: i64| {
        rows[2..]
            .iter()
            .find(|r| r[0] == json!(id))
            .unwrap()
            .clone()
    };
    assert_eq!(
        row(job),
        json!([
            job,
            "CANCELLED_WEB",
            "Print quality",
            "stringing everywhere",
            "Checked by staff"
        ])
    );
    assert_eq!(row(done), json!([done, "DONE", null, null, "Perfect"]));

    // A printing job cancelled twice (the second time without a reason) keeps the reason;
    // the printer's confirmation does not change it.
    app.post(
        "/apiglobal/printer_clear_build_tray",
        &[
            ("session", &f.session),
            ("printer_id", &f.printer.to_string()),
        ],
    )
    .await;
    let running = new_job(app, &f, false).await;
    agent_starts(app, &f, running).await;
    let first = cancel(app, &f.session, running, &[("reason", "hardware_issue")]).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(cancel(app, &f.session, running, &[]).await.0, 200);
    report(app, &f.token, json!({"state": "cancel"}), json!({})).await;
    assert_eq!(status(app, &f.session, running).await, "45");
    let (source, reason, details, _) = why(app, running);
    assert_eq!(
        (source.as_deref(), reason.as_deref(), details),
        (Some("CANCELLED_WEB"), Some("hardware_issue"), None)
    );
}

/// Rows from before the migration kept CANCELLED_WEB / CANCELLED_PRINTER in cancel_reason:
/// the migration moves them to cancel_source, and the report still reads sensibly.
async fn old_cancel_codes_move_to_the_source_column(app: &TestApp) {
    use diesel::sql_types::BigInt;
    use diesel_migrations::MigrationHarness;
    use printfarm::db::{self, DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};

    let f = farm(app, "maker@example.com", "SN-M1").await;
    let web = new_job(app, &f, true).await;
    let printer = new_job(app, &f, true).await;
    let queued = new_job(app, &f, true).await;
    {
        let mut c = app.conn();
        let conn: &mut DbConn = &mut c;
        let pg = matches!(conn, DbConn::Pg(_));
        // Back to the schema before cancel_source (later migrations are reverted on the way).
        loop {
            let set = if pg { PG_MIGRATIONS } else { SQLITE_MIGRATIONS };
            let v = conn.revert_last_migration(set).unwrap().to_string();
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            if digits == "20261203000010" {
                break;
            }
        }
        for (job, code) in [(web, "CANCELLED_WEB"), (printer, "CANCELLED_PRINTER")] {
            diesel::sql_query(format!(
                "UPDATE jobs SET status_id = 45, cancel_reason = '{code}', \
                 cancel_details = 'old details' WHERE id = $1"
            ))
            .bind::<BigInt, _>(job)
            .execute(conn)
            .unwrap();
        }
        let applied = db::run_migrations(conn).unwrap();
        assert!(!applied.is_empty());
    }
    let old = |s: &str| (Some(s.to_string()), None, Some("old details".into()), None);
    assert_eq!(why(app, web), old("CANCELLED_WEB"));
    assert_eq!(why(app, printer), old("CANCELLED_PRINTER"));
    assert_eq!(why(app, queued), (None, None, None, None));

    let (_, admin) = app
        .user_with_session(app.org_id, "boss@example.com", 1)
        .await;
    let (code, body) = app
        .post(
            "/apiglobal/get_custom_report",
            &[
                ("session", &admin),
                ("type", "json"),
                ("fields", "job_id,status,cancel_reason,cancel_details"),
            ],
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["message"].as_array().unwrap()[2..],
        [
            json!([web, "CANCELLED_WEB", null, "old details"]),
            json!([
                printer,
                "CANCELLED_PRINTER",
                "Cancelled on the printer",
                "old details"
            ]),
            json!([queued, "QUEUED", null, null]),
        ]
    );
}

/// Each Global API call that queues a command for a printer ends that printer's held long
/// poll at once (the wake-up follows the committed command; no call wakes by hand). On
/// SQLite nothing but this instance's wake-up can end the hold early.
async fn every_queued_command_wakes_a_held_poll(app: &TestApp) {
    let f = farm(app, "wake@example.com", "SN-WAKE").await;
    let held = |token: String, report: Value| {
        let client = app.client.clone();
        let url = app.url("/apiprinter/v1/printer/command");
        actix_web::rt::spawn(async move {
            let body = json!({"auth_token": token, "report": report, "wait": 25});
            let res = client.post(url).json(&body).send().await.unwrap();
            res.json::<Value>().await.unwrap()
        })
    };
    let woken = |waiting: actix_web::rt::task::JoinHandle<Value>| async move {
        actix_web::rt::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the held poll answers well before its 25 s")
            .unwrap()
    };
    let pause = std::time::Duration::from_millis(300);
    let printing = json!({"state": "printing", "percent": 10});

    let waiting = held(f.token.clone(), json!({"state": "ready"}));
    actix_web::rt::time::sleep(pause).await;
    let job = new_job(app, &f, false).await;
    let got = woken(waiting).await;
    assert_eq!(got["command"], "gcodes", "{got}");
    let ack = json!({"number": got["number"], "result": true});
    report(app, &f.token, printing.clone(), json!({"command_ack": ack})).await;

    for (call, command) in [
        ("job_pause", "pause"),
        ("job_unpause", "unpause"),
        ("job_cancel", "cancel"),
    ] {
        let waiting = held(f.token.clone(), printing.clone());
        actix_web::rt::time::sleep(pause).await;
        let (status, body) = job_call(app, call, &f.session, job).await;
        assert_eq!(status, 200, "{call}: {body}");
        let got = woken(waiting).await;
        assert_eq!(got["command"], command, "{call}: {got}");
        let ack = json!({"number": got["number"], "result": true});
        report(app, &f.token, printing.clone(), json!({"command_ack": ack})).await;
    }
}
