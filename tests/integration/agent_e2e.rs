//! End to end: `printfarm-agent` (in-process, virtual printer) against a real printfarm
//! test server, on both backends. The agent talks to the server through a small recording
//! proxy, so the test sees every request the agent sent and can cut the network.
//! The same flow runs against the real OctoPrint and Moonraker peers when they are
//! installed (see tests/agent_drivers.rs for the skip rules).

use crate::common;
use crate::peers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::TestApp;
use diesel::prelude::*;
use printfarm::agent::driver::{AnyDriver, VirtualPrinter};
use printfarm::agent::{run_printer_with, AgentConfig, DriverKind, PrinterConfig};
use printfarm::db::schema::{printer_commands, printers};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

backend_tests!(
    loaded_filaments_reach_get_printers_list,
    virtual_printer_end_to_end,
    restart_network_fault_and_bad_token,
    global_api_jobs_with_the_agent,
    long_poll_brings_commands_at_once,
    dead_printer_does_not_hold_up_a_zipped_job,
    sliced_model_prints_on_the_virtual_agent,
    download_links_to_other_servers_are_refused,
);

/// Requests seen by the proxy: (target, JSON body), in order.
type Log = Arc<Mutex<Vec<(String, Value)>>>;

struct Proxy {
    base: String,
    log: Log,
    /// Every request fails (502) without reaching the server.
    down: Arc<AtomicBool>,
    /// Requests carrying a `command_ack` are logged but fail (502).
    block_acks: Arc<AtomicBool>,
    served: Arc<Vec<std::sync::atomic::AtomicUsize>>,
    handle: actix_web::dev::ServerHandle,
}

struct ProxyState {
    /// The servers behind the proxy, taken in turn (one request each), as a reverse proxy
    /// in front of several instances does.
    targets: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    /// Requests each target answered.
    served: Arc<Vec<std::sync::atomic::AtomicUsize>>,
    /// The proxy's own base: the server's public address as the agent knows it.
    own: String,
    client: reqwest::Client,
    log: Log,
    down: Arc<AtomicBool>,
    block_acks: Arc<AtomicBool>,
}

