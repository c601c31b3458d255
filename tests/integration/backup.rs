//! Backups (issue #19): `printfarm admin backup` copies a running SQLite farm (database and
//! files), `restore` refuses while a server runs and then brings back exactly the answers of
//! the moment of the backup; a Postgres farm comes back the same through pg_dump/pg_restore.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{PgDatabase, TestApp};
use serde_json::{json, Value};

/// A farm with a person, a printer, a file and a finished job; answers (session, printer,
/// file, job).
async fn farm(app: &TestApp, email: &str) -> (String, i64, i64, i64) {
    let session = app.login_new_user(email).await;
    let (printer, token) = app.register_printer(&session, "BACKUP-1").await;
    let report = |state: &str, percent: f64| json!({"auth_token": token, "report": {"state": state, "percent": percent}});
    app.agent("command", report("ready", 0.0)).await;
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(&session, "kept.gcode", gcode, &[]).await;
    assert_eq!(status, 200, "{body}");
    let file = body["message"]["file_id"].as_i64().unwrap();
    let job = print(app, &session, file, printer).await;
    let cmd = app.agent("command", report("ready", 0.0)).await;
    let ack = json!({"number": cmd["number"], "result": true});
    let mut printing = report("printing", 50.0);
    printing["command_ack"] = ack;
    app.agent("command", printing).await;
    app.agent("command", report("printing", 100.0)).await;
    app.agent("command", report("ready", 100.0)).await;
    (session, printer, file, job)
}

