//! The farm queue (printfarm extension, `print_file` with a printer type, workgroup or list and
//! copies; `get_farm_queue`, `farm_job_cancel`, `farm_job_retry`, `printer_maintenance`,
//! `set_power_circuit`) on both backends, with virtual agents speaking the printer protocol.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{assert_fail, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{farm_copies, jobs, printers};
use serde_json::{json, Value};

backend_tests!(
    a_batch_of_ten_over_four_printers_prints_exactly_ten,
    material_mismatch_waits_with_the_reason,
    maintenance_blocks_and_resumes,
    staggered_start_never_exceeds_its_limit,
    a_printer_going_offline_mid_queue,
    a_retry_after_a_failure_prints_the_copy_once,
    refusals,
    priorities_order_the_farm_queue,
);

/// One virtual printer: its id and agent token.
#[derive(Clone)]
struct Agent {
    id: i64,
    token: String,
}

impl Agent {
    async fn poll(&self, app: &TestApp, report: Value, extra: Value) -> Value {
        let mut body = json!({"auth_token": self.token, "report": report});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        app.agent("command", body).await
    }

    /// Ready with a clear bed; answers the command handed out, if any.
    async fn ready(&self, app: &TestApp) -> Value {
        self.poll(
            app,
            json!({"state": "ready", "percent": 0, "temps": [22, 23], "target_temps": [0, 0]}),
            json!({"bed_clear": true}),
        )
        .await
    }

    /// Takes a `gcodes` command: acks it and reports printing (heating done).
    async fn start(&self, app: &TestApp, cmd: &Value) -> i64 {
        assert_eq!(cmd["command"], "gcodes", "{cmd}");
        let job = cmd["job_id"].as_i64().unwrap();
        self.poll(
            app,
            json!({"state": "printing", "percent": 1, "temps": [215, 60], "target_temps": [215, 60]}),
            json!({"command_ack": {"number": cmd["number"], "result": true}}),
        )
        .await;
        job
    }

    async fn finish(&self, app: &TestApp) {
        self.poll(app, json!({"state": "printing", "percent": 100}), json!({}))
            .await;
        self.poll(app, json!({"state": "ready", "percent": 100}), json!({}))
            .await;
    }
}

struct Farm {
    session: String,
    agents: Vec<Agent>,
    file: i64,
    mk4: i64,
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

/// A member with `n` ready MK4 printers of their own and the cube's G-code.
async fn farm(app: &TestApp, email: &str, n: usize) -> Farm {
    let session = app.login_new_user(email).await;
    let mut agents = vec![];
    for i in 0..n {
        let (id, token) = app
            .register_printer(&session, &format!("{email}-P{i}"))
            .await;
        let a = Agent { id, token };
        assert_eq!(a.ready(app).await, json!({}));
        agents.push(a);
    }
    let file = upload(app, &session).await;
    let mk4 = {
        let mut c = app.conn();
        printers::table
            .find(agents[0].id)
            .select(printers::printer_type_id)
            .first::<Option<i64>>(&mut *c)
            .unwrap()
            .expect("the virtual printer has a type")
    };
    Farm {
        session,
        agents,
        file,
        mk4,
    }
}

async fn farm_print(app: &TestApp, session: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("session", session)];
    form.extend_from_slice(params);
    app.post("/apiglobal/print_file", &form).await
}

async fn farm_job(app: &TestApp, f: &Farm, params: &[(&str, &str)]) -> (i64, Vec<i64>) {
    let file = f.file.to_string();
    let mut form = vec![("file_id", file.as_str())];
    form.extend_from_slice(params);
    let (status, body) = farm_print(app, &f.session, &form).await;
    assert_eq!(status, 200, "{body}");
    let started = body["message"]["job_ids"]
        .as_array()
        .expect("job_ids")
        .iter()
        .map(|j| j.as_str().expect("job ids are strings").parse().unwrap())
        .collect();
    (body["message"]["farm_job_id"].as_i64().unwrap(), started)
}

