//! The floor of issue #20: a bare actix-web + Diesel server that answers printfarm's Global API
//! read calls with the least work a server can do for them, so that printfarm's CPU per request
//! can be compared with it (`bench/floor_bench.sh`).
//!
//! Every call is a POST at printfarm's path (`/apiglobal/<call>`) taking the same form fields,
//! and answers JSON of the same shape. A call makes one `web::block` hop with one pool checkout
//! and runs one statement: the statement printfarm runs for the data of its answer, written
//! with the same Diesel DSL over the same tables (see `schema.rs`), so Diesel sends the same SQL
//! text and caches the prepared statement the same way. What printfarm does besides is left
//! out: the session check (except in `check_session`, whose work it is), the rights checks,
//! the lookups that only fill in details (printer types, workgroups, the change cursor), the
//! request log and the metrics.
//!
//! The floor answers as one user, looked up once at start-up (`--user-email`): the calls that
//! list "mine" (projects, printers, workgroups) use that user's id and organization, since the
//! floor does not check the session that would name them.
//!
//!     floor --database-url URL --bind 127.0.0.1:PORT [--user-email bench@example.com]
//!           [--workers N] [--pool-size N]
//!
//! Defaults as printfarm's: one worker per core; pool of 10 connections for Postgres, 4 for
//! SQLite (`PRAGMA busy_timeout = 5000; foreign_keys = ON; synchronous = NORMAL`, WAL, the
//! query planner stability guarantee so that `LIMIT ?` statements stay prepared), not tested on
//! checkout; Postgres sessions in UTC.

mod schema;

use std::fmt;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use schema::*;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

// --- configuration ---------------------------------------------------------------------------

struct Options {
    database_url: String,
    bind: String,
    user_email: String,
    workers: usize,
    pool_size: Option<u32>,
}

const USAGE: &str = "usage: floor --database-url URL --bind HOST:PORT [--user-email EMAIL] \
                     [--workers N] [--pool-size N]";

fn options() -> Result<Options, String> {
    let mut database_url = std::env::var("DATABASE_URL").ok();
    let mut bind = None;
    let mut user_email = "bench@example.com".to_string();
    let mut workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut pool_size = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--database-url" => database_url = Some(value()?),
            "--bind" => bind = Some(value()?),
            "--user-email" => user_email = value()?,
            "--workers" => workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--pool-size" => {
                pool_size = Some(value()?.parse().map_err(|e| format!("--pool-size: {e}"))?)
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Options {
        database_url: database_url.ok_or_else(|| format!("--database-url is missing\n{USAGE}"))?,
        bind: bind.ok_or_else(|| format!("--bind is missing\n{USAGE}"))?,
        user_email,
        workers,
        pool_size,
    })
}

// --- connections -----------------------------------------------------------------------------

#[derive(Debug)]
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

fn failure(e: impl fmt::Display) -> Failure {
    Failure(e.to_string())
}

/// Opens connections the way printfarm's pool does: the backend from the URL scheme, then the
/// session settings of that backend.
struct Manager {
    url: String,
    postgres: bool,
}

