//! Duke Co-Lab's printer dashboard backend, `flask-app/cloud_api.py` and
//! `flask-app/printing_helpers.py` in aliceyuhehu/3dprinteros-1 at commit
//! 41951f96 ("fist commt"), the public copy of Duke's Flask app.
//!
//! `CloudPrinterOs` posts `urllib.parse.urlencode({...})` bodies with `content-type:
//! application/x-www-form-urlencoded` through `requests` and reads `response.json()`.
//! `printer_list(printer_group=…)` is what the dashboard shows:
//! - `get_organization_printers_list`, keeping printers whose name contains the group and
//!   follows Duke's naming (`LOCATION L-N`: a letter before a dash, a number at the end);
//! - per printer, `get_printer_jobs`: `message[0]` is the most recent job, its
//!   `status_id` is looked up in a dict with STRING keys ("11", "21", "43", "45", "77"), the
//!   owner's netid is `re.search("\w*(?=\@)", job["email"])`;
//! - `get_printers_list`, matched by `item["printer_id"] == printer["id"]`, whose
//!   `filaments` (when truthy) goes through `json.loads`;
//! - `get_workgroups_simple_list`: a printer without workgroups is "No Workgroup", else
//!   the names of its groups, matched by `res_id == int(x["id"])`.
//!
//! The LDAP lookup of the netid is Duke's own directory and is not re-enacted.

use std::collections::HashMap;

use crate::common::{Db, TestApp, PASSWORD};
use diesel::prelude::*;
use printfarm::db::schema::printers;
use serde_json::{json, Value};

crate::backend_cases!(duke_dashboard_lists_its_printers_jobs_filaments_and_reservations);

