//! Files and projects (calls 4, 5, 10, 11), downloads and previews, on both backends.

use crate::common;

use std::io::{Read, Write};

use common::{assert_fail, Db, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::files;
use serde_json::{json, Value};

backend_tests!(
    uploads_every_kind_and_measures_it,
    gcode_upload_settings_and_preview,
    zipped_gcode_upload,
    bad_and_mismatched_files_are_refused,
    projects_and_their_refusals,
    file_update_json_and_nested,
    file_update_is_all_or_nothing,
    file_update_zips_and_unzips,
    downloads_resume_with_range,
    other_users_files_are_not_found,
    interrupted_upload_leaves_nothing,
    zip_analyses_and_unzips_the_same_entry,
    bidi_controls_are_stripped_from_file_names,
    upload_checks_the_session_before_the_file,
    huge_full_circle_arcs_are_analysed_within_the_bound,
    nested_3mf_instancing_is_refused,
);
backend_cases!(
    size_limit_leaves_nothing_behind,
    zip_bomb_is_refused,
    staging_before_the_session_is_bounded
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn analysis(app: &TestApp, id: i64) -> Value {
    let mut c = app.conn();
    let text: Option<String> = files::table
        .find(id)
        .select(files::analysis)
        .first(&mut *c)
        .unwrap();
    serde_json::from_str(&text.unwrap()).unwrap()
}

fn cube_obj() -> Vec<u8> {
    b"# cube\nv 0 0 0\nv 20 0 0\nv 20 20 0\nv 0 20 0\nv 0 0 20\nv 20 0 20\nv 20 20 20\nv 0 20 20\n\
      f 1 4 3 2\nf 5 6 7 8\nf 1 2 6 5\nf 2 3 7 6\nf 3 4 8 7\nf 4 1 5 8\n"
        .to_vec()
}

fn zipped_many(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

fn zipped(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(bytes).unwrap();
    z.finish().unwrap();
    buf.into_inner()
}

async fn uploads_every_kind_and_measures_it(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("cube.stl", fixture("cube_20mm.stl"), "stl"),
        ("cube-ascii.STL", fixture("cube_20mm_ascii.stl"), "stl"),
        ("cube.obj", cube_obj(), "obj"),
        ("cube.3mf", common::cube_3mf(&[]), "3mf"),
    ];
    for (name, bytes, kind) in cases {
        let size = bytes.len() as i64;
        let (status, body) = app.upload(&s, name, bytes.clone(), &[]).await;
        assert_eq!(status, 200, "{name}: {body}");
        let m = &body["message"];
        assert!(m["file_id"].is_i64() && m["project_id"].is_i64(), "{body}");
        assert_eq!(m["show_select_printers"], json!(false));
        assert_eq!(m["slicer"], json!(""));
        let id = m["file_id"].as_i64().unwrap();
        let a = analysis(app, id);
        assert!(
            (a["volume_mm3"].as_f64().unwrap() - 8000.0).abs() < 0.05,
            "{name}: {a}"
        );
        assert!(
            (a["area_mm2"].as_f64().unwrap() - 2400.0).abs() < 0.05,
            "{name}: {a}"
        );
        assert_eq!(a["watertight"], json!(true), "{name}");
        assert_eq!(a["triangles"], json!(12), "{name}");
        for (i, v) in a["size"].as_array().unwrap().iter().enumerate() {
            assert!(
                (v.as_f64().unwrap() - 20.0).abs() < 1e-6,
                "{name} axis {i}: {a}"
            );
        }
        let mut c = app.conn();
        let row: (String, i64, String, String) = files::table
            .find(id)
            .select((files::kind, files::size, files::sha256, files::filename))
            .first(&mut *c)
            .unwrap();
        use sha2::Digest;
        assert_eq!(
            row,
            (
                kind.to_string(),
                size,
                hex::encode(sha2::Sha256::digest(&bytes)),
                name.to_string()
            )
        );
    }
    // The 3MF's build transform moved it +10 mm (1 cm) in x.
    let (_, body) = app
        .upload(&s, "moved.3mf", common::cube_3mf(&[]), &[])
        .await;
    let a = analysis(app, body["message"]["file_id"].as_i64().unwrap());
    assert!(
        (a["bbox_min"][0].as_f64().unwrap() - 10.0).abs() < 1e-6,
        "{a}"
    );
}

async fn gcode_upload_settings_and_preview(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let (status, body) = app
        .upload(
            &s,
            "cube.gcode",
            fixture("cube_20mm.gcode"),
            &[("upload_type_id", "7"), ("upload_soft_name", "PrusaSlicer")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["show_select_printers"], json!(true));
    assert_eq!(body["message"]["slicer"], json!("PrusaSlicer"));
    let id = body["message"]["file_id"].as_i64().unwrap();
    let a = analysis(app, id);
    assert_eq!(a["slicer_estimated_time_s"], json!(956.0));
    let ours = a["estimated_time_s"].as_f64().unwrap();
    assert!(
        (ours - 956.0).abs() / 956.0 < 0.02,
        "our estimate {ours} s vs PrusaSlicer 956 s"
    );
    assert!(
        (a["filament_used_mm"].as_f64().unwrap() - 1282.57).abs() < 1.0,
        "{a}"
    );
    assert_eq!(a["layer_height"], json!(0.2));
    assert_eq!(a["bed_temperature"], json!(60.0));

    let (status, body) = app
        .post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &s), ("file_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200);
    let m = body["message"].as_object().unwrap();
    assert_eq!(m["fill_density"], json!("15%"));
    assert_eq!(m["file_id"], json!(id.to_string()));
    assert!(m.values().all(Value::is_string), "a flat map of strings");

    // The preview is a PNG at /render/<picture>, for a session that may see the file.
    let mut c = app.conn();
    let (picture, upload_type, soft): (Option<String>, i32, Option<String>) = files::table
        .find(id)
        .select((
            files::picture,
            files::upload_type_id,
            files::upload_soft_name,
        ))
        .first(&mut *c)
        .unwrap();
    assert_eq!((upload_type, soft.as_deref()), (7, Some("PrusaSlicer")));
    let res = app
        .client
        .get(app.url(&format!("/render/{}", picture.unwrap())))
        .bearer_auth(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.bytes().await.unwrap().starts_with(b"\x89PNG"));
    assert_eq!(
        app.client
            .get(app.url("/render/nope.png"))
            .bearer_auth(&s)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // A mesh is not G-code.
    let (_, body) = app
        .upload(&s, "cube.stl", fixture("cube_20mm.stl"), &[])
        .await;
    let stl = body["message"]["file_id"].as_i64().unwrap().to_string();
    assert_fail(
        &app.post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &s), ("file_id", &stl)],
        )
        .await,
        400,
    );
}

async fn zipped_gcode_upload(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let (status, body) = app
        .upload(
            &s,
            "cube.zip",
            zipped("cube.gcode", &fixture("cube_20mm.gcode")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["file_id"].as_i64().unwrap();
    let mut c = app.conn();
    let (kind, zip): (String, bool) = files::table
        .find(id)
        .select((files::kind, files::zip))
        .first(&mut *c)
        .unwrap();
    assert_eq!((kind.as_str(), zip), ("gcode", true));
    assert_eq!(analysis(app, id)["slicer_estimated_time_s"], json!(956.0));
    // A zip without G-code in it is refused.
    let got = app
        .upload(&s, "junk.zip", zipped("readme.txt", b"hello"), &[])
        .await;
    assert!(assert_fail(&got, 400).contains("G-code"));
}

async fn bad_and_mismatched_files_are_refused(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let stl = fixture("cube_20mm.stl");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("notes.txt", b"hello".to_vec()),
        ("no_extension", b"G1 X1\n".to_vec()),
        ("cube.stl", fixture("cube_20mm.gcode")),
        ("cube.gcode", stl.clone()),
        ("truncated.stl", stl[..stl.len() - 20].to_vec()),
        ("empty.gcode", Vec::new()),
        ("cube.3mf", b"PK\x03\x04 not really a zip".to_vec()),
        (
            "cube.obj",
            b"this is not an obj file at all\n\x00\x01".to_vec(),
        ),
        (
            "binary.gcode",
            (0..4096u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
    ];
    for (name, bytes) in cases {
        let got = app.upload(&s, name, bytes, &[]).await;
        assert_fail(&got, 400);
    }
    // No file part, no session, not multipart.
    let form = reqwest::multipart::Form::new().text("session", s.clone());
    let res = app
        .client
        .post(app.url("/apiglobal/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(assert_fail(&common::read(res).await, 400).contains("file"));
    assert_fail(&app.upload("", "cube.stl", stl.clone(), &[]).await, 401);
    assert_fail(
        &app.post("/apiglobal/upload", &[("session", &s)]).await,
        400,
    );
    // Nothing was kept from any refusal.
    let mut c = app.conn();
    let n: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 0);
    assert_eq!(app.stored_files(), Vec::<String>::new());
}

async fn projects_and_their_refusals(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let other = app.login_new_user("other@example.com").await;
    let stl = fixture("cube_20mm.stl");
    let (_, body) = app.upload(&s, "a.stl", stl.clone(), &[]).await;
    let default_project = body["message"]["project_id"].as_i64().unwrap();
    let (_, body) = app
        .upload(
            &s,
            "b.stl",
            stl.clone(),
            &[("project_name", "Widgets"), ("project_color", "#ff0000")],
        )
        .await;
    let widgets = body["message"]["project_id"].as_i64().unwrap();
    let (_, body) = app
        .upload(
            &s,
            "c.stl",
            stl.clone(),
            &[("project_id", &widgets.to_string())],
        )
        .await;
    assert_eq!(body["message"]["project_id"], json!(widgets));
    let (_, body) = app
        .upload(&s, "d.stl", stl.clone(), &[("project_name", "Widgets")])
        .await;
    assert_eq!(body["message"]["project_id"], json!(widgets));

    let (status, body) = app
        .post("/apiglobal/get_projects", &[("session", &s)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["message"],
        json!([{"id": default_project, "name": "Default", "color": "#3b82f6"}, {"id": widgets, "name": "Widgets", "color": "#ff0000"}])
    );
    let (_, body) = app
        .post("/apiglobal/get_projects", &[("session", &other)])
        .await;
    assert_eq!(body["message"], json!([]));
    // Another user's project id is not found, and nothing is stored.
    let got = app
        .upload(
            &other,
            "e.stl",
            stl.clone(),
            &[("project_id", &widgets.to_string())],
        )
        .await;
    assert_fail(&got, 404);
    let got = app.upload(&s, "e.stl", stl, &[("project_id", "abc")]).await;
    assert!(assert_fail(&got, 400).contains("project_id"));
    assert_fail(&app.post("/apiglobal/get_projects", &[]).await, 401);
    let mut c = app.conn();
    let n: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 4);
}

fn ptype_and_slicer(app: &TestApp, id: i64) -> (Option<i64>, Option<String>) {
    let mut c = app.conn();
    files::table
        .find(id)
        .select((files::printer_type_id, files::slicer))
        .first(&mut *c)
        .unwrap()
}

async fn upload_gcode(app: &TestApp, s: &str) -> i64 {
    let (status, body) = app
        .upload(s, "cube.gcode", fixture("cube_20mm.gcode"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["file_id"].as_i64().unwrap()
}

async fn file_update_json_and_nested(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let a = upload_gcode(app, &s).await;
    let b = upload_gcode(app, &s).await;
    let updates = json!({a.to_string(): {"ptype": 3, "gtype": "Cura"}}).to_string();
    let (status, body) = app
        .post(
            "/apiglobal/file_update",
            &[("session", &s), ("updates", &updates)],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": []}))
    );
    assert_eq!(ptype_and_slicer(app, a), (Some(3), Some("Cura".into())));

    let key = format!("updates[{b}][ptype]");
    let (status, _) = app
        .post("/apiglobal/file_update", &[("session", &s), (&key, "5")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ptype_and_slicer(app, b),
        (Some(5), Some("PrusaSlicer".into()))
    );
    // The printer type shows in the slicer settings.
    let (_, body) = app
        .post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &s), ("file_id", &b.to_string())],
        )
        .await;
    assert_eq!(body["message"]["printer_type_id"], json!("5"));
}

async fn file_update_is_all_or_nothing(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let a = upload_gcode(app, &s).await;
    let stl = {
        let (_, body) = app
            .upload(&s, "cube.stl", fixture("cube_20mm.stl"), &[])
            .await;
        body["message"]["file_id"].as_i64().unwrap()
    };
    let bad = [
        json!({a.to_string(): {"ptype": 1}, "999999": {"ptype": 1}}),
        json!({a.to_string(): {"ptype": 1}, stl.to_string(): {"zip": true}}),
        json!({a.to_string(): {"ptype": 424242}}),
        json!({a.to_string(): {"ptype": "abc"}}),
        json!({"abc": {"ptype": 1}}),
        json!({}),
        json!([1, 2]),
    ];
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for u in &bad {
            v.push(
                app.post(
                    "/apiglobal/file_update",
                    &[("session", &s), ("updates", &u.to_string())],
                )
                .await
                .0,
            );
        }
        v
    };
    assert_eq!(statuses, vec![404, 400, 400, 400, 400, 400, 400]);
    assert_fail(
        &app.post(
            "/apiglobal/file_update",
            &[("session", &s), ("updates", "{not json")],
        )
        .await,
        400,
    );
    assert!(assert_fail(
        &app.post("/apiglobal/file_update", &[("session", &s)]).await,
        400
    )
    .contains("updates"));
    assert_eq!(
        ptype_and_slicer(app, a),
        (None, Some("PrusaSlicer".into())),
        "nothing was applied"
    );
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

async fn file_update_zips_and_unzips(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let id = upload_gcode(app, &s).await;
    let original = fixture("cube_20mm.gcode");
    let before = app.stored_files();
    let updates = json!({id.to_string(): {"zip": "true"}}).to_string();
    assert_eq!(
        app.post(
            "/apiglobal/file_update",
            &[("session", &s), ("updates", &updates)]
        )
        .await
        .0,
        200
    );
    let body = download(app, &s, id, None)
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body)).unwrap();
    let mut inner = Vec::new();
    archive
        .by_index(0)
        .unwrap()
        .read_to_end(&mut inner)
        .unwrap();
    assert_eq!(inner, original);
    assert_eq!(
        app.stored_files().len(),
        before.len(),
        "the old content was replaced, not kept"
    );

    let updates = json!({id.to_string(): {"zip": false}}).to_string();
    assert_eq!(
        app.post(
            "/apiglobal/file_update",
            &[("session", &s), ("updates", &updates)]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        download(app, &s, id, None)
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        original
    );
    let mut c = app.conn();
    let (zip, size): (bool, i64) = files::table
        .find(id)
        .select((files::zip, files::size))
        .first(&mut *c)
        .unwrap();
    assert_eq!((zip, size), (false, original.len() as i64));
}

async fn downloads_resume_with_range(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let id = upload_gcode(app, &s).await;
    let original = fixture("cube_20mm.gcode");
    let res = download(app, &s, id, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-length"],
        original.len().to_string().as_str()
    );
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.bytes().await.unwrap().to_vec(), original);

    // Resume after the first 100,000 bytes.
    let res = download(app, &s, id, Some("bytes=100000-")).await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 100000-{}/{}", original.len() - 1, original.len()).as_str()
    );
    assert_eq!(
        res.headers()["content-length"],
        (original.len() - 100000).to_string().as_str()
    );
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        original[100000..].to_vec()
    );
    let res = download(app, &s, id, Some("bytes=10-19")).await;
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        original[10..20].to_vec()
    );
    let res = download(app, &s, id, Some(&format!("bytes={}-", original.len()))).await;
    assert_eq!(res.status().as_u16(), 416);
    // The session may also come in the query string; none at all is refused.
    let res = app
        .client
        .get(app.url(&format!("/files/{id}/download?session={s}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = app
        .client
        .get(app.url(&format!("/files/{id}/download")))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 401);
}

async fn other_users_files_are_not_found(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let thief = app.login_new_user("thief@example.com").await;
    let id = upload_gcode(app, &s).await;
    let sid = id.to_string();
    assert_fail(
        &app.post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &thief), ("file_id", &sid)],
        )
        .await,
        404,
    );
    let updates = json!({sid.clone(): {"ptype": 1}}).to_string();
    assert_fail(
        &app.post(
            "/apiglobal/file_update",
            &[("session", &thief), ("updates", &updates)],
        )
        .await,
        404,
    );
    let res = download(app, &thief, id, None).await;
    assert_fail(&common::read(res).await, 404);
    assert_eq!(ptype_and_slicer(app, id).0, None);
}