impl Manager {
    fn new(url: &str) -> Self {
        Manager {
            url: url.to_string(),
            postgres: url.starts_with("postgres://") || url.starts_with("postgresql://"),
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = Failure;

    fn connect(&self) -> Result<DbConn, Failure> {
        if self.postgres {
            let mut c = PgConnection::establish(&self.url).map_err(failure)?;
            c.batch_execute("SET TIME ZONE 'UTC'").map_err(failure)?;
            Ok(DbConn::Pg(c))
        } else {
            let path = self
                .url
                .strip_prefix("sqlite://")
                .or_else(|| self.url.strip_prefix("sqlite:"))
                .unwrap_or(&self.url);
            keep_sqlite_plans_cached();
            let mut c = SqliteConnection::establish(path).map_err(failure)?;
            c.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            )
            .map_err(failure)?;
            Ok(DbConn::Sqlite(c))
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Failure> {
        conn.ping().map_err(failure)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

type Pool = r2d2::Pool<Manager>;

/// As printfarm (`db::keep_sqlite_plans_cached`): SQLite otherwise prepares every statement
/// with a bound `LIMIT` again on each run, a cost the floor must not carry either.
fn keep_sqlite_plans_cached() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        unsafe extern "C" fn enable_qpsg(
            db: *mut libsqlite3_sys::sqlite3,
            _err: *mut *mut std::ffi::c_char,
            _api: *const libsqlite3_sys::sqlite3_api_routines,
        ) -> std::ffi::c_int {
            // SAFETY: called by SQLite with the connection it opens.
            unsafe {
                libsqlite3_sys::sqlite3_db_config(
                    db,
                    libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                    1 as std::ffi::c_int,
                    std::ptr::null_mut::<std::ffi::c_int>(),
                );
            }
            libsqlite3_sys::SQLITE_OK
        }
        // SAFETY: the entry point has the signature SQLite calls it with.
        unsafe { libsqlite3_sys::sqlite3_auto_extension(Some(enable_qpsg)) };
    });
}

/// What every handler shares: the pool and the user the floor answers as.
struct Floor {
    pool: Pool,
    user_id: i64,
    organization_id: i64,
}

/// An answer that is not a success, in printfarm's envelope.
enum Refusal {
    NotFound(String),
    Unauthenticated(String),
    Internal(String),
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Refusal::Internal(format!("database: {e}"))
    }
}

fn refused(r: Refusal) -> HttpResponse {
    let (mut builder, message) = match r {
        Refusal::NotFound(m) => (HttpResponse::NotFound(), m),
        Refusal::Unauthenticated(m) => (HttpResponse::Unauthorized(), m),
        Refusal::Internal(m) => (HttpResponse::InternalServerError(), m),
    };
    builder.json(Envelope {
        result: false,
        message,
    })
}

#[derive(Serialize)]
struct Envelope<T> {
    result: bool,
    message: T,
}

fn ok(message: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        result: true,
        message,
    })
}

/// One blocking hop with one checkout: `work` runs on the blocking pool with a connection.
async fn with_conn<T, F>(floor: &web::Data<Floor>, work: F) -> Result<T, Refusal>
where
    F: FnOnce(&mut DbConn, i64, i64) -> Result<T, Refusal> + Send + 'static,
    T: Send + 'static,
{
    let floor = floor.clone();
    web::block(move || {
        let mut conn = floor
            .pool
            .get()
            .map_err(|e| Refusal::Internal(format!("no connection: {e}")))?;
        work(&mut conn, floor.user_id, floor.organization_id)
    })
    .await
    .map_err(|e| Refusal::Internal(format!("blocking task: {e}")))?
}

fn answer<T: Serialize>(r: Result<T, Refusal>) -> HttpResponse {
    match r {
        Ok(message) => ok(message),
        Err(e) => refused(e),
    }
}

