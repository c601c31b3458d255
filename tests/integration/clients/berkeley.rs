//! Berkeley Jacobs Hall's Google Apps Script client, class `PrinterOS` in `PrinterOS.gs` of
//! MachineFace/PrinterOSController at commit 0111080f.
//!
//! Every call is `UrlFetchApp.fetch(root + repo, {method: "POST", payload: {...},
//! followRedirects: true, muteHttpExceptions})`: a payload object is sent as an
//! `application/x-www-form-urlencoded` form with every value turned into a string (numbers
//! included), and the answer is read with `JSON.parse(getContentText())`; anything but
//! status 200 counts as failure (and `login` throws on a 4xx/5xx, `muteHttpExceptions:
//! false`: a wrong password stops the script with our 401 and its message). What it calls
//! and reads:
//! - `"/login/"` and `"/logout/"` with a trailing slash, `message.session`;
//! - `check_session`, `message` logged as validity;
//! - `get_organization_printers_list` and `get_printers_list` (`printer_id`): `id`,
//!   `local_ip`, `name` of every printer;
//! - `get_printer_types`: `message.forEach`;
//! - `get_printer_jobs` (`printer_id`): `message[0]` is the printer's latest job, its `id`;
//! - `get_job_info` (`job_id`): `weight` (a falsy weight becomes 0.0) priced as
//!   `Number(weight * COSTMULTIPLIER).toFixed(2)`, `filename.slice(0, -6)` (the name without
//!   ".gcode"), `picture`;
//! - `"/get_workgroups_simple_list/"`: each `w.id`; `get_workgroup_users` (`workgroup_id`):
//!   each `user.email`;
//! - `get_printer_types_detailed`: POST with no payload at all (no session).
//!
//! Not re-enacted: the rendered picture is fetched from 3DPrinterOS's own blob store
//! (`live3dprinteros.blob.core.windows.net/render/<picture>`), and `GetLiveCamera` calls
//! `get_live_view`, which is not one of the Global API's calls (the script marks it
//! `@NOTIMPLEMENTED`).

use crate::common::{Db, TestApp, PASSWORD};
use serde_json::{json, Value};

crate::backend_cases!(berkeley_apps_script_reads_printers_jobs_costs_and_workgroups);

/// `UrlFetchApp.fetch(url, {method: "POST", payload})`: `None` for a non-200 answer (the
/// script's `if(responseCode != 200) return false`), else the parsed body.
async fn fetch(app: &TestApp, repo: &str, payload: Option<&[(&str, &str)]>) -> Option<Value> {
    let mut req = app.client.post(app.url(&format!("/apiglobal{repo}")));
    if let Some(payload) = payload {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(payload)
            .finish();
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
    }
    let res = req.send().await.unwrap();
    if res.status() != 200 {
        return None;
    }
    let text = res.text().await.unwrap();
    Some(serde_json::from_str(&text).expect("JSON.parse"))
}

/// `result == false` → the method returns false; else its `message`.
fn message(answer: Option<Value>) -> Value {
    let answer = answer.expect("status 200");
    assert_ne!(answer["result"], false, "{answer}");
    answer["message"].clone()
}

