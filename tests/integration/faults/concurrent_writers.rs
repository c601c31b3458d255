//! Many people queueing and cancelling prints while every printer's agent polls, reports and
//! finishes jobs (auto-start on): the write transactions of `print_file`, `job_cancel` and the
//! agent poll lock the same rows (a printer, the job change counter, a user, job rows). On
//! Postgres they once deadlocked 42 times in 30 s; now none may deadlock, none may answer 5xx,
//! and no job or command may be lost or duplicated.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use printfarm::db::models::JobStatus;
use printfarm::db::schema::{jobs, printer_commands};
use serde_json::{json, Value};

use crate::common::{Db, TestApp};

crate::backend_cases!(writers_and_agents_never_deadlock);

/// Size of the load: 8 printers, 8 people, 8 s in the suite; the figures (20, 20,
/// 30 s) with `FAULTS_LOAD=20,20,30` (printers, people, seconds).
fn load() -> (usize, usize, Duration) {
    let v: Vec<u64> = std::env::var("FAULTS_LOAD")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    match v[..] {
        [p, u, secs] => (p as usize, u as usize, Duration::from_secs(secs)),
        _ => (8, 8, Duration::from_secs(8)),
    }
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    server_errors: Vec<String>,
    queued: Vec<i64>,
}

impl Tally {
    fn record(&mut self, call: &str, status: u16, body: &Value) {
        *self.statuses.entry(status).or_default() += 1;
        if status >= 500 {
            self.server_errors.push(format!("{call}: {status} {body}"));
        }
    }
}

/// One agent poll, tallied; answers (status, command or `{}`).
async fn agent_poll(app: &TestApp, body: &Value, call: &str, tally: &Mutex<Tally>) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/apiprinter/v1/printer/command"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    tally.lock().unwrap().record(call, status, &answer);
    (status, answer)
}

/// One printer's agent: polls, acknowledges every command, prints a started job over a few
/// polls, reports the tray clear afterwards (which auto-starts the next job), and obeys cancels.
async fn run_agent(app: &TestApp, token: String, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let mut ack: Option<i64> = None;
    let mut job: Option<i64> = None;
    let mut progress = 0.0_f64;
    let mut clear_tray = false;
    while !stop.load(Ordering::Relaxed) {
        let report = match job {
            Some(j) if progress >= 100.0 => {
                job = None;
                clear_tray = true;
                json!({"state": "ready", "percent": 100.0, "clouds_job_id": j})
            }
            Some(j) => {
                progress += 50.0;
                json!({"state": "printing", "percent": progress, "clouds_job_id": j})
            }
            None => json!({"state": "ready", "percent": 0}),
        };
        let mut body = json!({"auth_token": token, "report": report});
        if let Some(n) = ack.take() {
            body["command_ack"] = json!({"number": n, "result": true});
        }
        if std::mem::take(&mut clear_tray) {
            body["bed_clear"] = json!(true);
        }
        let (status, answer) = agent_poll(app, &body, "agent command", &tally).await;
        if status != 200 {
            continue;
        }
        if let Some(n) = answer.get("number").and_then(Value::as_i64) {
            ack = Some(n);
            match answer["command"].as_str() {
                Some("gcodes") => {
                    job = answer["job_id"].as_i64();
                    progress = 0.0;
                }
                Some("cancel") if job.is_some() => {
                    // The printer stops: the server ends the job on this report.
                    let stopped = json!({"auth_token": token,
                        "report": {"state": "cancel", "percent": progress},
                        "command_ack": {"number": n, "result": true}});
                    ack = None;
                    job = None;
                    clear_tray = true;
                    agent_poll(app, &stopped, "agent cancel", &tally).await;
                }
                _ => {}
            }
        }
    }
}