async fn interrupted_upload_leaves_nothing(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let boundary = "XBOUNDARYX";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{s}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.gcode\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /apiglobal/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: 10000000\r\n\r\n{head}"
    )
    .unwrap();
    for _ in 0..20 {
        stream.write_all(&[b'G'; 10000]).unwrap();
    }
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(stream); // the client goes away mid-upload
    for _ in 0..50 {
        if app.stored_files().is_empty() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.stored_files(), Vec::<String>::new());
    let mut c = app.conn();
    let n: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 0);
}

async fn size_limit_leaves_nothing_behind(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_STORAGE__MAX_UPLOAD_MB", "1")]).await else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    let mut big = b"G1 X1 Y1 E1\n".repeat(200_000); // 2.4 MB
    big.truncate(2_400_000);
    let got = app.upload(&s, "big.gcode", big.clone(), &[]).await;
    assert!(assert_fail(&got, 413).contains("1 MiB"));
    // Without a declared length (chunked), the limit still holds while streaming.
    let boundary = "B0UNDARY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{s}\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"big.gcode\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&big);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .client
        .post(app.url("/apiglobal/upload"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 413);
    assert_eq!(app.stored_files(), Vec::<String>::new());
    {
        let mut c = app.conn();
        let n: i64 = files::table.count().get_result(&mut *c).unwrap();
        assert_eq!(n, 0);
    }
    // A file under the limit still works.
    let (status, _) = app
        .upload(&s, "cube.gcode", fixture("cube_20mm.gcode"), &[])
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Issue #13 item 5: the entry analysed (and priced) is the entry a printer gets after unzip.
async fn zip_analyses_and_unzips_the_same_entry(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let real = fixture("cube_20mm.gcode");
    let payload = b"\x7fELF not a print at all".repeat(100);
    let (status, body) = app
        .upload(
            &s,
            "mixed.zip",
            zipped_many(&[("payload.bin", &payload), ("real.gcode", &real)]),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["file_id"].as_i64().unwrap();
    assert_eq!(analysis(app, id)["slicer_estimated_time_s"], json!(956.0));
    // Unzipping yields the analysed G-code, never the other entry.
    let updates = json!({id.to_string(): {"zip": false}}).to_string();
    let (status, body) = app
        .post(
            "/apiglobal/file_update",
            &[("session", &s), ("updates", &updates)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let res = download(app, &s, id, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), real);

    // Two G-code candidates: refused, nothing kept.
    let got = app
        .upload(
            &s,
            "two.zip",
            zipped_many(&[("a.gcode", &real), ("b.gcode", &real)]),
            &[],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("more than one G-code"));
    // Nothing that analyses as G-code: refused.
    let got = app
        .upload(
            &s,
            "fake.zip",
            zipped_many(&[("real.gcode", &payload), ("x.txt", b"hi")]),
            &[],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("does not look like G-code"));
    let mut c = app.conn();
    let n: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 1);
}

/// Issue #13 item 6: a small zip expanding far beyond `storage.max_unzipped_mb` is refused
/// with 413 naming the limit, and leaves nothing staged or stored.
async fn zip_bomb_is_refused(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_STORAGE__MAX_UNZIPPED_MB", "1")]).await else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    let big = b"G1 X1 Y1 E1\n".repeat(2_000_000); // 24 MB, compresses to ~100 KB
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file(
            "bomb.gcode",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        z.write_all(&big).unwrap();
        z.finish().unwrap();
    }
    let bomb = buf.into_inner();
    assert!(bomb.len() < 200_000, "bomb is {} bytes", bomb.len());
    let got = app.upload(&s, "bomb.zip", bomb, &[]).await;
    let msg = assert_fail(&got, 413);
    assert!(msg.contains("max_unzipped_mb"), "{msg}");
    assert_eq!(app.stored_files(), Vec::<String>::new());
    {
        let mut c = app.conn();
        let n: i64 = files::table.count().get_result(&mut *c).unwrap();
        assert_eq!(n, 0);
    }
    // A zip within the limit still works.
    let (status, body) = app
        .upload(
            &s,
            "cube.zip",
            zipped("cube.gcode", &fixture("cube_20mm.gcode")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// Issue #13 item 11: bidi overrides cannot disguise a stored file name.
async fn bidi_controls_are_stripped_from_file_names(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let (status, body) = app
        .upload(
            &s,
            "cube\u{202E}\u{2066}\u{200F}\u{061C}_x.gcode",
            fixture("cube_20mm.gcode"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["message"]["file_id"].as_i64().unwrap();
    let mut c = app.conn();
    let name: String = files::table
        .find(id)
        .select(files::filename)
        .first(&mut *c)
        .unwrap();
    assert_eq!(name, "cube_x.gcode");
}

/// A multipart body with the parts in the given order; `("file", bytes)` is the file part.
fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in parts {
        let disposition = if *name == "file" {
            "form-data; name=\"file\"; filename=\"big.gcode\"".to_string()
        } else {
            format!("form-data; name=\"{name}\"")
        };
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// Issue #13 item 7: `/apiglobal/upload` checks the session before staging the file.
async fn upload_checks_the_session_before_the_file(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let boundary = "SESSIONFIRST";
    let big = b"G1 X1 Y1 E1\n".repeat(400_000); // 4.8 MB
    let send = |body: Vec<u8>| {
        // Streamed in chunks (no declared length), as a slow client would send it.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        app.client
            .post(app.url("/apiglobal/upload"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
    };
    // Invalid session first: 401 while the body is still arriving (before the fix the server
    // waited for, and staged, the whole declared 10 MB), with nothing staged.
    {
        use std::io::BufRead;
        let addr = app.base.trim_start_matches("http://").to_string();
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\nnot-a-session\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.gcode\"\r\n\r\n"
        );
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "POST /apiglobal/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: 10000000\r\n\r\n{head}"
        )
        .unwrap();
        let _ = stream.write_all(&big[..1_000_000]);
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut status_line = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut status_line)
            .expect("an answer before the body is complete");
        assert!(status_line.contains(" 401 "), "{status_line}");
        assert_eq!(app.stored_files(), Vec::<String>::new());
    }
    let body = multipart(boundary, &[("session", b"not-a-session"), ("file", &big)]);
    let got = common::read(send(body).await.unwrap()).await;
    assert_fail(&got, 401);
    assert_eq!(app.stored_files(), Vec::<String>::new());
    // A file before an invalid session is staged, then refused, and nothing stays.
    let body = multipart(boundary, &[("file", &big), ("session", b"not-a-session")]);
    let got = common::read(send(body).await.unwrap()).await;
    assert_fail(&got, 401);
    assert_eq!(app.stored_files(), Vec::<String>::new());
    // File before a valid session (the Cura plugin's order) works, as does the usual order.
    let cube = fixture("cube_20mm.gcode");
    let body = multipart(boundary, &[("file", &big), ("session", s.as_bytes())]);
    let (status, body) = common::read(send(body).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let body = multipart(boundary, &[("session", s.as_bytes()), ("file", &cube)]);
    let (status, body) = common::read(send(body).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let mut c = app.conn();
    let n: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 2);
}

/// What uploads whose file comes before their session may stage is bounded for all of them
/// together (`storage.max_before_session_mb`): beyond it, 503 and nothing kept; the budget is
/// given back, and a session sent first is never limited by it.
async fn staging_before_the_session_is_bounded(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_STORAGE__MAX_BEFORE_SESSION_MB", "1")]).await
    else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    let big = b"G1 X1 Y1 E1\n".repeat(200_000); // 2.4 MB
    let cube = fixture("cube_20mm.gcode");
    let boundary = "BUDGET";
    for _ in 0..2 {
        let body = multipart(boundary, &[("file", &big), ("session", s.as_bytes())]);
        let got = app
            .post_raw(
                "/apiglobal/upload",
                Some(&format!("multipart/form-data; boundary={boundary}")),
                body,
            )
            .await;
        let msg = assert_fail(&got, 503);
        assert!(msg.contains("'session' part before"), "{msg}");
        assert_eq!(app.stored_files(), Vec::<String>::new());
    }
    for body in [
        multipart(boundary, &[("file", &cube), ("session", s.as_bytes())]),
        multipart(boundary, &[("session", s.as_bytes()), ("file", &big)]),
    ] {
        let (status, body) = app
            .post_raw(
                "/apiglobal/upload",
                Some(&format!("multipart/form-data; boundary={boundary}")),
                body,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.stop().await;
}

/// Issue #13 item 6: ~560 KiB of full-circle G2 arcs of 1 m radius (before: 4,096 chords each,
/// 310 s) is analysed with its filament and a whole-circle path.
async fn huge_full_circle_arcs_are_analysed_within_the_bound(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let arcs = 22_000;
    let mut src = String::from("M83\nG1 X1000 Y0 F6000\n");
    for _ in 0..arcs {
        src += "G2 X1000 Y0 I-1000 J0 E1\n";
    }
    let (status, body) = app.upload(&s, "arcs.gcode", src.into_bytes(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let a = analysis(app, body["message"]["file_id"].as_i64().unwrap());
    let filament = a["filament_used_mm"].as_f64().unwrap();
    assert!((filament - arcs as f64).abs() < 1e-6, "{a}");
    // Time: the whole circles at 100 mm/s (within 1 %).
    let expected = arcs as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 100.0;
    let time = a["estimated_time_s"].as_f64().unwrap();
    assert!(
        (time - expected).abs() / expected < 0.01,
        "{time} vs {expected}"
    );
}

/// Issue #13 item 6: a few KiB of 3MF whose components reference components (10 copies per
/// level, 8 levels: 1.2 billion triangles) is refused before anything is expanded.
async fn nested_3mf_instancing_is_refused(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(common::cube_3mf(&[]))).unwrap();
    let mut model = String::new();
    archive
        .by_name("3D/3dmodel.model")
        .unwrap()
        .read_to_string(&mut model)
        .unwrap();
    let mut nested = String::new();
    for level in 2..=9 {
        nested += &format!("<object id=\"{level}\" type=\"model\"><components>");
        for k in 0..10 {
            nested += &format!(
                "<component objectid=\"{}\" transform=\"1 0 0 0 1 0 0 0 1 {k} 0 0\"/>",
                level - 1
            );
        }
        nested += "</components></object>";
    }
    let model = model.replace(
        "</resources><build><item objectid=\"1\"",
        &format!("{nested}</resources><build><item objectid=\"9\""),
    );
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            z.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            if name == "3D/3dmodel.model" {
                z.write_all(model.as_bytes()).unwrap();
            } else {
                z.write_all(&bytes).unwrap();
            }
        }
        z.finish().unwrap();
    }
    let bomb = out.into_inner();
    assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
    let got = app.upload(&s, "nested.3mf", bomb, &[]).await;
    let msg = assert_fail(&got, 400);
    assert!(msg.contains("instanced triangles"), "{msg}");
    assert_eq!(app.stored_files(), Vec::<String>::new());
}
