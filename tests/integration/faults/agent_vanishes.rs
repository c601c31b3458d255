//! An agent that vanishes mid-print (network cut, Raspberry Pi unplugged): the printer shows
//! `notconnected` once `printers.offline_after_secs` passed, its running job is kept (not lost,
//! not restarted elsewhere), nothing new starts on it, and when the agent comes back its
//! report decides: the print went on and finished, or the printer stopped.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{Db, TestApp};

crate::backend_cases!(a_vanished_agent_keeps_its_job_until_it_reports_again);

async fn poll(app: &TestApp, token: &str, report: Value, extra: Value) -> Value {
    let mut body = json!({"auth_token": token, "report": report});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    app.agent("command", body).await
}

async fn job_status(app: &TestApp, session: &str, job: &str) -> String {
    let (status, body) = app
        .post(
            "/apiglobal/get_job_info",
            &[("session", session), ("job_id", job)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["status_id"].as_str().unwrap().to_string()
}

async fn printer_state(app: &TestApp, session: &str, printer: i64) -> String {
    let (status, body) = app
        .post("/apiglobal/get_printers_list", &[("session", session)])
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_i64() == Some(printer) || p["id"] == json!(printer.to_string()))
        .unwrap_or_else(|| panic!("printer {printer} in {body}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn print(
    app: &TestApp,
    session: &str,
    file: &str,
    printer: i64,
    queue: bool,
) -> (u16, Value) {
    app.post(
        "/apiglobal/print_file",
        &[
            ("session", session),
            ("file_id", file),
            ("printer_id", &printer.to_string()),
            ("only_queue", if queue { "1" } else { "0" }),
        ],
    )
    .await
}

async fn a_vanished_agent_keeps_its_job_until_it_reports_again(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_PRINTERS__OFFLINE_AFTER_SECS", "2")]).await
    else {
        return;
    };
    let (_, s) = app
        .user_with_session(app.org_id, "staff@vanish.test", 1)
        .await;
    let (status, body) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &s), ("auto_start_queue", "1")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(&s, "cube.gcode", gcode, &[]).await;
    assert_eq!(status, 200, "{body}");
    let file = body["message"]["file_id"].as_i64().unwrap().to_string();

    // Two rounds: the agent comes back to a finished print, then to a printer that stopped.
    for (round, outcome) in [("finished", "77"), ("stopped", "45")] {
        let (printer, token) = app.register_printer(&s, &format!("VANISH-{round}")).await;
        poll(
            &app,
            &token,
            json!({"state": "ready", "percent": 0}),
            json!({}),
        )
        .await;
        let (status, body) = print(&app, &s, &file, printer, false).await;
        assert_eq!(status, 200, "{body}");
        let running = body["message"]["job_id"].as_str().unwrap().to_string();
        let cmd = poll(
            &app,
            &token,
            json!({"state": "ready", "percent": 0}),
            json!({}),
        )
        .await;
        assert_eq!(cmd["command"], "gcodes", "{cmd}");
        poll(
            &app,
            &token,
            json!({"state": "printing", "percent": 40, "clouds_job_id": running}),
            json!({"command_ack": {"number": cmd["number"], "result": true}}),
        )
        .await;
        let (status, body) = print(&app, &s, &file, printer, true).await;
        assert_eq!(status, 200, "{body}");
        let queued = body["message"]["job_id"].as_str().unwrap().to_string();

        // The agent vanishes. (Statuses: 11 queued, 21 printing, 45 aborted, 77 finished.)
        actix_web::rt::time::sleep(Duration::from_millis(2600)).await;
        assert_eq!(printer_state(&app, &s, printer).await, "notconnected");
        assert_eq!(job_status(&app, &s, &running).await, "21");
        assert_eq!(job_status(&app, &s, &queued).await, "11");
        let (status, body) = print(&app, &s, &file, printer, false).await;
        assert_eq!(status, 409, "nothing starts on an absent printer: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("offline"),
            "{body}"
        );

        // It comes back: its report decides the running job; the queue moves on.
        if outcome == "77" {
            poll(
                &app,
                &token,
                json!({"state": "printing", "percent": 100, "clouds_job_id": running}),
                json!({}),
            )
            .await;
        }
        let report = if outcome == "77" {
            json!({"state": "ready", "percent": 100})
        } else {
            json!({"state": "ready", "percent": 40})
        };
        poll(&app, &token, report, json!({"bed_clear": true})).await;
        assert_eq!(
            job_status(&app, &s, &running).await,
            outcome,
            "round {round}"
        );
        let next = poll(
            &app,
            &token,
            json!({"state": "ready", "percent": 0}),
            json!({}),
        )
        .await;
        assert_eq!(next["command"], "gcodes", "round {round}: {next}");
        assert_eq!(next["job_id"].to_string().trim_matches('"'), queued);
        assert_eq!(job_status(&app, &s, &queued).await, "21");
    }
    app.stop().await;
}
