//! Georgia Tech's makerspace dashboard, `app/api/3DPOS/*/route.ts` in
//! GeorgiaTech-DDI/makerspace-dashboard at commit 96093d19 (Next.js routes that call the
//! Global API with `fetch`, `Content-Type: application/x-www-form-urlencoded` and a
//! `URLSearchParams` body, then `response.json()`):
//! - `printers`: `get_organization_printers_list`, dropping `state` "Virtual" and
//!   "notconnected";
//! - `average-print-time`: `get_custom_report` with `type=json`,
//!   `fields=printer_id,printer_name,real_print_time`, `all_fields=0`; rows from index 2 read
//!   as `[printerId, printerName, realPrintTime]`, `printerName.trim()`, and
//!   `realPrintTime.split(":").map(Number)` (hours, minutes);
//! - `jobs`: `get_custom_report` with `all_fields=1`; `headers.indexOf("Status")` and
//!   `indexOf("Started Date/Time")`, statuses compared with "DONE" and "CANCELLED_WEB", the
//!   date through `new Date(...)`;
//! - `leaderboard`: `get_finished_jobs_report` for the month, each job's `email`,
//!   `firstname`, `lastname`.
//!
//! Not re-enacted: `reasons` reads the Feedback column at `row[22]` of the all-fields report,
//! which has 19 columns here (see the issue note: the real report evidently has more).

use std::collections::HashMap;

use chrono::Datelike;

use crate::common::{Db, TestApp};
use serde_json::{json, Value};

crate::backend_cases!(georgia_tech_dashboard_reads_printers_reports_and_the_leaderboard);