// --- rows: printfarm's models, field for field, with plain types --------------------------------

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[allow(dead_code)]
struct Session {
    id: i64,
    user_id: Option<i64>,
    token_hash: String,
    gdpr_pending: Option<String>,
    client_addr: Option<String>,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[allow(dead_code)]
struct User {
    id: i64,
    organization_id: i64,
    email: String,
    password_hash: Option<String>,
    firstname: String,
    lastname: String,
    company: String,
    access_role: i32,
    gdpr: i32,
    google_sub: Option<String>,
    balance: Option<f64>,
    monthly_quota: Option<i32>,
    quota_used: i32,
    quota_period: Option<String>,
    disabled: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[allow(dead_code)]
struct Job {
    id: i64,
    organization_id: i64,
    printer_id: i64,
    file_id: i64,
    user_id: i64,
    share_id: Option<i64>,
    status_id: i32,
    change_seq: i64,
    notes: Option<String>,
    percent: f64,
    print_time: i32,
    printing_duration: i32,
    material_type: String,
    layer_height: f64,
    color_numbers: i32,
    extruders: String,
    weight: f64,
    heated_bed: bool,
    heated_bed_temperature: i32,
    raft: bool,
    supports: bool,
    file_cost: Option<f64>,
    cost: Option<f64>,
    charged: bool,
    cancel_reason: Option<String>,
    cancel_details: Option<String>,
    cancelled_by_user_id: Option<i64>,
    started_by_user_id: Option<i64>,
    feedback: Option<String>,
    created_at: NaiveDateTime,
    started_at: Option<NaiveDateTime>,
    ended_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
    download_token_hash: Option<String>,
    cancel_source: Option<String>,
    priority: i32,
    farm_copy_id: Option<i64>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[allow(dead_code)]
struct StoredFile {
    id: i64,
    user_id: i64,
    organization_id: i64,
    project_id: Option<i64>,
    state: String,
    filename: String,
    kind: String,
    size: i64,
    sha256: String,
    storage_key: String,
    upload_type_id: i32,
    upload_soft_name: Option<String>,
    printer_type_id: Option<i64>,
    slicer: Option<String>,
    zip: bool,
    analysis: Option<String>,
    slicer_settings: Option<String>,
    picture: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Loaded with the table's default select (every column in table order), as printfarm does.
#[derive(Queryable)]
#[allow(dead_code)]
struct Printer {
    id: i64,
    organization_id: i64,
    owner_user_id: Option<i64>,
    printer_type_id: Option<i64>,
    name: String,
    snr: String,
    host_num: String,
    local_ip: String,
    vid: String,
    pid: String,
    mac: String,
    agent_version: Option<String>,
    auth_token_hash: Option<String>,
    state: String,
    percent: f64,
    temps: Option<String>,
    target_temps: Option<String>,
    report: Option<String>,
    last_error: Option<String>,
    current_job_id: Option<i64>,
    tray_clear: bool,
    filaments: Option<String>,
    camera_watched_until: Option<NaiveDateTime>,
    last_seen_at: Option<NaiveDateTime>,
    next_command_number: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    circuit_id: Option<i64>,
    maintenance_note: Option<String>,
    maintenance_since: Option<NaiveDateTime>,
    maintained_at: Option<NaiveDateTime>,
    maintenance_hours_limit: Option<f64>,
    maintenance_filament_limit_g: Option<f64>,
}

#[derive(Queryable)]
#[allow(dead_code)]
struct PrinterShare {
    id: i64,
    printer_id: i64,
    email: String,
    user_id: Option<i64>,
    role_id: i32,
    number_of_prints: Option<i32>,
    prints_used: i32,
    created_by_user_id: Option<i64>,
    created_at: NaiveDateTime,
}

#[derive(Queryable)]
#[allow(dead_code)]
struct Project {
    id: i64,
    user_id: i64,
    name: String,
    color: String,
    created_at: NaiveDateTime,
}

#[derive(Queryable)]
#[allow(dead_code)]
struct Workgroup {
    id: i64,
    organization_id: i64,
    name: String,
    join_password: String,
    created_at: NaiveDateTime,
}

// --- forms -----------------------------------------------------------------------------------

// `session` is part of every form, as in printfarm; only check_session reads it.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SessionOnly {
    session: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PrinterJobsForm {
    session: String,
    printer_id: i64,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct JobIdForm {
    session: String,
    job_id: i64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PrinterIdForm {
    session: String,
    printer_id: i64,
}

// --- the calls -------------------------------------------------------------------------------

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// Call 3: the session and its user in one statement (`Session::find_with_user`).
async fn check_session(floor: web::Data<Floor>, form: web::Form<SessionOnly>) -> HttpResponse {
    let hash = hex::encode(Sha256::digest(form.session.as_bytes()));
    let found = with_conn(&floor, move |c, _, _| {
        let found = sessions::table
            .left_join(users::table)
            .filter(sessions::token_hash.eq(hash))
            .select((Session::as_select(), Option::<User>::as_select()))
            .first::<(Session, Option<User>)>(c)
            .optional()?;
        let live = found.is_some_and(|(s, u)| {
            s.expires_at > chrono::Utc::now().naive_utc() && u.is_some_and(|u| !u.disabled)
        });
        if live {
            Ok("Session is valid")
        } else {
            Err(Refusal::Unauthenticated("Invalid session".into()))
        }
    })
    .await;
    answer(found)
}

#[derive(Serialize)]
struct JobListItem {
    id: String,
    status_id: String,
    filename: String,
    datetime: String,
    email: String,
}

#[derive(Serialize)]
struct PrinterJobsAnswer {
    result: bool,
    message: Vec<JobListItem>,
    time: i64,
}

/// Call 8: a page of the printer's jobs with file name and owner's email (`read::printer_jobs`
/// without its optional filters). `time` is 0: printfarm reads its change cursor with a
/// statement of its own, which the floor leaves out.
async fn get_printer_jobs(
    floor: web::Data<Floor>,
    form: web::Form<PrinterJobsForm>,
) -> HttpResponse {
    let printer = form.printer_id;
    let limit = form.limit.unwrap_or(20);
    let offset = form.offset.unwrap_or(0);
    let rows = with_conn(&floor, move |c, _, _| {
        Ok(jobs::table
            .inner_join(files::table)
            .inner_join(users::table.on(users::id.eq(jobs::user_id)))
            .filter(jobs::printer_id.eq(printer))
            .into_boxed::<MultiBackend>()
            .order(jobs::id.desc())
            .limit(limit)
            .offset(offset)
            .select((Job::as_select(), files::filename, users::email))
            .load::<(Job, String, String)>(c)?)
    })
    .await;
    match rows {
        Ok(rows) => HttpResponse::Ok().json(PrinterJobsAnswer {
            result: true,
            message: rows
                .into_iter()
                .map(|(j, filename, email)| JobListItem {
                    id: j.id.to_string(),
                    status_id: j.status_id.to_string(),
                    filename,
                    datetime: j.created_at.format(DATETIME).to_string(),
                    email,
                })
                .collect(),
            time: 0,
        }),
        Err(e) => refused(e),
    }
}

/// Numbers as the Global API writes them in job records (printfarm's `num`).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn tf(b: bool) -> &'static str {
    if b {
        "t"
    } else {
        "f"
    }
}

#[derive(Serialize)]
struct JobInfo {
    id: String,
    status_id: String,
    datetime: String,
    printer_id: String,
    print_time: String,
    gif_image: Option<()>,
    picture: Option<String>,
    notes: Option<String>,
    file_id: String,
    filename: String,
    file_size: String,
    printing_duration: String,
    material_type: String,
    layer_height: String,
    color_numbers: String,
    extruders: String,
    weight: String,
    heated_bed: &'static str,
    heated_bed_temperature: String,
    raft: &'static str,
    supports: &'static str,
    file_cost: Option<String>,
    cost: Option<String>,
    email: String,
}

/// Call 9: the job with its file and its owner's email, in one statement (printfarm reads the job,
/// its file and its owner with a statement each: `Job::find`, `StoredFile::find`, `User::find`).
async fn get_job_info(floor: web::Data<Floor>, form: web::Form<JobIdForm>) -> HttpResponse {
    let id = form.job_id;
    let info = with_conn(&floor, move |c, _, _| {
        let (job, file, email) = jobs::table
            .inner_join(files::table)
            .inner_join(users::table.on(users::id.eq(jobs::user_id)))
            .filter(jobs::id.eq(id))
            .select((Job::as_select(), StoredFile::as_select(), users::email))
            .first::<(Job, StoredFile, String)>(c)
            .optional()?
            .ok_or_else(|| Refusal::NotFound(format!("Job {id} not found")))?;
        Ok(JobInfo {
            id: job.id.to_string(),
            status_id: job.status_id.to_string(),
            datetime: job.created_at.format(DATETIME).to_string(),
            printer_id: job.printer_id.to_string(),
            print_time: job.print_time.to_string(),
            gif_image: None,
            picture: file.picture,
            notes: job.notes,
            file_id: file.id.to_string(),
            filename: file.filename,
            file_size: file.size.to_string(),
            printing_duration: job.printing_duration.to_string(),
            material_type: job.material_type,
            layer_height: num(job.layer_height),
            color_numbers: job.color_numbers.to_string(),
            extruders: job.extruders,
            weight: num(job.weight),
            heated_bed: tf(job.heated_bed),
            heated_bed_temperature: job.heated_bed_temperature.to_string(),
            raft: tf(job.raft),
            supports: tf(job.supports),
            file_cost: job.file_cost.map(num),
            cost: job.cost.map(num),
            email,
        })
    })
    .await;
    answer(info)
}

/// The organization's printers by id (`Printer::in_org`): the main statement of both printer
/// lists. For an organization admin (the bench user) they are exactly the printers listed.
fn printers_in_org(c: &mut DbConn, organization: i64) -> QueryResult<Vec<Printer>> {
    printers::table
        .filter(printers::organization_id.eq(organization))
        .order(printers::id.asc())
        .load::<Printer>(c)
}

/// printfarm's `[printers] offline_after_secs` default.
const OFFLINE_AFTER_SECS: i64 = 60;

/// printfarm's `display_state`: the agent's state while it polls, `notconnected` otherwise.
fn display_state(p: &Printer, now: NaiveDateTime) -> String {
    match p.last_seen_at {
        Some(seen) if (now - seen).num_seconds() <= OFFLINE_AFTER_SECS => {
            let idle = p.state == "ready" || p.state == "bed_not_clear";
            if p.maintenance_note.is_some() && p.current_job_id.is_none() && idle {
                "local_mode".to_string()
            } else {
                p.state.clone()
            }
        }
        _ => "notconnected".to_string(),
    }
}

/// Temperatures as whole degrees (printfarm's `int_temps`).
fn int_temps(text: Option<&str>) -> Option<Vec<Option<i64>>> {
    let list = serde_json::from_str::<Vec<Option<f64>>>(text?).ok()?;
    Some(
        list.into_iter()
            .map(|t| t.map(|v| v.round() as i64))
            .collect(),
    )
}

#[derive(Serialize)]
struct UserPrinterItem {
    id: i64,
    printer_id: i64,
    name: String,
    r#type: String,
    state: String,
    local_ip: String,
    filaments: Option<String>,
    percent: i64,
    temps: Option<Vec<Option<i64>>>,
    target_temps: Option<Vec<Option<i64>>>,
    tray_clear: bool,
}

/// Call 17: the printers the caller may use. `type` is empty: the floor does not read the printer
/// types (the seeded printers have none).
async fn get_printers_list(floor: web::Data<Floor>, _form: web::Form<SessionOnly>) -> HttpResponse {
    let items = with_conn(&floor, move |c, _, organization| {
        let now = chrono::Utc::now().naive_utc();
        Ok(printers_in_org(c, organization)?
            .into_iter()
            .map(|p| UserPrinterItem {
                id: p.id,
                printer_id: p.id,
                r#type: String::new(),
                state: display_state(&p, now),
                temps: int_temps(p.temps.as_deref()),
                target_temps: int_temps(p.target_temps.as_deref()),
                percent: p.percent.round() as i64,
                name: p.name,
                local_ip: p.local_ip,
                filaments: p.filaments,
                tray_clear: p.tray_clear,
            })
            .collect::<Vec<_>>())
    })
    .await;
    answer(items)
}

#[derive(Serialize)]
struct OrgPrinterItem {
    id: i64,
    name: String,
    r#type: String,
    snr: String,
    host_num: String,
    local_ip: String,
    workgroups: Option<Vec<i64>>,
    state: String,
    temps: Option<Vec<Option<i64>>>,
    target_temps: Option<Vec<Option<i64>>>,
    percent: i64,
}

/// Call 7: the organization's printers. `type` is empty and `workgroups` null: the floor reads
/// neither the printer types nor the printers' workgroups (the seeded printers have none).
async fn get_organization_printers_list(
    floor: web::Data<Floor>,
    _form: web::Form<SessionOnly>,
) -> HttpResponse {
    let items = with_conn(&floor, move |c, _, organization| {
        let now = chrono::Utc::now().naive_utc();
        Ok(printers_in_org(c, organization)?
            .into_iter()
            .map(|p| OrgPrinterItem {
                id: p.id,
                r#type: String::new(),
                workgroups: None,
                state: display_state(&p, now),
                temps: int_temps(p.temps.as_deref()),
                target_temps: int_temps(p.target_temps.as_deref()),
                percent: p.percent.round() as i64,
                name: p.name,
                snr: p.snr,
                host_num: p.host_num,
                local_ip: p.local_ip,
            })
            .collect::<Vec<_>>())
    })
    .await;
    answer(items)
}

#[derive(Serialize)]
struct ShareItem {
    id: i64,
    email: String,
    number_of_prints: Option<i32>,
    printer_ownership_id: i32,
}

/// Call 13: the printer's shares (`PrinterShare::of_printer`).
async fn get_printer_shares(
    floor: web::Data<Floor>,
    form: web::Form<PrinterIdForm>,
) -> HttpResponse {
    let printer = form.printer_id;
    let items = with_conn(&floor, move |c, _, _| {
        Ok(printer_shares::table
            .filter(printer_shares::printer_id.eq(printer))
            .order(printer_shares::id.asc())
            .load::<PrinterShare>(c)?
            .into_iter()
            .map(|s| ShareItem {
                id: s.id,
                email: s.email,
                number_of_prints: s.number_of_prints.map(|n| (n - s.prints_used).max(0)),
                printer_ownership_id: s.role_id,
            })
            .collect::<Vec<_>>())
    })
    .await;
    answer(items)
}

#[derive(Serialize)]
struct ProjectItem {
    id: i64,
    name: String,
    color: String,
}

/// Call 5: the caller's projects (`Project::of_user`).
async fn get_projects(floor: web::Data<Floor>, _form: web::Form<SessionOnly>) -> HttpResponse {
    let items = with_conn(&floor, move |c, user, _| {
        Ok(projects::table
            .filter(projects::user_id.eq(user))
            .order(projects::id.asc())
            .load::<Project>(c)?
            .into_iter()
            .map(|p| ProjectItem {
                id: p.id,
                name: p.name,
                color: p.color,
            })
            .collect::<Vec<_>>())
    })
    .await;
    answer(items)
}

#[derive(Serialize)]
struct WorkgroupItem {
    id: i64,
    name: String,
    rights: i32,
}

/// printfarm's "can print" workgroup right, what an organization admin gets in workgroups they
/// are not a member of.
const CAN_PRINT: i32 = 2;

/// Call 6: the organization's workgroups (`Workgroup::all_in_org`, what an organization admin
/// sees; printfarm also reads the caller's own memberships for their rights).
async fn get_workgroups_simple_list(
    floor: web::Data<Floor>,
    _form: web::Form<SessionOnly>,
) -> HttpResponse {
    let items = with_conn(&floor, move |c, _, organization| {
        Ok(workgroups::table
            .filter(workgroups::organization_id.eq(organization))
            .order(workgroups::id.asc())
            .load::<Workgroup>(c)?
            .into_iter()
            .map(|w| WorkgroupItem {
                id: w.id,
                name: w.name,
                rights: CAN_PRINT,
            })
            .collect::<Vec<_>>())
    })
    .await;
    answer(items)
}

async fn readyz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

// --- start-up --------------------------------------------------------------------------------

fn open(o: &Options) -> Result<Floor, String> {
    let manager = Manager::new(&o.database_url);
    let postgres = manager.postgres;
    // One direct connection first: real connection errors, WAL once, and the user.
    let mut first = r2d2::ManageConnection::connect(&manager).map_err(|e| e.to_string())?;
    if let DbConn::Sqlite(c) = &mut first {
        c.batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(|e| e.to_string())?;
    }
    let (user_id, organization_id) = users::table
        .filter(users::email.eq(&o.user_email))
        .select((users::id, users::organization_id))
        .first::<(i64, i64)>(&mut first)
        .map_err(|e| format!("user {}: {e}", o.user_email))?;
    drop(first);
    let size = o.pool_size.unwrap_or(if postgres { 10 } else { 4 });
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "floor: {} pool of {size}, answering as user {user_id} of organization {organization_id}",
        if postgres { "postgres" } else { "sqlite" }
    );
    Ok(Floor {
        pool,
        user_id,
        organization_id,
    })
}

fn main() -> std::io::Result<()> {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let floor = match open(&o) {
        Ok(f) => web::Data::new(f),
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::exit(1);
        }
    };
    let workers = o.workers;
    let bind = o.bind.clone();
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(floor.clone())
                .route("/readyz", web::get().to(readyz))
                .service(
                    web::scope("/apiglobal")
                        .route("/check_session", web::post().to(check_session))
                        .route("/get_projects", web::post().to(get_projects))
                        .route(
                            "/get_workgroups_simple_list",
                            web::post().to(get_workgroups_simple_list),
                        )
                        .route(
                            "/get_organization_printers_list",
                            web::post().to(get_organization_printers_list),
                        )
                        .route("/get_printer_jobs", web::post().to(get_printer_jobs))
                        .route("/get_job_info", web::post().to(get_job_info))
                        .route("/get_printer_shares", web::post().to(get_printer_shares))
                        .route("/get_printers_list", web::post().to(get_printers_list)),
                )
        })
        .workers(workers)
        .bind(&bind)?
        .run();
        eprintln!("floor: listening on {bind} with {workers} workers");
        server.await
    })
}