/// One person: queues prints on random printers (mostly "print now") and cancels some of
/// their earlier jobs, queued or running.
async fn run_client(
    app: &TestApp,
    session: String,
    file: i64,
    printers: Vec<i64>,
    seed: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut rng = seed;
    let mut next = move |n: usize| {
        // xorshift: enough to spread calls; no crate needed for a test's dice.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut mine: Vec<i64> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !mine.is_empty() && next(10) < 4 {
            let job = mine.swap_remove(next(mine.len()));
            let (status, body) = app
                .post(
                    "/apiglobal/job_cancel",
                    &[("session", &session), ("job_id", &job.to_string())],
                )
                .await;
            tally.lock().unwrap().record("job_cancel", status, &body);
            continue;
        }
        let printer = printers[next(printers.len())];
        let only_queue = if next(10) < 3 { "1" } else { "0" };
        let (status, body) = app
            .post(
                "/apiglobal/print_file",
                &[
                    ("session", &session),
                    ("file_id", &file.to_string()),
                    ("printer_id", &printer.to_string()),
                    ("only_queue", only_queue),
                ],
            )
            .await;
        let mut t = tally.lock().unwrap();
        t.record("print_file", status, &body);
        if status == 200 {
            let id: i64 = body["message"]["job_id"].as_str().unwrap().parse().unwrap();
            t.queued.push(id);
            mine.push(id);
        }
    }
}

fn deadlocks_in(app: &TestApp) -> Option<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = app.conn();
    let printfarm::db::DbConn::Pg(pg) = &mut *c else {
        return None;
    };
    let row: Count = diesel::sql_query(
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
    )
    .get_result(pg)
    .unwrap();
    Some(row.n)
}

async fn writers_and_agents_never_deadlock(db: Db) {
    let (printers_n, users_n, load_for) = load();
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let admin = {
        let (_, s) = app
            .user_with_session(app.org_id, "farm-admin@load.test", 1)
            .await;
        s
    };
    let (status, body) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &admin), ("auto_start_queue", "1")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut printers = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..printers_n {
        let (id, token) = app.register_printer(&admin, &format!("LOAD-{i}")).await;
        printers.push(id);
        tokens.push(token);
    }
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let mut people = Vec::new();
    for i in 0..users_n {
        // Organization admins may print on every printer of the farm, so each person's jobs
        // spread over all printers and every lock pairing occurs.
        let (_, session) = app
            .user_with_session(app.org_id, &format!("person{i}@load.test"), 1)
            .await;
        let (status, body) = app.upload(&session, "cube.gcode", gcode.clone(), &[]).await;
        assert_eq!(status, 200, "{body}");
        people.push((session, body["message"]["file_id"].as_i64().unwrap()));
    }
    let before = deadlocks_in(&app);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let agents = tokens
        .into_iter()
        .map(|t| run_agent(&app, t, stop.clone(), tally.clone()));
    let clients = people.into_iter().enumerate().map(|(i, (s, f))| {
        run_client(
            &app,
            s,
            f,
            printers.clone(),
            0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
            stop.clone(),
            tally.clone(),
        )
    });
    let stopper = {
        let stop = stop.clone();
        async move {
            actix_web::rt::time::sleep(load_for).await;
            stop.store(true, Ordering::Relaxed);
        }
    };
    futures_util::join!(
        futures_util::future::join_all(agents),
        futures_util::future::join_all(clients),
        stopper
    );

    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    eprintln!("answers by status: {:?}", tally.statuses);
    assert!(
        tally.server_errors.is_empty(),
        "{} answers were 5xx, e.g. {:?}",
        tally.server_errors.len(),
        &tally.server_errors[..tally.server_errors.len().min(5)]
    );
    assert!(
        tally.queued.len() > 50,
        "the load must really run: only {} jobs were queued",
        tally.queued.len()
    );

    // Every accepted job exists once; no printer runs two jobs; command numbers per printer
    // are 1..n without gap or repeat (none lost, none duplicated).
    let mut c = app.conn();
    let stored: Vec<(i64, i64, i32)> = jobs::table
        .select((jobs::id, jobs::printer_id, jobs::status_id))
        .load(&mut *c)
        .unwrap();
    let ids: std::collections::BTreeSet<i64> = stored.iter().map(|j| j.0).collect();
    assert_eq!(ids.len(), tally.queued.len(), "jobs stored vs accepted");
    assert!(tally.queued.iter().all(|j| ids.contains(j)));
    let mut running: HashMap<i64, usize> = HashMap::new();
    for (_, p, s) in &stored {
        if *s == JobStatus::InProgress.id() {
            *running.entry(*p).or_default() += 1;
        }
    }
    assert!(
        running.values().all(|n| *n <= 1),
        "running per printer: {running:?}"
    );
    let commands: Vec<(i64, i64)> = printer_commands::table
        .select((printer_commands::printer_id, printer_commands::number))
        .order((printer_commands::printer_id, printer_commands::number))
        .load(&mut *c)
        .unwrap();
    let mut by_printer: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (p, n) in commands {
        by_printer.entry(p).or_default().push(n);
    }
    for (p, numbers) in &by_printer {
        let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
        assert_eq!(numbers, &expected, "command numbers of printer {p}");
    }
    drop(c);

    if let Some(before) = before {
        // Postgres counts deadlocks per database; a backend reports its counts within about a
        // second of going idle.
        actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
        let after = deadlocks_in(&app).unwrap();
        assert_eq!(
            after - before,
            0,
            "Postgres detected deadlocks under this load"
        );
    }
    app.stop().await;
}

