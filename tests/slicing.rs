//! Slicing with the real PrusaSlicer through the durable queue (call 28 and `get_slice_status`),
//! on both backends.

mod common;

use common::{assert_fail, Db, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{files, slice_jobs};
use serde_json::{json, Value};

backend_tests!(
    slices_a_cube_into_a_normal_gcode_file,
    refusals_before_slicing,
    sliced_job_prints_on_the_printer,
);
backend_cases!(
    slow_slices_are_stopped,
    a_killed_worker_s_slice_finishes_once_after_restart
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A binary STL of a UV sphere with about `2 * n * n` triangles.
fn sphere_stl(radius: f32, n: u32) -> Vec<u8> {
    let point = |i: u32, j: u32| {
        let (t, p) = (
            std::f32::consts::PI * i as f32 / n as f32,
            2.0 * std::f32::consts::PI * j as f32 / n as f32,
        );
        [
            radius * t.sin() * p.cos() + radius,
            radius * t.sin() * p.sin() + radius,
            radius * t.cos() + radius,
        ]
    };
    let mut tris = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let (a, b, c, d) = (
                point(i, j),
                point(i + 1, j),
                point(i + 1, j + 1),
                point(i, j + 1),
            );
            if i != 0 {
                tris.push([a, c, d]);
            }
            if i != n - 1 {
                tris.push([a, b, c]);
            }
        }
    }
    let mut out = vec![0u8; 80];
    out.extend_from_slice(&(tris.len() as u32).to_le_bytes());
    for t in tris {
        out.extend_from_slice(&[0u8; 12]);
        for v in t {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 2]);
    }
    out
}

