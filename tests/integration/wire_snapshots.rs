//! The exact answers of the Global API and `/v1`, as snapshots (insta): one scripted farm's
//! day, every call with its status and body, on SQLite and on Postgres against the SAME
//! snapshot. Any change to an answer (a renamed key, a number that became a string, a new
//! field, a backend that answers differently) shows up as a snapshot diff to review, which is
//! what lets the structure be reshaped underneath with answers kept byte-identical.
//!
//! Values that differ between runs by nature are redacted: secrets and tokens, timestamps and
//! dates, durations measured by the server. Ids are not: a fresh database hands out the same
//! ids on both backends.
//!
//! After an intended change: `INSTA_UPDATE=always cargo test --test integration wire_snapshots::`, then
//! review `git diff tests/integration/snapshots/`.

use crate::common;

use common::TestApp;
use serde_json::{json, Map, Value};

backend_tests!(a_farm_day_answers_as_recorded);

/// One exchange as recorded: the call, what was sent (secrets redacted), the status, the body.
fn exchange(call: &str, sent: &[(&str, &str)], status: u16, body: &Value) -> Value {
    let mut sent_map = Map::new();
    for (k, v) in sent {
        let v = if ["session", "password", "token", "auth_token"].contains(k) {
            "[secret]".to_string()
        } else {
            v.to_string()
        };
        sent_map.insert(k.to_string(), Value::String(v));
    }
    let mut body = redact(body, "");
    if call == "get_custom_report" {
        redact_report_columns(&mut body);
    }
    json!({"call": call, "sent": sent_map, "status": status, "body": body})
}

fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
}

fn looks_like_token(s: &str) -> bool {
    s.len() >= 32
        && s.len() <= 80
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Keys whose value is a moment or a measured duration (numbers or strings).
const TIME_KEYS: &[&str] = &[
    "print_time",
    "created",
    "created_at",
    "updated_at",
    "last_login",
    "started_at",
    "ended_at",
    "expires",
    "expires_at",
    "last_used_at",
    "reset_date",
    "print_date",
    "time",
    "date",
    "prev_time",
];

/// A JSON report's columns that hold measured durations, redacted in every data row.
fn redact_report_columns(body: &mut Value) {
    let Some(rows) = body["message"].as_array_mut() else {
        return;
    };
    let Some(header) = rows.first().and_then(Value::as_array) else {
        return;
    };
    let measured: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.as_str() == Some("Real Print Time"))
        .map(|(i, _)| i)
        .collect();
    for row in rows.iter_mut().skip(2) {
        for &i in &measured {
            if let Some(cell) = row.get_mut(i).filter(|c| !c.is_null()) {
                *cell = Value::String("[duration]".into());
            }
        }
    }
}

fn redact(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(v, k))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| redact(v, key)).collect()),
        Value::Null => Value::Null,
        _ if TIME_KEYS.contains(&key) => Value::String("[time]".into()),
        Value::String(s) if looks_like_time(s) => Value::String("[time]".into()),
        Value::String(s) if looks_like_token(s) => Value::String("[token]".into()),
        Value::String(s) if s.strip_suffix(".png").is_some_and(looks_like_token) => {
            Value::String("[token].png".into())
        }
        Value::String(s) if s.contains("/apiprinter/v1/download/") || s.contains("token=") => {
            Value::String("[link with a secret]".into())
        }
        other => other.clone(),
    }
}

struct Recorder<'a> {
    app: &'a TestApp,
    log: Vec<Value>,
}

impl Recorder<'_> {
    async fn call(&mut self, call: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.app.post(&format!("/apiglobal/{call}"), form).await;
        self.log.push(exchange(call, form, status, &body));
        body
    }
}