/// `requests.request("POST", API_GLOBAL_URL + call, data=urlencode(payload), headers=HEADERS)`
/// then `response.json()` (a non-JSON answer raises in the client).
async fn post(app: &TestApp, call: &str, payload: &[(&str, &str)]) -> Value {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(payload)
        .finish();
    app.client
        .post(app.url(&format!("/apiglobal/{call}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("response.json()")
}

/// `filter_printers`: name contains the group (case-insensitive) and parses as Duke's naming
/// (`int(re.search('\d*$'))`, `re.search('[a-zA-Z]{1}(?=-)')`), else dropped.
fn filter_printers(printers: &Value, filter: &str) -> Vec<Value> {
    printers["message"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains(&filter.to_lowercase()))
        })
        .filter_map(|p| {
            let name = p["name"].as_str().unwrap();
            let digits: String = name
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let number: i64 = digits.parse().ok()?;
            let bytes = name.as_bytes();
            let letter = (0..bytes.len().saturating_sub(1))
                .find(|&i| bytes[i].is_ascii_alphabetic() && bytes[i + 1] == b'-')
                .map(|i| (bytes[i] as char).to_string())?;
            let location: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let mut p = p.clone();
            p["number"] = json!(number);
            p["letter"] = json!(letter);
            p["location"] = json!(location.to_lowercase());
            Some(p)
        })
        .collect()
}

async fn duke_dashboard_lists_its_printers_jobs_filaments_and_reservations(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    // The farm as Duke names it: Co-Lab staff run it under an organization admin account.
    app.create_user(app.org_id, "colab-service@duke.edu", 1);
    let (_, staff) = app
        .user_with_session(app.org_id, "abc123@duke.edu", 1)
        .await;
    let mut ids = HashMap::new();
    for name in ["TEC A-1", "TEC B-2", "LIB A-1", "TEC unnamed"] {
        let (id, token) = app.register_printer(&staff, name).await;
        diesel::update(printers::table.find(id))
            .set(printers::name.eq(name))
            .execute(&mut *app.conn())
            .unwrap();
        let mut report = json!({"state": "ready", "percent": 0});
        if name == "TEC A-1" {
            report["material_names"] = json!(["PLA"]);
            report["material_colors_hex"] = json!(["#00539B"]);
        }
        app.agent("command", json!({"auth_token": token, "report": report}))
            .await;
        ids.insert(name, (id, token));
    }
    let (status, wg) = app
        .post(
            "/apiglobal/create_workgroup",
            &[
                ("session", &staff),
                ("name", "Robotics Club"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{wg}");
    let wg = wg["message"]["id"].as_i64().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", &staff),
                ("printer_id", &ids["TEC A-1"].0.to_string()),
                ("workgroup_id[]", &wg),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&staff, "bracket.gcode", gcode, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap().to_string();
    for only_queue in ["0", "1"] {
        let (status, body) = app
            .post(
                "/apiglobal/print_file",
                &[
                    ("session", &staff),
                    ("file_id", &file),
                    ("printer_id", &ids["TEC A-1"].0.to_string()),
                    ("only_queue", only_queue),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // get_user_session, then has_valid_session.
    let login = post(
        &app,
        "login",
        &[
            ("username", "colab-service@duke.edu"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let session = login["message"]["session"].as_str().unwrap().to_string();
    let s = session.as_str();
    assert_eq!(
        post(&app, "check_session", &[("session", s)]).await["result"],
        true
    );

    // printer_list(include_last_job=True, include_filament_data=True, printer_group="TEC").
    let org = post(&app, "get_organization_printers_list", &[("session", s)]).await;
    let mut printers = filter_printers(&org, "TEC");
    let names: Vec<&str> = printers
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "TEC printers following the naming: {names:?}"
    );

    // attach_active_jobs / __set_history_on_printers.
    let status_codes: HashMap<&str, &str> = [
        ("11", "Queued"),
        ("21", "Printing"),
        ("43", "Failed"),
        ("45", "Aborted"),
        ("77", "Complete"),
    ]
    .into();
    for printer in printers.iter_mut() {
        let printer_id = printer["id"].to_string();
        let result = post(
            &app,
            "get_printer_jobs",
            &[("session", s), ("printer_id", &printer_id)],
        )
        .await;
        let all_jobs = result["message"].as_array().cloned().unwrap_or_default();
        match all_jobs.first().filter(|j| j.is_object()) {
            None => printer["most_recent_job"] = Value::Null,
            Some(recent) => {
                let email = recent["email"].as_str().unwrap();
                assert!(email.contains('@'), "a netid before the @: {email}");
                let key = recent["status_id"]
                    .as_str()
                    .expect("status_id as a dict key string");
                printer["print_status"] = json!(status_codes[key]);
                printer["most_recent_job"] = recent.clone();
                let mapped: Vec<&str> = all_jobs
                    .iter()
                    .map(|j| status_codes[j["status_id"].as_str().unwrap()])
                    .collect();
                printer["all_jobs_status"] = json!(mapped);
            }
        }
    }

    // attach_filament_data.
    let accessible = post(&app, "get_printers_list", &[("session", s)]).await;
    for printer in printers.iter_mut() {
        let data = accessible["message"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["printer_id"] == printer["id"])
            .cloned();
        printer["filament_info"] = match data {
            Some(d) if d["filaments"].as_str().is_some_and(|f| !f.is_empty()) => {
                serde_json::from_str(d["filaments"].as_str().unwrap()).expect("json.loads")
            }
            _ => Value::Null,
        };
    }

    // check_reservations (24 is Duke's EVERYONE group).
    let groups = post(&app, "get_workgroups_simple_list", &[("session", s)]).await;
    for printer in printers.iter_mut() {
        let workgroups = printer["workgroups"].clone();
        let empty = workgroups.is_null() || workgroups.as_array().is_some_and(Vec::is_empty);
        if empty {
            printer["reservations"] = json!(["No Workgroup"]);
        } else if !workgroups.as_array().unwrap().contains(&json!(24)) {
            let reservations: Vec<Vec<String>> = workgroups
                .as_array()
                .unwrap()
                .iter()
                .map(|res_id| {
                    let res_id = res_id.as_i64().expect("workgroup ids as numbers");
                    groups["message"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|x| {
                            x["id"].as_i64().or_else(|| x["id"].as_str()?.parse().ok())
                                == Some(res_id)
                        })
                        .map(|x| x["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .collect();
            printer["reservations"] = json!(reservations);
        }
    }

    let by_name = |n: &str| printers.iter().find(|p| p["name"] == n).unwrap().clone();
    let a1 = by_name("TEC A-1");
    assert_eq!(a1["letter"], "A");
    assert_eq!(a1["number"], 1);
    assert_eq!(a1["location"], "tec");
    assert_eq!(a1["print_status"], "Queued", "newest job first: {a1}");
    assert_eq!(a1["all_jobs_status"], json!(["Queued", "Printing"]));
    assert_eq!(
        a1["filament_info"],
        json!([{"extruder": 1, "material": "PLA", "color_hex": "#00539B"}])
    );
    assert_eq!(a1["reservations"], json!([["Robotics Club"]]));
    let b2 = by_name("TEC B-2");
    assert!(b2["most_recent_job"].is_null());
    assert!(b2["filament_info"].is_null());
    assert_eq!(b2["reservations"], json!(["No Workgroup"]));
    app.stop().await;
}