async fn queue(app: &TestApp, session: &str, farm_job: i64) -> Value {
    let (status, body) = app
        .post(
            "/apiglobal/get_farm_queue",
            &[("session", session), ("farm_job_id", &farm_job.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"][0].clone()
}

/// Polls the farm queue until `pred` holds (the dispatcher runs every second).
async fn wait_queue(
    app: &TestApp,
    session: &str,
    farm_job: i64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..60 {
        let q = queue(app, session, farm_job).await;
        if pred(&q) {
            return q;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", queue(app, session, farm_job).await);
}

fn mk4(f: &Farm) -> String {
    f.mk4.to_string()
}

/// Jobs of the farm job's copies: (copy id, job id, status) per job row.
fn copy_jobs(app: &TestApp, farm_job: i64) -> Vec<(i64, i64, i32, i64)> {
    let mut c = app.conn();
    let copies: Vec<i64> = farm_copies::table
        .filter(farm_copies::farm_job_id.eq(farm_job))
        .select(farm_copies::id)
        .load(&mut *c)
        .unwrap();
    jobs::table
        .filter(jobs::farm_copy_id.eq_any(copies))
        .order(jobs::id.asc())
        .select((
            jobs::farm_copy_id.assume_not_null(),
            jobs::id,
            jobs::status_id,
            jobs::printer_id,
        ))
        .load(&mut *c)
        .unwrap()
}

async fn a_batch_of_ten_over_four_printers_prints_exactly_ten(app: &TestApp) {
    let f = farm(app, "batch@example.com", 4).await;
    let (fj, started) = farm_job(app, &f, &[("printer_type_id", &mk4(&f)), ("copies", "10")]).await;
    assert_eq!(started.len(), 4, "each free printer takes a copy at once");
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (
            q["waiting"].clone(),
            q["printing"].clone(),
            q["state"].clone()
        ),
        (json!(6), json!(4), json!("waiting"))
    );
    assert_eq!(q["reason_code"], "busy", "{q}");
    let reason = q["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("all 4 Prusa MK4 printers busy, next free in ~"),
        "{reason}"
    );
    assert!(
        q["eta_next_start"].is_string() && q["eta_done"].is_string(),
        "{q}"
    );

    // Every copy is an ordinary job: get_job_info answers it like any other.
    let (status, info) = app
        .post(
            "/apiglobal/get_job_info",
            &[("session", &f.session), ("job_id", &started[0].to_string())],
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["message"]["status_id"], "21");

    // The agents print whatever they get until nothing is left.
    let mut printed: BTreeMap<i64, usize> = BTreeMap::new();
    for _round in 0..10 {
        for a in &f.agents {
            let cmd = a.ready(app).await;
            if cmd.get("command").is_some() {
                a.start(app, &cmd).await;
                a.finish(app).await;
                *printed.entry(a.id).or_default() += 1;
            }
        }
        if printed.values().sum::<usize>() == 10 {
            break;
        }
    }
    // Nothing more comes, however often they poll.
    for a in &f.agents {
        assert_eq!(a.ready(app).await, json!({}));
    }
    assert_eq!(printed.values().sum::<usize>(), 10, "{printed:?}");
    assert_eq!(printed.len(), 4, "every printer took part: {printed:?}");
    let rows = copy_jobs(app, fj);
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|(_, _, status, _)| *status == 77),
        "{rows:?}"
    );
    let copies: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(copies.len(), 10, "each copy printed once");
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["done"].clone(), q["state"].clone(), q["reason"].clone()),
        (json!(10), json!("done"), Value::Null)
    );
    let list = q["copy_list"].as_array().unwrap();
    assert_eq!(list.len(), 10);
    assert!(list
        .iter()
        .all(|c| c["state"] == "done" && c["attempts"] == 1));
}