async fn upload(app: &TestApp, s: &str, name: &str, bytes: Vec<u8>) -> i64 {
    let (status, body) = app.upload(s, name, bytes, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["message"]["file_id"].as_i64().unwrap()
}

async fn slice(
    app: &TestApp,
    s: &str,
    file: i64,
    profile: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let profile = profile.to_string();
    let file = file.to_string();
    let mut form = vec![
        ("session", s),
        ("file_id", file.as_str()),
        ("profile", profile.as_str()),
    ];
    form.extend_from_slice(extra);
    app.post("/apiglobal/slice", &form).await
}

async fn wait_done(app: &TestApp, s: &str, uuid: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = app
            .post(
                "/apiglobal/get_slice_status",
                &[("session", s), ("job_id", uuid)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let st = body["message"]["status"].as_str().unwrap().to_string();
        if st == "done" || st == "failed" {
            return body["message"].clone();
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("slice {uuid} did not finish");
}

fn mk4() -> Value {
    json!({"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220, "fill_density": 15, "perimeters": 2})
}

async fn slices_a_cube_into_a_normal_gcode_file(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let stl = upload(app, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let (status, body) = slice(app, &s, stl, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let m = &body["message"];
    let uuid = m["job_id"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);
    assert!(m["job_waiting"].is_boolean() && m["running_jobs_limit"].is_i64());
    let out = m["output_file_id"].as_i64().unwrap();
    let done = wait_done(app, &s, &uuid).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["output_file_id"], json!(out));

    let mut c = app.conn();
    let (state, kind, analysis): (String, String, Option<String>) = files::table
        .find(out)
        .select((files::state, files::kind, files::analysis))
        .first(&mut *c)
        .unwrap();
    assert_eq!((state.as_str(), kind.as_str()), ("ready", "gcode"));
    let a: Value = serde_json::from_str(&analysis.unwrap()).unwrap();
    assert_eq!(a["slicer"], "PrusaSlicer");
    let theirs = a["slicer_estimated_time_s"].as_f64().unwrap();
    let ours = a["estimated_time_s"].as_f64().unwrap();
    assert!(
        (ours - theirs).abs() / theirs < 0.02,
        "ours {ours} s vs PrusaSlicer {theirs} s"
    );
    assert!(a["filament_weight_g"].as_f64().unwrap() > 1.0);
    // A normal G-code file of the caller: settings, download.
    let (_, body) = app
        .post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &s), ("file_id", &out.to_string())],
        )
        .await;
    assert_eq!(body["message"]["fill_density"], "15%");
    assert_eq!(body["message"]["bed_shape"], "0x0,250x0,250x210,0x210");
    let res = app
        .client
        .get(app.url(&format!("/files/{out}/download")))
        .bearer_auth(&s)
        .send()
        .await
        .unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("; generated by PrusaSlicer"));
    // Another user sees nothing of it.
    let other = app.login_new_user("other@example.com").await;
    assert_fail(
        &app.post(
            "/apiglobal/get_slice_status",
            &[("session", &other), ("job_id", &uuid)],
        )
        .await,
        404,
    );
}

async fn refusals_before_slicing(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let stl = upload(app, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let gcode = upload(app, &s, "cube.gcode", fixture("cube_20mm.gcode")).await;
    let msg = assert_fail(
        &slice(
            app,
            &s,
            stl,
            json!({"fill_density": 10, "infil_speed": 50, "bogus": 1}),
            &[],
        )
        .await,
        400,
    );
    assert!(
        msg.contains("infil_speed") && msg.contains("bogus"),
        "{msg}"
    );
    let msg = assert_fail(
        &slice(app, &s, stl, mk4(), &[("slicer_id", "62")]).await,
        400,
    );
    assert!(
        msg.contains("61") && msg.contains("51") && msg.contains('3'),
        "{msg}"
    );
    assert_eq!(
        slice(app, &s, stl, mk4(), &[("slicer_id", "51")]).await.0,
        200
    );
    assert!(assert_fail(&slice(app, &s, gcode, mk4(), &[]).await, 400).contains("model"));
    let tall = json!({"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 15});
    assert!(assert_fail(&slice(app, &s, stl, tall, &[]).await, 400).contains("does not fit"));
    let narrow = json!({"bed_size_x": 15, "bed_size_y": 15});
    assert!(assert_fail(&slice(app, &s, stl, narrow, &[]).await, 400).contains("does not fit"));
    assert_fail(
        &app.post(
            "/apiglobal/slice",
            &[("session", &s), ("file_id", &stl.to_string())],
        )
        .await,
        400,
    );
    assert_fail(
        &app.post(
            "/apiglobal/slice",
            &[
                ("session", &s),
                ("file_id", &stl.to_string()),
                ("profile", "[1,2]"),
            ],
        )
        .await,
        400,
    );
    let other = app.login_new_user("other@example.com").await;
    assert_fail(&slice(app, &other, stl, mk4(), &[]).await, 404);
    assert_fail(
        &app.post(
            "/apiglobal/get_slice_status",
            &[("session", &s), ("job_id", "nope")],
        )
        .await,
        404,
    );
    // Refusals leave no reserved file behind.
    let mut c = app.conn();
    let reserved: i64 = files::table
        .filter(files::state.eq("reserved"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert!(reserved <= 1, "only the accepted slice reserved an output");
    // Garbage that passes the upload checks cannot exist: the upload refuses it first.
    assert_fail(
        &app.upload(&s, "junk.stl", b"solid junk\nnot really\n".to_vec(), &[])
            .await,
        400,
    );
}

async fn sliced_job_prints_on_the_printer(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let dev = json!({"VID": "VIRT", "PID": "VIRT", "SNR": "SLICE-1", "type": "PRUSA_MK4"});
    let agent = |body: Value| async move {
        app.client
            .post(app.url("/apiprinter/v1/printer/register"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let code = agent(dev.clone()).await["registration_code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", &s), ("registration_code", &code)],
        )
        .await;
    let printer = body["message"]["printer_id"].as_i64().unwrap();
    let mut with_code = dev;
    with_code["registration_code"] = json!(code);
    let token = agent(with_code).await["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    let poll = |token: String| async move {
        app.client
            .post(app.url("/apiprinter/v1/printer/command"))
            .json(&json!({"auth_token": token, "report": {"state": "ready", "percent": 0}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(poll(token.clone()).await, json!({}));
    let stl = upload(app, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let (status, body) = slice(
        app,
        &s,
        stl,
        mk4(),
        &[
            ("add_print_job_to_printer_id", &printer.to_string()),
            ("start_print_job", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let done = wait_done(app, &s, body["message"]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    let job = done["print_job_id"]
        .as_str()
        .expect("a print job was queued");
    let (_, info) = app
        .post(
            "/apiglobal/get_job_info",
            &[("session", &s), ("job_id", job)],
        )
        .await;
    assert_eq!(info["message"]["status_id"], "21");
    assert_eq!(
        info["message"]["file_id"],
        json!(done["output_file_id"].as_i64().unwrap().to_string())
    );
    let cmd = poll(token).await;
    assert_eq!(cmd["command"], "gcodes");
    assert_eq!(cmd["filename"], "cube.gcode");
    let res = app
        .client
        .get(cmd["payload"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

async fn slow_slices_are_stopped(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_SLICER__TIME_LIMIT_SECS", "1")]).await else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    // A finely tessellated sphere takes PrusaSlicer several seconds.
    let sphere = upload(&app, &s, "sphere.stl", sphere_stl(40.0, 400)).await;
    let (status, body) = slice(&app, &s, sphere, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let done = wait_done(&app, &s, body["message"]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"].as_str().unwrap().contains("longer than 1 s"),
        "{done}"
    );
    assert_eq!(done["output_file_id"], Value::Null);
    let mut c = app.conn();
    let reserved: i64 = files::table
        .filter(files::state.eq("reserved"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(reserved, 0);
    drop(c);
    app.stop().await;
}

async fn a_killed_worker_s_slice_finishes_once_after_restart(db: Db) {
    // The first instance runs no workers: its slice is claimed by a worker that then "dies".
    let Some(first) =
        TestApp::start(db, &[("PRINTFARM_SLICER__IN_PROCESS_WORKERS", "false")]).await
    else {
        return;
    };
    let s = first.login_new_user("maker@example.com").await;
    let stl = upload(&first, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let (_, body) = slice(&first, &s, stl, mk4(), &[]).await;
    let uuid = body["message"]["job_id"].as_str().unwrap().to_string();
    let claimed = {
        let mut c = first.conn();
        printfarm::services::slicing::claim(&mut c, "dead-worker", chrono::Duration::seconds(1))
            .unwrap()
            .unwrap()
    };
    assert_eq!(claimed.uuid, uuid);
    // A restarted server (with workers) takes the slice over once the lease has run out.
    let restarted = first.second_instance().await;
    let done = wait_done(&restarted, &s, &uuid).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], json!(2));
    // The dead worker's late result is not committed.
    let mut c = first.conn();
    let late = printfarm::services::slicing::complete(
        &mut c,
        &claimed,
        "dead-worker",
        &printfarm::services::slicing::Output {
            storage_key: "x",
            picture: "x",
            size: 1,
            sha256: "x",
            analysis: "{}",
            settings: "{}",
        },
        "",
    )
    .unwrap();
    assert!(!late);
    let jobs: Vec<(String, i32)> = slice_jobs::table
        .select((slice_jobs::status, slice_jobs::attempts))
        .load(&mut *c)
        .unwrap();
    assert_eq!(jobs, vec![("done".to_string(), 2)]);
    let ready: i64 = files::table
        .filter(files::kind.eq("gcode"))
        .filter(files::state.eq("ready"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(ready, 1, "exactly one output");
    drop(c);
    restarted.stop().await;
    first.stop().await;
}