async fn berkeley_apps_script_reads_printers_jobs_costs_and_workgroups(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    app.create_user(app.org_id, "jacobsprojectsupport@berkeley.edu", 1);
    let (_, staff) = app
        .user_with_session(app.org_id, "staff@berkeley.edu", 1)
        .await;
    let (printer, token) = app.register_printer(&staff, "Spectrum").await;
    let ready = json!({"auth_token": token, "report": {"state": "ready", "percent": 0}});
    app.agent("command", ready.clone()).await;
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&staff, "bracket_v2.gcode", gcode, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap().to_string();
    let mut jobs = Vec::new();
    for only_queue in ["0", "1"] {
        let (status, body) = app
            .post(
                "/apiglobal/print_file",
                &[
                    ("session", &staff),
                    ("file_id", &file),
                    ("printer_id", &printer.to_string()),
                    ("only_queue", only_queue),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        jobs.push(body["message"]["job_id"].to_string().replace('"', ""));
    }
    let (status, wg) = app
        .post(
            "/apiglobal/create_workgroup",
            &[
                ("session", &staff),
                ("name", "Jacobs DES INV"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{wg}");
    let wg = wg["message"]["id"].as_i64().unwrap();
    app.create_user(app.org_id, "student@berkeley.edu", 0);
    let (status, body) = app
        .post(
            "/apiglobal/add_user_to_workgroup",
            &[
                ("session", &staff),
                ("workgroup_id", &wg.to_string()),
                ("email", "student@berkeley.edu"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Login() with a wrong password: the answer is 401 (DESIGN §3), so `UrlFetchApp` throws
    // (`muteHttpExceptions: false`) with the body in its message; the script stops there.
    let refused = app
        .client
        .post(app.url("/apiglobal/login/"))
        .form(&[
            ("username", "jacobsprojectsupport@berkeley.edu"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["result"], false, "{refused}");
    assert!(refused["message"].is_string(), "{refused}");
    let login = message(
        fetch(
            &app,
            "/login/",
            Some(&[
                ("username", "jacobsprojectsupport@berkeley.edu"),
                ("password", PASSWORD),
            ]),
        )
        .await,
    );
    let session = login["session"]
        .as_str()
        .expect("message.session")
        .to_string();
    let s = session.as_str();
    // CheckSession() returns `message`, which its callers test for truthiness.
    let valid = message(fetch(&app, "/check_session", Some(&[("session", s)])).await);
    assert!(valid.as_str().is_some_and(|m| !m.is_empty()), "{valid}");

    // GetPrinters() and GetPrinterData(printer_id).
    for (repo, payload) in [
        ("/get_organization_printers_list", vec![("session", s)]),
        (
            "/get_printers_list",
            vec![("session", s), ("printer_id", &*printer.to_string())],
        ),
    ] {
        let list = message(fetch(&app, repo, Some(&payload)).await);
        let list = list.as_array().expect("printerlist.forEach");
        assert_eq!(list.len(), 1, "{repo}: {list:?}");
        let p = list[0].as_object().unwrap();
        assert_eq!(p["id"], printer, "{repo}");
        assert!(
            p["name"].as_str().is_some_and(|n| n.ends_with("Spectrum")),
            "{repo}: {p:?}"
        );
        assert!(p.contains_key("local_ip"), "{repo}: {p:?}");
    }

    // GetPrinterTypes().
    let types = message(fetch(&app, "/get_printer_types", Some(&[("session", s)])).await);
    assert!(!types.as_array().expect("types.forEach").is_empty());

    // GetPrintersLatestJob(printer): `message[0]`, the job queued last.
    let printer_id = printer.to_string();
    let list = message(
        fetch(
            &app,
            "/get_printer_jobs",
            Some(&[("session", s), ("printer_id", &printer_id)]),
        )
        .await,
    );
    let latest = &list[0];
    assert_eq!(latest["id"].to_string().replace('"', ""), jobs[1], "{list}");

    // GetJobInfo / GetMaterialWeight / CalculateCost for each job.
    for job in &jobs {
        let info = message(
            fetch(
                &app,
                "/get_job_info",
                Some(&[("session", s), ("job_id", job)]),
            )
            .await,
        );
        let weight = match &info["weight"] {
            Value::Number(n) => n.as_f64().unwrap(),
            Value::String(t) => t.parse::<f64>().expect("weight * COSTMULTIPLIER"),
            other => panic!("weight: {other}"),
        };
        assert!(weight > 0.0, "the cube has a filament weight: {info}");
        let cost = format!("{:.2}", weight * 0.04);
        assert_ne!(cost, "NaN");
        let filename = info["filename"].as_str().expect("filename.slice");
        assert_eq!(&filename[..filename.len() - 6], "bracket_v2", "{info}");
        assert!(info.get("picture").is_some(), "res?.picture: {info}");
    }

    // GetWorkGroups() then GetUsersByWorkgroup(id).
    let groups = message(
        fetch(
            &app,
            "/get_workgroups_simple_list/",
            Some(&[("session", s)]),
        )
        .await,
    );
    let ids: Vec<i64> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().expect("w.id"))
        .collect();
    assert!(ids.contains(&wg), "{groups}");
    let users = message(
        fetch(
            &app,
            "/get_workgroup_users",
            Some(&[("session", s), ("workgroup_id", &wg.to_string())]),
        )
        .await,
    );
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().expect("user.email"))
        .collect();
    assert!(emails.contains(&"student@berkeley.edu"), "{users}");

    // GetPrintersInCloud(): no payload, no session.
    let detailed = fetch(&app, "/get_printer_types_detailed", None)
        .await
        .expect("status 200");
    assert_eq!(detailed["result"], true, "{detailed}");
    assert!(!detailed["message"].as_array().unwrap().is_empty());

    // Logout(): the session ends.
    let out = fetch(&app, "/logout/", Some(&[("session", s)]))
        .await
        .expect("status 200");
    assert_eq!(out["result"], true, "{out}");
    // CheckSession() then returns false (a 401 is not 200).
    assert!(fetch(&app, "/check_session", Some(&[("session", s)]))
        .await
        .is_none());
    app.stop().await;
}