async fn material_mismatch_waits_with_the_reason(app: &TestApp) {
    let f = farm(app, "petg@example.com", 1).await;
    let a = &f.agents[0];
    a.poll(
        app,
        json!({"state": "ready", "material_names": ["PLA"], "material_colors_hex": ["#FF8800"]}),
        json!({}),
    )
    .await;
    let (fj, started) = farm_job(
        app,
        &f,
        &[
            ("printer_type_id", &mk4(&f)),
            ("material", "petg"),
            ("color", "ff8800"),
        ],
    )
    .await;
    assert!(started.is_empty());
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (
            q["reason_code"].clone(),
            q["reason"].clone(),
            q["material"].clone(),
            q["color_hex"].clone()
        ),
        (
            json!("material"),
            json!("needs petg (#FF8800), none loaded on the 1 matching printer"),
            json!("petg"),
            json!("#FF8800")
        )
    );
    assert_eq!(
        q["eta_next_start"],
        Value::Null,
        "no estimate without a fitting printer"
    );
    assert_eq!(
        a.ready(app).await,
        json!({}),
        "PLA loaded: nothing to print"
    );
    // A later job that fits what is loaded does not wait behind it.
    let (later, started) = farm_job(app, &f, &[("printer_type_id", &mk4(&f))]).await;
    assert_eq!(started.len(), 1, "the later job takes the printer");
    let cmd = a.ready(app).await;
    a.start(app, &cmd).await;
    a.finish(app).await;
    assert_eq!(
        a.ready(app).await,
        json!({}),
        "the tray cleared, still no PETG"
    );
    assert_eq!(queue(app, &f.session, later).await["done"], 1);
    assert_eq!(queue(app, &f.session, fj).await["reason_code"], "material");
    // PETG of another colour still does not fit; the right spool does, within a second.
    a.poll(
        app,
        json!({"state": "ready", "material_names": ["PETG"], "material_colors_hex": ["#000000"]}),
        json!({}),
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queue(app, &f.session, fj).await["waiting"], 1);
    a.poll(
        app,
        json!({"state": "ready", "material_names": ["PETG"], "material_colors_hex": ["#ff8800"]}),
        json!({}),
    )
    .await;
    wait_queue(app, &f.session, fj, "PETG loaded starts it", |q| {
        q["printing"] == 1
    })
    .await;
    let cmd = a.ready(app).await;
    assert_eq!(cmd["command"], "gcodes", "{cmd}");
}

async fn maintenance_blocks_and_resumes(app: &TestApp) {
    let f = farm(app, "fixer@example.com", 1).await;
    let a = &f.agents[0];
    let id = a.id.to_string();
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[
                ("session", &f.session),
                ("printer_id", &id),
                ("maintenance", "1"),
                ("note", "Nozzle swap"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["message"]["in_maintenance"].clone(),
            body["message"]["note"].clone()
        ),
        (json!(true), json!("Nozzle swap"))
    );
    // Legacy clients see the documented word for a printer that takes no cloud jobs.
    let (_, list) = app
        .post("/apiglobal/get_printers_list", &[("session", &f.session)])
        .await;
    assert_eq!(list["message"][0]["state"], "local_mode", "{list}");
    // Its own queue does not start either.
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &f.session),
                ("file_id", &f.file.to_string()),
                ("printer_id", &id),
            ],
        )
        .await;
    assert_eq!(status, 200, "queued: {body}");
    let single = body["message"]["job_id"].as_str().unwrap().to_string();
    let (_, info) = app
        .post(
            "/apiglobal/get_job_info",
            &[("session", &f.session), ("job_id", &single)],
        )
        .await;
    assert_eq!(info["message"]["status_id"], "11", "waits: {info}");
    let (_, cancel) = app
        .post(
            "/apiglobal/job_cancel",
            &[("session", &f.session), ("job_id", &single)],
        )
        .await;
    assert_eq!(cancel["result"], true, "{cancel}");

    let (fj, started) = farm_job(
        app,
        &f,
        &[("printer_ids", &format!("[{id}]")), ("copies", "2")],
    )
    .await;
    assert!(started.is_empty());
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["reason_code"].clone(), q["reason"].clone()),
        (
            json!("maintenance"),
            json!("printer in maintenance: Prusa MK4 fixer@example.com-P0 (Nozzle swap)")
        )
    );
    assert_eq!(a.ready(app).await, json!({}));

    // Back in service: the copy starts at once, and the counters count from now.
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[
                ("session", &f.session),
                ("printer_id", &id),
                ("maintenance", "0"),
                ("filament_limit_g", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["in_maintenance"], false);
    assert_eq!(body["message"]["filament_g"], 0.0);
    assert!(body["message"]["last_maintained"].is_string());
    assert_eq!(queue(app, &f.session, fj).await["printing"], 1);
    let cmd = a.ready(app).await;
    a.start(app, &cmd).await;
    a.finish(app).await;
    // Past its filament limit after that print: into maintenance by itself; the second
    // copy waits.
    let (_, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[("session", &f.session), ("printer_id", &id)],
        )
        .await;
    let m = &body["message"];
    assert_eq!(m["in_maintenance"], true, "{m}");
    assert!(m["filament_g"].as_f64().unwrap() >= 1.0, "{m}");
    assert!(
        m["note"].as_str().unwrap().starts_with("Automatic: "),
        "{m}"
    );
    assert_eq!(a.ready(app).await, json!({}));
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["done"].clone(), q["waiting"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(q["reason_code"], "maintenance");

    // Refusals: a member who does not manage the printer, another organization.
    let (_, other) = app
        .user_with_session(app.org_id, "student@example.com", 0)
        .await;
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[
                ("session", &other),
                ("printer_id", &id),
                ("maintenance", "0"),
            ],
        )
        .await;
    assert_fail(&(status, body), 404);
    let org2 = app.create_org("Elsewhere");
    let (_, outsider) = app.user_with_session(org2, "admin@elsewhere.test", 1).await;
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[("session", &outsider), ("printer_id", &id)],
        )
        .await;
    assert_fail(&(status, body), 404);
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[
                ("session", &f.session),
                ("printer_id", &id),
                ("hours_limit", "-3"),
            ],
        )
        .await;
    assert!(assert_fail(&(status, body), 400).contains("hours_limit"));
}