async fn print(app: &TestApp, session: &str, file: i64, printer: i64) -> i64 {
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", session),
                ("file_id", &file.to_string()),
                ("printer_id", &printer.to_string()),
                ("only_queue", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["job_id"].as_str().unwrap().parse().unwrap()
}

/// What the person's clients see: printers, the printer's jobs, a job, the file's bytes.
async fn answers(app: &TestApp, email: &str, printer: i64, file: i64, job: i64) -> Vec<Value> {
    let session = app.login(email, common::PASSWORD).await;
    let mut out = vec![];
    for (call, extra) in [
        ("get_printers_list", vec![]),
        (
            "get_printer_jobs",
            vec![("printer_id", printer.to_string())],
        ),
        ("get_job_info", vec![("job_id", job.to_string())]),
        ("get_projects", vec![]),
    ] {
        let mut form = vec![("session", session.as_str())];
        form.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let (status, mut body) = app.post(&format!("/apiglobal/{call}"), &form).await;
        assert_eq!(status, 200, "{call}: {body}");
        // The change cursor and last-seen times move with any later write.
        if let Some(m) = body.as_object_mut() {
            m.remove("time");
        }
        out.push(body);
    }
    let res = app
        .client
        .get(app.url(&format!("/files/{file}/download")))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    use sha2::Digest;
    let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
    out.push(json!({"file_bytes": bytes.len(), "sha256": sha}));
    out
}

fn cli(db: &Path, files: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_printfarm"))
        .args(args)
        .env("DATABASE_URL", db)
        .env("PRINTFARM_STORAGE__FILES_DIR", files)
        .env("PRINTFARM_LOG__LEVEL", "warn")
        .output()
        .expect("run printfarm")
}

#[actix_web::test]
async fn a_sqlite_backup_restores_the_answers_of_its_moment() {
    let dir = tempfile::tempdir().unwrap();
    let (db, files) = (dir.path().join("farm.db"), dir.path().join("files"));
    let staging = dir.path().join("staging");
    let env = [
        ("PRINTFARM_STORAGE__FILES_DIR", files.to_str().unwrap()),
        ("PRINTFARM_STORAGE__STAGING_DIR", staging.to_str().unwrap()),
    ];
    let email = "keeper@example.com";
    let app = TestApp::start_on(
        db.display().to_string(),
        tempfile::tempdir().unwrap(),
        None,
        &env,
    )
    .await;
    let (session, printer, file, job) = farm(&app, email).await;
    let before = answers(&app, email, printer, file, job).await;

    // While the server runs.
    let backup = dir.path().join("backup-1");
    let out = cli(
        &db,
        &files,
        &["admin", "backup", "--to", backup.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("backed up the database"), "{said}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap())
            .unwrap();
    assert!(manifest["files"].as_u64().unwrap() >= 1, "{manifest}");
    // Never over an earlier backup.
    let out = cli(
        &db,
        &files,
        &["admin", "backup", "--to", backup.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // Later changes: a second job and file, which the restore takes away.
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&session, "later.gcode", gcode, &[]).await;
    let later = up["message"]["file_id"].as_i64().unwrap();
    print(&app, &session, later, printer).await;
    assert_ne!(answers(&app, email, printer, file, job).await, before);

    // Not under a running server.
    let out = cli(
        &db,
        &files,
        &["admin", "restore", "--from", backup.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("server is running"), "{err}");
    app.stop().await;

    let out = cli(
        &db,
        &files,
        &["admin", "restore", "--from", backup.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = TestApp::start_on(
        db.display().to_string(),
        tempfile::tempdir().unwrap(),
        None,
        &env,
    )
    .await;
    assert_eq!(answers(&app, email, printer, file, job).await, before);
    // The later file is gone with its row; the store kept the files from before aside.
    let session = app.login(email, common::PASSWORD).await;
    let res = app
        .client
        .get(app.url(&format!("/files/{later}/download")))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(dir.path().join("files.before-restore").is_dir());
    app.stop().await;

    // Not a backup, or a damaged one: refused, nothing replaced.
    let bogus = dir.path().join("bogus");
    std::fs::create_dir_all(&bogus).unwrap();
    let out = cli(
        &db,
        &files,
        &["admin", "restore", "--from", bogus.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a printfarm backup"));
    std::fs::write(
        bogus.join("printfarm.db"),
        b"not a database at all, just bytes",
    )
    .unwrap();
    std::fs::copy(backup.join("manifest.json"), bogus.join("manifest.json")).unwrap();
    let out = cli(
        &db,
        &files,
        &["admin", "restore", "--from", bogus.to_str().unwrap()],
    );
    assert!(!out.status.success(), "a damaged backup was restored");
    let app = TestApp::start_on(
        db.display().to_string(),
        tempfile::tempdir().unwrap(),
        None,
        &env,
    )
    .await;
    assert_eq!(answers(&app, email, printer, file, job).await, before);
    app.stop().await;
}

/// Postgres: the documented pg_dump / pg_restore round trip brings back the same answers.
#[actix_web::test]
async fn a_postgres_dump_restores_the_same_answers() {
    if !(common::pg_client_present("pg_dump") && common::pg_client_present("pg_restore")) {
        return;
    }
    let Some(app) = TestApp::start(common::Db::Postgres, &[]).await else {
        return;
    };
    let email = "keeper@example.com";
    let (_, printer, file, job) = farm(&app, email).await;
    let before = answers(&app, email, printer, file, job).await;
    let dump = tempfile::tempdir().unwrap();
    let dump_file = dump.path().join("farm.dump");
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump_file)
        .arg(&app.db_url)
        .output()
        .expect("pg_dump (Debian: postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = PgDatabase::create().expect("a second database");
    let out = Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &copy.url])
        .arg(&dump_file)
        .output()
        .expect("pg_restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The restored database, with the same file store (an S3 bucket in production).
    let restored = TestApp::start_on(
        copy.url.clone(),
        tempfile::tempdir().unwrap(),
        None,
        &[(
            "PRINTFARM_STORAGE__FILES_DIR",
            app.files_dir().to_str().unwrap(),
        )],
    )
    .await;
    assert_eq!(answers(&restored, email, printer, file, job).await, before);
    restored.stop().await;
    drop(copy);
    app.stop().await;
}
