//! Test harness: a real printfarm HTTP server on 127.0.0.1:<random port> over a database of
//! its own — a fresh SQLite file, or a fresh Postgres database created for the test.
//!
//! Postgres: `TEST_PG_URL` names an admin connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When Postgres cannot be reached the
//! Postgres half of each test is skipped with a loud message — unless
//! `PRINTFARM_TEST_REQUIRE_PG=1` (set by CI), which turns the skip into a failure.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::{Connection, PgConnection, RunQueryDsl};
use printfarm::config::Config;
use printfarm::db::DbConn;
use printfarm::services::bootstrap::{self, NewAccount};
use printfarm::AppState;
use serde_json::Value;

pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub db_url: String,
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub org_id: i64,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
    pg_drop: Option<PgDatabase>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The slicer the tests' servers run: `prusa-slicer`, or with `PRINTFARM_TEST_HIDE_SLICER=1` a
/// path that does not exist, so that the suite can be run as on a machine without PrusaSlicer
/// (where this machine has it) to check that every test needing it skips, loudly.
pub fn slicer_command() -> &'static str {
    if std::env::var("PRINTFARM_TEST_HIDE_SLICER").is_ok_and(|v| v == "1") {
        "/nonexistent/prusa-slicer"
    } else {
        "prusa-slicer"
    }
}

/// Whether the tests that slice can run here. PrusaSlicer comes from the system's package
/// manager, which no test drives: without it such a test prints one loud line naming the
/// install command and passes, unless `PRINTFARM_TEST_REQUIRE_PEERS=1` (CI) makes that a
/// failure.
pub fn slicer_present() -> bool {
    if printfarm::slicer::installed(slicer_command()) {
        return true;
    }
    let msg = "PrusaSlicer is not installed (apt-get install prusa-slicer)";
    if std::env::var("PRINTFARM_TEST_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("PRINTFARM_TEST_REQUIRE_PEERS=1 but {msg}");
    }
    eprintln!("!!! SKIPPING this test: {msg}. Set PRINTFARM_TEST_REQUIRE_PEERS=1 to fail instead.");
    false
}