async fn staggered_start_never_exceeds_its_limit(app: &TestApp) {
    let f = farm(app, "power@example.com", 4).await;
    let (_, admin) = app
        .user_with_session(app.org_id, "boss@example.com", 1)
        .await;
    let ids: Vec<String> = f.agents.iter().map(|a| a.id.to_string()).collect();
    let mut form = vec![
        ("session", admin.as_str()),
        ("name", "Bench 1"),
        ("max_heating", "2"),
    ];
    for id in &ids {
        form.push(("printer_id[]", id));
    }
    let (status, body) = app.post("/apiglobal/set_power_circuit", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["printer_ids"].as_array().unwrap().len(), 4);

    let (fj, started) = farm_job(app, &f, &[("printer_type_id", &mk4(&f)), ("copies", "4")]).await;
    assert_eq!(
        started.len(),
        2,
        "two heat at once, the others wait their turn"
    );
    let q = queue(app, &f.session, fj).await;
    assert_eq!(q["reason_code"], "stagger", "{q}");
    assert!(
        q["reason"]
            .as_str()
            .unwrap()
            .contains("circuit Bench 1: 2 of 2 heating"),
        "{q}"
    );
    assert_eq!(heating(app, &admin).await, 2);

    // The two printers fetch their G-code and heat: still no third start.
    let mut busy = vec![];
    for a in &f.agents {
        let cmd = a.ready(app).await;
        if cmd.get("command").is_some() {
            a.poll(
                app,
                json!({"state": "printing", "percent": 0, "temps": [90, 30], "target_temps": [215, 60]}),
                json!({"command_ack": {"number": cmd["number"], "result": true}}),
            )
            .await;
            busy.push(a.clone());
        }
    }
    assert_eq!(busy.len(), 2);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queue(app, &f.session, fj).await["printing"], 2);
    assert_eq!(heating(app, &admin).await, 2);

    // One reaches its temperatures: within a second the next one starts, never a fourth.
    busy[0]
        .poll(
            app,
            json!({"state": "printing", "percent": 3, "temps": [214, 59], "target_temps": [215, 60]}),
            json!({}),
        )
        .await;
    wait_queue(app, &f.session, fj, "a third start", |q| q["printing"] == 3).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["printing"].clone(), q["waiting"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(heating(app, &admin).await, 2);

    // At most one download at once: the third printer has not fetched its G-code yet.
    let (status, body) = app
        .post(
            "/apiglobal/set_power_circuit",
            &[
                ("session", &admin),
                ("name", "Bench 1"),
                ("max_downloads", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["message"]["downloading"].clone(),
            body["message"]["max_heating"].clone()
        ),
        (json!(1), Value::Null)
    );
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let q = queue(app, &f.session, fj).await;
    assert_eq!(q["waiting"], 1);
    assert!(
        q["reason"]
            .as_str()
            .unwrap()
            .contains("circuit Bench 1: 1 of 1 downloading"),
        "{q}"
    );
    for a in f
        .agents
        .iter()
        .filter(|a| !busy.iter().any(|b| b.id == a.id))
    {
        let cmd = a.ready(app).await;
        if cmd.get("command").is_some() {
            a.start(app, &cmd).await;
        }
    }
    wait_queue(
        app,
        &f.session,
        fj,
        "the last one once the download is done",
        |q| q["printing"] == 4,
    )
    .await;

    // Members may not change circuits.
    let (status, body) = app
        .post(
            "/apiglobal/set_power_circuit",
            &[
                ("session", &f.session),
                ("name", "Mine"),
                ("max_heating", "9"),
            ],
        )
        .await;
    assert_fail(&(status, body), 403);
    let (status, body) = app
        .post(
            "/apiglobal/set_power_circuit",
            &[
                ("session", &admin),
                ("name", "Bench 1"),
                ("max_heating", "0"),
            ],
        )
        .await;
    assert!(assert_fail(&(status, body), 400).contains("max_heating"));
}

/// Printers of the first power circuit heating now.
async fn heating(app: &TestApp, admin: &str) -> i64 {
    let (_, body) = app
        .post("/apiglobal/get_power_circuits", &[("session", admin)])
        .await;
    body["message"][0]["heating"].as_i64().unwrap()
}

async fn a_printer_going_offline_mid_queue(app: &TestApp) {
    let f = farm(app, "away@example.com", 2).await;
    let (fj, started) = farm_job(app, &f, &[("printer_type_id", &mk4(&f)), ("copies", "4")]).await;
    assert_eq!(started.len(), 2);
    let (stays, leaves) = (&f.agents[0], &f.agents[1]);
    let cmd = stays.ready(app).await;
    stays.start(app, &cmd).await;
    // The other one stops polling mid-print: it looks offline to everyone.
    {
        let mut c = app.conn();
        diesel::update(printers::table.find(leaves.id))
            .set(printers::last_seen_at.eq(None::<chrono::NaiveDateTime>))
            .execute(&mut *c)
            .unwrap();
    }
    stays.finish(app).await;
    // The copies go to the printer that stays, one after another.
    for _ in 0..2 {
        let cmd = stays.ready(app).await;
        stays.start(app, &cmd).await;
        stays.finish(app).await;
    }
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (
            q["done"].clone(),
            q["printing"].clone(),
            q["waiting"].clone()
        ),
        (json!(3), json!(1), json!(0))
    );
    // It comes back having lost its job: that copy failed and waits for a retry.
    leaves
        .poll(
            app,
            json!({"state": "ready", "percent": 0}),
            json!({"reset_job": true}),
        )
        .await;
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["failed"].clone(), q["state"].clone()),
        (json!(1), json!("failed"))
    );
    assert_eq!(
        stays.ready(app).await,
        json!({}),
        "a failed copy waits for a retry"
    );
}