/// `fetch(url, {method: "POST", headers: {"Content-Type": …}, body: new URLSearchParams(…)})`
/// then `response.json()`; the routes throw unless `data.result` (and `response.ok`).
async fn fetch(app: &TestApp, call: &str, params: &[(&str, &str)]) -> Value {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let res = app
        .client
        .post(app.url(&format!("/apiglobal/{call}")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{call}: {}", res.status());
    let data: Value = res.json().await.unwrap();
    assert_eq!(data["result"], true, "{call}: {data}");
    data["message"].clone()
}

/// `convertToMinutes`: `const [hours, minutes] = t.split(":").map(Number)`.
fn convert_to_minutes(t: &str) -> f64 {
    let parts: Vec<f64> = t
        .split(':')
        .map(|p| p.parse().unwrap_or(f64::NAN))
        .collect();
    parts[0] * 60.0 + parts[1]
}

async fn georgia_tech_dashboard_reads_printers_reports_and_the_leaderboard(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let (_, session) = app
        .user_with_session(app.org_id, "gburdell3@gatech.edu", 1)
        .await;
    let s = session.as_str();
    let (printer, token) = app.register_printer(s, "GT-PRUSA-1").await;
    let (offline, _) = app.register_printer(s, "GT-PRUSA-2").await;
    let ready = json!({"auth_token": token, "report": {"state": "ready", "percent": 0}});
    app.agent("command", ready.clone()).await;
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(s, "buzz.gcode", gcode, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap().to_string();
    // One print finishes, one is cancelled from the web, one never starts.
    for outcome in ["done", "cancelled", "queued"] {
        let (status, body) = app
            .post(
                "/apiglobal/print_file",
                &[
                    ("session", s),
                    ("file_id", &file),
                    ("printer_id", &printer.to_string()),
                    ("only_queue", if outcome == "queued" { "1" } else { "0" }),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let job = body["message"]["job_id"].as_str().unwrap().to_string();
        if outcome == "queued" {
            continue;
        }
        let cmd = app.agent("command", ready.clone()).await;
        assert_eq!(cmd["command"], "gcodes", "{cmd}");
        app.agent(
            "command",
            json!({"auth_token": token, "report": {"state": "printing", "percent": 50},
                   "command_ack": {"number": cmd["number"], "result": true}}),
        )
        .await;
        if outcome == "done" {
            app.agent(
                "command",
                json!({"auth_token": token, "report": {"state": "printing", "percent": 100}}),
            )
            .await;
            app.agent(
                "command",
                json!({"auth_token": token, "report": {"state": "ready", "percent": 100}, "bed_clear": true}),
            )
            .await;
        } else {
            let (status, body) = app
                .post(
                    "/apiglobal/job_cancel",
                    &[
                        ("session", s),
                        ("job_id", &job),
                        ("reason", "print_quality"),
                    ],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let cmd = app
                .agent(
                    "command",
                    json!({"auth_token": token, "report": {"state": "printing", "percent": 50}}),
                )
                .await;
            app.agent(
                "command",
                json!({"auth_token": token, "report": {"state": "ready", "percent": 50},
                       "command_ack": {"number": cmd["number"], "result": true}, "bed_clear": true}),
            )
            .await;
        }
    }
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Duration::days(31)).to_string();
    let to = today.to_string();

    // printers/route.ts.
    let printers = fetch(&app, "get_organization_printers_list", &[("session", s)]).await;
    let shown: Vec<i64> = printers
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] != "Virtual" && p["state"] != "notconnected")
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        shown,
        vec![printer],
        "the never-connected {offline} is left out"
    );

    // average-print-time/route.ts.
    let report = fetch(
        &app,
        "get_custom_report",
        &[
            ("session", s),
            ("from", &from),
            ("to", &to),
            ("type", "json"),
            ("fields", "printer_id,printer_name,real_print_time"),
            ("all_fields", "0"),
        ],
    )
    .await;
    let rows = report.as_array().unwrap();
    assert!(rows.len() >= 3, "headers, types, then jobs: {report}");
    let mut per_printer: HashMap<String, (f64, u32, String)> = HashMap::new();
    for row in &rows[2..] {
        let (id, name, real) = (&row[0], &row[1], &row[2]);
        let name = name
            .as_str()
            .expect("printerName.trim()")
            .trim()
            .to_string();
        let minutes = convert_to_minutes(real.as_str().expect("realPrintTime.split"));
        assert!(minutes.is_finite(), "{real}");
        let e = per_printer.entry(id.to_string()).or_insert((0.0, 0, name));
        e.0 += minutes;
        e.1 += 1;
    }
    assert_eq!(per_printer.len(), 1);
    assert_eq!(
        per_printer[&printer.to_string()].1,
        3,
        "every job, started or not"
    );

    // jobs/route.ts.
    let report = fetch(
        &app,
        "get_custom_report",
        &[
            ("session", s),
            ("from", &from),
            ("to", &to),
            ("type", "json"),
            ("all_fields", "1"),
        ],
    )
    .await;
    let rows = report.as_array().unwrap();
    let headers: Vec<&str> = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let status_index = headers.iter().position(|h| *h == "Status").expect("Status");
    let date_index = headers
        .iter()
        .position(|h| *h == "Started Date/Time")
        .expect("Started Date/Time");
    let (mut total, mut completed, mut cancelled) = (0, 0, 0);
    for row in &rows[1..] {
        // `new Date(row[printDateIndex])`: "YYYY-MM-DD HH:MM:SS" parses; the types row does
        // not (an Invalid Date never falls inside the period).
        let date = row[date_index].as_str().unwrap_or("");
        if chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").is_err() {
            continue;
        }
        total += 1;
        match row[status_index].as_str() {
            Some("DONE") => completed += 1,
            Some("CANCELLED_WEB") => cancelled += 1,
            _ => {}
        }
    }
    assert_eq!((total, completed, cancelled), (3, 1, 1));

    // leaderboard/route.ts: the month's finished jobs by person.
    let first = today.with_day(1).unwrap().to_string();
    let finished = fetch(
        &app,
        "get_finished_jobs_report",
        &[("session", s), ("from", &first), ("to", &to)],
    )
    .await;
    let mut by_email: HashMap<String, (Value, Value, u32)> = HashMap::new();
    for job in finished.as_array().unwrap() {
        let e = by_email
            .entry(job["email"].as_str().unwrap().to_string())
            .or_insert((job["firstname"].clone(), job["lastname"].clone(), 0));
        e.2 += 1;
    }
    let me = &by_email["gburdell3@gatech.edu"];
    assert!(me.0.is_string() && me.1.is_string(), "{me:?}");
    assert_eq!(me.2, 1, "one finished print");
    app.stop().await;
}