/// The path of `name` on the `PATH`, if it is installed.
pub fn program(name: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// Whether a Postgres client program (`pg_dump`, `pg_restore`, `psql`) is installed. It comes
/// from the system's package manager, separately from the server a test may reach: without it
/// the test prints one loud line naming the install command and passes, unless
/// `PRINTFARM_TEST_REQUIRE_PG=1` (CI) makes that a failure.
pub fn pg_client_present(name: &str) -> bool {
    if program(name).is_some() {
        return true;
    }
    let msg = format!("{name} is not installed (apt-get install postgresql-client)");
    if require_pg() {
        panic!("PRINTFARM_TEST_REQUIRE_PG=1 but {msg}");
    }
    eprintln!("!!! SKIPPING this test: {msg}. Set PRINTFARM_TEST_REQUIRE_PG=1 to fail instead.");
    false
}

fn pg_admin_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn require_pg() -> bool {
    std::env::var("PRINTFARM_TEST_REQUIRE_PG").is_ok_and(|v| v == "1")
}

fn with_database(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Configuration overrides a test may set (same keys as the environment variables).
pub type Overrides<'a> = &'a [(&'a str, &'a str)];

impl TestApp {
    /// Starts a server; `None` when Postgres was asked for and is unavailable (and not required).
    pub async fn start(db: Db, overrides: Overrides<'_>) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pg_drop = None;
        let url = match db {
            Db::Sqlite => dir.path().join("test.db").display().to_string(),
            Db::Postgres => {
                let db = PgDatabase::create()?;
                let url = db.url.clone();
                pg_drop = Some(db);
                url
            }
        };
        Some(Self::start_on(url, dir, pg_drop, overrides).await)
    }

    /// A second server instance on this one's database and file store, as when several
    /// instances serve one farm.
    pub async fn second_instance(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        // The file store is shared, as an S3 bucket would be.
        let files = self._dir.path().join("files").display().to_string();
        let staging = self._dir.path().join("staging").display().to_string();
        let shared = [
            ("PRINTFARM_STORAGE__FILES_DIR", files.as_str()),
            ("PRINTFARM_STORAGE__STAGING_DIR", staging.as_str()),
        ];
        Self::start_on(self.db_url.clone(), dir, None, &shared).await
    }

    pub async fn start_on(
        url: String,
        dir: tempfile::TempDir,
        pg_drop: Option<PgDatabase>,
        overrides: Overrides<'_>,
    ) -> TestApp {
        let files = dir.path().join("files").display().to_string();
        let staging = dir.path().join("staging").display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), url.clone()),
            ("PRINTFARM_STORAGE__FILES_DIR".into(), files),
            ("PRINTFARM_STORAGE__STAGING_DIR".into(), staging),
            ("PRINTFARM_SERVER__WORKERS".into(), "2".into()),
            ("PRINTFARM_SERVER__SHUTDOWN_TIMEOUT_SECS".into(), "1".into()),
            (
                "PRINTFARM_SLICER__PRUSA_SLICER".into(),
                slicer_command().into(),
            ),
            // Cheaper hashing keeps the suite fast; production cost is the default.
            ("PRINTFARM_AUTH__ARGON2_MEMORY_KIB".into(), "1024".into()),
            ("PRINTFARM_AUTH__ARGON2_ITERATIONS".into(), "1".into()),
            (
                "PRINTFARM_BOOTSTRAP__ADMIN_EMAIL".into(),
                "bootstrap-admin@printfarm.test".into(),
            ),
        ];
        for (k, v) in overrides {
            env.push((k.to_string(), v.to_string()));
        }
        // Bound first, so links the server hands out (downloads) name the real port (unless
        // the test sets its own public URL, e.g. none).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !overrides
            .iter()
            .any(|(k, _)| *k == "PRINTFARM_SERVER__PUBLIC_URL")
        {
            env.push((
                "PRINTFARM_SERVER__PUBLIC_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        let config = Config::load_from(&env).expect("test config");
        let state = AppState::init(config).expect("app state");
        let org_id = {
            use diesel::prelude::*;
            use printfarm::db::schema::organizations;
            let mut c = state.pool.get().unwrap();
            organizations::table
                .select(organizations::id)
                .order(organizations::id)
                .first::<i64>(&mut *c)
                .expect("bootstrap organization")
        };
        let server = printfarm::server(state.clone(), listener).expect("server");
        printfarm::spawn_background(state.clone());
        let handle = server.handle();
        actix_web::rt::spawn(server);
        TestApp {
            db_url: url,
            base: format!("http://127.0.0.1:{port}"),
            state,
            client: reqwest::Client::builder().build().unwrap(),
            org_id,
            handle,
            _dir: dir,
            pg_drop,
        }
    }

    /// The test's file store (a local folder).
    pub fn files_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("files")
    }

    /// Every file under the test's storage and staging folders (relative paths).
    pub fn stored_files(&self) -> Vec<String> {
        fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(base, &p, out);
                    } else if e.file_name() != ".lock" {
                        // (a running server's staging lock, not a file it stored)
                        out.push(p.strip_prefix(base).unwrap().display().to_string());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for sub in ["files", "staging"] {
            walk(self._dir.path(), &self._dir.path().join(sub), &mut out);
        }
        out.sort();
        out
    }

    /// Uploads bytes as `filename` with extra form fields; returns (status, body).
    pub async fn upload(
        &self,
        session: &str,
        filename: &str,
        bytes: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new().text("session", session.to_string());
        for (k, v) in extra {
            form = form.text(k.to_string(), v.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()),
        );
        let res = self
            .client
            .post(self.url("/apiglobal/upload"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    pub fn conn(&self) -> printfarm::db::PooledConn {
        self.state.pool.get().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The `/metrics` page as this machine's client reads it.
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// POSTs a form and returns (status, JSON body).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    /// POSTs a raw body with the given content type (None = no header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        read(req.send().await.unwrap()).await
    }

    pub fn create_org(&self, name: &str) -> i64 {
        let mut c = self.conn();
        bootstrap::create_organization(&mut c, name).unwrap().id.0
    }

    pub fn create_user(&self, org: i64, email: &str, role: i32) -> i64 {
        let mut c = self.conn();
        let conn: &mut DbConn = &mut c;
        bootstrap::create_user(
            conn,
            &self.state.hasher,
            &NewAccount {
                organization_id: printfarm::db::models::OrgId(org),
                email,
                password: Some(PASSWORD),
                firstname: "Test",
                lastname: "User",
                company: "",
                access_role: role,
                gdpr: 3,
            },
        )
        .unwrap()
        .id
        .0
    }

    /// Creates a user with a role in an organization and signs in; returns (user id, session).
    pub async fn user_with_session(&self, org: i64, email: &str, role: i32) -> (i64, String) {
        let id = self.create_user(org, email, role);
        (id, self.login(email, PASSWORD).await)
    }

    /// Creates a member in the default organization and signs in; returns the session.
    pub async fn login_new_user(&self, email: &str) -> String {
        self.create_user(self.org_id, email, 0);
        self.login(email, PASSWORD).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/apiglobal/login",
                &[("username", email), ("password", password)],
            )
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        body["message"]["session"].as_str().unwrap().to_string()
    }

    /// Stops the server the way SIGTERM does in production: held long polls answer at once,
    /// then in-flight requests finish.
    pub async fn stop(self) {
        self.state.notifier.shut_down();
        self.handle.stop(true).await;
        self.state.release_database();
        let TestApp { state, pg_drop, .. } = self;
        drop(state);
        drop(pg_drop);
    }
}

/// A Postgres database made for one test and dropped with it.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// `None` (with a loud message) when Postgres is unreachable and not required.
    pub fn create() -> Option<PgDatabase> {
        let admin = pg_admin_url();
        let name = format!(
            "pf_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        match PgConnection::establish(&admin) {
            Ok(mut c) => {
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .expect("create test database");
            }
            Err(e) => {
                if require_pg() {
                    panic!("Postgres is required (PRINTFARM_TEST_REQUIRE_PG=1) but {admin} is unreachable: {e}");
                }
                eprintln!("!!! SKIPPING the Postgres half of this test: {admin} is unreachable ({e}). Set PRINTFARM_TEST_REQUIRE_PG=1 to fail instead.");
                return None;
            }
        }
        let url = with_database(&admin, &name);
        Some(PgDatabase { admin, name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c);
        }
    }
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:08x}")
}

pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, body)
}