async fn a_retry_after_a_failure_prints_the_copy_once(app: &TestApp) {
    let f = farm(app, "retry@example.com", 1).await;
    let a = &f.agents[0];
    let (fj, started) = farm_job(app, &f, &[("printer_type_id", &mk4(&f)), ("copies", "2")]).await;
    assert_eq!(started.len(), 1);
    let cmd = a.ready(app).await;
    let failed_job = a.start(app, &cmd).await;
    a.poll(app, json!({"state": "error", "percent": 20}), json!({}))
        .await;
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["failed"].clone(), q["waiting"].clone()),
        (json!(1), json!(1))
    );

    // The printer recovers: the waiting copy goes first; the failed one only after a retry.
    let cmd = a.ready(app).await;
    a.start(app, &cmd).await;
    a.finish(app).await;
    assert_eq!(a.ready(app).await, json!({}));
    let retry = |job: Option<i64>| {
        let session = f.session.clone();
        async move {
            let mut form = vec![
                ("session".to_string(), session),
                ("farm_job_id".into(), fj.to_string()),
            ];
            if let Some(j) = job {
                form.push(("job_id".into(), j.to_string()));
            }
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            app.post("/apiglobal/farm_job_retry", &form).await
        }
    };
    let done_job = copy_jobs(app, fj)
        .into_iter()
        .find(|r| r.2 == 77)
        .unwrap()
        .1;
    assert!(assert_fail(&retry(Some(done_job)).await, 409).contains("not failed"));
    let (status, body) = retry(Some(failed_job)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["requeued"], 1);
    assert!(assert_fail(&retry(None).await, 409).contains("no failed copy"));
    let cmd = a.ready(app).await;
    let again = a.start(app, &cmd).await;
    assert_ne!(again, failed_job);
    a.finish(app).await;
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["done"].clone(), q["failed"].clone(), q["state"].clone()),
        (json!(2), json!(0), json!("done"))
    );
    let list = q["copy_list"].as_array().unwrap();
    assert_eq!(list[0]["attempts"], 2, "{list:?}");
    assert_eq!(list[0]["job_id"], json!(again.to_string()));
    // Three job rows, one copy each finished exactly once.
    let rows = copy_jobs(app, fj);
    assert_eq!(rows.len(), 3);
    let finished: Vec<i64> = rows.iter().filter(|r| r.2 == 77).map(|r| r.0).collect();
    assert_eq!(finished.len(), 2);
    assert_ne!(finished[0], finished[1]);

    // Someone else's farm job is out of reach.
    let other = app.login_new_user("nosy@example.com").await;
    let (status, body) = app
        .post(
            "/apiglobal/farm_job_retry",
            &[("session", &other), ("farm_job_id", &fj.to_string())],
        )
        .await;
    assert_fail(&(status, body), 404);
    let (status, body) = app
        .post(
            "/apiglobal/get_farm_queue",
            &[("session", &other), ("farm_job_id", &fj.to_string())],
        )
        .await;
    assert_fail(&(status, body), 404);
}