async fn forward(req: HttpRequest, body: web::Bytes, st: web::Data<ProxyState>) -> HttpResponse {
    if st.down.load(Ordering::SeqCst) {
        return HttpResponse::BadGateway().body("proxy: network is down");
    }
    let path = req.uri().path().to_string();
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        let target = path.rsplit('/').next().unwrap_or("").to_string();
        let has_ack = v.get("command_ack").is_some();
        st.log.lock().unwrap().push((target, v));
        if has_ack && st.block_acks.load(Ordering::SeqCst) {
            return HttpResponse::BadGateway().body("proxy: ack lost");
        }
    }
    let turn = st.next.fetch_add(1, Ordering::SeqCst) % st.targets.len();
    st.served[turn].fetch_add(1, Ordering::SeqCst);
    let target = &st.targets[turn];
    let url = format!(
        "{}{}",
        target,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut out = st.client.request(method, url).body(body);
    for h in ["content-type", "range", "authorization"] {
        if let Some(v) = req.headers().get(h) {
            out = out.header(h, v.as_bytes());
        }
    }
    let res = match out.send().await {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let status = res.status().as_u16();
    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    for h in [
        "content-type",
        "content-range",
        "accept-ranges",
        "content-disposition",
    ] {
        if let Some(v) = res.headers().get(h) {
            answer.insert_header((h, v.as_bytes()));
        }
    }
    let json = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = res.bytes().await.unwrap_or_default();
    if json {
        // The server's links name its public address, which for the agent is this proxy
        // (agents download only from the server they are registered with).
        let text = String::from_utf8_lossy(&bytes).replace(target.as_str(), &st.own);
        return answer.body(text);
    }
    answer.body(bytes)
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Proxy::start_over(listener, &[target])
    }

    /// A proxy on `listener` (bound first, so that servers can be told its address as their
    /// public URL before it starts) in front of `targets`.
    fn start_over(listener: std::net::TcpListener, targets: &[&str]) -> Proxy {
        let log: Log = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let block_acks = Arc::new(AtomicBool::new(false));
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(targets.iter().map(|_| Default::default()).collect());
        let data = web::Data::new(ProxyState {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            next: Default::default(),
            served: Arc::clone(&served),
            own: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            log: log.clone(),
            down: down.clone(),
            block_acks: block_acks.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(8 << 20))
                .default_service(web::to(forward))
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Proxy {
            base: format!("http://127.0.0.1:{port}"),
            log,
            down,
            block_acks,
            served,
            handle,
        }
    }

    /// Requests each target answered, in the order of `start_over`'s targets.
    fn served(&self) -> Vec<usize> {
        self.served
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }

    fn requests(&self, target: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn count(&self, target: &str) -> usize {
        self.requests(target).len()
    }
}

async fn wait_until<F: FnMut() -> bool>(what: &str, secs: u64, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// A running in-process agent for one printer.
struct Agent {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Agent {
    fn start(cfg: &AgentConfig, printer: &PrinterConfig, driver: &Arc<AnyDriver>) -> Agent {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run_printer_with(
            cfg.clone(),
            printer.clone(),
            driver.clone(),
            rx,
        ));
        Agent { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("agent stops promptly")
            .unwrap()
            .unwrap();
    }
}

fn agent_config(server: &str, dir: &Path) -> AgentConfig {
    let mut cfg = AgentConfig::new(server, dir);
    cfg.poll_interval_ms = 150;
    cfg.request_timeout_secs = 5;
    cfg.max_backoff_ms = 1000;
    cfg
}

fn virtual_printer(snr: &str) -> (PrinterConfig, Arc<AnyDriver>) {
    let mut p = PrinterConfig::virtual_printer("Virtual", snr, "PRUSA_MK4S");
    p.speed_factor = Some(1000.0);
    p.heat_rate = Some(50.0);
    p.camera = Some(true);
    let d = Arc::new(AnyDriver::Virtual(Box::new(VirtualPrinter::from_config(
        &p,
    ))));
    (p, d)
}

/// Waits for the agent's registration code and redeems it; returns the printer id.
async fn redeem(app: &TestApp, session: &str, dir: &Path, snr: &str) -> i64 {
    let code_file = dir.join(format!("{snr}.registration_code"));
    wait_until("the registration code file", 20, || code_file.exists()).await;
    let code = std::fs::read_to_string(&code_file)
        .unwrap()
        .trim()
        .to_string();
    let (status, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", session), ("registration_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["printer_id"].as_i64().unwrap();
    let state_file = dir.join(format!("{snr}.json"));
    wait_until("the stored auth token", 20, || {
        std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .is_some_and(|v| v["auth_token"].is_string())
    })
    .await;
    assert!(!code_file.exists(), "the code file goes once registered");
    id
}

fn printer_row(app: &TestApp, id: i64) -> (String, f64, Value) {
    let mut c = app.conn();
    let (state, percent, report): (String, f64, Option<String>) = printers::table
        .find(id)
        .select((printers::state, printers::percent, printers::report))
        .first(&mut *c)
        .unwrap();
    let report = report
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or(Value::Null);
    (state, percent, report)
}

fn command_statuses(app: &TestApp, id: i64) -> Vec<(i64, String)> {
    let mut c = app.conn();
    printer_commands::table
        .filter(printer_commands::printer_id.eq(id))
        .order(printer_commands::number)
        .select((printer_commands::number, printer_commands::status))
        .load(&mut *c)
        .unwrap()
}

async fn upload(app: &TestApp, session: &str, name: &str, bytes: Vec<u8>) -> (String, usize) {
    let size = bytes.len();
    let (status, body) = app.upload(session, name, bytes, &[]).await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["file_id"].as_i64().unwrap();
    (
        app.url(&format!("/files/{id}/download?session={session}")),
        size,
    )
}

async fn send(app: &TestApp, id: i64, command: &'static str, extra: Value) {
    let extra: Map<String, Value> = extra.as_object().cloned().unwrap_or_default();
    app.state
        .send_command(printfarm::db::models::PrinterId(id), command, extra, None)
        .await
        .unwrap();
}

fn gcodes(url: &str, filename: &str, size: usize, job_id: i64) -> Value {
    json!({"is_link": true, "payload": url, "filename": filename, "size": size,
           "zip": false, "job_id": job_id, "printing_duration": 100})
}

/// A G-code the virtual printer "prints" for `secs` simulated seconds.
fn timed_gcode(secs: u64) -> Vec<u8> {
    format!(";TIME:{secs}\nM140 S60\nM104 S215\nG28\nG1 X10 Y10 Z0.2 F3000\nG1 X20 Y10 E1\n")
        .into_bytes()
}

fn reports(proxy: &Proxy) -> Vec<Value> {
    proxy
        .requests("command")
        .into_iter()
        .map(|b| b["report"].clone())
        .collect()
}

fn acked(proxy: &Proxy, number: i64) -> Option<bool> {
    proxy
        .requests("command")
        .iter()
        .find(|b| b["command_ack"]["number"] == json!(number))
        .map(|b| b["command_ack"]["result"].as_bool().unwrap())
}

async fn wait_report(proxy: &Proxy, what: &str, secs: u64, f: impl Fn(&Value) -> bool) {
    wait_until(what, secs, || reports(proxy).iter().any(&f)).await;
}

async fn virtual_printer_end_to_end(app: &TestApp) {
    let session = app.login_new_user("farm@example.com").await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&proxy.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-E2E-1");
    let agent = Agent::start(&cfg, &printer, &driver);

    // Registration: code file → redeem → token; polls carried the code meanwhile.
    let id = redeem(app, &session, dir.path(), "VIRT-E2E-1").await;
    let regs = proxy.requests("register");
    assert!(regs[0].get("registration_code").is_none());
    assert_eq!(regs[0]["SNR"], "VIRT-E2E-1");
    assert_eq!(regs[0]["type"], "PRUSA_MK4S");
    assert!(regs[1..].iter().all(|r| r["registration_code"].is_string()));
    wait_until("the first report", 10, || proxy.count("command") >= 2).await;
    let first = &proxy.requests("command")[0];
    assert_eq!(first["reset_job"], json!(true), "{first}");
    assert_eq!(first["report"]["state"], "ready");
    assert_eq!(first["report"]["temps"], json!([22.0, 22.0]));
    assert!(proxy.requests("command")[1].get("reset_job").is_none());
    assert_eq!(printer_row(app, id).0, "ready");

    // A print: download (Content-Length, from the server's own file route), print, finish.
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (url, size) = upload(app, &session, "cube_20mm.gcode", cube).await;
    send(
        app,
        id,
        "gcodes",
        gcodes(&url, "cube_20mm.gcode", size, 4242),
    )
    .await;
    wait_report(&proxy, "the finished-print report", 30, |r| {
        r["state"] == "ready" && r["percent"] == json!(100.0)
    })
    .await;
    assert_eq!(acked(&proxy, 1), Some(true));
    let rs = reports(&proxy);
    let job_reports: Vec<&Value> = rs
        .iter()
        .filter(|r| r["clouds_job_id"] == json!(4242))
        .collect();
    assert!(
        job_reports.iter().any(|r| r["state"] == "printing"),
        "{job_reports:?}"
    );
    assert!(job_reports
        .iter()
        .all(|r| r["filename"] == "cube_20mm.gcode"));
    // Exactly one `printing` at 100 %, directly followed by `ready` at 100 %.
    let done: Vec<usize> = rs
        .iter()
        .enumerate()
        .filter(|(_, r)| r["state"] == "printing" && r["percent"] == json!(100.0))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(done.len(), 1, "{rs:?}");
    assert_eq!(rs[done[0]]["clouds_job_id"], json!(4242));
    assert_eq!(rs[done[0] + 1]["state"], "ready");
    assert_eq!(rs[done[0] + 1]["percent"], json!(100.0));
    assert!(rs[done[0] + 1].get("clouds_job_id").is_none());
    wait_until("ack stored", 10, || {
        command_statuses(app, id) == vec![(1, "acked".to_string())]
    })
    .await;

    // A long print: pause, resume, cancel, each acknowledged once.
    let (url, size) = upload(app, &session, "long.gcode", timed_gcode(1_000_000)).await;
    send(app, id, "gcodes", gcodes(&url, "long.gcode", size, 4243)).await;
    wait_report(&proxy, "printing job 4243", 20, |r| {
        r["state"] == "printing" && r["clouds_job_id"] == json!(4243)
    })
    .await;
    // The proxy logs a request before the server has stored it.
    wait_until("the server's view of job 4243", 10, || {
        let (state, _, report) = printer_row(app, id);
        state == "printing" && report["clouds_job_id"] == json!(4243)
    })
    .await;
    send(app, id, "pause", json!({})).await;
    wait_report(&proxy, "paused", 20, |r| {
        r["state"] == "paused" && r["clouds_job_id"] == json!(4243)
    })
    .await;
    send(app, id, "unpause", json!({})).await;
    wait_until("unpause acked", 20, || acked(&proxy, 4).is_some()).await;
    wait_until("printing again", 20, || {
        reports(&proxy)
            .last()
            .is_some_and(|r| r["state"] == "printing")
    })
    .await;
    // An unknown command is refused with error 110, and the loop goes on.
    send(app, id, "dance", json!({})).await;
    wait_until("dance acked", 20, || acked(&proxy, 5).is_some()).await;
    assert_eq!(acked(&proxy, 5), Some(false));
    let errs: Vec<Value> = proxy
        .requests("command")
        .iter()
        .filter_map(|b| b.get("error").cloned())
        .collect();
    assert!(errs.iter().any(|e| e[0]["code"] == json!(110)), "{errs:?}");
    send(app, id, "cancel", json!({})).await;
    wait_report(&proxy, "the cancel event", 20, |r| {
        r["state"] == "cancel" && r["clouds_job_id"] == json!(4243)
    })
    .await;
    wait_until("ready after cancel", 20, || {
        printer_row(app, id).0 == "ready" && acked(&proxy, 6) == Some(true)
    })
    .await;
    assert_eq!(
        command_statuses(app, id),
        vec![
            (1, "acked".into()),
            (2, "acked".into()),
            (3, "acked".into()),
            (4, "acked".into()),
            (5, "failed".into()),
            (6, "acked".into()),
        ]
    );
    // Each command was acknowledged exactly once.
    for n in 1..=6 {
        let count = proxy
            .requests("command")
            .iter()
            .filter(|b| b["command_ack"]["number"] == json!(n))
            .count();
        assert_eq!(count, 1, "ack of command {n}");
    }

    // A failing print (the virtual printer fails on request): error 610, state error.
    let mut failing = timed_gcode(1000);
    failing.extend_from_slice(b"; printfarm:fail_at=20\n");
    let (url, size) = upload(app, &session, "fail.gcode", failing).await;
    send(app, id, "gcodes", gcodes(&url, "fail.gcode", size, 4244)).await;
    wait_report(&proxy, "the failure report", 20, |r| {
        r["state"] == "error" && r["clouds_job_id"] == json!(4244)
    })
    .await;
    assert!(proxy
        .requests("command")
        .iter()
        .any(|b| b["error"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["code"] == json!(610) && e["level"] == json!(40)))));

    // A download that cannot succeed (404) fails the job with a download error.
    send(
        app,
        id,
        "gcodes",
        gcodes(&app.url("/files/999999/download"), "x.gcode", 10, 4245),
    )
    .await;
    wait_report(&proxy, "the download failure", 20, |r| {
        r["state"] == "error" && r["clouds_job_id"] == json!(4245)
    })
    .await;
    assert!(proxy.requests("command").iter().any(|b| b["error"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["code"] == json!(65)))));

    // The camera posted real frames (the server keeps the last one).
    wait_until("a camera frame", 10, || {
        proxy.requests("camera").iter().any(|b| {
            b["image"]
                .as_str()
                .is_some_and(|i| i.len() > 100 && i.starts_with("/9j/"))
        })
    })
    .await;
    agent.stop().await;
    proxy.handle.stop(true).await;
}

async fn restart_network_fault_and_bad_token(app: &TestApp) {
    let session = app.login_new_user("farm2@example.com").await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&proxy.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-E2E-2");
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), "VIRT-E2E-2").await;

    let (url, size) = upload(app, &session, "long.gcode", timed_gcode(1_000_000)).await;
    send(app, id, "gcodes", gcodes(&url, "long.gcode", size, 77)).await;
    wait_report(&proxy, "printing", 20, |r| {
        r["state"] == "printing" && r["clouds_job_id"] == json!(77)
    })
    .await;

    // Network down for a while: the agent backs off; the print goes on; on reconnect it
    // reports the real state with the job id and no reset_job.
    proxy.down.store(true, Ordering::SeqCst);
    let before = proxy.count("command");
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(proxy.count("command"), before, "nothing got through");
    proxy.down.store(false, Ordering::SeqCst);
    wait_until("reconnect", 10, || proxy.count("command") > before + 1).await;
    let after = &proxy.requests("command")[before];
    assert_eq!(after["report"]["state"], "printing", "{after}");
    assert_eq!(after["report"]["clouds_job_id"], json!(77));
    assert!(after.get("reset_job").is_none());

    // Agent restart (same state dir, the printer keeps printing): no new registration, no
    // reset_job, the job is reported again.
    agent.stop().await;
    let regs = proxy.count("register");
    let before = proxy.count("command");
    let agent = Agent::start(&cfg, &printer, &driver);
    wait_until("reports after restart", 10, || {
        proxy.count("command") > before + 1
    })
    .await;
    assert_eq!(proxy.count("register"), regs, "the stored token is used");
    let again = &proxy.requests("command")[before];
    assert!(again.get("reset_job").is_none(), "{again}");
    assert_eq!(again["report"]["clouds_job_id"], json!(77));
    assert_eq!(again["report"]["state"], "printing");

    // A command executed just before a crash, whose ack never got out: after the restart
    // the ack is sent from the state file and the command is not executed again.
    proxy.block_acks.store(true, Ordering::SeqCst);
    send(app, id, "pause", json!({})).await;
    wait_until("a blocked ack of the pause", 20, || {
        proxy
            .requests("command")
            .iter()
            .any(|b| b["command_ack"]["number"] == json!(2))
    })
    .await;
    agent.stop().await;
    let state_path: PathBuf = dir.path().join("VIRT-E2E-2.json");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert_eq!(state["pending_ack"], json!({"number": 2, "result": true}));
    proxy.block_acks.store(false, Ordering::SeqCst);
    let agent = Agent::start(&cfg, &printer, &driver);
    wait_until("pause acked in the database", 20, || {
        command_statuses(app, id).get(1) == Some(&(2, "acked".to_string()))
    })
    .await;
    wait_report(&proxy, "paused after restart", 20, |r| {
        r["state"] == "paused" && r["clouds_job_id"] == json!(77)
    })
    .await;

    // Worse: the state file lost the pending ack (but knows the command ran). The server
    // re-sends the unacknowledged command; the agent recognises its number and acks it
    // with the stored result instead of cancelling twice (a second cancel would fail).
    proxy.block_acks.store(true, Ordering::SeqCst);
    send(app, id, "cancel", json!({})).await;
    wait_until("a blocked ack of the cancel", 20, || {
        proxy
            .requests("command")
            .iter()
            .any(|b| b["command_ack"]["number"] == json!(3))
    })
    .await;
    agent.stop().await;
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert_eq!(state["pending_ack"]["number"], json!(3));
    assert_eq!(state["job"], Value::Null, "the cancel ended the job");
    state["pending_ack"] = Value::Null;
    std::fs::write(&state_path, state.to_string()).unwrap();
    proxy.block_acks.store(false, Ordering::SeqCst);
    let before = proxy.count("command");
    let agent = Agent::start(&cfg, &printer, &driver);
    wait_until("cancel acked in the database", 20, || {
        command_statuses(app, id).get(2) == Some(&(3, "acked".to_string()))
    })
    .await;
    let after: Vec<Value> = proxy.requests("command")[before..].to_vec();
    // No job on restart: the server is told to reset.
    assert_eq!(after[0]["reset_job"], json!(true), "{:?}", after[0]);
    assert!(after
        .iter()
        .any(|b| b["command_ack"] == json!({"number": 3, "result": true})));
    assert!(
        !after
            .iter()
            .any(|b| b["error"].as_array().is_some_and(|e| !e.is_empty())),
        "no second cancel: {after:?}"
    );
    wait_until("ready", 20, || printer_row(app, id).0 == "ready").await;
    agent.stop().await;

    // A token the server no longer knows (error 3): the agent registers again.
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["auth_token"] = json!("not-a-valid-token");
    std::fs::write(&state_path, state.to_string()).unwrap();
    let regs = proxy.count("register");
    let agent = Agent::start(&cfg, &printer, &driver);
    wait_until("a new registration code", 20, || {
        dir.path().join("VIRT-E2E-2.registration_code").exists()
    })
    .await;
    assert!(proxy.count("register") > regs);
    agent.stop().await;
    proxy.handle.stop(true).await;
}

/// Job status ids of the printer's jobs, newest first.
async fn job_statuses(app: &TestApp, session: &str, id: i64) -> Vec<String> {
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[("session", session), ("printer_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn ok(app: &TestApp, call: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = app.post(&format!("/apiglobal/{call}"), form).await;
    assert_eq!(status, 200, "{call}: {body}");
    body["message"].clone()
}

/// The Global API job calls, carried out by the agent: print_file → finished (77);
/// print_file → job_pause → job_unpause → job_cancel → aborted (45); a queue of three run by
/// auto-start after the agent clears the bed; an agent error → failed (43).
async fn global_api_jobs_with_the_agent(app: &TestApp) {
    let session = app.login_new_user("jobs@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&app.base, dir.path());
    let (mut printer, driver) = virtual_printer("VIRT-E2E-3");
    printer.auto_bed_clear = true;
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), "VIRT-E2E-3").await;
    wait_until("ready", 10, || printer_row(app, id).0 == "ready").await;
    let pid = id.to_string();

    let (status, body) = app
        .upload(&session, "short.gcode", timed_gcode(500), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let short = body["message"]["file_id"].as_i64().unwrap().to_string();
    let job = ok(
        app,
        "print_file",
        &[
            ("session", &session),
            ("file_id", &short),
            ("printer_id", &pid),
        ],
    )
    .await;
    assert!(job["job_id"].is_string(), "{job}");
    let mut statuses = Vec::new();
    for _ in 0..200 {
        statuses = job_statuses(app, &session, id).await;
        if statuses.first().map(String::as_str) == Some("77") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, vec!["77"], "finished");

    // auto_bed_clear: the agent itself tells the server the bed is clear again.
    wait_until("the tray cleared by the agent", 10, || {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::tray_clear)
            .first::<bool>(&mut *c)
            .unwrap()
    })
    .await;
    let (_, body) = app
        .upload(&session, "long.gcode", timed_gcode(1_000_000), &[])
        .await;
    let long = body["message"]["file_id"].as_i64().unwrap().to_string();
    let job = ok(
        app,
        "print_file",
        &[
            ("session", &session),
            ("file_id", &long),
            ("printer_id", &pid),
        ],
    )
    .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    wait_until("printing", 20, || printer_row(app, id).0 == "printing").await;
    ok(
        app,
        "job_pause",
        &[("session", &session), ("job_id", &job_id)],
    )
    .await;
    wait_until("paused", 20, || printer_row(app, id).0 == "paused").await;
    ok(
        app,
        "job_unpause",
        &[("session", &session), ("job_id", &job_id)],
    )
    .await;
    wait_until("printing again", 20, || {
        printer_row(app, id).0 == "printing"
    })
    .await;
    ok(
        app,
        "job_cancel",
        &[("session", &session), ("job_id", &job_id)],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..200 {
        statuses = job_statuses(app, &session, id).await;
        if statuses.first().map(String::as_str) == Some("45") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, vec!["45", "77"], "aborted, newest first");
    wait_until("ready", 20, || printer_row(app, id).0 == "ready").await;

    // A queue of three with auto-start: the agent's own bed-clear after each print lets the
    // server start the next queued job.
    let (_, admin) = app
        .user_with_session(app.org_id, "jobs-admin@example.com", 1)
        .await;
    ok(
        app,
        "update_organization_settings",
        &[("session", &admin), ("auto_start_queue", "1")],
    )
    .await;
    ok(
        app,
        "printer_clear_build_tray",
        &[("session", &session), ("printer_id", &pid)],
    )
    .await;
    for _ in 0..3 {
        ok(
            app,
            "print_file",
            &[
                ("session", &session),
                ("file_id", &short),
                ("printer_id", &pid),
            ],
        )
        .await;
    }
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses = job_statuses(app, &session, id).await;
        if statuses.len() == 5 && statuses[..3].iter().all(|s| s == "77") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses,
        vec!["77", "77", "77", "45", "77"],
        "the queue ran by itself"
    );

    // An agent error fails the job (43).
    wait_until("the tray cleared by the agent", 10, || {
        let mut c = app.conn();
        printers::table
            .find(id)
            .select(printers::tray_clear)
            .first::<bool>(&mut *c)
            .unwrap()
    })
    .await;
    let mut failing = timed_gcode(1000);
    failing.extend_from_slice(b"; printfarm:fail_at=20\n");
    let (_, body) = app.upload(&session, "fail.gcode", failing, &[]).await;
    let fail = body["message"]["file_id"].as_i64().unwrap().to_string();
    ok(
        app,
        "print_file",
        &[
            ("session", &session),
            ("file_id", &fail),
            ("printer_id", &pid),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..200 {
        statuses = job_statuses(app, &session, id).await;
        if statuses.first().map(String::as_str) == Some("43") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("43"),
        "failed: {statuses:?}"
    );
    agent.stop().await;
}

/// `get_job_info` of `job` once it has printed to the end (77), or the last answer after 60 s.
async fn job_info_once_printed(app: &TestApp, session: &str, job: &str) -> Value {
    let mut info = Value::Null;
    for _ in 0..600 {
        info = ok(
            app,
            "get_job_info",
            &[("session", session), ("job_id", job)],
        )
        .await;
        if info["status_id"] == "77" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    info
}

/// Slices the 20 mm cube for printer `id`, its job to start when the slice is done: the STL
/// uploaded through `upload_via`, the slice asked of `ask`, its status read from `poll` until
/// it ends (90 s at most). Returns the slice call's answer and the last status.
async fn slice_cube_to_print(
    upload_via: &TestApp,
    ask: &TestApp,
    poll: &TestApp,
    session: &str,
    id: i64,
) -> (Value, Value) {
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap();
    let (status, body) = upload_via.upload(session, "cube.stl", cube, &[]).await;
    assert_eq!(status, 200, "{body}");
    let stl = body["message"]["file_id"].as_i64().unwrap().to_string();
    let sliced = ok(
        ask,
        "slice",
        &[
            ("session", session),
            ("file_id", &stl),
            (
                "profile",
                r#"{"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220}"#,
            ),
            ("add_print_job_to_printer_id", &id.to_string()),
            ("start_print_job", "1"),
        ],
    )
    .await;
    let uuid = sliced["job_id"].as_str().unwrap().to_string();
    let mut status = Value::Null;
    for _ in 0..900 {
        status = ok(
            poll,
            "get_slice_status",
            &[("session", session), ("job_id", &uuid)],
        )
        .await;
        if status["status"] == "done" || status["status"] == "failed" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    (sliced, status)
}

/// Call 28 end to end: the real PrusaSlicer slices the cube, the G-code is queued and started
/// on the agent's virtual printer, which prints it to the end (77).
async fn sliced_model_prints_on_the_virtual_agent(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let session = app.login_new_user("slicer@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&app.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-E2E-SLICE");
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), "VIRT-E2E-SLICE").await;
    wait_until("ready", 10, || printer_row(app, id).0 == "ready").await;

    let (sliced, status) = slice_cube_to_print(app, app, app, &session, id).await;
    assert_eq!(status["status"], "done", "{status}");
    let job = status["print_job_id"]
        .as_str()
        .expect("a print job")
        .to_string();
    assert_eq!(status["output_file_id"], sliced["output_file_id"]);

    // The agent downloads the sliced G-code and prints it (speed factor 1000: about a second).
    wait_until("printing", 30, || {
        matches!(printer_row(app, id).0.as_str(), "printing" | "ready")
    })
    .await;
    let info = job_info_once_printed(app, &session, &job).await;
    assert_eq!(info["status_id"], "77", "{info}");
    assert_eq!(info["file_id"], status["output_file_id"].to_string());
    // The job carries the sliced file's own estimate (PrusaSlicer's 20 mm cube: ~16 min).
    let estimate: i64 = info["printing_duration"].as_str().unwrap().parse().unwrap();
    assert!((600..1500).contains(&estimate), "{info}");
    agent.stop().await;
}

/// With `long_poll_secs` an idle agent's poll is held by the server, and a command
/// reaches it at once instead of after the (here 5 s) poll period.
async fn long_poll_brings_commands_at_once(app: &TestApp) {
    let session = app.login_new_user("lp@example.com").await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = agent_config(&proxy.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-E2E-4");
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), "VIRT-E2E-4").await;
    agent.stop().await;
    cfg.poll_interval_ms = 5000;
    cfg.long_poll_secs = 20;
    let agent = Agent::start(&cfg, &printer, &driver);
    wait_until("a held poll", 10, || {
        proxy
            .requests("command")
            .last()
            .is_some_and(|b| b["wait"] == json!(20))
    })
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    send(app, id, "set_name", json!({"name": "Renamed"})).await;
    wait_until("the ack", 10, || acked(&proxy, 1).is_some()).await;
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(acked(&proxy, 1), Some(true));
    agent.stop().await;
    proxy.handle.stop(true).await;
}

/// `agent::run` with two printers: an OctoPrint nobody answers for (reported as
/// `connecting`) and a virtual printer that meanwhile prints a zipped job.
async fn dead_printer_does_not_hold_up_a_zipped_job(app: &TestApp) {
    use std::io::Write;
    let session = app.login_new_user("two@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = agent_config(&app.base, dir.path());
    let (good, _) = virtual_printer("VIRT-E2E-5");
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut dead = PrinterConfig::virtual_printer("Dead", "OCTO-DEAD", "PRUSA_MK3S");
    dead.driver = DriverKind::Octoprint;
    dead.url = Some(format!("http://127.0.0.1:{dead_port}"));
    dead.api_key = Some("k".into());
    dead.driver_timeout_secs = Some(2);
    cfg.printers = vec![dead, good];
    let (stop, rx) = watch::channel(false);
    let all = tokio::spawn(printfarm::agent::run(cfg, rx));
    let dead_id = redeem(app, &session, dir.path(), "OCTO-DEAD").await;
    let good_id = redeem(app, &session, dir.path(), "VIRT-E2E-5").await;
    wait_until("the dead printer shown as connecting", 10, || {
        printer_row(app, dead_id).0 == "connecting"
    })
    .await;

    let mut zipped = Vec::new();
    {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(&mut zipped));
        z.start_file("part.gcode", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(&timed_gcode(2000)).unwrap();
        z.finish().unwrap();
    }
    let (url, size) = upload(app, &session, "part.gcode.zip", zipped).await;
    let mut cmd = gcodes(&url, "part.gcode.zip", size, 900);
    cmd["zip"] = json!(true);
    let sent = Instant::now();
    send(app, good_id, "gcodes", cmd).await;
    wait_until("the zipped job finished", 20, || {
        let (state, percent, report) = printer_row(app, good_id);
        state == "ready" && percent == 100.0 && report["clouds_job_id"] == json!(900)
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        command_statuses(app, good_id),
        vec![(1, "acked".to_string())]
    );
    assert_eq!(printer_row(app, dead_id).0, "connecting");
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("all printers stop")
        .unwrap()
        .unwrap();
}

/// A tiny webcam: serves its current JPEG at `/snap.jpg` and counts the requests.
struct Webcam {
    url: String,
    jpeg: Arc<Mutex<Vec<u8>>>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Webcam {
    async fn start(jpeg: &[u8]) -> Webcam {
        let frame = Arc::new(Mutex::new(jpeg.to_vec()));
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, h) = (frame.clone(), hits.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (f, h) = (f.clone(), h.clone());
            App::new().route(
                "/snap.jpg",
                web::get().to(move || {
                    let (f, h) = (f.clone(), h.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        let body = f.lock().unwrap().clone();
                        HttpResponse::Ok().content_type("image/jpeg").body(body)
                    }
                }),
            )
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Webcam {
            url: format!("http://127.0.0.1:{port}/snap.jpg"),
            jpeg: frame,
            hits,
            handle,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Points the peer's webcam snapshot URL at `url` through its own settings API.
async fn configure_webcam(kind: DriverKind, peer: &peers::Peer, url: &str) {
    let http = reqwest::Client::new();
    let res = match kind {
        DriverKind::Octoprint => http
            .post(format!("{}/api/settings", peer.env["OCTOPRINT_URL"]))
            .header("X-Api-Key", &peer.env["OCTOPRINT_API_KEY"])
            .json(&json!({"plugins": {"classicwebcam": {"snapshot": url}}}))
            .send()
            .await
            .unwrap(),
        _ => http
            .post(format!("{}/server/webcams/item", peer.env["MOONRAKER_URL"]))
            .json(&json!({"name": "farmcam", "snapshot_url": url, "stream_url": url}))
            .send()
            .await
            .unwrap(),
    };
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// The frame the server's viewer shows for a printer (`get_camera_list_token` →
/// `/camera/<token>/<id>.jpg`); viewing it marks the camera as watched.
async fn viewer_frame(app: &TestApp, session: &str, id: i64) -> Option<Vec<u8>> {
    let (status, body) = app
        .post(
            "/apiglobal/get_camera_list_token",
            &[("session", session), ("printer_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["message"]["token"].as_str().unwrap();
    let res = app
        .client
        .get(app.url(&format!("/camera/{token}/{id}.jpg")))
        .send()
        .await
        .unwrap();
    res.status().is_success().then_some(())?;
    Some(res.bytes().await.unwrap().to_vec())
}

fn camera_posts(proxy: &Proxy) -> Vec<String> {
    proxy
        .requests("camera")
        .iter()
        .map(|b| b["image"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The same agent against a real OctoPrint / Moonraker (skipped when not installed).
async fn real_peer_end_to_end(app: &TestApp, kind: DriverKind) {
    let (name, env): (&str, &[(&str, &str)]) = match kind {
        DriverKind::Octoprint => ("octoprint", &[]),
        _ => ("moonraker", &[("FAKE_KLIPPY_SECONDS_PER_KB", "0.5")]),
    };
    let Some(peer) = peers::Peer::start(name, env) else {
        return;
    };
    let session = app.login_new_user("peer@example.com").await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&proxy.base, dir.path());
    let snr = format!("{name}-E2E");
    let mut printer = PrinterConfig::virtual_printer(name, &snr, "PRUSA_MK3S");
    printer.driver = kind;
    match kind {
        DriverKind::Octoprint => {
            printer.url = Some(peer.env["OCTOPRINT_URL"].clone());
            printer.api_key = Some(peer.env["OCTOPRINT_API_KEY"].clone());
            printer.port = Some("VIRTUAL".into());
        }
        _ => printer.url = Some(peer.env["MOONRAKER_URL"].clone()),
    }
    // The peer's webcam: a tiny HTTP server with a JPEG of its own.
    let first_frame = b"\xFF\xD8\xFF\xE0peer-webcam-frame-1\xFF\xD9".to_vec();
    let second_frame = b"\xFF\xD8\xFF\xE0peer-webcam-frame-2\xFF\xD9".to_vec();
    let webcam = Webcam::start(&first_frame).await;
    configure_webcam(kind, &peer, &webcam.url).await;
    printer.camera = Some(true);
    let driver = Arc::new(AnyDriver::from_config(&printer).unwrap());
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), &snr).await;
    // The agent connects OctoPrint to its printer itself.
    wait_report(&proxy, "ready", 60, |r| r["state"] == "ready").await;

    // Camera: the first post is a real frame (agents start as if watched), then, nobody
    // watching, only "S" keep-alives and no webcam fetches.
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    wait_until("the first webcam frame and three keep-alives", 30, || {
        let posts = camera_posts(&proxy);
        posts
            .iter()
            .position(|i| *i == b64(&first_frame))
            .is_some_and(|p| posts[p + 1..].iter().filter(|i| *i == "S").count() >= 3)
    })
    .await;
    let hits = webcam.hits();
    let seen = camera_posts(&proxy).len();
    wait_until("three more keep-alives", 30, || {
        camera_posts(&proxy)[seen..]
            .iter()
            .filter(|i| *i == "S")
            .count()
            >= 3
    })
    .await;
    assert_eq!(webcam.hits(), hits, "no webcam fetch while nobody watches");
    // A viewer gets the peer's frame, and while it watches the agent sends fresh ones.
    assert_eq!(
        viewer_frame(app, &session, id).await,
        Some(first_frame.clone())
    );
    *webcam.jpeg.lock().unwrap() = second_frame.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if viewer_frame(app, &session, id).await == Some(second_frame.clone()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new webcam frame never reached the viewer"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(webcam.hits() > hits);

    // A short print runs to the end: printing 100 → ready 100.
    let tiny = b"M104 S0\nG28\nG1 X10 Y10\nG1 X20 Y20\n".to_vec();
    let (url, size) = upload(app, &session, "tiny.gcode", tiny).await;
    send(app, id, "gcodes", gcodes(&url, "tiny.gcode", size, 501)).await;
    wait_report(&proxy, "the finished print", 60, |r| {
        r["state"] == "printing" && r["percent"] == json!(100.0) && r["clouds_job_id"] == json!(501)
    })
    .await;
    wait_report(&proxy, "ready at 100", 20, |r| {
        r["state"] == "ready" && r["percent"] == json!(100.0)
    })
    .await;

    // The cube (minutes on either peer): printing, pause, resume, cancel.
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (url, size) = upload(app, &session, "cube_20mm.gcode", cube).await;
    send(
        app,
        id,
        "gcodes",
        gcodes(&url, "cube_20mm.gcode", size, 502),
    )
    .await;
    wait_report(&proxy, "printing the cube", 60, |r| {
        r["state"] == "printing" && r["clouds_job_id"] == json!(502)
    })
    .await;
    send(app, id, "pause", json!({})).await;
    wait_report(&proxy, "paused", 60, |r| {
        r["state"] == "paused" && r["clouds_job_id"] == json!(502)
    })
    .await;
    send(app, id, "resume", json!({})).await;
    wait_until("printing again", 60, || {
        reports(&proxy)
            .last()
            .is_some_and(|r| r["state"] == "printing")
    })
    .await;
    send(app, id, "cancel", json!({})).await;
    wait_report(&proxy, "the cancel", 60, |r| {
        r["state"] == "cancel" && r["clouds_job_id"] == json!(502)
    })
    .await;
    wait_until("ready", 60, || printer_row(app, id).0 == "ready").await;
    let statuses = command_statuses(app, id);
    assert!(statuses.iter().all(|(_, s)| s == "acked"), "{statuses:?}");
    agent.stop().await;
    proxy.handle.stop(true).await;
    webcam.handle.stop(true).await;
    drop(peer);
}

async fn octoprint_end_to_end(app: &TestApp) {
    real_peer_end_to_end(app, DriverKind::Octoprint).await;
}

async fn moonraker_end_to_end(app: &TestApp) {
    real_peer_end_to_end(app, DriverKind::Moonraker).await;
}

// The real peers run on SQLite only: the database backend is not what they test.
mod peers_sqlite {
    #[actix_web::test]
    async fn octoprint_end_to_end() {
        let app = crate::common::TestApp::start(crate::common::Db::Sqlite, &[])
            .await
            .unwrap();
        super::octoprint_end_to_end(&app).await;
        app.stop().await;
    }

    #[actix_web::test]
    async fn moonraker_end_to_end() {
        let app = crate::common::TestApp::start(crate::common::Db::Sqlite, &[])
            .await
            .unwrap();
        super::moonraker_end_to_end(&app).await;
        app.stop().await;
    }
}

/// A print whose G-code link names another server (as a forged command would) is refused by
/// the agent: it never connects there, acknowledges the command as failed and stays ready.
async fn download_links_to_other_servers_are_refused(app: &TestApp) {
    let session = app.login_new_user("origin@example.com").await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&proxy.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-ORIGIN-1");
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(app, &session, dir.path(), "VIRT-ORIGIN-1").await;
    wait_until("the first report", 10, || proxy.count("command") >= 2).await;
    // A server the agent is not registered with: it records any connection.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let foreign = format!(
        "http://127.0.0.1:{}/apiprinter/v1/download/1/x",
        elsewhere.local_addr().unwrap().port()
    );
    send(app, id, "gcodes", gcodes(&foreign, "evil.gcode", 100, 4300)).await;
    wait_until("the refused command's ack", 20, || {
        acked(&proxy, 1).is_some()
    })
    .await;
    assert_eq!(acked(&proxy, 1), Some(false));
    assert!(
        elsewhere.accept().is_err(),
        "the agent connected to a server it is not registered with"
    );
    assert!(reports(&proxy)
        .iter()
        .all(|r| r["clouds_job_id"] != json!(4300) && r["state"] != "printing"));
    agent.stop().await;
    proxy.handle.stop(true).await;
}

/// `filaments` in `get_printers_list` as the dashboards read it (`json.loads` of a string).
async fn listed_filaments(app: &TestApp, session: &str, id: i64) -> Option<Value> {
    let (status, body) = app
        .post("/apiglobal/get_printers_list", &[("session", session)])
        .await;
    assert_eq!(status, 200, "{body}");
    let printer = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_i64() == Some(id))
        .unwrap()
        .clone();
    printer["filaments"]
        .as_str()
        .map(|s| serde_json::from_str(s).expect("filaments is a JSON string"))
}

/// Issue #14 item 5: the agent reports what is loaded (the virtual printer's configured
/// spools, then a spool change), and `get_printers_list` answers it as the JSON string the
/// dashboards `json.loads`; a raw report with garbage is bounded and cleaned, never stored as
/// sent.
async fn loaded_filaments_reach_get_printers_list(app: &TestApp) {
    use printfarm::agent::driver::Material;
    use printfarm::agent::FilamentConfig;
    let session = app.login_new_user("spools@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(&app.base, dir.path());
    let (mut p, _) = virtual_printer("SPOOLS-1");
    p.filaments = vec![
        FilamentConfig {
            material: "PLA".into(),
            color: Some("#ff8800".into()),
        },
        FilamentConfig {
            material: "PETG".into(),
            color: None,
        },
    ];
    let v = VirtualPrinter::from_config(&p);
    let driver = Arc::new(AnyDriver::Virtual(Box::new(v)));
    let agent = Agent::start(&cfg, &p, &driver);
    let id = redeem(app, &session, dir.path(), "SPOOLS-1").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(f) = listed_filaments(app, &session, id).await {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reported its filaments"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        first,
        json!([
            {"extruder": 1, "material": "PLA", "color_hex": "#FF8800"},
            {"extruder": 2, "material": "PETG", "color_hex": null}
        ])
    );
    // An operator changes spools: the next report carries the change.
    let AnyDriver::Virtual(vp) = &*driver else {
        unreachable!()
    };
    vp.set_materials(vec![Material {
        material: Some("TPU".into()),
        color_hex: Some("#000000".into()),
    }]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = listed_filaments(app, &session, id).await;
        if f == Some(json!([{"extruder": 1, "material": "TPU", "color_hex": "#000000"}])) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool change never arrived: {f:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;

    // What an untrusted agent sends: too many slots, huge names, colours that are not hex.
    let token = std::fs::read_to_string(dir.path().join("SPOOLS-1.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["auth_token"].as_str().map(str::to_string))
        .unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("{i}{}", "X".repeat(300))).collect();
    let mut colors = vec![json!("red"), json!("#00ff00"), json!({"nested": 1})];
    colors.resize(40, json!("#123456"));
    let res = app
        .client
        .post(app.url("/apiprinter/v1/printer/command"))
        .json(&json!({"auth_token": token, "report": {
            "state": "ready", "material_names": names, "material_colors_hex": colors}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    let f = listed_filaments(app, &session, id).await.unwrap();
    let slots = f.as_array().unwrap();
    assert!(slots.len() <= 16, "{} slots kept", slots.len());
    assert!(
        slots[0]["color_hex"].is_null(),
        "'red' is not kept: {}",
        slots[0]
    );
    assert_eq!(slots[1]["color_hex"], "#00FF00");
    assert!(slots.iter().all(|s| s["material"]
        .as_str()
        .is_none_or(|m| m.chars().count() <= 64)));
    // A field that is not a list is refused; what was stored stays.
    let res = app
        .client
        .post(app.url("/apiprinter/v1/printer/command"))
        .json(&json!({"auth_token": token, "report": {"state": "ready", "material_names": "PLA"}}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_client_error());
    assert_eq!(listed_filaments(app, &session, id).await.unwrap(), f);
}

/// A `printfarm worker` process, killed when dropped.
struct WorkerProcess(std::process::Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue #19's deployment (deploy/README.md): two server instances behind one reverse proxy,
/// on one Postgres database and one S3 store (moto), slices done by a separate `printfarm
/// worker` process (neither server slices). An STL uploaded through one instance is sliced by
/// the worker for a slice asked of the other; the print goes to an agent whose long polls and
/// download reach either instance through the proxy, and it prints to the end.
#[actix_web::test]
async fn two_servers_and_a_worker_on_one_database_and_store() {
    use crate::common::Db;
    use crate::storage_s3::{keys, Moto, BUCKET, REGION};
    if !crate::common::slicer_present() {
        return;
    }
    let Some(moto) = Moto::with_bucket().await else {
        return;
    };
    let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}", proxy_listener.local_addr().unwrap());
    let shared = [
        ("PRINTFARM_STORAGE__BACKEND", "s3"),
        ("PRINTFARM_STORAGE__S3_BUCKET", BUCKET),
        ("PRINTFARM_STORAGE__S3_ENDPOINT", moto.endpoint.as_str()),
        ("PRINTFARM_STORAGE__S3_REGION", REGION),
        ("PRINTFARM_SLICER__IN_PROCESS_WORKERS", "false"),
        ("PRINTFARM_SERVER__PUBLIC_URL", public.as_str()),
    ];
    let Some(a) = TestApp::start(Db::Postgres, &shared).await else {
        return;
    };
    let b = TestApp::start_on(
        a.db_url.clone(),
        tempfile::tempdir().unwrap(),
        None,
        &shared,
    )
    .await;
    let proxy = Proxy::start_over(proxy_listener, &[&a.base, &b.base]);
    let worker_dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_printfarm"))
            .arg("worker")
            .env("DATABASE_URL", &a.db_url)
            .envs(shared.iter().copied())
            .env(
                "PRINTFARM_SLICER__PRUSA_SLICER",
                crate::common::slicer_command(),
            )
            .env(
                "PRINTFARM_STORAGE__FILES_DIR",
                worker_dir.path().join("files"),
            )
            .env(
                "PRINTFARM_STORAGE__STAGING_DIR",
                worker_dir.path().join("staging"),
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start printfarm worker"),
    );

    let session = a.login_new_user("deploy@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = agent_config(&proxy.base, dir.path());
    let (printer, driver) = virtual_printer("VIRT-DEPLOY-1");
    let agent = Agent::start(&cfg, &printer, &driver);
    let id = redeem(&b, &session, dir.path(), "VIRT-DEPLOY-1").await;
    agent.stop().await;
    cfg.long_poll_secs = 20;
    let agent = Agent::start(&cfg, &printer, &driver);

    let (_, status) = slice_cube_to_print(&b, &a, &b, &session, id).await;
    assert_eq!(
        status["status"], "done",
        "the worker process slices: {status}"
    );
    let job = status["print_job_id"]
        .as_str()
        .expect("a print job")
        .to_string();
    let info = job_info_once_printed(&a, &session, &job).await;
    assert_eq!(info["status_id"], "77", "{info}");

    // The sliced G-code lives in the bucket, not on either server's disk.
    let output: i64 = status["output_file_id"].as_i64().unwrap();
    let key: String = {
        use printfarm::db::schema::files;
        let mut c = a.conn();
        files::table
            .find(output)
            .select(files::storage_key)
            .first(&mut *c)
            .unwrap()
    };
    assert!(
        keys(&moto.bucket()).await.contains(&key),
        "{key} in the bucket"
    );
    // The agent held long polls, and both instances answered its requests.
    assert!(proxy
        .requests("command")
        .iter()
        .any(|b| b["wait"] == json!(20)));
    let served = proxy.served();
    assert!(
        served.iter().all(|n| *n > 0),
        "requests per instance: {served:?}"
    );

    agent.stop().await;
    proxy.handle.stop(true).await;
    drop(worker);
    b.stop().await;
    a.stop().await;
}