/// A real Postgres deadlock is recognised as transient, and `write_transaction` runs a
/// transaction again after it: two transactions lock two rows in opposite orders; Postgres
/// aborts one, which then succeeds on its next attempt.
#[test]
fn a_deadlock_is_retried_not_reported() {
    let Some(db) = crate::common::PgDatabase::create() else {
        return;
    };
    let setup = |url: &str| {
        let mut c = printfarm::db::ConnectionManager::new(url)
            .establish()
            .unwrap();
        printfarm::db::run_migrations(&mut c).unwrap();
        c
    };
    let mut c = setup(&db.url);
    diesel::sql_query("CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL)")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query("INSERT INTO pair VALUES (1, 0), (2, 0)")
        .execute(&mut c)
        .unwrap();
    drop(c);
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let before = printfarm::db::transient_retries();
    let workers: Vec<_> = [(1, 2), (2, 1)]
        .into_iter()
        .map(|(first, second)| {
            let url = db.url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = printfarm::db::ConnectionManager::new(&url)
                    .establish()
                    .unwrap();
                let mut attempts = 0;
                let r: Result<(), printfarm::error::Error> =
                    printfarm::db::write_transaction(&mut c, |c| {
                        attempts += 1;
                        let bump = |c: &mut printfarm::db::DbConn, id: i32| {
                            diesel::sql_query(format!("UPDATE pair SET n = n + 1 WHERE id = {id}"))
                                .execute(c)
                        };
                        bump(c, first)?;
                        if attempts == 1 {
                            // Both hold their first row before either asks for its second.
                            barrier.wait();
                        }
                        bump(c, second)?;
                        Ok(())
                    });
                (r.map_err(|e| e.to_string()), attempts)
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(results.iter().all(|(r, _)| r.is_ok()), "{results:?}");
    assert_eq!(
        results.iter().map(|(_, a)| a).sum::<i32>(),
        3,
        "one side ran twice: {results:?}"
    );
    assert!(printfarm::db::transient_retries() > before);
}

/// A transaction that keeps failing transiently ends as a 503 ("busy, retry"), never a 500,
/// after a bounded number of attempts.
#[test]
fn a_transaction_that_stays_deadlocked_answers_503() {
    use actix_web::ResponseError;
    let Some(db) = crate::common::PgDatabase::create() else {
        return;
    };
    let mut c = printfarm::db::ConnectionManager::new(&db.url)
        .establish()
        .unwrap();
    let mut attempts = 0;
    let r: Result<(), printfarm::error::Error> = printfarm::db::write_transaction(&mut c, |_| {
        attempts += 1;
        Err(printfarm::error::Error::Transient)
    });
    let e = r.unwrap_err();
    assert_eq!(e.status_code().as_u16(), 503);
    assert!((2..=10).contains(&attempts), "{attempts} attempts");
}