async fn refusals(app: &TestApp) {
    let f = farm(app, "careful@example.com", 1).await;
    let file = f.file.to_string();
    let t = mk4(&f);
    let p = f.agents[0].id.to_string();
    type Refused<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let bad: &[Refused] = &[
        (
            &[("printer_id", &p), ("printer_type_id", &t)],
            400,
            "Name one target",
        ),
        (&[], 400, "printer_id"),
        (&[("printer_type_id", &t), ("copies", "0")], 400, "copies"),
        (
            &[("printer_type_id", &t), ("copies", "1001")],
            400,
            "copies",
        ),
        (
            &[("printer_type_id", &t), ("copies", "99999999999")],
            400,
            "copies",
        ),
        (
            &[("printer_type_id", &t), ("color", "orange")],
            400,
            "color",
        ),
        (
            &[
                ("printer_type_id", &t),
                ("material", "PLA'; DROP TABLE jobs;--"),
            ],
            400,
            "material",
        ),
        (&[("printer_type_id", &t), ("priority", "5")], 403, "admins"),
        (
            &[("printer_type_id", &t), ("only_queue", "1")],
            400,
            "only_queue",
        ),
        (&[("printer_type_id", "999999")], 404, "Printer type"),
        (&[("workgroup_id", "999999")], 404, "Workgroup"),
        (&[("printer_ids", "[999999]")], 404, "Printer"),
        (&[("printer_ids", "[]")], 400, "printer_ids"),
    ];
    for (params, status, text) in bad {
        let mut form = vec![("file_id", file.as_str())];
        form.extend_from_slice(params);
        let got = farm_print(app, &f.session, &form).await;
        let message = assert_fail(&got, *status);
        assert!(message.contains(text), "{params:?}: {message}");
    }
    // A type none of the person's printers has: refused, not left waiting for ever.
    let other_type = {
        let (_, types) = app
            .post("/apiglobal/get_printer_types", &[("session", &f.session)])
            .await;
        types["message"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .find(|id| *id != f.mk4)
            .unwrap()
            .to_string()
    };
    let got = farm_print(
        app,
        &f.session,
        &[("file_id", &file), ("printer_type_id", &other_type)],
    )
    .await;
    let message = assert_fail(&got, 400);
    assert!(message.contains("No printer you may print on"), "{message}");
    // Another person's printer and file are out of reach.
    let other = app.login_new_user("other@example.com").await;
    let got = farm_print(app, &other, &[("file_id", &file), ("printer_type_id", &t)]).await;
    assert_fail(&got, 404);
    let other_file = upload(app, &other).await.to_string();
    let got = farm_print(
        app,
        &other,
        &[("file_id", &other_file), ("printer_ids", &format!("[{p}]"))],
    )
    .await;
    assert_fail(&got, 404);
    // Nothing was written by any refusal.
    let mut c = app.conn();
    let n: i64 = printfarm::db::schema::farm_jobs::table
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 0);
    drop(c);

    // A file in the farm queue stays (409), before any copy printed.
    let (waiting_on, _) = farm_job(
        app,
        &f,
        &[("printer_type_id", &t), ("material", "Unobtainium")],
    )
    .await;
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &f.session), ("name", "farm")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let bearer = body["message"]["token"].as_str().unwrap().to_string();
    let got = common::read(
        app.client
            .delete(app.url(&format!("/v1/file/{file}")))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, 409, "{got:?}");
    assert!(got.1.to_string().contains("farm queue"), "{got:?}");
    let (status, _) = app
        .post(
            "/apiglobal/farm_job_cancel",
            &[
                ("session", &f.session),
                ("farm_job_id", &waiting_on.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200);

    // Cancelling: the owner; twice is a conflict.
    let (fj, _) = farm_job(app, &f, &[("printer_type_id", &t), ("copies", "3")]).await;
    let (status, body) = app
        .post(
            "/apiglobal/farm_job_cancel",
            &[("session", &other), ("farm_job_id", &fj.to_string())],
        )
        .await;
    assert_fail(&(status, body), 404);
    let (status, body) = app
        .post(
            "/apiglobal/farm_job_cancel",
            &[("session", &f.session), ("farm_job_id", &fj.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["message"]["printing"].clone(),
            body["message"]["cancelled"].clone()
        ),
        (json!(1), json!(2))
    );
    let (status, body) = app
        .post(
            "/apiglobal/farm_job_cancel",
            &[("session", &f.session), ("farm_job_id", &fj.to_string())],
        )
        .await;
    assert!(assert_fail(&(status, body), 409).contains("already cancelled"));
    // The copy printing goes on; nothing else follows it.
    let a = &f.agents[0];
    let cmd = a.ready(app).await;
    a.start(app, &cmd).await;
    a.finish(app).await;
    assert_eq!(a.ready(app).await, json!({}));
    let q = queue(app, &f.session, fj).await;
    assert_eq!(
        (q["state"].clone(), q["done"].clone()),
        (json!("cancelled"), json!(1))
    );
}

/// Two server instances on one Postgres database dispatch one farm queue: agents poll through
/// both at once while both dispatchers run; every copy prints exactly once and no printer
/// ever runs two jobs.
#[actix_web::test]
async fn two_instances_never_assign_a_printer_or_a_copy_twice() {
    let Some(app) = TestApp::start(common::Db::Postgres, &[]).await else {
        return;
    };
    let other = app.second_instance().await;
    let f = farm(&app, "twins@example.com", 6).await;
    let t = mk4(&f);
    let file = f.file.to_string();
    let form = |session: &str| {
        vec![
            ("session".to_string(), session.to_string()),
            ("file_id".into(), file.clone()),
            ("printer_type_id".into(), t.clone()),
            ("copies".into(), "12".into()),
        ]
    };
    let post = |inst: &TestApp, form: Vec<(String, String)>| {
        let (client, url) = (inst.client.clone(), inst.url("/apiglobal/print_file"));
        async move { common::read(client.post(url).form(&form).send().await.unwrap()).await }
    };
    let (one, two) =
        futures_util::join!(post(&app, form(&f.session)), post(&other, form(&f.session)));
    assert_eq!((one.0, two.0), (200, 200), "{one:?} {two:?}");
    let farm_jobs = [
        one.1["message"]["farm_job_id"].as_i64().unwrap(),
        two.1["message"]["farm_job_id"].as_i64().unwrap(),
    ];

    let instances = [&app, &other];
    let runs = f.agents.iter().enumerate().map(|(i, a)| {
        let a = a.clone();
        async move {
            let mut printed = 0;
            for round in 0..40 {
                let inst = instances[(i + round) % 2];
                let cmd = a.ready(inst).await;
                if cmd.get("command").is_some() {
                    a.start(instances[(i + round + 1) % 2], &cmd).await;
                    a.finish(inst).await;
                    printed += 1;
                } else {
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
            }
            printed
        }
    });
    let printed: usize = futures_util::future::join_all(runs).await.into_iter().sum();
    assert_eq!(printed, 24);

    let mut rows = vec![];
    for fj in farm_jobs {
        rows.extend(copy_jobs(&app, fj));
    }
    assert_eq!(rows.len(), 24, "one job per copy, no retries needed");
    assert!(rows.iter().all(|r| r.2 == 77), "{rows:?}");
    let copies: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(copies.len(), 24, "no copy assigned twice");
    // Per printer, jobs never overlap in time.
    let mut c = app.conn();
    for a in &f.agents {
        let spans: Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)> = jobs::table
            .filter(jobs::printer_id.eq(a.id))
            .order(jobs::started_at.asc())
            .select((
                jobs::started_at.assume_not_null(),
                jobs::ended_at.assume_not_null(),
            ))
            .load(&mut *c)
            .unwrap();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "printer {} ran two jobs at once: {w:?}",
                a.id
            );
        }
    }
    drop(c);
    other.stop().await;
    app.stop().await;
}

