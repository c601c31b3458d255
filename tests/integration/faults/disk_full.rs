//! A full disk: an upload that does not fit answers 507 with a message saying storage is full
//! (never 500), keeps nothing, and the next upload that fits works. Staging and the file store
//! are each put on a tiny tmpfs of their own (a real ENOSPC from the kernel).

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::prelude::*;
use printfarm::db::schema::files;

use crate::common::{Db, TestApp};

crate::backend_cases!(an_upload_that_does_not_fit_answers_507_and_keeps_nothing);

/// A tmpfs of `kib` KiB mounted on a fresh folder, unmounted when dropped.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    /// `None` (after a loud line) when this process may not mount, unless CI requires it.
    fn mount(kib: u32) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TinyDisk { dir }),
            other => {
                let msg = format!("cannot mount a tmpfs (needs root): {other:?}");
                if std::env::var("PRINTFARM_TEST_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
                    panic!("PRINTFARM_TEST_REQUIRE_PEERS=1 but {msg}");
                }
                eprintln!("!!! SKIPPING the full-disk test: {msg}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else if e.file_name() != ".lock" {
                out.push(p);
            }
        }
    }
    out
}

/// Real G-code of about `size` bytes.
fn gcode(size: usize) -> Vec<u8> {
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let mut out = Vec::new();
    while out.len() < size {
        out.extend_from_slice(&cube);
    }
    out
}

async fn an_upload_that_does_not_fit_answers_507_and_keeps_nothing(db: Db) {
    // 1 MiB each: the 3 MiB upload cannot be staged on the first, nor stored on the second.
    for full in ["staging", "files"] {
        let Some(disk) = TinyDisk::mount(1024) else {
            return;
        };
        let spare = tempfile::tempdir().unwrap();
        let (staging, store) = if full == "staging" {
            (disk.path(), spare.path())
        } else {
            (spare.path(), disk.path())
        };
        let (staging, store) = (staging.display().to_string(), store.display().to_string());
        let Some(app) = TestApp::start(
            db,
            &[
                ("PRINTFARM_STORAGE__STAGING_DIR", staging.as_str()),
                ("PRINTFARM_STORAGE__FILES_DIR", store.as_str()),
            ],
        )
        .await
        else {
            return;
        };
        let s = app.login_new_user("full@faults.test").await;
        for _ in 0..2 {
            let (status, body) = app.upload(&s, "big.gcode", gcode(3 << 20), &[]).await;
            assert_eq!(status, 507, "{full} full: {body}");
            assert_eq!(body["result"], false);
            let msg = body["message"].as_str().unwrap();
            assert!(msg.contains("storage is full"), "{msg}");
        }
        assert!(
            files_under(Path::new(&staging)).is_empty(),
            "{full}: staging kept {:?}",
            files_under(Path::new(&staging))
        );
        assert!(
            files_under(Path::new(&store)).is_empty(),
            "{full}: the store kept {:?}",
            files_under(Path::new(&store))
        );
        let rows: i64 = files::table.count().get_result(&mut *app.conn()).unwrap();
        assert_eq!(rows, 0);

        // A file that fits is taken as usual.
        let (status, body) = app.upload(&s, "small.gcode", gcode(100_000), &[]).await;
        assert_eq!(status, 200, "{full}: {body}");
        app.stop().await;
    }
}