/// Asserts the failure envelope: the status, `result: false`, and a string message.
pub fn assert_fail(got: &(u16, Value), status: u16) -> String {
    assert_eq!(got.0, status, "unexpected status, body {}", got.1);
    assert_eq!(got.1["result"], Value::Bool(false), "body {}", got.1);
    let msg = got.1["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message must be a string: {}", got.1));
    assert!(!msg.is_empty());
    msg.to_string()
}

/// Declares each listed `async fn name(db: Db)` as two tests, `sqlite::name` and
/// `postgres::name`, for tests that start their own server (with configuration overrides).
#[macro_export]
macro_rules! backend_cases {
    ($($name:ident),* $(,)?) => {
        mod sqlite_configured {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::common::Db::Sqlite).await;
                }
            )*
        }
        mod postgres_configured {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::common::Db::Postgres).await;
                }
            )*
        }
    };
}

/// Declares each listed `async fn name(app: &TestApp)` as two tests, `sqlite::name` and
/// `postgres::name`, each on its own server and database.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    let app = $crate::common::TestApp::start($crate::common::Db::Sqlite, &[]).await.unwrap();
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    let Some(app) = $crate::common::TestApp::start($crate::common::Db::Postgres, &[]).await else { return };
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
    };
}

/// The access log lines written so far by every server in this test process (captured once
/// per process, from the first call on).
pub fn access_log() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<std::sync::Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buf = LOG.get_or_init(|| {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("printfarm::access=info"))
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per process");
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A 3MF of the 20 mm cube given in centimetres (2 × 2 × 2 cm), placed by a build transform,
/// with `extra` archive entries (name, content) such as a slicer's `Metadata/*.config`.
pub fn cube_3mf(extra: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let v = [
        (0, 0, 0),
        (2, 0, 0),
        (2, 2, 0),
        (0, 2, 0),
        (0, 0, 2),
        (2, 0, 2),
        (2, 2, 2),
        (0, 2, 2),
    ];
    let t = [
        (0, 3, 2),
        (0, 2, 1),
        (4, 5, 6),
        (4, 6, 7),
        (0, 1, 5),
        (0, 5, 4),
        (1, 2, 6),
        (1, 6, 5),
        (2, 3, 7),
        (2, 7, 6),
        (3, 0, 4),
        (3, 4, 7),
    ];
    let mut model = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<model unit=\"centimeter\" xml:lang=\"en-US\" \
         xmlns=\"http://schemas.microsoft.com/3dmanufacturing/core/2015/02\"><resources><object id=\"1\" type=\"model\"><mesh><vertices>",
    );
    for (x, y, z) in v {
        model += &format!("<vertex x=\"{x}\" y=\"{y}\" z=\"{z}\"/>");
    }
    model += "</vertices><triangles>";
    for (a, b, c) in t {
        model += &format!("<triangle v1=\"{a}\" v2=\"{b}\" v3=\"{c}\"/>");
    }
    model += "</triangles></mesh></object></resources><build><item objectid=\"1\" transform=\"1 0 0 0 1 0 0 0 1 1 0 0\"/></build></model>";
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("[Content_Types].xml", o).unwrap();
        z.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"model\" ContentType=\"application/vnd.ms-package.3dmanufacturing-3dmodel+xml\"/></Types>").unwrap();
        z.start_file("_rels/.rels", o).unwrap();
        z.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Target=\"/3D/3dmodel.model\" Id=\"rel0\" Type=\"http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel\"/></Relationships>").unwrap();
        z.start_file("3D/3dmodel.model", o).unwrap();
        z.write_all(model.as_bytes()).unwrap();
        for (name, content) in extra {
            z.start_file(*name, o).unwrap();
            z.write_all(content).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

impl TestApp {
    /// One call of the printer protocol (`/apiprinter/v1/printer/<action>`) that must answer 200.
    pub async fn agent(&self, action: &str, body: Value) -> Value {
        let res = self
            .client
            .post(self.url(&format!("/apiprinter/v1/printer/{action}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "agent {action}");
        res.json().await.unwrap()
    }

    /// Registers a virtual printer through the agent protocol and adds it to the session's
    /// organization; returns (printer id, agent token).
    pub async fn register_printer(&self, session: &str, snr: &str) -> (i64, String) {
        let dev =
            serde_json::json!({"VID": "VIRT", "PID": "VIRT", "SNR": snr, "type": "PRUSA_MK4"});
        let code = self.agent("register", dev.clone()).await["registration_code"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body) = self
            .post(
                "/apiglobal/add_printer_by_registration_code",
                &[("session", session), ("registration_code", &code)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let id = body["message"]["printer_id"].as_i64().unwrap();
        let mut d = dev;
        d["registration_code"] = serde_json::json!(code);
        let token = self.agent("register", d).await["auth_token"]
            .as_str()
            .unwrap()
            .to_string();
        (id, token)
    }
}
