//! Upgrades (issue #19): a database and file store written by an older build (made with that
//! build by `tests/fixtures/upgrade/make.py`: a signed-in admin, uploads, a registered printer,
//! a finished, a cancelled and a queued job) migrate forward when this build starts on them,
//! and the read calls answer as the old build did. Every field of an old answer keeps its value
//! (this build may add fields); the printer's connection state is the one exception, since the
//! old agent has long stopped reporting. SQLite from the file, Postgres from a `pg_dump`.

use crate::common;

use std::path::{Path, PathBuf};

use common::{PgDatabase, TestApp};
use serde_json::Value;

/// The commit of the build that made the fixtures.
const MADE_BY: &str = "b1dbb87";
const ADMIN: &str = "admin@upgrade.test";

fn fixture(suffix: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(format!("{MADE_BY}{suffix}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Fields of the printer lists that follow the printer's connection, which ended with the old
/// build (and is judged by the time since its last report).
const CONNECTION: &[&str] = &[
    "printer_state",
    "state",
    "online",
    "status_id",
    "last_report",
];

/// Where `new` differs from `old`: a missing field, another value, another list length.
fn differences(old: &Value, new: &Value, path: &str, lenient: bool, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let here = format!("{path}.{k}");
                match n.get(k) {
                    None => out.push(format!("{here}: missing (was {v})")),
                    Some(_) if lenient && CONNECTION.contains(&k.as_str()) => {}
                    Some(nv) => differences(v, nv, &here, lenient, out),
                }
            }
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => {
            for (i, (ov, nv)) in o.iter().zip(n).enumerate() {
                differences(ov, nv, &format!("{path}[{i}]"), lenient, out);
            }
        }
        _ if old == new => {}
        _ => out.push(format!("{path}: was {old}, now {new}")),
    }
}

async fn answers_as_before(app: &TestApp, made: &Value) {
    let password = made["password"].as_str().unwrap();
    let session = app.login(ADMIN, password).await;
    let printer = made["printer_id"].to_string();
    let file_id = made["files"][0].to_string();
    let mut diffs = Vec::new();
    for (call, old) in made["answers"].as_object().unwrap() {
        let (name, arg) = call.split_once(' ').unwrap_or((call, ""));
        let mut form = vec![("session", session.as_str())];
        match name {
            "get_printer_jobs" => form.push(("printer_id", printer.as_str())),
            "get_job_info" => form.push(("job_id", arg)),
            "get_slicer_settings_for_gcode" => form.push(("file_id", file_id.as_str())),
            _ => {}
        }
        let (status, body) = app.post(&format!("/apiglobal/{name}"), &form).await;
        assert_eq!(status, 200, "{call}: {body}");
        let lenient = name.contains("printers_list");
        differences(old, &body["message"], call, lenient, &mut diffs);
    }
    assert!(
        diffs.is_empty(),
        "answers changed by the upgrade:\n{}",
        diffs.join("\n")
    );

    // The stored G-code is still served, byte for byte.
    let gcode = made["files"][0].as_i64().unwrap();
    let res = app
        .client
        .get(app.url(&format!("/files/{gcode}/download")))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let original =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cube_20mm.gcode"))
            .unwrap();
    assert!(res.bytes().await.unwrap().as_ref() == original.as_slice());

    // And the upgraded farm goes on working: the queued job can be cancelled, a new one queued.
    let queued = made["jobs"][2].as_str().unwrap();
    let (status, body) = app
        .post(
            "/apiglobal/job_cancel",
            &[("session", &session), ("job_id", queued)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &session),
                ("file_id", &gcode.to_string()),
                ("printer_id", &printer),
                ("only_queue", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn made(backend: &str) -> Value {
    let text = std::fs::read_to_string(fixture(".json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()[backend].clone()
}

#[actix_web::test]
async fn an_older_sqlite_database_migrates_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("test.db");
    std::fs::copy(fixture(".sqlite3"), &db).unwrap();
    copy_dir(&fixture(".sqlite-files"), &dir.path().join("files"));
    let app = TestApp::start_on(db.display().to_string(), dir, None, &[]).await;
    answers_as_before(&app, &made("sqlite")).await;
    app.stop().await;
}

#[actix_web::test]
async fn an_older_postgres_dump_migrates_and_answers_as_before() {
    if !crate::common::pg_client_present("psql") {
        return;
    }
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let out = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(fixture(".pg.sql"))
        .arg(&pg.url)
        .output()
        .expect("psql (Debian: postgresql-client)");
    assert!(
        out.status.success(),
        "loading the dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(".postgres-files"), &dir.path().join("files"));
    let url = pg.url.clone();
    let app = TestApp::start_on(url, dir, Some(pg), &[]).await;
    answers_as_before(&app, &made("postgres")).await;
    app.stop().await;
}
