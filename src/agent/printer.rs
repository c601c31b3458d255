//! One printer's agent: registration, the `command` loop, command execution, job
//! tracking and the camera. Each printer runs as its own task with its own HTTP
//! clients, so a dead printer or a slow request never holds up the others.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{AgentConfig, PrinterConfig};
use super::download::{self, DownloadError, Progress};
use super::driver::{AnyDriver, Driver, DriverError, DriverState, Material, PrinterStatus};
use super::protocol::{
    as_i64, codes, levels, Ack, Client, CommandAnswer, ErrorEntry, RegisterAnswer, ServerCommand,
};
use super::state::{Job, JobPhase, Persisted, StateFiles};

/// A started print that the printer has not reported as printing after this long failed.
const START_GRACE: Duration = Duration::from_secs(60);
/// How often to retry `connect` on an offline printer.
const RECONNECT_EVERY: Duration = Duration::from_secs(5);
/// Upload + start on the printer.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(300);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Error entries kept for sending while the server is unreachable (oldest dropped).
const MAX_PENDING_ERRORS: usize = 20;

/// Runs one printer until `shutdown` becomes true (or its sender is dropped).
pub async fn run_printer(
    cfg: AgentConfig,
    printer: PrinterConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    printer.validate()?;
    let driver = Arc::new(AnyDriver::from_config(&printer)?);
    run_printer_with(cfg, printer, driver, shutdown).await
}

/// [`run_printer`] with a given driver, e.g. a virtual printer that outlives an agent
/// restart in tests.
pub async fn run_printer_with(
    cfg: AgentConfig,
    printer: PrinterConfig,
    driver: Arc<AnyDriver>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut agent = PrinterAgent::new(cfg, printer, driver, shutdown)?;
    agent.run().await;
    Ok(())
}

/// A one-request report override (protocol events: finished, cancel, error).
#[derive(Debug, Clone)]
struct Event {
    state: &'static str,
    percent: f64,
    job_id: Option<Value>,
    filename: Option<String>,
}

/// Phases of the preparation task, readable while it runs.
const PREP_DOWNLOADING: u8 = 0;
const PREP_HANDING_OVER: u8 = 1;

