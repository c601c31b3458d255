//! kill -9 of a real `printfarm serve` at each step of an upload and of a slice, then a
//! restart: nothing may be left behind (staging, stored objects without a row, multipart
//! parts), no slicer may outlive its server, and the interrupted slice must complete.
//! The server stops at a step through a fail point (`FAILPOINTS`, compiled into test builds
//! only), and is killed there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use printfarm::db::schema::{files, slice_jobs};
use serde_json::Value;

use crate::common::{Db, PgDatabase};

crate::backend_cases!(
    a_registration_that_fails_keeps_no_stored_object,
    an_upload_killed_at_each_step_leaves_nothing,
    a_slice_killed_at_each_step_finishes_after_restart_and_leaves_nothing,
);

const PASSWORD: &str = "crash-test-password-1";

/// One farm's database and folders, served by successive `printfarm serve` processes.
struct Farm {
    dir: tempfile::TempDir,
    db_url: String,
    _pg: Option<PgDatabase>,
}

struct Served {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Served {
    /// A Global API call's JSON answer (form body, or multipart when `form` is given).
    async fn call(
        &self,
        call: &str,
        params: &[(&str, &str)],
        form: Option<reqwest::multipart::Form>,
    ) -> Value {
        let req = self.client.post(format!("{}/apiglobal/{call}", self.base));
        let req = match form {
            Some(f) => req.multipart(f),
            None => req.form(params),
        };
        req.send().await.unwrap().json().await.unwrap()
    }
}

impl Served {
    /// Asks for a slice of the uploaded model `stl` on a 250×210×220 bed; its job uuid.
    async fn slice(&self, session: &str, stl: i64) -> String {
        let profile = serde_json::json!({"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220});
        let body = self
            .call(
                "slice",
                &[
                    ("session", session),
                    ("file_id", &stl.to_string()),
                    ("profile", &profile.to_string()),
                ],
                None,
            )
            .await;
        body["message"]["job_id"].as_str().unwrap().to_string()
    }

    /// Waits (90 s at most) until the slice `uuid` is done or failed; its status message.
    async fn slice_ended(&self, session: &str, uuid: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let body = self
                .call(
                    "get_slice_status",
                    &[("session", session), ("job_id", uuid)],
                    None,
                )
                .await;
            if body["message"]["status"] == "done" || body["message"]["status"] == "failed" {
                return body["message"].clone();
            }
            assert!(Instant::now() < deadline, "slice stuck: {body}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Farm {
    fn new(db: Db) -> Option<Farm> {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, pg) = match db {
            Db::Sqlite => (dir.path().join("farm.db").display().to_string(), None),
            Db::Postgres => {
                let pg = PgDatabase::create()?;
                (pg.url.clone(), Some(pg))
            }
        };
        Some(Farm {
            dir,
            db_url,
            _pg: pg,
        })
    }

    fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    fn staging_dir(&self) -> PathBuf {
        self.dir.path().join("staging")
    }

    fn command(&self, extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_printfarm"));
        cmd.env("DATABASE_URL", &self.db_url)
            .env("PRINTFARM_STORAGE__FILES_DIR", self.files_dir())
            .env("PRINTFARM_STORAGE__STAGING_DIR", self.staging_dir())
            .env(
                "PRINTFARM_SLICER__PRUSA_SLICER",
                crate::common::slicer_command(),
            )
            .env("PRINTFARM_AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("PRINTFARM_AUTH__ARGON2_ITERATIONS", "1")
            .env("PRINTFARM_BOOTSTRAP__ADMIN_EMAIL", "bootstrap@crash.test")
            .env("PRINTFARM_SERVER__WORKERS", "2")
            .env("PRINTFARM_SERVER__SHUTDOWN_TIMEOUT_SECS", "1")
            .env("PRINTFARM_SLICER__LEASE_SECS", "3")
            .env("PRINTFARM_LOG__LEVEL", "warn")
            .env_remove("FAILPOINTS");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `printfarm serve` and waits until it is ready.
    async fn serve(&self, extra: &[(&str, &str)]) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let bind = format!("127.0.0.1:{port}");
        let mut all: Vec<(&str, &str)> = vec![
            ("PRINTFARM_SERVER__BIND", &bind),
            ("PRINTFARM_SERVER__PUBLIC_URL", &base),
        ];
        all.extend_from_slice(extra);
        let child = self
            .command(&all)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let served = Served {
            child,
            base,
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = served
                .client
                .get(format!("{}/readyz", served.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return served;
            }
            assert!(Instant::now() < deadline, "printfarm serve did not start");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a member through the admin CLI (the way an operator does) and signs in.
    async fn member(&self, served: &Served, email: &str) -> String {
        let out = self
            .command(&[("PRINTFARM_NEW_PASSWORD", PASSWORD)])
            .args(["admin", "create-org", "--name", email])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let org = String::from_utf8(out.stdout)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .to_string();
        let out = self
            .command(&[("PRINTFARM_NEW_PASSWORD", PASSWORD)])
            .args(["admin", "create-user", "--org", &org, "--email", email])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let body = served
            .call(
                "login",
                &[("username", email), ("password", PASSWORD)],
                None,
            )
            .await;
        body["message"]["session"].as_str().unwrap().to_string()
    }

    fn conn(&self) -> printfarm::db::DbConn {
        printfarm::db::ConnectionManager::new(&self.db_url)
            .establish()
            .unwrap()
    }

    /// Keys the file rows name (content and preview).
    fn row_keys(&self) -> BTreeSet<String> {
        let rows: Vec<(String, Option<String>)> = files::table
            .select((files::storage_key, files::picture))
            .load(&mut self.conn())
            .unwrap();
        rows.into_iter()
            .flat_map(|(k, p)| std::iter::once(k).chain(p.map(|p| format!("render/{p}"))))
            .collect()
    }

    /// What a crash could leave: staging files (not a live server's lock), stored objects no
    /// row names, multipart part files.
    fn leftovers(&self) -> Vec<String> {
        let rows = self.row_keys();
        let mut out = Vec::new();
        for path in walk(&self.staging_dir()) {
            if path.file_name().is_some_and(|n| n != ".lock") {
                out.push(format!("staging: {}", path.display()));
            }
        }
        for path in walk(&self.files_dir()) {
            let key = path
                .strip_prefix(self.files_dir())
                .unwrap()
                .display()
                .to_string();
            if !rows.contains(&key) {
                out.push(format!("store: {key}"));
            }
        }
        out
    }

    /// Waits for the restarted server's first housekeeping pass to clear every leftover.
    async fn wait_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Waits until `seen` holds (the server reached its fail point), then kills it with SIGKILL.
async fn kill_when(mut served: Served, what: &str, seen: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen() {
        assert!(Instant::now() < deadline, "the server never reached {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

/// A valid G-code file padded with comments to `size` bytes.
fn gcode_of_size(size: usize) -> Vec<u8> {
    let mut body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let line = b"; padding to make a large upload ..........................................\n";
    let mut out = Vec::with_capacity(size + body.len());
    while out.len() + body.len() < size {
        out.extend_from_slice(line);
    }
    out.append(&mut body);
    out
}

fn upload_request(served: &Served, session: &str, bytes: Vec<u8>) -> reqwest::RequestBuilder {
    let form = reqwest::multipart::Form::new()
        .text("session", session.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("big.gcode"),
        );
    served
        .client
        .post(format!("{}/apiglobal/upload", served.base))
        .multipart(form)
}

async fn an_upload_killed_at_each_step_leaves_nothing(db: Db) {
    let Some(farm) = Farm::new(db) else { return };
    let session = {
        let served = farm.serve(&[]).await;
        farm.member(&served, "uploader@crash.test").await
    };
    // 20 MiB: the store writes it as a multipart upload of 8 MiB parts.
    let big = gcode_of_size(20 * 1024 * 1024);
    let big_len = big.len() as u64;
    let staged_size = move |farm: &Farm| {
        walk(&farm.staging_dir())
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= big_len))
    };
    type Seen = Box<dyn Fn(&Farm) -> bool>;
    let steps: [(&str, Seen); 3] = [
        // The body is fully staged; analysis has not begun.
        ("upload-staged", Box::new(staged_size)),
        // The first 8 MiB part of the content is written; the rest is not.
        (
            "storage-part",
            Box::new(|farm: &Farm| {
                walk(&farm.files_dir())
                    .iter()
                    .any(|p| p.to_string_lossy().contains('#'))
            }),
        ),
        // Content and preview are stored; the row is not written.
        (
            "upload-stored",
            Box::new(|farm: &Farm| walk(&farm.files_dir()).len() >= 2),
        ),
    ];
    for (step, seen) in steps {
        let failpoint = format!("{step}=sleep(120000)");
        let served = farm.serve(&[("FAILPOINTS", &failpoint)]).await;
        let request = upload_request(&served, &session, big.clone());
        // The upload is held at the fail point; it never answers (the server is killed).
        let pending = actix_web::rt::spawn(async move { request.send().await });
        kill_when(served, step, || seen(&farm)).await;
        pending.abort();
        assert!(
            !farm.leftovers().is_empty(),
            "{step}: the crash must leave something for the restart to clean"
        );

        // Restarted with no grace period for objects without a row (no upload is in flight).
        let served = farm
            .serve(&[("PRINTFARM_STORAGE__ORPHAN_GRACE_SECS", "0")])
            .await;
        farm.wait_clean().await;
        assert!(farm.row_keys().is_empty(), "{step}: no file was registered");
        drop(served);
    }

    // The farm still works, and a completed upload is left alone by the next start's pass.
    let served = farm
        .serve(&[("PRINTFARM_STORAGE__ORPHAN_GRACE_SECS", "0")])
        .await;
    let (status, body) = {
        let res = upload_request(&served, &session, big.clone())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
    drop(served);
    let served = farm
        .serve(&[("PRINTFARM_STORAGE__ORPHAN_GRACE_SECS", "0")])
        .await;
    farm.wait_clean().await;
    assert_eq!(farm.row_keys().len(), 2, "the upload's content and preview");
    assert_eq!(walk(&farm.files_dir()).len(), 2);
    drop(served);
}

/// Process ids whose parent is `parent` and whose command is PrusaSlicer.
fn slicers_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = tail.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) && head.to_lowercase().contains("prusa") {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, t)| !t.trim_start().starts_with('Z'))
    })
}

fn cube_stl() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap()
}

async fn a_slice_killed_at_each_step_finishes_after_restart_and_leaves_nothing(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(farm) = Farm::new(db) else { return };
    let served = farm.serve(&[]).await;
    let session = farm.member(&served, "slicer@crash.test").await;
    let stl = {
        let form = reqwest::multipart::Form::new()
            .text("session", session.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(cube_stl()).file_name("cube.stl"),
            );
        let body = served.call("upload", &[], Some(form)).await;
        body["message"]["file_id"].as_i64().unwrap()
    };
    drop(served);

    for step in ["slicer-running", "slice-stored"] {
        let failpoint = "slice-stored=sleep(120000)".to_string();
        let extra: Vec<(&str, &str)> = if step == "slice-stored" {
            vec![("FAILPOINTS", failpoint.as_str())]
        } else {
            vec![]
        };
        let served = farm.serve(&extra).await;
        let uuid = served.slice(&session, stl).await;
        let pid = served.child.id();
        let mut slicer_pids = Vec::new();
        if step == "slicer-running" {
            let deadline = Instant::now() + Duration::from_secs(60);
            while slicer_pids.is_empty() {
                assert!(Instant::now() < deadline, "the slicer never started");
                slicer_pids = slicers_of(pid);
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
            kill_when(served, step, || true).await;
        } else {
            let files_dir = farm.files_dir();
            let before = walk(&files_dir).len();
            // The G-code and its preview are stored.
            kill_when(served, step, || walk(&files_dir).len() >= before + 2).await;
        }
        // The slicer dies with its server (parent-death signal), not minutes later.
        let deadline = Instant::now() + Duration::from_secs(5);
        while slicer_pids.iter().any(|p| alive(*p)) {
            assert!(Instant::now() < deadline, "PrusaSlicer outlived its server");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!farm.leftovers().is_empty(), "{step}: nothing to clean?");

        // The restarted server reclaims the dead worker's slice once its short lease ran out,
        // and finishes it.
        let served = farm
            .serve(&[("PRINTFARM_STORAGE__ORPHAN_GRACE_SECS", "0")])
            .await;
        let done = served.slice_ended(&session, &uuid).await;
        assert_eq!(done["status"], "done", "{step}: {done}");
        farm.wait_clean().await;
        drop(served);
    }
    let attempts: Vec<i32> = slice_jobs::table
        .select(slice_jobs::attempts)
        .order(slice_jobs::id)
        .load(&mut farm.conn())
        .unwrap();
    assert_eq!(
        attempts,
        vec![2, 2],
        "each slice ran once more after its crash"
    );
}

/// Storing succeeded, registering failed (the fail points answer an error right after both
/// objects are stored): the upload and the slice undo their storing at once, long before any
/// housekeeping pass could (its grace period is the default here).
async fn a_registration_that_fails_keeps_no_stored_object(db: Db) {
    let Some(farm) = Farm::new(db) else { return };
    let served = farm.serve(&[]).await;
    let session = farm.member(&served, "undo@crash.test").await;
    let upload = |bytes: Vec<u8>, name: &str| {
        reqwest::multipart::Form::new()
            .text("session", session.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            )
    };
    let stl = served
        .call("upload", &[], Some(upload(cube_stl(), "cube.stl")))
        .await;
    let stl = stl["message"]["file_id"].as_i64().unwrap();
    drop(served);

    let served = farm
        .serve(&[("FAILPOINTS", "upload-stored=return;slice-stored=return")])
        .await;
    let body = served
        .call(
            "upload",
            &[],
            Some(upload(gcode_of_size(64 * 1024), "late.gcode")),
        )
        .await;
    assert_eq!(body["result"], false, "{body}");
    assert_eq!(farm.leftovers(), Vec::<String>::new(), "after the upload");

    let uuid = served.slice(&session, stl).await;
    let ended = served.slice_ended(&session, &uuid).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(farm.leftovers(), Vec::<String>::new(), "after the slice");
}
