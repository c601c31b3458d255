//! Reports for organization admins (calls 22 `get_custom_report`, 27
//! `get_finished_jobs_report`) on both backends. Jobs come from the real HTTP API and the
//! printer protocol; time-shifted and bulk jobs are inserted directly.

use crate::common;

use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use common::{assert_fail, TestApp, PASSWORD};
use diesel::prelude::*;
use printfarm::db::models::{Job, NewJob};
use printfarm::db::schema::{files, jobs, printers};
use printfarm::db::DbConn;
use printfarm::services::bootstrap::{self, NewAccount};
use serde_json::{json, Value};

backend_tests!(
    custom_report_every_field_json_and_csv,
    field_selection_and_organization_defaults,
    roles_and_organizations,
    date_ranges_and_limits,
    large_report_streams_in_batches,
    csv_cells_cannot_run_as_formulas,
);

const FILE_NAME: &str = "cube, \"v2\"\nstraße 🚀.gcode";
const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

const ALL_HEADERS: [&str; 19] = [
    "Job ID",
    "Printer ID",
    "Printer Name",
    "Printer Type",
    "File ID",
    "File Name",
    "Started Date/Time",
    "Account Email",
    "First Name",
    "Last Name",
    "Filament",
    "Material Cost",
    "Status",
    "Estimated Print Time",
    "Real Print Time",
    "Cancel Reason",
    "Cancel Details",
    "Started By",
    "Feedback",
];

const DEFAULT_HEADERS: [&str; 16] = [
    "Job ID",
    "Printer ID",
    "Printer Name",
    "Printer Type",
    "File ID",
    "File Name",
    "Started Date/Time",
    "Account Email",
    "Filament",
    "Material Cost",
    "Status",
    "Estimated Print Time",
    "Real Print Time",
    "Cancel Reason",
    "Cancel Details",
    "Feedback",
];

// ---------------------------------------------------------------------------------------------
// The printer side and the job flow.

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