struct Prep {
    handle: JoinHandle<Result<(), ErrorEntry>>,
    download: Arc<Progress>,
    phase: Arc<AtomicU8>,
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … up to the cap.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new(cap: Duration) -> Backoff {
        Backoff {
            next: INITIAL_BACKOFF.min(cap),
            cap,
        }
    }
    fn reset(&mut self) {
        self.next = INITIAL_BACKOFF.min(self.cap);
    }
    fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        // ±20 % so that many agents do not reconnect in lockstep.
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

struct PrinterAgent {
    cfg: AgentConfig,
    printer: PrinterConfig,
    files: StateFiles,
    st: Persisted,
    client: Client,
    download_http: reqwest::Client,
    driver: Arc<AnyDriver>,
    shutdown: watch::Receiver<bool>,
    token_tx: watch::Sender<Option<String>>,
    reset_job: bool,
    /// Send `bed_clear: true` (auto_bed_clear after a finished print).
    bed_clear: bool,
    events: VecDeque<Event>,
    errors: Vec<ErrorEntry>,
    prep: Option<Prep>,
    status: PrinterStatus,
    backoff: Backoff,
    last_connect: Option<Instant>,
    /// The loaded materials as last read (driver, else `[[printer.filaments]]`).
    materials: Vec<Material>,
    /// The materials the server last received (reports omit them while unchanged).
    sent_materials: Option<Vec<Material>>,
}

/// What one request carried, to forget once it was delivered.
struct Sent {
    event: bool,
    errors: usize,
    ack: Option<Ack>,
    reset_job: bool,
    bed_clear: bool,
    materials: Option<Vec<Material>>,
}

impl PrinterAgent {
    fn new(
        cfg: AgentConfig,
        printer: PrinterConfig,
        driver: Arc<AnyDriver>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<PrinterAgent> {
        printer.validate()?;
        let files = StateFiles::new(&cfg.state_dir, &printer.snr);
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
            anyhow::anyhow!("cannot create state_dir {}: {e}", cfg.state_dir.display())
        })?;
        let st = files.load();
        let client = Client::new(
            cfg.printer_api_base(),
            Duration::from_secs(cfg.request_timeout_secs.max(1)),
        )?;
        let download_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(6))
            .build()?;
        let (token_tx, _) = watch::channel(None);
        Ok(PrinterAgent {
            backoff: Backoff::new(Duration::from_millis(cfg.max_backoff_ms.max(1))),
            cfg,
            files,
            st,
            client,
            download_http,
            driver,
            shutdown,
            token_tx,
            reset_job: false,
            bed_clear: false,
            events: VecDeque::new(),
            errors: Vec::new(),
            prep: None,
            status: PrinterStatus::offline("not queried yet"),
            last_connect: None,
            materials: Vec::new(),
            sent_materials: None,
            printer,
        })
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps unless shutdown comes first; false on shutdown.
    async fn sleep(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            r = self.shutdown.changed() => r.is_ok() && !*self.shutdown.borrow(),
        }
    }

    fn persist(&self) {
        if let Err(e) = self.files.save(&self.st) {
            tracing::error!(printer = %self.printer.name, error = %e, "cannot write the state file");
        }
    }

    async fn run(&mut self) {
        let name = self.printer.name.clone();
        // A job found on disk is resumed; only without one is the server told to reset.
        match self.st.job.clone() {
            Some(job) => {
                tracing::info!(printer = %name, job_id = %job.job_id, phase = ?job.phase,
                    "recovered an in-flight job from the state file");
                if job.phase == JobPhase::Preparing {
                    self.start_prep(job, false);
                }
            }
            None => self.reset_job = true,
        }
        let camera = self.spawn_camera();
        while !self.stopping() {
            if self.st.auth_token.is_none() {
                if !self.register().await {
                    break;
                }
                continue;
            }
            let _ = self.token_tx.send(self.st.auth_token.clone());
            let started = Instant::now();
            self.refresh().await;
            let wait = self.wait_secs();
            let (body, sent) = self.build_request(wait);
            let answer = tokio::select! {
                a = self.client.command(&body, Duration::from_secs(wait)) => a,
                _ = self.shutdown.changed() => break,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    let delay = self.backoff.step();
                    tracing::warn!(printer = %name, error = %e, retry_in = ?delay,
                        "command request failed; keeping the job state and retrying");
                    if !self.sleep(delay).await {
                        break;
                    }
                    continue;
                }
            };
            // An error answer means the request was not processed: keep the ack, events
            // and errors for the next try.
            let answer = match answer {
                CommandAnswer::Error(e) if e.code == codes::INVALID_TOKEN => {
                    tracing::warn!(printer = %name, message = %e.message,
                        "the server rejected the auth token; registering again");
                    self.forget_registration();
                    continue;
                }
                CommandAnswer::Error(e) => {
                    let delay = self.backoff.step();
                    tracing::warn!(printer = %name, code = e.code, message = %e.message,
                        retry_in = ?delay, "the server answered with an error");
                    if !self.sleep(delay).await {
                        break;
                    }
                    continue;
                }
                other => other,
            };
            self.backoff.reset();
            self.delivered(sent);
            let mut executed = false;
            match answer {
                CommandAnswer::Command(c) => {
                    self.execute(c).await;
                    executed = true;
                }
                CommandAnswer::Malformed(m) => {
                    tracing::warn!(printer = %name, problem = %m, "ignoring a malformed command")
                }
                CommandAnswer::Nothing | CommandAnswer::Error(_) => {}
            }
            // Ack at once after a command; otherwise keep the poll period.
            if !executed {
                let left = self.cfg.poll_interval().saturating_sub(started.elapsed());
                if !left.is_zero() && !self.sleep(left).await {
                    break;
                }
            }
        }
        // The printer keeps printing; an unfinished download resumes at the next start.
        if let Some(p) = self.prep.take() {
            p.handle.abort();
        }
        if let Some(c) = camera {
            c.abort();
        }
        self.persist();
        tracing::info!(printer = %name, "printer agent stopped");
    }

    /// Polls `register` until the server hands out a token; false on shutdown.
    async fn register(&mut self) -> bool {
        let name = self.printer.name.clone();
        let (vid, pid) = self.printer.usb_ids();
        let mut code = self.files.read_registration_code();
        let mut announced: Option<String> = None;
        loop {
            if self.stopping() {
                return false;
            }
            let mut body = json!({
                "mac": self.printer.mac(),
                "version": concat!("printfarm-agent ", env!("CARGO_PKG_VERSION")),
                "verbose": false,
                "VID": vid,
                "PID": pid,
                "SNR": self.printer.snr,
                "type": self.printer.printer_type,
            });
            if let Some(c) = &code {
                body["registration_code"] = json!(c);
            }
            let answer = tokio::select! {
                a = self.client.register(&body) => a,
                _ = self.shutdown.changed() => return false,
            };
            let delay = match answer {
                Ok(RegisterAnswer::Code(c)) => {
                    self.backoff.reset();
                    if announced.as_deref() != Some(c.as_str()) {
                        tracing::warn!(printer = %name, snr = %self.printer.snr, code = %c,
                            file = %self.files.registration_code_path().display(),
                            "REGISTRATION CODE for printer {name}: {c} (an admin redeems it with add_printer_by_registration_code)");
                        if let Err(e) = self.files.write_registration_code(&c) {
                            tracing::error!(printer = %name, error = %e, "cannot write the registration code file");
                        }
                        announced = Some(c.clone());
                    }
                    code = Some(c);
                    self.cfg.poll_interval()
                }
                Ok(RegisterAnswer::Token { auth_token, email }) => {
                    tracing::info!(printer = %name, email = email.as_deref().unwrap_or(""),
                        "registered with the server");
                    self.st.auth_token = Some(auth_token);
                    self.st.email = email;
                    self.files.remove_registration_code();
                    self.persist();
                    self.backoff.reset();
                    return true;
                }
                Ok(RegisterAnswer::Error(e)) if e.code == codes::BAD_REGISTRATION_CODE => {
                    tracing::warn!(printer = %name, message = %e.message,
                        "registration code unknown or expired; asking for a new one");
                    self.files.remove_registration_code();
                    code = None;
                    announced = None;
                    self.cfg.poll_interval().min(Duration::from_millis(500))
                }
                Ok(RegisterAnswer::Error(e)) => {
                    let d = self.backoff.step();
                    tracing::warn!(printer = %name, code = e.code, message = %e.message, retry_in = ?d,
                        "registration refused");
                    d
                }
                Err(e) => {
                    let d = self.backoff.step();
                    tracing::warn!(printer = %name, error = %e, retry_in = ?d, "register request failed");
                    d
                }
            };
            if !self.sleep(delay).await {
                return false;
            }
        }
    }

    fn forget_registration(&mut self) {
        self.st.auth_token = None;
        self.st.email = None;
        self.st.pending_ack = None;
        self.st.executed.clear();
        // Job ids belonged to the old registration; the print itself goes on.
        self.st.job = None;
        if let Some(p) = self.prep.take() {
            p.handle.abort();
        }
        self.events.clear();
        self.errors.clear();
        self.reset_job = true;
        // The new registration has never heard of them.
        self.sent_materials = None;
        let _ = self.token_tx.send(None);
        self.persist();
    }

    /// Long-poll wait for the next request: the full wait only when nothing is going on,
    /// so progress reports keep flowing during a job.
    fn wait_secs(&self) -> u64 {
        let long = self.cfg.long_poll_secs;
        if long == 0 {
            return 0;
        }
        let busy = self.st.job.is_some()
            || self.prep.is_some()
            || !self.events.is_empty()
            || matches!(
                self.status.state,
                DriverState::Printing | DriverState::Paused | DriverState::Offline
            );
        if busy {
            long.min((self.cfg.poll_interval_ms / 1000).max(1))
        } else {
            long
        }
    }

    async fn driver_call<T>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(DriverError::Unreachable(format!(
                "{what} timed out after {timeout:?}"
            ))),
        }
    }

    /// Reads the printer, finishes a completed preparation, and infers job outcomes.
    async fn refresh(&mut self) {
        let timeout = self.printer.driver_timeout();
        let driver = self.driver.clone();
        let status = match self.driver_call("status", timeout, driver.status()).await {
            Ok(s) => s,
            Err(e) => PrinterStatus::offline(e.to_string()),
        };
        if status.state == DriverState::Offline
            && self
                .last_connect
                .is_none_or(|t| t.elapsed() >= RECONNECT_EVERY)
        {
            self.last_connect = Some(Instant::now());
            if let Err(e) = self.driver_call("connect", timeout, driver.connect()).await {
                tracing::debug!(printer = %self.printer.name, error = %e, "connect failed");
            }
        }
        if status.state != self.status.state {
            tracing::info!(printer = %self.printer.name, from = ?self.status.state, to = ?status.state,
                message = status.message.as_deref().unwrap_or(""), "printer state changed");
        }
        let offline = status.state == DriverState::Offline;
        self.status = status;
        if !offline {
            self.refresh_materials().await;
        }
        self.check_prep().await;
        self.track_job();
        let excess = self.errors.len().saturating_sub(MAX_PENDING_ERRORS);
        self.errors.drain(..excess);
    }

    /// Reads the loaded materials. A printer that cannot tell reports the configured ones
    /// (the virtual printer's own list is its setting); a failed read keeps the last ones.
    async fn refresh_materials(&mut self) {
        let timeout = self.printer.driver_timeout();
        let driver = self.driver.clone();
        match self
            .driver_call("materials", timeout, driver.materials())
            .await
        {
            Ok(list) if list.is_empty() && !matches!(*self.driver, AnyDriver::Virtual(_)) => {
                self.materials = Material::from_config(&self.printer);
            }
            Ok(list) => self.materials = list,
            Err(e) => {
                tracing::debug!(printer = %self.printer.name, error = %e, "cannot read the loaded materials")
            }
        }
    }

    async fn check_prep(&mut self) {
        if !self.prep.as_ref().is_some_and(|p| p.handle.is_finished()) {
            return;
        }
        let Some(prep) = self.prep.take() else { return };
        let outcome = match prep.handle.await {
            Ok(r) => r,
            Err(e) => Err(ErrorEntry {
                code: codes::COMMAND_FAILED,
                message: format!("job preparation stopped: {e}"),
                level: levels::BLOCKING,
            }),
        };
        let Some(job) = self.st.job.as_mut() else {
            return;
        };
        match outcome {
            Ok(()) => {
                tracing::info!(printer = %self.printer.name, job_id = %job.job_id,
                    file = %job.printer_file, "print started");
                job.phase = JobPhase::Printing;
                job.seen_active = false;
                job.started_at = Some(chrono::Utc::now().timestamp());
                self.persist();
            }
            Err(entry) => {
                tracing::warn!(printer = %self.printer.name, job_id = %job.job_id,
                    code = entry.code, error = %entry.message, "job failed before printing");
                self.fail_job(entry);
            }
        }
    }

    /// Ends the current job with an error report.
    fn fail_job(&mut self, entry: ErrorEntry) {
        if let Some(job) = self.st.job.take() {
            self.events.push_back(Event {
                state: "error",
                percent: self.status.percent,
                job_id: Some(job.job_id),
                filename: Some(job.filename),
            });
        }
        self.errors.push(entry);
        self.cleanup_downloads();
        self.persist();
    }

    fn end_job(&mut self, events: Vec<Event>, error: Option<ErrorEntry>) {
        self.st.job = None;
        self.events.extend(events);
        self.errors.extend(error);
        self.persist();
    }

    fn track_job(&mut self) {
        let Some(job) = self.st.job.clone() else {
            return;
        };
        if job.phase != JobPhase::Printing {
            return;
        }
        let ours = self.status.job_file.as_deref() == Some(job.printer_file.as_str());
        let known = ours || job.seen_active;
        let job_event = |state: &'static str, percent: f64| Event {
            state,
            percent,
            job_id: Some(job.job_id.clone()),
            filename: Some(job.filename.clone()),
        };
        let name = self.printer.name.clone();
        match self.status.state {
            DriverState::Printing | DriverState::Paused => {
                if !job.seen_active {
                    if let Some(j) = self.st.job.as_mut() {
                        j.seen_active = true;
                    }
                    self.persist();
                }
            }
            DriverState::Finished if known => {
                tracing::info!(printer = %name, job_id = %job.job_id, "print finished");
                // Protocol: one `printing` at 100 %, then `ready` at 100 %.
                let ready = Event {
                    state: "ready",
                    percent: 100.0,
                    job_id: None,
                    filename: None,
                };
                self.end_job(vec![job_event("printing", 100.0), ready], None);
                self.bed_clear = self.printer.auto_bed_clear;
            }
            DriverState::Cancelled if known => {
                tracing::info!(printer = %name, job_id = %job.job_id, "print cancelled at the printer");
                let entry = ErrorEntry {
                    code: codes::CANCELED_LOCALLY,
                    message: "print cancelled at the printer".into(),
                    level: levels::INFO,
                };
                self.end_job(vec![job_event("cancel", self.status.percent)], Some(entry));
            }
            DriverState::Failed if known => {
                let msg = self
                    .status
                    .message
                    .clone()
                    .unwrap_or_else(|| "print failed".into());
                tracing::warn!(printer = %name, job_id = %job.job_id, error = %msg, "print failed");
                self.end_job(
                    vec![job_event("error", self.status.percent)],
                    Some(ErrorEntry {
                        code: codes::PRINT_FAILED,
                        message: msg,
                        level: levels::BLOCKING,
                    }),
                );
            }
            DriverState::Error => {
                let msg = self
                    .status
                    .message
                    .clone()
                    .unwrap_or_else(|| "printer error".into());
                tracing::warn!(printer = %name, job_id = %job.job_id, error = %msg, "printer error during the job");
                self.end_job(
                    vec![job_event("error", self.status.percent)],
                    Some(ErrorEntry {
                        code: codes::PRINTER_ERROR,
                        message: msg,
                        level: levels::BLOCKING,
                    }),
                );
            }
            DriverState::Idle if job.seen_active && ours => {
                // OctoPrint shows a cancelled job as idle with its file still selected.
                let entry = ErrorEntry {
                    code: codes::CANCELED_LOCALLY,
                    message: "print cancelled at the printer".into(),
                    level: levels::INFO,
                };
                self.end_job(vec![job_event("cancel", self.status.percent)], Some(entry));
            }
            DriverState::Idle
            | DriverState::Finished
            | DriverState::Cancelled
            | DriverState::Failed
                if job.seen_active =>
            {
                tracing::warn!(printer = %name, job_id = %job.job_id, "the printer no longer knows the job");
                self.end_job(
                    vec![job_event("error", 0.0)],
                    Some(ErrorEntry {
                        code: codes::PRINTER_LOST,
                        message: "the printer lost the job (restarted?)".into(),
                        level: levels::BLOCKING,
                    }),
                );
            }
            DriverState::Idle
            | DriverState::Finished
            | DriverState::Cancelled
            | DriverState::Failed => {
                let started = job.started_at.unwrap_or(0);
                let age = chrono::Utc::now().timestamp() - started;
                if age > START_GRACE.as_secs() as i64 {
                    self.end_job(
                        vec![job_event("error", 0.0)],
                        Some(ErrorEntry {
                            code: codes::PRINTER_BUSY,
                            message: format!(
                                "the printer did not start the print within {} s",
                                START_GRACE.as_secs()
                            ),
                            level: levels::BLOCKING,
                        }),
                    );
                }
            }
            // Unreachable: keep the job, the printer may well go on printing.
            DriverState::Offline => {}
        }
    }

    fn build_request(&self, wait: u64) -> (Value, Sent) {
        let mut report = Map::new();
        let event = self.events.front();
        let job = self.st.job.as_ref();
        let (state, percent) = match (event, &self.prep, job) {
            (Some(ev), _, _) => (ev.state, ev.percent),
            (None, Some(prep), _) => match prep.phase.load(Ordering::Relaxed) {
                PREP_DOWNLOADING => ("downloading", prep.download.percent()),
                _ => ("downloading", 100.0),
            },
            (None, None, _) => match self.status.state {
                DriverState::Offline => ("connecting", 0.0),
                DriverState::Error => ("error", 0.0),
                DriverState::Printing => ("printing", self.status.percent),
                DriverState::Paused => ("paused", self.status.percent),
                // Started but not yet reported as printing by the printer.
                _ if job.is_some_and(|j| j.phase == JobPhase::Printing) => ("printing", 0.0),
                DriverState::Finished => ("ready", 100.0),
                _ => ("ready", 0.0),
            },
        };
        report.insert("state".into(), json!(state));
        report.insert("percent".into(), json!(round2(percent)));
        report.insert("temps".into(), json!(self.status.temps));
        report.insert("target_temps".into(), json!(self.status.target_temps));
        let (job_id, filename) = match event {
            Some(ev) => (ev.job_id.clone(), ev.filename.clone()),
            None => (
                job.map(|j| j.job_id.clone()),
                job.map(|j| j.filename.clone()),
            ),
        };
        if let Some(id) = job_id {
            report.insert("clouds_job_id".into(), id);
        }
        if let Some(f) = filename {
            report.insert("filename".into(), json!(f));
        }
        // Sent when changed since the server last got them (the protocol's delta rule); an
        // empty list tells the server nothing is known any more.
        let materials =
            (self.sent_materials.as_ref() != Some(&self.materials)).then(|| self.materials.clone());
        if let Some(m) = &materials {
            report.insert(
                "material_names".into(),
                json!(m.iter().map(|x| x.material.clone()).collect::<Vec<_>>()),
            );
            report.insert(
                "material_colors_hex".into(),
                json!(m.iter().map(|x| x.color_hex.clone()).collect::<Vec<_>>()),
            );
        }
        let mut body = json!({
            "auth_token": self.st.auth_token.clone().unwrap_or_default(),
            "report": report,
        });
        if let Some(ack) = self.st.pending_ack {
            body["command_ack"] = json!({"number": ack.number, "result": ack.result});
        }
        if !self.errors.is_empty() {
            body["error"] = json!(self.errors);
        }
        if self.reset_job {
            body["reset_job"] = json!(true);
        }
        // Only once the finished-print events are out, so the clear follows the finish.
        let bed_clear = self.bed_clear && self.events.is_empty();
        if bed_clear {
            body["bed_clear"] = json!(true);
        }
        if wait > 0 {
            body["wait"] = json!(wait);
        }
        let sent = Sent {
            event: event.is_some(),
            errors: self.errors.len(),
            ack: self.st.pending_ack,
            reset_job: self.reset_job,
            bed_clear,
            materials,
        };
        (body, sent)
    }

    /// Forgets what the last request delivered.
    fn delivered(&mut self, sent: Sent) {
        if sent.event {
            self.events.pop_front();
        }
        let n = sent.errors.min(self.errors.len());
        self.errors.drain(..n);
        if sent.reset_job {
            self.reset_job = false;
        }
        if sent.bed_clear {
            self.bed_clear = false;
        }
        if let Some(m) = sent.materials {
            self.sent_materials = Some(m);
        }
        if sent.ack.is_some() && self.st.pending_ack == sent.ack {
            self.st.pending_ack = None;
            self.persist();
        }
    }

    async fn execute(&mut self, c: ServerCommand) {
        let name = self.printer.name.clone();
        if let Some(result) = self.st.executed_result(c.number) {
            tracing::info!(printer = %name, command = %c.name, number = c.number,
                "command already executed; acknowledging it again");
            self.st.pending_ack = Some(Ack {
                number: c.number,
                result,
            });
            self.persist();
            return;
        }
        // Recorded before running, so that a crash cannot make it run twice.
        let intent = Ack {
            number: c.number,
            result: true,
        };
        self.st.remember_executed(intent);
        self.st.pending_ack = Some(intent);
        self.persist();
        tracing::info!(printer = %name, command = %c.name, number = c.number, "executing command");
        let result = match self.run_command(&c).await {
            Ok(()) => true,
            Err(entry) => {
                tracing::warn!(printer = %name, command = %c.name, number = c.number,
                    code = entry.code, error = %entry.message, "command failed");
                self.errors.push(entry);
                false
            }
        };
        let ack = Ack {
            number: c.number,
            result,
        };
        self.st.remember_executed(ack);
        self.st.pending_ack = Some(ack);
        self.persist();
    }

    async fn run_command(&mut self, c: &ServerCommand) -> Result<(), ErrorEntry> {
        let timeout = self.printer.driver_timeout();
        let driver = self.driver.clone();
        let failed = |e: DriverError| ErrorEntry {
            code: match e {
                DriverError::Unreachable(_) => codes::NOT_OPERATIONAL,
                DriverError::Refused(_) => codes::PRINTER_BUSY,
                DriverError::Other(_) => codes::COMMAND_FAILED,
            },
            message: e.to_string(),
            level: levels::INFO,
        };
        match c.name.as_str() {
            "gcodes" => self.start_job(c),
            "pause" => {
                if self.prep.is_some() {
                    return Err(busy("cannot pause while downloading"));
                }
                self.driver_call("pause", timeout, driver.pause())
                    .await
                    .map_err(failed)
            }
            "unpause" | "resume" => self
                .driver_call("resume", timeout, driver.resume())
                .await
                .map_err(failed),
            "cancel" => self.cancel().await,
            // Names are the server's business; nothing to do on the printer.
            "set_name" => Ok(()),
            other => Err(ErrorEntry {
                code: codes::UNKNOWN_COMMAND,
                message: format!("unknown command {other:?}"),
                level: levels::INFO,
            }),
        }
    }

    async fn cancel(&mut self) -> Result<(), ErrorEntry> {
        if let Some(prep) = self.prep.take() {
            prep.handle.abort();
            let job = self.st.job.take();
            self.cleanup_downloads();
            self.events.push_back(Event {
                state: "cancel",
                percent: 0.0,
                job_id: job.as_ref().map(|j| j.job_id.clone()),
                filename: job.map(|j| j.filename),
            });
            self.persist();
            return Ok(());
        }
        let timeout = self.printer.driver_timeout();
        let driver = self.driver.clone();
        let active = matches!(
            self.status.state,
            DriverState::Printing | DriverState::Paused
        );
        if self.st.job.is_none() && !active {
            return Err(busy("nothing to cancel"));
        }
        match self.driver_call("cancel", timeout, driver.cancel()).await {
            Ok(()) => {
                let job = self.st.job.take();
                self.events.push_back(Event {
                    state: "cancel",
                    percent: self.status.percent,
                    job_id: job.as_ref().map(|j| j.job_id.clone()),
                    filename: job.map(|j| j.filename),
                });
                self.persist();
                Ok(())
            }
            Err(e) => Err(ErrorEntry {
                code: codes::COMMAND_FAILED,
                message: format!("cancel failed: {e}"),
                level: levels::INFO,
            }),
        }
    }

    fn start_job(&mut self, c: &ServerCommand) -> Result<(), ErrorEntry> {
        let b = &c.body;
        if !b.get("is_link").is_some_and(truthy) {
            return Err(ErrorEntry {
                code: codes::UNSUPPORTED_COMMAND,
                message: "raw G-code commands are not supported by this agent".into(),
                level: levels::INFO,
            });
        }
        if self.prep.is_some() {
            return Err(ErrorEntry {
                code: codes::DOWNLOAD_RUNNING,
                message: "a download is already running".into(),
                level: levels::INFO,
            });
        }
        if self.st.job.is_some()
            || !matches!(
                self.status.state,
                DriverState::Idle
                    | DriverState::Finished
                    | DriverState::Cancelled
                    | DriverState::Failed
            )
        {
            return Err(busy(&format!(
                "the printer is not ready ({:?})",
                self.status.state
            )));
        }
        let link = b
            .get("payload")
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorEntry {
                code: codes::UNKNOWN_COMMAND,
                message: "gcodes: payload is not a download URL".into(),
                level: levels::INFO,
            })?;
        // Only G-code from the server this agent is registered with is printed: a link to any
        // other origin could only come from a forged or compromised command.
        let url =
            crate::agent::download::resolve_print_link(&self.cfg.server, link).map_err(|e| {
                ErrorEntry {
                    code: codes::UNKNOWN_COMMAND,
                    message: format!("gcodes: {e}"),
                    level: levels::INFO,
                }
            })?;
        let filename = b
            .get("filename")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .unwrap_or("job.gcode")
            .to_string();
        let zip = b.get("zip").is_some_and(truthy);
        let job_id = b
            .get("job_id")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(c.number));
        let job = Job {
            printer_file: printer_file_name(&job_id, &filename, zip),
            job_id,
            filename,
            url,
            size: b
                .get("size")
                .and_then(as_i64)
                .and_then(|s| u64::try_from(s).ok()),
            zip,
            phase: JobPhase::Preparing,
            seen_active: false,
            started_at: None,
        };
        self.st.job = Some(job.clone());
        self.persist();
        self.start_prep(job, true);
        Ok(())
    }

    fn job_download_dir(&self, job: &Job) -> PathBuf {
        let id: String = sanitize(&job.job_id.to_string().replace('"', ""), 40);
        self.files.download_dir().join(id)
    }

    fn cleanup_downloads(&self) {
        let _ = std::fs::remove_dir_all(self.files.download_dir());
    }

    fn start_prep(&mut self, job: Job, fresh: bool) {
        if fresh {
            self.cleanup_downloads();
        }
        let dir = self.job_download_dir(&job);
        let download = Arc::new(Progress::default());
        let phase = Arc::new(AtomicU8::new(PREP_DOWNLOADING));
        let handle = tokio::spawn(prepare(
            self.driver.clone(),
            self.download_http.clone(),
            job,
            dir,
            download.clone(),
            phase.clone(),
        ));
        self.prep = Some(Prep {
            handle,
            download,
            phase,
        });
    }

    fn spawn_camera(&self) -> Option<JoinHandle<()>> {
        if !self.driver.has_camera() {
            return None;
        }
        Some(tokio::spawn(camera_loop(
            self.client.clone(),
            self.driver.clone(),
            self.token_tx.subscribe(),
            self.printer.name.clone(),
        )))
    }
}

