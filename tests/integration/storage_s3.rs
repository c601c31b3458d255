//! `storage.backend = "s3"` against a real S3 implementation: moto's server (from PyPI, installed
//! on first use by `peers::provision`) on 127.0.0.1, on both database backends. Uploads, plain and ranged
//! downloads, previews, refused uploads and deletion are checked against the bucket itself.
//!
//! When moto cannot be installed the tests print a loud SKIPPING line and pass, unless
//! `PRINTFARM_TEST_REQUIRE_PEERS=1` (CI), which makes that a failure.

use crate::common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_fail, Db, TestApp};
use diesel::prelude::*;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use printfarm::db::schema::files;
use serde_json::json;

backend_cases!(s3_storage_round_trip, reconciliation_on_s3_and_local);

pub const BUCKET: &str = "printfarm-test";
pub const REGION: &str = "us-east-1";
// moto accepts any credentials; the server reads them the documented way (AWS_* variables).
const KEY_ID: &str = "printfarm-test-key";
const SECRET: &str = "printfarm-test-secret";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// `None` (after a loud message) when moto is not installed and peers are not required.
    fn start() -> Option<Moto> {
        let server = crate::peers::installed(
            "moto",
            crate::peers::peers_dir().join("moto-venv/bin/moto_server"),
            std::env::var("PRINTFARM_TEST_REQUIRE_PEERS").is_ok_and(|v| v == "1"),
            "PRINTFARM_TEST_REQUIRE_PEERS",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::from(log.reopen().unwrap()))
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .expect("start moto_server");
        // Built before waiting, so that Drop stops a server that never came up.
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}): {}",
                    std::fs::read_to_string(moto._log.path()).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// A moto server with the test bucket, the server's AWS credentials set.
    pub async fn with_bucket() -> Option<Moto> {
        static CREDENTIALS: std::sync::Once = std::sync::Once::new();
        CREDENTIALS.call_once(|| {
            std::env::set_var("AWS_ACCESS_KEY_ID", KEY_ID);
            std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        });
        let moto = Moto::start()?;
        let res = reqwest::Client::new()
            .put(format!("{}/{BUCKET}", moto.endpoint))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "create bucket: {}", res.status());
        Some(moto)
    }

    /// A client of our own on the bucket, to look at what the server stored.
    pub fn bucket(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(BUCKET)
                .with_region(REGION)
                .with_access_key_id(KEY_ID)
                .with_secret_access_key(SECRET)
                .build()
                .unwrap(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn keys(bucket: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut keys: Vec<String> = bucket
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn object(bucket: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    bucket
        .get(&ObjectPath::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// The storage key and preview picture the database holds for a file.
fn file_keys(app: &TestApp, id: i64) -> (String, String) {
    let mut c = app.conn();
    let (key, picture): (String, Option<String>) = files::table
        .find(id)
        .select((files::storage_key, files::picture))
        .first(&mut *c)
        .unwrap();
    (key, format!("render/{}", picture.expect("a preview")))
}

async fn download(app: &TestApp, s: &str, id: i64, range: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/files/{id}/download")))
        .bearer_auth(s);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    req.send().await.unwrap()
}

/// Real G-code larger than one multipart chunk (8 MiB), so the upload to S3 has several parts.
fn big_gcode() -> Vec<u8> {
    let cube = fixture("cube_20mm.gcode");
    let mut out = Vec::with_capacity(9 * 1024 * 1024 + cube.len());
    while out.len() < 9 * 1024 * 1024 {
        out.extend_from_slice(&cube);
    }
    out
}

async fn s3_storage_round_trip(db: Db) {
    let Some(moto) = Moto::with_bucket().await else {
        return;
    };
    let bucket = moto.bucket();
    let Some(app) = TestApp::start(
        db,
        &[
            ("PRINTFARM_STORAGE__BACKEND", "s3"),
            ("PRINTFARM_STORAGE__S3_BUCKET", BUCKET),
            ("PRINTFARM_STORAGE__S3_ENDPOINT", &moto.endpoint),
            ("PRINTFARM_STORAGE__S3_REGION", REGION),
            ("PRINTFARM_STORAGE__MAX_UPLOAD_MB", "12"),
        ],
    )
    .await
    else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;

    // A G-code of several multipart parts and an STL: content and preview land in the bucket.
    let gcode = big_gcode();
    let (status, body) = app.upload(&s, "cubes.gcode", gcode.clone(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let gcode_id = body["message"]["file_id"].as_i64().unwrap();
    let stl = fixture("cube_20mm.stl");
    let (status, body) = app.upload(&s, "cube.stl", stl.clone(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let stl_id = body["message"]["file_id"].as_i64().unwrap();
    let (gcode_key, gcode_png) = file_keys(&app, gcode_id);
    let (stl_key, stl_png) = file_keys(&app, stl_id);
    let mut expected = vec![
        gcode_key.clone(),
        gcode_png.clone(),
        stl_key.clone(),
        stl_png.clone(),
    ];
    expected.sort();
    assert_eq!(keys(&bucket).await, expected);
    assert_eq!(object(&bucket, &gcode_key).await, gcode);
    assert_eq!(object(&bucket, &stl_key).await, stl);
    for png in [&gcode_png, &stl_png] {
        assert!(object(&bucket, png).await.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
    // Nothing is left in the local staging folder.
    assert_eq!(app.stored_files(), Vec::<String>::new());

    // Downloads: whole, and ranges (one across the boundary of the first two parts).
    let res = download(&app, &s, gcode_id, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-length"],
        gcode.len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), gcode);
    let part = 8 * 1024 * 1024;
    let range = format!("bytes={}-{}", part - 100, part + 99);
    let res = download(&app, &s, gcode_id, Some(&range)).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes {}-{}/{}", part - 100, part + 99, gcode.len()).as_str()
    );
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        gcode[part - 100..part + 100].to_vec()
    );
    let res = download(&app, &s, stl_id, Some("bytes=84-")).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.bytes().await.unwrap().to_vec(), stl[84..].to_vec());
    let res = download(&app, &s, stl_id, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), stl);
    let res = download(&app, &s, stl_id, Some(&format!("bytes={}-", stl.len()))).await;
    assert_eq!(res.status().as_u16(), 416);
    // The preview is served from the bucket too (to someone who may see the file).
    let res = app
        .client
        .get(app.url(&format!("/{stl_png}")))
        .bearer_auth(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        object(&bucket, &stl_png).await
    );

    // Refused uploads leave nothing in the bucket: too big, and content that is not what it
    // says (G-code named .stl, binary noise named .gcode).
    let before = keys(&bucket).await;
    let mut too_big = gcode.clone();
    too_big.extend_from_slice(&gcode[..4 * 1024 * 1024]);
    let got = app.upload(&s, "huge.gcode", too_big, &[]).await;
    assert!(assert_fail(&got, 413).contains("12 MiB"), "{}", got.1);
    let got = app
        .upload(&s, "cube.stl", fixture("cube_20mm.gcode"), &[])
        .await;
    assert_fail(&got, 400);
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let got = app.upload(&s, "noise.gcode", noise, &[]).await;
    assert_fail(&got, 400);
    assert_eq!(keys(&bucket).await, before);
    assert_eq!(app.stored_files(), Vec::<String>::new());

    // Deleting through /v1 removes the file's objects, and only those.
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &s), ("name", "shop")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["message"]["token"].as_str().unwrap().to_string();
    let delete = |id: i64| {
        let (app, token) = (&app, token.clone());
        async move {
            common::read(
                app.client
                    .delete(app.url(&format!("/v1/file/{id}")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, body) = delete(gcode_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("success"));
    let mut left = vec![stl_key.clone(), stl_png.clone()];
    left.sort();
    assert_eq!(keys(&bucket).await, left);
    assert_eq!(download(&app, &s, gcode_id, None).await.status(), 404);
    assert_eq!(delete(gcode_id).await.0, 404);
    assert_eq!(delete(stl_id).await.0, 200);
    assert_eq!(keys(&bucket).await, Vec::<String>::new());
    // No multipart upload was left open (they hold parts that no listing shows).
    let open = reqwest::get(format!("{}/{BUCKET}?uploads", moto.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        open.contains("ListMultipartUploadsResult") && !open.contains("<Upload>"),
        "{open}"
    );

    app.stop().await;
}

/// Storage reconciliation (what a crash between storing an object and writing its row leaves):
/// an object no row names is deleted once older than the grace period, a row whose object is
/// gone is reported and kept, and everything a row names stays. On the bucket and on the
/// local store alike.
async fn reconciliation_on_s3_and_local(db: Db) {
    use printfarm::background::housekeeping::reconcile;
    let Some(moto) = Moto::with_bucket().await else {
        return;
    };
    let s3 = [
        ("PRINTFARM_STORAGE__BACKEND", "s3"),
        ("PRINTFARM_STORAGE__S3_BUCKET", BUCKET),
        ("PRINTFARM_STORAGE__S3_ENDPOINT", moto.endpoint.as_str()),
        ("PRINTFARM_STORAGE__S3_REGION", REGION),
    ];
    for overrides in [&s3[..], &[]] {
        let Some(app) = TestApp::start(db, overrides).await else {
            return;
        };
        let s = app.login_new_user("keeper@example.com").await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (status, body) = app
                .upload(&s, "cube.stl", fixture("cube_20mm.stl"), &[])
                .await;
            assert_eq!(status, 200, "{body}");
            ids.push(body["message"]["file_id"].as_i64().unwrap());
        }
        let (kept_key, kept_png) = file_keys(&app, ids[0]);
        let (lost_key, _) = file_keys(&app, ids[1]);
        // An orphan (as a killed upload leaves), and a row whose content vanished.
        app.state
            .storage
            .put_bytes("files/orphan-of-a-crash", b"solid x".to_vec())
            .await
            .unwrap();
        app.state.storage.delete(&lost_key).await.unwrap();
        // Rows this young may belong to an upload in flight; age them past that window.
        {
            let mut c = app.conn();
            let old = printfarm::db::now() - chrono::Duration::minutes(5);
            diesel::update(files::table)
                .set(files::created_at.eq(old))
                .execute(&mut *c)
                .unwrap();
        }

        // Within the grace period nothing is deleted.
        let r = reconcile(&app.state, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(r.orphans_deleted, 0, "{r:?}");
        assert!(app
            .state
            .storage
            .exists("files/orphan-of-a-crash")
            .await
            .unwrap());
        assert_eq!(r.missing, vec![(ids[1], lost_key.clone())], "{r:?}");

        let r = reconcile(&app.state, Duration::ZERO).await.unwrap();
        assert_eq!(r.orphans_deleted, 1, "{r:?}");
        assert_eq!(r.orphan_bytes, 7);
        assert_eq!(r.missing_count, 1);
        assert!(!app
            .state
            .storage
            .exists("files/orphan-of-a-crash")
            .await
            .unwrap());
        for key in [&kept_key, &kept_png] {
            assert!(app.state.storage.exists(key).await.unwrap(), "{key} kept");
        }
        let rows: i64 = files::table.count().get_result(&mut *app.conn()).unwrap();
        assert_eq!(
            rows, 2,
            "rows are records: a missing object never deletes one"
        );
        app.stop().await;
    }
}