async fn a_farm_day_answers_as_recorded(app: &TestApp) {
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@snap.test", 1)
        .await;
    let mut r = Recorder { app, log: vec![] };
    let a = admin.as_str();

    // Sessions.
    r.call("check_session", &[("session", a)]).await;
    r.call("check_session", &[("session", "no-such-session")])
        .await;
    r.call(
        "login",
        &[("username", "admin@snap.test"), ("password", "wrong")],
    )
    .await;

    // People and workgroups.
    r.call(
        "create_organization_user",
        &[
            ("session", a),
            ("email", "member@snap.test"),
            ("gdpr", "3"),
            ("firstname", "Mem"),
            ("lastname", "Ber"),
        ],
    )
    .await;
    let wg = r
        .call(
            "create_workgroup",
            &[("session", a), ("name", "Lab"), ("password", "lab-pass")],
        )
        .await;
    let wg = wg["message"]["workgroup_id"]
        .as_i64()
        .or_else(|| wg["message"]["id"].as_i64())
        .unwrap_or(0)
        .to_string();
    r.call("get_workgroups_simple_list", &[("session", a)])
        .await;
    r.call(
        "add_user_to_workgroup",
        &[
            ("session", a),
            ("workgroup_id", &wg),
            ("email", "member@snap.test"),
        ],
    )
    .await;
    r.call(
        "get_workgroup_users",
        &[("session", a), ("workgroup_id", &wg)],
    )
    .await;
    r.call(
        "update_user_settings",
        &[("session", a), ("user_id", "3"), ("quota", "10")],
    )
    .await;

    // Printer types.
    r.call(
        "get_printer_types",
        &[("session", a), ("description", "Original Prusa MK4")],
    )
    .await;

    // A printer joins the farm.
    let (printer, token) = app.register_printer(a, "SNAP-1").await;
    let p = printer.to_string();
    app.agent(
        "command",
        json!({"auth_token": token, "report": {"state": "ready", "percent": 0, "temps": [21, 22], "target_temps": [0, 0]}}),
    )
    .await;
    r.call("get_printers_list", &[("session", a)]).await;
    r.call("get_organization_printers_list", &[("session", a)])
        .await;
    r.call(
        "set_printer_workgroups",
        &[("session", a), ("printer_id", &p), ("workgroup_id[]", &wg)],
    )
    .await;
    r.call(
        "share_printer",
        &[
            ("session", a),
            ("printer_id", &p),
            ("role_id", "5"),
            ("user_email", "guest@elsewhere.test"),
            ("number_of_prints", "3"),
        ],
    )
    .await;
    let shares = r
        .call("get_printer_shares", &[("session", a), ("printer_id", &p)])
        .await;
    if let Some(id) = shares["message"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["id"].as_i64().or_else(|| s["share_id"].as_i64()))
    {
        r.call(
            "unshare_printer",
            &[("session", a), ("share_id", &id.to_string())],
        )
        .await;
    }

    // Files.
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(a, "cube.gcode", gcode, &[]).await;
    r.log
        .push(exchange("upload", &[("file", "cube.gcode")], status, &body));
    let file = body["message"]["file_id"].as_i64().unwrap().to_string();
    r.call("get_projects", &[("session", a)]).await;
    r.call(
        "get_slicer_settings_for_gcode",
        &[("session", a), ("file_id", &file)],
    )
    .await;
    r.call(
        "file_update",
        &[("session", a), (&format!("updates[{file}][gtype]"), "Cura")],
    )
    .await;

    // The queue.
    let job = r
        .call(
            "print_file",
            &[
                ("session", a),
                ("file_id", &file),
                ("printer_id", &p),
                ("only_queue", "1"),
            ],
        )
        .await;
    let job = job["message"]["job_id"].as_str().unwrap_or("0").to_string();
    r.call("get_printer_jobs", &[("session", a), ("printer_id", &p)])
        .await;
    r.call("job_start", &[("session", a), ("job_id", &job)])
        .await;
    r.call("get_job_info", &[("session", a), ("job_id", &job)])
        .await;
    let cmd = app
        .agent(
            "command",
            json!({"auth_token": token, "report": {"state": "ready", "percent": 0}}),
        )
        .await;
    app.agent(
        "command",
        json!({"auth_token": token, "report": {"state": "printing", "percent": 50},
               "command_ack": {"number": cmd["number"], "result": true}}),
    )
    .await;
    r.call("job_pause", &[("session", a), ("job_id", &job)])
        .await;
    r.call("job_unpause", &[("session", a), ("job_id", &job)])
        .await;
    r.call("job_cancel", &[("session", a), ("job_id", &job)])
        .await;
    app.agent(
        "command",
        json!({"auth_token": token, "report": {"state": "cancel", "percent": 50}}),
    )
    .await;
    r.call("get_job_info", &[("session", a), ("job_id", &job)])
        .await;
    r.call(
        "printer_clear_build_tray",
        &[("session", a), ("printer_id", &p)],
    )
    .await;

    // Reports and the camera.
    r.call(
        "get_custom_report",
        &[("session", a), ("type", "json"), ("all_fields", "1")],
    )
    .await;
    r.call("get_finished_jobs_report", &[("session", a)]).await;
    r.call(
        "get_camera_list_token",
        &[("session", a), ("printer_id", &p)],
    )
    .await;

    // Refusals answer the envelope with a fitting status.
    r.call("get_job_info", &[("session", a), ("job_id", "999999")])
        .await;
    r.call("print_file", &[("session", a), ("file_id", "x")])
        .await;
    r.call("logout", &[("session", a)]).await;
    r.call("check_session", &[("session", a)]).await;

    insta::assert_json_snapshot!("a_farm_day", r.log);
}