fn busy(msg: &str) -> ErrorEntry {
    ErrorEntry {
        code: codes::PRINTER_BUSY,
        message: msg.to_string(),
        level: levels::INFO,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

fn round2(x: f64) -> f64 {
    super::driver::round2(x)
}

/// Keeps `[A-Za-z0-9._-]`, replaces the rest, caps the length.
fn sanitize(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    let out = out.trim_start_matches('.').to_string();
    if out.is_empty() {
        "job".into()
    } else {
        out
    }
}

/// The file name on the printer: unique per job, safe for any host.
fn printer_file_name(job_id: &Value, filename: &str, zip: bool) -> String {
    let mut base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(filename)
        .to_string();
    // A zipped job's archive name usually is `<name>.gcode.zip` (or the zip flag says so).
    if base.to_ascii_lowercase().ends_with(".zip") {
        base.truncate(base.len() - 4);
    } else if zip {
        tracing::debug!(filename, "zipped job without a .zip name");
    }
    let mut base = sanitize(&base, 80);
    let lower = base.to_ascii_lowercase();
    if !(lower.ends_with(".gcode") || lower.ends_with(".gco") || lower.ends_with(".g")) {
        base.push_str(".gcode");
    }
    let id = sanitize(&job_id.to_string().replace('"', ""), 20);
    format!("pf{id}_{base}")
}

/// Download (resuming), unzip, upload to the printer and start the print.
async fn prepare(
    driver: Arc<AnyDriver>,
    http: reqwest::Client,
    job: Job,
    dir: PathBuf,
    progress: Arc<Progress>,
    phase: Arc<AtomicU8>,
) -> Result<(), ErrorEntry> {
    let entry = |code: i64, message: String| ErrorEntry {
        code,
        message,
        level: levels::BLOCKING,
    };
    let dl_err = |e: DownloadError| entry(e.code(), e.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| {
        entry(
            codes::DOWNLOAD_FILE,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let raw = dir.join(if job.zip {
        "download.zip"
    } else {
        "download.gcode"
    });
    let got = download::download(&http, &job.url, &raw, &progress, INITIAL_BACKOFF)
        .await
        .map_err(dl_err)?;
    if let Some(size) = job.size.filter(|s| *s != got) {
        tracing::warn!(job_id = %job.job_id, announced = size, downloaded = got,
            "downloaded size differs from the command's size (Content-Length matched)");
    }
    let file = if job.zip {
        let (raw2, dir2, name) = (raw.clone(), dir.clone(), job.printer_file.clone());
        tokio::task::spawn_blocking(move || download::unzip_gcode(&raw2, &dir2, &name))
            .await
            .map_err(|e| entry(codes::DOWNLOAD_FILE, e.to_string()))?
            .map_err(dl_err)?
    } else {
        raw
    };
    phase.store(PREP_HANDING_OVER, Ordering::Relaxed);
    let hand_over = async {
        driver.upload(&file, &job.printer_file).await?;
        driver.start(&job.printer_file).await
    };
    let result = match tokio::time::timeout(HAND_OVER_TIMEOUT, hand_over).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(entry(
            match e {
                DriverError::Unreachable(_) => codes::NOT_OPERATIONAL,
                DriverError::Refused(_) => codes::PRINTER_BUSY,
                DriverError::Other(_) => codes::PRINT_FAILED,
            },
            format!("cannot start the print on the printer: {e}"),
        )),
        Err(_) => Err(entry(
            codes::NOT_OPERATIONAL,
            "the printer did not take the file in time".into(),
        )),
    };
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Posts frames at most once a second; `"S"` (same image) while nobody watches.
async fn camera_loop(
    client: Client,
    driver: Arc<AnyDriver>,
    mut token: watch::Receiver<Option<String>>,
    name: String,
) {
    use base64::Engine;
    let mut watching = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(t) = token.borrow_and_update().clone() else {
            if token.changed().await.is_err() {
                return;
            }
            continue;
        };
        let image = match watching {
            true => match driver.snapshot().await {
                Some(jpg) => base64::engine::general_purpose::STANDARD.encode(jpg),
                None => "S".to_string(),
            },
            false => "S".to_string(),
        };
        match client.camera(&t, &image).await {
            Ok(Some(state)) => watching = state == 1,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(printer = %name, error = %e, "camera upload failed");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_safely() {
        assert_eq!(
            printer_file_name(&json!(42), "My Cube (v2).gcode", false),
            "pf42_My_Cube__v2_.gcode"
        );
        assert_eq!(
            printer_file_name(&json!("a/b"), "../../etc/passwd", false),
            "pfa_b_passwd.gcode"
        );
        assert_eq!(
            printer_file_name(&json!(7), "part.gcode.zip", true),
            "pf7_part.gcode"
        );
        assert_eq!(
            printer_file_name(&json!(7), ".gcode", false),
            "pf7_gcode.gcode"
        );
        assert!(truthy(&json!("true")) && truthy(&json!(1)) && !truthy(&json!(null)));
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(30));
        let steps: Vec<f64> = (0..8).map(|_| b.step().as_secs_f64()).collect();
        assert!(steps[0] >= 0.8 && steps[0] <= 1.2, "{steps:?}");
        assert!(steps[3] >= 6.4 && steps[3] <= 9.6, "{steps:?}");
        assert!(steps[7] <= 36.0 && steps[7] >= 24.0, "{steps:?}");
        b.reset();
        assert!(b.step() <= Duration::from_millis(1200));
    }
}