/// Waiting farm jobs start by priority, then age: an admin's raised job goes first; members
/// may not reorder.
async fn priorities_order_the_farm_queue(app: &TestApp) {
    let (_, admin) = app
        .user_with_session(app.org_id, "chief@example.com", 1)
        .await;
    let (id, token) = app.register_printer(&admin, "CHIEF-P0").await;
    let a = Agent { id, token };
    // Busy with a job of its own queue first.
    a.poll(app, json!({"state": "printing", "percent": 10}), json!({}))
        .await;
    let file = upload(app, &admin).await.to_string();
    let t = {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::printer_type_id)
            .first::<Option<i64>>(&mut *c)
            .unwrap()
            .unwrap()
            .to_string()
    };
    let mut made = vec![];
    for copies in ["2", "1", "1"] {
        let (status, body) = farm_print(
            app,
            &admin,
            &[
                ("file_id", &file),
                ("printer_type_id", &t),
                ("copies", copies),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        made.push(body["message"]["farm_job_id"].as_i64().unwrap());
    }
    // The third goes first; the second gets a priority of its own, below it.
    let raise = |job: i64, priority: Option<&'static str>| {
        let admin = admin.clone();
        async move {
            let mut form = vec![
                ("session".to_string(), admin),
                ("farm_job_id".to_string(), job.to_string()),
            ];
            if let Some(p) = priority {
                form.push(("priority".into(), p.into()));
            }
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            app.post("/apiglobal/farm_job_priority", &form).await
        }
    };
    let (status, body) = raise(made[2], None).await;
    assert_eq!(
        (status, body["message"]["priority"].clone()),
        (200, json!(1)),
        "{body}"
    );
    let (status, body) = raise(made[1], Some("1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(assert_fail(&raise(made[1], Some("101")).await, 400).contains("priority"));
    let member = app.login_new_user("pupil@example.com").await;
    let (status, body) = app
        .post(
            "/apiglobal/farm_job_priority",
            &[("session", &member), ("farm_job_id", &made[0].to_string())],
        )
        .await;
    assert_fail(&(status, body), 403);

    // The printer frees up: the two raised to 1 in submission order, then the first one.
    a.poll(app, json!({"state": "printing", "percent": 100}), json!({}))
        .await;
    a.poll(app, json!({"state": "ready", "percent": 100}), json!({}))
        .await;
    let mut order = vec![];
    for _ in 0..4 {
        let cmd = a.ready(app).await;
        let job = a.start(app, &cmd).await;
        let copy_of = {
            let mut c = app.conn();
            let copy: i64 = jobs::table
                .find(job)
                .select(jobs::farm_copy_id.assume_not_null())
                .first(&mut *c)
                .unwrap();
            farm_copies::table
                .find(copy)
                .select(farm_copies::farm_job_id)
                .first::<i64>(&mut *c)
                .unwrap()
        };
        order.push(copy_of);
        a.finish(app).await;
    }
    assert_eq!(order, vec![made[1], made[2], made[0], made[0]]);
}