/// Registers a printer through the agent protocol, redeemed by `session`.
async fn register(app: &TestApp, session: &str, snr: &str) -> (i64, String) {
    let dev = json!({"VID": "VIRT", "PID": "VIRT", "SNR": snr, "type": "PRUSA_MK4"});
    let code = app.agent("register", dev.clone()).await["registration_code"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", session), ("registration_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["printer_id"].as_i64().unwrap();
    let mut d = dev;
    d["registration_code"] = json!(code);
    let token = app.agent("register", d).await["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ready(app, &token).await, json!({}));
    (id, token)
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

async fn print_file(app: &TestApp, session: &str, file: i64, printer: i64, queue: bool) -> i64 {
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", session),
                ("file_id", &file.to_string()),
                ("printer_id", &printer.to_string()),
                ("only_queue", if queue { "1" } else { "0" }),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["job_id"].as_str().unwrap().parse().unwrap()
}

/// The agent takes the started job's gcodes command, acknowledges it and prints.
async fn agent_prints(app: &TestApp, token: &str, job: i64) {
    let cmd = ready(app, token).await;
    assert_eq!(cmd["command"], "gcodes", "{cmd}");
    assert_eq!(cmd["job_id"], json!(job));
    report(
        app,
        token,
        json!({"state": "downloading", "percent": 50, "clouds_job_id": job}),
        json!({"command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    report(
        app,
        token,
        json!({"state": "printing", "percent": 1, "clouds_job_id": job}),
        json!({}),
    )
    .await;
}

async fn finish(app: &TestApp, token: &str, job: i64) {
    report(
        app,
        token,
        json!({"state": "printing", "percent": 100.0, "clouds_job_id": job}),
        json!({}),
    )
    .await;
    report(
        app,
        token,
        json!({"state": "ready", "percent": 100.0}),
        json!({}),
    )
    .await;
}

async fn clear_tray(app: &TestApp, session: &str, printer: i64, token: &str) {
    ready(app, token).await;
    let (status, body) = app
        .post(
            "/apiglobal/printer_clear_build_tray",
            &[("session", session), ("printer_id", &printer.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn create_user(app: &TestApp, org: i64, email: &str, role: i32, first: &str, last: &str) {
    let mut c = app.conn();
    let conn: &mut DbConn = &mut c;
    bootstrap::create_user(
        conn,
        &app.state.hasher,
        &NewAccount {
            organization_id: printfarm::db::models::OrgId(org),
            email,
            password: Some(PASSWORD),
            firstname: first,
            lastname: last,
            company: "",
            access_role: role,
            gdpr: 3,
        },
    )
    .unwrap();
}

async fn create_workgroup(app: &TestApp, admin: &str, name: &str, password: &str) -> i64 {
    let (status, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", admin), ("name", name), ("password", password)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["id"].as_i64().unwrap()
}

fn job(app: &TestApp, id: i64) -> Job {
    let mut c = app.conn();
    Job::find(&mut c, printfarm::db::models::JobId(id))
        .unwrap()
        .unwrap()
}

fn fmt(t: NaiveDateTime) -> String {
    t.format(DATETIME).to_string()
}

// ---------------------------------------------------------------------------------------------
// A farm with every kind of job.

struct Jobs {
    done: i64,
    web: i64,
    failed: i64,
    running: i64,
    queued: i64,
    printer_cancel: i64,
}

struct World {
    admin: String,
    wgadmin: String,
    member: String,
    p1: i64,
    p2: i64,
    file: i64,
    lab: i64,
    shop: i64,
    jobs: Jobs,
    other_admin: String,
    other_jobs: Vec<i64>,
}

async fn world(app: &TestApp) -> World {
    let org = app.org_id;
    let (_, admin) = app.user_with_session(org, "admin@example.com", 1).await;
    let (_, wgadmin) = app.user_with_session(org, "wgadmin@example.com", 2).await;
    let (_, member) = app.user_with_session(org, "member@example.com", 0).await;
    create_user(app, org, "zoe@example.com", 0, "Zoë", "Ñuñez");
    let zoe = app.login("zoe@example.com", PASSWORD).await;
    let (status, body) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &admin), ("material_prices", r#"{"PLA": 20}"#)],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (p1, t1) = register(app, &zoe, "SN-R1").await;
    let (p2, t2) = register(app, &zoe, "SN-R2").await;
    let file = upload(app, &zoe).await;
    {
        let mut c = app.conn();
        diesel::update(files::table.find(file))
            .set(files::filename.eq(FILE_NAME))
            .execute(&mut *c)
            .unwrap();
        diesel::update(printers::table.find(p1))
            .set(printers::name.eq("Prusa #1 — Ørsted"))
            .execute(&mut *c)
            .unwrap();
        diesel::update(printers::table.find(p2))
            .set(printers::name.eq("Bench, \"B\""))
            .execute(&mut *c)
            .unwrap();
    }
    let lab = create_workgroup(app, &admin, "Lab", "lab-pw").await;
    let shop = create_workgroup(app, &admin, "Shop Ö", "sh\"op").await;
    let (status, body) = app
        .post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", &admin),
                ("printer_id", &p1.to_string()),
                ("workgroup_id", &format!("[{lab},{shop}]")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &admin),
                ("workgroup_id", &lab.to_string()),
                ("email", "wgadmin@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Finished.
    let done = print_file(app, &zoe, file, p1, false).await;
    agent_prints(app, &t1, done).await;
    finish(app, &t1, done).await;
    clear_tray(app, &zoe, p1, &t1).await;
    // Cancelled from the web, with a reason.
    let web = print_file(app, &zoe, file, p1, false).await;
    agent_prints(app, &t1, web).await;
    let (status, body) = app
        .post(
            "/apiglobal/job_cancel",
            &[
                ("session", &zoe),
                ("job_id", &web.to_string()),
                ("reason", "wrong_settings"),
                ("details", "wrong colour, \"oops\""),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cmd = report(
        app,
        &t1,
        json!({"state": "printing", "percent": 5}),
        json!({}),
    )
    .await;
    assert_eq!(cmd["command"], "cancel");
    report(
        app,
        &t1,
        json!({"state": "cancel"}),
        json!({"command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    clear_tray(app, &zoe, p1, &t1).await;
    // Failed on a printer error.
    let failed = print_file(app, &zoe, file, p1, false).await;
    agent_prints(app, &t1, failed).await;
    report(
        app,
        &t1,
        json!({"state": "error", "percent": 7}),
        json!({"error": [{"code": 610, "message": "thermal runaway", "level": 50}]}),
    )
    .await;
    clear_tray(app, &zoe, p1, &t1).await;
    // Queued by Zoë, started by the admin, printing.
    let running = print_file(app, &zoe, file, p1, true).await;
    let (status, body) = app
        .post(
            "/apiglobal/job_start",
            &[("session", &admin), ("job_id", &running.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    agent_prints(app, &t1, running).await;
    // Waiting its turn.
    let queued = print_file(app, &zoe, file, p1, true).await;
    // Cancelled on the printer itself.
    let printer_cancel = print_file(app, &zoe, file, p2, false).await;
    agent_prints(app, &t2, printer_cancel).await;
    report(app, &t2, json!({"state": "cancel"}), json!({})).await;

    {
        let mut c = app.conn();
        diesel::update(jobs::table.find(done))
            .set(jobs::print_time.eq(3725))
            .execute(&mut *c)
            .unwrap();
        let two_hours_ago = Utc::now().naive_utc() - Duration::hours(2);
        diesel::update(jobs::table.find(running))
            .set(jobs::started_at.eq(Some(two_hours_ago)))
            .execute(&mut *c)
            .unwrap();
    }

    // The owner leaves feedback on the finished job (printfarm extension `job_feedback`).
    let (status, body) = app
        .post(
            "/apiglobal/job_feedback",
            &[
                ("session", &zoe),
                ("job_id", &done.to_string()),
                ("feedback", "Great print 👍, thanks"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Another organization with jobs of its own: one waiting, one finished.
    let other = app.create_org("Other Org");
    let (_, other_admin) = app
        .user_with_session(other, "other-admin@example.com", 1)
        .await;
    let (_, maker) = app.user_with_session(other, "maker@other.com", 0).await;
    let (p3, _) = register(app, &maker, "SN-O1").await;
    let other_file = upload(app, &maker).await;
    let o1 = print_file(app, &maker, other_file, p3, true).await;
    let o2 = print_file(app, &maker, other_file, p3, true).await;
    {
        let mut c = app.conn();
        diesel::update(jobs::table.find(o2))
            .set((
                jobs::status_id.eq(77),
                jobs::ended_at.eq(Some(Utc::now().naive_utc())),
            ))
            .execute(&mut *c)
            .unwrap();
    }

    World {
        admin,
        wgadmin,
        member,
        p1,
        p2,
        file,
        lab,
        shop,
        jobs: Jobs {
            done,
            web,
            failed,
            running,
            queued,
            printer_cancel,
        },
        other_admin,
        other_jobs: vec![o1, o2],
    }
}

// ---------------------------------------------------------------------------------------------
// Calling the reports.

async fn custom(app: &TestApp, session: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("session", session)];
    form.extend_from_slice(extra);
    app.client
        .post(app.url("/apiglobal/get_custom_report"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// `type=json`: the whole `message` (headers, types, rows).
async fn custom_json(app: &TestApp, session: &str, extra: &[(&str, &str)]) -> Vec<Vec<Value>> {
    let mut form = vec![("type", "json")];
    form.extend_from_slice(extra);
    let res = custom(app, session, &form).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"], json!(true), "{body}");
    body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().expect("rows are arrays").clone())
        .collect()
}

/// The call's failure envelope.
async fn custom_fail(app: &TestApp, session: &str, extra: &[(&str, &str)], status: u16) -> String {
    let res = custom(app, session, extra).await;
    assert_fail(&common::read(res).await, status)
}

/// A CSV answer parsed back: (raw text without the BOM, records).
async fn custom_csv(
    app: &TestApp,
    session: &str,
    extra: &[(&str, &str)],
) -> (String, Vec<Vec<String>>) {
    let res = custom(app, session, extra).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = res.bytes().await.unwrap().to_vec();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "UTF-8 byte-order mark first");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let records = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (text, records)
}

fn row_of(rows: &[Vec<Value>], id: i64) -> &[Value] {
    rows[2..]
        .iter()
        .find(|r| r[0] == json!(id))
        .unwrap_or_else(|| panic!("job {id} missing"))
}

fn ids(rows: &[Vec<Value>]) -> Vec<i64> {
    rows[2..].iter().map(|r| r[0].as_i64().unwrap()).collect()
}

/// A JSON row by header name.
fn named<'a>(headers: &[Value], row: &'a [Value], header: &str) -> &'a Value {
    let i = headers
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header}"));
    &row[i]
}

/// A CSV field equals a JSON value: null is empty, numbers compare as numbers.
/// Seconds of an `H:MM:SS` duration.
fn secs(d: &str) -> Option<i64> {
    let mut parts = d.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    (parts.next().is_none() && d.len() >= 7).then_some(h * 3600 + m * 60 + s)
}

fn same_cell(csv: &str, json: &Value) -> bool {
    match json {
        Value::Null => csv.is_empty(),
        // A printing job's "Real Print Time" keeps running between the JSON and the CSV call.
        Value::String(s) => {
            csv == s || matches!((secs(csv), secs(s)), (Some(a), Some(b)) if (a - b).abs() <= 2)
        }
        Value::Number(n) => csv
            .parse::<f64>()
            .is_ok_and(|c| (c - n.as_f64().unwrap()).abs() < 1e-9),
        other => panic!("unexpected JSON cell {other}"),
    }
}

async fn finished(app: &TestApp, session: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("session", session)];
    form.extend_from_slice(extra);
    app.post("/apiglobal/get_finished_jobs_report", &form).await
}

// ---------------------------------------------------------------------------------------------
// Tests.

async fn custom_report_every_field_json_and_csv(app: &TestApp) {
    let w = world(app).await;
    let j = &w.jobs;
    let rows = custom_json(app, &w.admin, &[("all_fields", "1"), ("workgroups", "1")]).await;
    let mut headers: Vec<&str> = ALL_HEADERS.to_vec();
    headers.extend(["Workgroup IDs", "Workgroup Names", "Workgroup Passwords"]);
    assert_eq!(
        rows[0],
        headers.iter().map(|h| json!(h)).collect::<Vec<_>>()
    );
    let types = [
        "int",
        "int",
        "text",
        "text",
        "int",
        "text",
        "text",
        "text",
        "text",
        "text",
        "float",
        "float",
        "text",
        "text",
        "text",
        "text",
        "text",
        "text",
        "text",
        "int,int,...",
        "text,text,...",
        "text,text,...",
    ];
    assert_eq!(rows[1], types.iter().map(|t| json!(t)).collect::<Vec<_>>());
    assert_eq!(
        ids(&rows),
        vec![
            j.done,
            j.web,
            j.failed,
            j.running,
            j.queued,
            j.printer_cancel
        ],
        "every job of the organization, by id; the other organization's never"
    );
    for row in &rows[2..] {
        assert_eq!(row.len(), headers.len());
    }
    let h = &rows[0];
    let groups_p1 = (
        json!(format!("{},{}", w.lab, w.shop)),
        json!("Lab,Shop Ö"),
        json!("lab-pw,sh\"op"),
    );

    // Finished: every field.
    let done = job(app, j.done);
    let expected = [
        json!(j.done),
        json!(w.p1),
        json!("Prusa #1 — Ørsted"),
        json!("Prusa MK4"),
        json!(w.file),
        json!(FILE_NAME),
        json!(fmt(done.started_at.unwrap())),
        json!("zoe@example.com"),
        json!("Zoë"),
        json!("Ñuñez"),
        json!(3.83),
        json!(0.08),
        json!("DONE"),
        json!("0:15:56"),
        json!("1:02:05"),
        Value::Null,
        Value::Null,
        json!("zoe@example.com"),
        json!("Great print 👍, thanks"),
        groups_p1.0.clone(),
        groups_p1.1.clone(),
        groups_p1.2.clone(),
    ];
    assert_eq!(row_of(&rows, j.done), &expected[..]);

    // Cancelled from the web.
    let r = row_of(&rows, j.web);
    assert_eq!(named(h, r, "Status"), "CANCELLED_WEB");
    // The reason the person chose, by its label; the status keeps where it was cancelled.
    assert_eq!(named(h, r, "Cancel Reason"), "Wrong settings");
    assert_eq!(named(h, r, "Cancel Details"), "wrong colour, \"oops\"");
    assert!(named(h, r, "Real Print Time")
        .as_str()
        .unwrap()
        .starts_with("0:00:"));
    assert_eq!(named(h, r, "Feedback"), &Value::Null);
    // Failed.
    let r = row_of(&rows, j.failed);
    assert_eq!(named(h, r, "Status"), "FAILED");
    assert_eq!(named(h, r, "Cancel Reason"), "Printer error");
    // Printing, started by the admin two hours ago.
    let r = row_of(&rows, j.running);
    assert_eq!(named(h, r, "Status"), "IN_PROGRESS");
    assert_eq!(named(h, r, "Started By"), "admin@example.com");
    assert_eq!(named(h, r, "Account Email"), "zoe@example.com");
    let real = named(h, r, "Real Print Time").as_str().unwrap();
    assert!(real.starts_with("2:00:"), "{real}");
    // Queued: never started.
    let queued = job(app, j.queued);
    let r = row_of(&rows, j.queued);
    assert_eq!(named(h, r, "Status"), "QUEUED");
    assert_eq!(
        named(h, r, "Started Date/Time"),
        &json!(fmt(queued.created_at))
    );
    // The H:MM:SS the column promises, not null (a dashboard splits it on ':').
    assert_eq!(named(h, r, "Real Print Time"), "0:00:00");
    assert_eq!(named(h, r, "Started By"), &Value::Null);
    assert_eq!(named(h, r, "Material Cost"), &json!(0.08));
    assert_eq!(named(h, r, "Workgroup Names"), &groups_p1.1);
    // Cancelled on the printer, on a printer in no workgroup.
    let r = row_of(&rows, j.printer_cancel);
    assert_eq!(named(h, r, "Status"), "CANCELLED_PRINTER");
    assert_eq!(named(h, r, "Cancel Reason"), "Cancelled on the printer");
    assert_eq!(named(h, r, "Printer ID"), &json!(w.p2));
    assert_eq!(named(h, r, "Printer Name"), "Bench, \"B\"");
    assert_eq!(named(h, r, "Workgroup IDs"), "");
    assert_eq!(named(h, r, "Workgroup Passwords"), "");

    // The CSV (the default type) holds exactly the same rows, without the type row.
    let today = Utc::now().date_naive();
    let res = custom(app, &w.admin, &[("all_fields", "1"), ("workgroups", "1")]).await;
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"report_{}_{}.csv\"",
            today - Duration::days(31),
            today
        )
    );
    drop(res);
    for t in [None, Some("csv"), Some("CSV"), Some("Csv")] {
        let mut extra = vec![("all_fields", "1"), ("workgroups", "1")];
        if let Some(t) = t {
            extra.push(("type", t));
        }
        let (text, records) = custom_csv(app, &w.admin, &extra).await;
        assert_eq!(records.len(), rows.len() - 1, "header + one line per job");
        assert_eq!(records[0], headers);
        for (csv_row, json_row) in records[1..].iter().zip(&rows[2..]) {
            assert_eq!(csv_row.len(), json_row.len());
            for (c, v) in csv_row.iter().zip(json_row) {
                assert!(same_cell(c, v), "CSV {c:?} vs JSON {v}");
            }
        }
        // RFC 4180 quoting: commas, doubled quotes, a line break and non-ASCII in one field.
        assert!(
            text.contains("\"cube, \"\"v2\"\"\nstraße 🚀.gcode\""),
            "{text}"
        );
        assert!(text.contains(",\"Bench, \"\"B\"\"\","), "{text}");
        assert!(text.contains(",Zoë,Ñuñez,"), "{text}");
        assert!(text.starts_with(&format!("{}\r\n", headers.join(","))));
        assert!(text.ends_with("\r\n"));
    }

    // The finished-jobs report: only the finished job, with its end time.
    let (status, body) = finished(app, &w.admin, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        json!([{
            "email": "zoe@example.com",
            "firstname": "Zoë",
            "lastname": "Ñuñez",
            "filename": FILE_NAME,
            "endtime": fmt(done.ended_at.unwrap()),
        }])
    );
}

async fn field_selection_and_organization_defaults(app: &TestApp) {
    let w = world(app).await;
    let heads = |rows: &[Vec<Value>]| -> Vec<String> {
        rows[0]
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    };
    // The server's default set: the seed's example columns.
    let rows = custom_json(app, &w.admin, &[]).await;
    assert_eq!(heads(&rows), DEFAULT_HEADERS);
    // Chosen fields come in the report's column order; spaces and case do not matter.
    let rows = custom_json(app, &w.admin, &[("fields", "email, JOB_ID,email")]).await;
    assert_eq!(heads(&rows), ["Job ID", "Account Email"]);
    assert_eq!(rows[1], vec![json!("int"), json!("text")]);
    assert_eq!(rows[2], vec![json!(w.jobs.done), json!("zoe@example.com")]);
    let rows = custom_json(
        app,
        &w.admin,
        &[("fields[]", "status"), ("fields[]", "fname")],
    )
    .await;
    assert_eq!(heads(&rows), ["First Name", "Status"]);
    let rows = custom_json(
        app,
        &w.admin,
        &[("fields", "started_by_email,lname"), ("workgroups", "1")],
    )
    .await;
    assert_eq!(
        heads(&rows),
        [
            "Last Name",
            "Started By",
            "Workgroup IDs",
            "Workgroup Names",
            "Workgroup Passwords"
        ]
    );
    // all_fields=1 wins over fields.
    let rows = custom_json(app, &w.admin, &[("fields", "email"), ("all_fields", "1")]).await;
    assert_eq!(heads(&rows), ALL_HEADERS);
    // …and is ignored then, whatever it holds (a dashboard sends `fields=this is ignored`).
    let rows = custom_json(
        app,
        &w.admin,
        &[("fields", "this is ignored"), ("all_fields", "1")],
    )
    .await;
    assert_eq!(heads(&rows), ALL_HEADERS);
    // Unknown fields and types are named.
    let msg = custom_fail(app, &w.admin, &[("fields", "job_id,colour,size")], 400).await;
    assert!(
        msg.contains("'fields'") && msg.contains("colour, size"),
        "{msg}"
    );
    let msg = custom_fail(app, &w.admin, &[("type", "xml")], 400).await;
    assert!(msg.contains("'type'"), "{msg}");
    let msg = custom_fail(app, &w.admin, &[("all_fields", "maybe")], 400).await;
    assert!(msg.contains("all_fields"), "{msg}");

    // The organization's own default set.
    let settings = |session: &str, fields: &str| {
        let (s, f) = (session.to_string(), fields.to_string());
        async move {
            app.post(
                "/apiglobal/update_organization_settings",
                &[("session", &s), ("report_fields", &f)],
            )
            .await
        }
    };
    let (status, body) = settings(&w.admin, "lname, fname,job_id").await;
    assert_eq!(status, 200, "{body}");
    let rows = custom_json(app, &w.admin, &[]).await;
    assert_eq!(heads(&rows), ["Job ID", "First Name", "Last Name"]);
    assert_eq!(
        rows[2],
        vec![json!(w.jobs.done), json!("Zoë"), json!("Ñuñez")]
    );
    let (_, csv) = custom_csv(app, &w.admin, &[]).await;
    assert_eq!(csv[0], ["Job ID", "First Name", "Last Name"]);
    // `fields` still overrides it.
    let rows = custom_json(app, &w.admin, &[("fields", "status")]).await;
    assert_eq!(heads(&rows), ["Status"]);
    let msg = assert_fail(&settings(&w.admin, "job_id,nope").await, 400);
    assert!(
        msg.contains("report_fields") && msg.contains("nope"),
        "{msg}"
    );
    assert_fail(&settings(&w.admin, ",").await, 400);
    assert_fail(&settings(&w.member, "job_id").await, 403);
    assert_fail(&settings(&w.wgadmin, "job_id").await, 403);
    let rows = custom_json(app, &w.admin, &[]).await;
    assert_eq!(
        heads(&rows),
        ["Job ID", "First Name", "Last Name"],
        "unchanged"
    );
    let (status, _) = settings(&w.admin, "default").await;
    assert_eq!(status, 200);
    let rows = custom_json(app, &w.admin, &[]).await;
    assert_eq!(heads(&rows), DEFAULT_HEADERS);
}

async fn roles_and_organizations(app: &TestApp) {
    let w = world(app).await;
    let j = &w.jobs;
    // Members are refused; no session is 401.
    for t in ["json", "csv"] {
        let msg = custom_fail(app, &w.member, &[("type", t)], 403).await;
        assert!(msg.contains("admin"), "{msg}");
    }
    assert_fail(&finished(app, &w.member, &[]).await, 403);
    assert_fail(
        &app.post("/apiglobal/get_custom_report", &[("type", "json")])
            .await,
        401,
    );
    assert_fail(&finished(app, "not-a-session", &[]).await, 401);

    // The workgroup admin sees the jobs of their workgroup's printer (p1), not p2's, and only
    // their own workgroup in the workgroup columns.
    let rows = custom_json(app, &w.wgadmin, &[("all_fields", "1"), ("workgroups", "1")]).await;
    assert_eq!(
        ids(&rows),
        vec![j.done, j.web, j.failed, j.running, j.queued]
    );
    let h = rows[0].clone();
    for r in &rows[2..] {
        assert_eq!(named(&h, r, "Printer ID"), &json!(w.p1));
        assert_eq!(named(&h, r, "Workgroup IDs"), &json!(w.lab.to_string()));
        assert_eq!(named(&h, r, "Workgroup Names"), "Lab");
        assert_eq!(named(&h, r, "Workgroup Passwords"), "lab-pw");
    }
    let (_, csv) = custom_csv(app, &w.wgadmin, &[("fields", "job_id")]).await;
    assert_eq!(csv.len(), 6);
    let (status, body) = finished(app, &w.wgadmin, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"].as_array().unwrap().len(), 1);
    // Printer p2 joins the workgroup: its job appears.
    app.post(
        "/apiglobal/set_printer_workgroups",
        &[
            ("session", &w.admin),
            ("printer_id", &w.p2.to_string()),
            ("workgroup_id", &w.lab.to_string()),
        ],
    )
    .await;
    let rows = custom_json(app, &w.wgadmin, &[("fields", "job_id")]).await;
    assert!(ids(&rows).contains(&j.printer_cancel));
    // A workgroup admin of no workgroup sees nothing (but is not refused).
    let (_, lonely) = app
        .user_with_session(app.org_id, "lonely@example.com", 2)
        .await;
    let rows = custom_json(app, &lonely, &[]).await;
    assert_eq!(rows.len(), 2, "headers and types only");
    let (_, csv) = custom_csv(app, &lonely, &[]).await;
    assert_eq!(csv.len(), 1, "the header line only");
    let (status, body) = finished(app, &lonely, &[]).await;
    assert_eq!((status, body["message"].clone()), (200, json!([])));

    // The other organization's admin sees only their jobs, and ours never leak.
    let rows = custom_json(app, &w.other_admin, &[("all_fields", "1")]).await;
    assert_eq!(ids(&rows), w.other_jobs);
    let (status, body) = finished(app, &w.other_admin, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["message"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["email"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["maker@other.com"]
    );
    let rows = custom_json(app, &w.admin, &[("fields", "job_id")]).await;
    assert!(w.other_jobs.iter().all(|o| !ids(&rows).contains(o)));
    let (_, body) = finished(app, &w.admin, &[]).await;
    assert!(!body.to_string().contains("maker@other.com"));
}

/// Inserts a job with the given times (no HTTP): for time-shifted and bulk data.
#[allow(clippy::too_many_arguments)]
fn insert_job(
    conn: &mut DbConn,
    org: i64,
    printer: i64,
    file: i64,
    user: i64,
    status: i32,
    created: NaiveDateTime,
    ended: Option<NaiveDateTime>,
) -> i64 {
    let id: i64 = diesel::insert_into(jobs::table)
        .values(&NewJob {
            organization_id: printfarm::db::models::OrgId(org),
            printer_id: printfarm::db::models::PrinterId(printer),
            file_id: printfarm::db::models::FileId(file),
            user_id: printfarm::db::models::UserId(user),
            share_id: None,
            status_id: printfarm::db::models::JobStatus::from_id(status).expect("a job status"),
            change_seq: 0,
            notes: None,
            percent: 0.0,
            print_time: 0,
            printing_duration: 600,
            material_type: "PLA",
            layer_height: 0.2,
            color_numbers: 1,
            extruders: "{}",
            weight: 1.5,
            heated_bed: false,
            heated_bed_temperature: 0,
            raft: false,
            supports: false,
            file_cost: None,
            charged: false,
            created_at: created,
            updated_at: created,
            farm_copy_id: None,
        })
        .returning(jobs::id)
        .get_result(conn)
        .unwrap();
    if let Some(e) = ended {
        diesel::update(jobs::table.find(id))
            .set(jobs::ended_at.eq(Some(e)))
            .execute(conn)
            .unwrap();
    }
    id
}

/// An admin, a printer and a file to hang inserted jobs on: (admin session, ids).
async fn bare_farm(app: &TestApp) -> (String, [i64; 4]) {
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (user, maker) = app
        .user_with_session(app.org_id, "maker@example.com", 0)
        .await;
    let (printer, _) = register(app, &maker, "SN-T1").await;
    let file = upload(app, &maker).await;
    (admin, [app.org_id, printer, file, user])
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, DATETIME).unwrap()
}

async fn date_ranges_and_limits(app: &TestApp) {
    let (admin, [org, printer, file, user]) = bare_farm(app).await;
    let mut c = app.conn();
    let mut add = |status: i32, created: NaiveDateTime, ended: Option<NaiveDateTime>| {
        insert_job(&mut c, org, printer, file, user, status, created, ended)
    };
    // Creation-time boundaries of February 2024 (a leap year), whole UTC days.
    add(11, at("2024-01-31 23:59:59"), None);
    let first = add(11, at("2024-02-01 00:00:00"), None);
    let last = add(
        45,
        at("2024-02-29 23:59:59"),
        Some(at("2024-03-01 00:00:00")),
    );
    let march = add(11, at("2024-03-01 00:00:00"), None);
    // End-time boundaries for the finished-jobs report (and more February creations).
    add(
        77,
        at("2023-12-01 10:00:00"),
        Some(at("2024-02-10 08:30:00")),
    );
    let aborted = add(
        45,
        at("2024-02-10 08:00:00"),
        Some(at("2024-02-10 09:00:00")),
    );
    let late_done = add(
        77,
        at("2024-02-20 10:00:00"),
        Some(at("2024-03-01 00:00:00")),
    );
    add(
        77,
        at("2024-01-31 22:00:00"),
        Some(at("2024-02-01 00:00:00")),
    );
    // Around the default range (today - 31 days .. today).
    let today = Utc::now().date_naive();
    let day = |d: NaiveDate, h: u32, m: u32, s: u32| d.and_hms_opt(h, m, s).unwrap();
    let recent_in = add(11, day(today - Duration::days(31), 0, 0, 0), None);
    let recent_out = add(11, day(today - Duration::days(32), 23, 59, 59), None);
    let today_job = add(11, day(today, 0, 0, 1), None);
    drop(c);

    let feb = [("from", "2024-02-01"), ("to", "2024-02-29")];
    let job_ids = |rows: Vec<Vec<Value>>| ids(&rows);
    let mut got = job_ids(custom_json(app, &admin, &[feb[0], feb[1], ("fields", "job_id")]).await);
    got.sort_unstable();
    let mut want = vec![first, last, aborted, late_done];
    want.sort_unstable();
    assert_eq!(got, want, "created in February, both ends inclusive");
    let (status, body) = finished(app, &admin, &feb).await;
    assert_eq!(status, 200, "{body}");
    let ends: Vec<&str> = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endtime"].as_str().unwrap())
        .collect();
    assert_eq!(
        ends,
        ["2024-02-01 00:00:00", "2024-02-10 08:30:00"],
        "finished (77) in February by end time, oldest first"
    );
    // A single day.
    let got = job_ids(
        custom_json(
            app,
            &admin,
            &[
                ("from", "2024-03-01"),
                ("to", "2024-03-01"),
                ("fields", "job_id"),
            ],
        )
        .await,
    );
    assert_eq!(got, vec![march]);

    // Defaults: today - 31 days .. today; `to` alone moves the window.
    let got = job_ids(custom_json(app, &admin, &[("fields", "job_id")]).await);
    assert_eq!(got, vec![recent_in, today_job]);
    assert!(!got.contains(&recent_out));
    let to = (today - Duration::days(1)).to_string();
    let got = job_ids(custom_json(app, &admin, &[("to", &to), ("fields", "job_id")]).await);
    assert_eq!(got, vec![recent_in, recent_out], "by job id");
    let (_, body) = finished(app, &admin, &[]).await;
    assert_eq!(body["message"], json!([]));

    // At most 365 days; `from` not after `to`; dates as Y-m-d, named when wrong.
    let year = [("from", "2023-01-01"), ("to", "2024-01-01")];
    custom_json(app, &admin, &year).await;
    assert_eq!(finished(app, &admin, &year).await.0, 200);
    let too_long = [("from", "2023-01-01"), ("to", "2024-01-02")];
    let from_366 = (today - Duration::days(366)).to_string();
    let bad: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (too_long.to_vec(), "365"),
        (vec![("from", from_366.as_str())], "365"),
        (vec![("from", "2024-03-01"), ("to", "2024-02-29")], "'from'"),
        (vec![("from", "2024/02/01")], "'from'"),
        (vec![("from", "yesterday")], "'from'"),
        (vec![("to", "2024-02-30")], "'to'"),
        (vec![("to", "2024-02-01 10:00:00")], "'to'"),
    ];
    for (params, needle) in &bad {
        let msg = custom_fail(app, &admin, params, 400).await;
        assert!(msg.contains(needle), "{params:?}: {msg}");
        let mut json_params = params.clone();
        json_params.push(("type", "json"));
        custom_fail(app, &admin, &json_params, 400).await;
        let msg = assert_fail(&finished(app, &admin, params).await, 400);
        assert!(msg.contains(needle), "{params:?}: {msg}");
    }
}

async fn large_report_streams_in_batches(app: &TestApp) {
    let (admin, [org, printer, file, user]) = bare_farm(app).await;
    const N: usize = 12_345;
    // One statement that both backends run: quick, so the client's idle connection stays open.
    let created = Utc::now().naive_utc() - Duration::days(3);
    {
        use diesel::sql_types::{BigInt, Timestamp};
        let mut c = app.conn();
        diesel::sql_query(format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N}) \
             INSERT INTO jobs (organization_id, printer_id, file_id, user_id, status_id, \
               change_seq, percent, print_time, printing_duration, material_type, layer_height, \
               color_numbers, extruders, weight, heated_bed, heated_bed_temperature, raft, \
               supports, charged, created_at, updated_at) \
             SELECT $1, $2, $3, $4, \
               CASE i % 5 WHEN 0 THEN 11 WHEN 1 THEN 21 WHEN 2 THEN 43 WHEN 3 THEN 45 ELSE 77 END, \
               0, 0, 0, 600, 'PLA', 0.2, 1, '{{}}', 1.5, false, 0, false, false, false, $5, $6 \
             FROM n"
        ))
        .bind::<BigInt, _>(org)
        .bind::<BigInt, _>(printer)
        .bind::<BigInt, _>(file)
        .bind::<BigInt, _>(user)
        .bind::<Timestamp, _>(created)
        .bind::<Timestamp, _>(created)
        .execute(&mut *c)
        .unwrap();
    }
    let (text, records) = custom_csv(app, &admin, &[("all_fields", "1")]).await;
    assert_eq!(
        records.len(),
        N + 1,
        "the header and every job, across batches"
    );
    let got: Vec<i64> = records[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
    assert!(text.len() > 1_000_000, "several chunks: {}", text.len());
    let rows = custom_json(app, &admin, &[("fields", "job_id,status")]).await;
    assert_eq!(ids(&rows), got);
    let statuses: std::collections::BTreeSet<&str> =
        rows[2..].iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["CANCELLED", "DONE", "FAILED", "IN_PROGRESS", "QUEUED"]
    );

    // Clients that hang up mid-download stop their reader and give its connection back:
    // more abandoned downloads than the pool has connections, then a full one still works.
    for _ in 0..12 {
        let mut res = custom(app, &admin, &[("all_fields", "1")]).await;
        assert_eq!(res.status().as_u16(), 200);
        let first = res.chunk().await.unwrap().unwrap();
        assert!(first.starts_with(b"\xEF\xBB\xBFJob ID,"));
        drop(res);
    }
    let fresh = reqwest::Client::new();
    let res = fresh
        .post(app.url("/apiglobal/get_custom_report"))
        .form(&[("session", admin.as_str()), ("fields", "job_id")])
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert_eq!(text.lines().count(), N + 1);
}

/// User-written text that a spreadsheet would run as a formula is neutralised in the CSV (a
/// leading apostrophe) and kept as written in `type=json`.
async fn csv_cells_cannot_run_as_formulas(app: &TestApp) {
    let (admin, [org, printer, file, user]) = bare_farm(app).await;
    let now = chrono::Utc::now().naive_utc();
    let details = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1+2",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "plain words, = inside",
    ];
    let mut c = app.conn();
    let ids: Vec<i64> = details
        .iter()
        .map(|d| {
            let id = insert_job(&mut c, org, printer, file, user, 45, now, Some(now));
            diesel::update(jobs::table.find(id))
                .set(jobs::cancel_details.eq(Some(*d)))
                .execute(&mut *c)
                .unwrap();
            id
        })
        .collect();
    drop(c);
    let fields = [("fields", "job_id,cancel_details")];
    let json = custom_json(app, &admin, &fields).await;
    let (_, csv) = custom_csv(app, &admin, &fields).await;
    for (id, written) in ids.iter().zip(details) {
        let j = row_of(&json, *id);
        assert_eq!(
            j[1],
            Value::String(written.to_string()),
            "JSON keeps the text"
        );
        let c = csv
            .iter()
            .find(|r| r[0] == id.to_string())
            .unwrap_or_else(|| panic!("job {id} in the CSV"));
        let expected = if written.starts_with("plain") {
            written.to_string()
        } else {
            format!("'{written}")
        };
        assert_eq!(c[1], expected);
    }
}
