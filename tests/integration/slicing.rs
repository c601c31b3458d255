//! Slicing with the real PrusaSlicer through the durable queue (call 28 and `get_slice_status`),
//! on both backends.

use crate::common;

use common::{assert_fail, Db, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{files, slice_jobs};
use serde_json::{json, Value};

backend_tests!(
    slices_a_cube_into_a_normal_gcode_file,
    refusals_before_slicing,
    sliced_job_prints_on_the_printer,
    slicer_failures_are_clear_and_leave_nothing,
    stls_prusaslicer_would_misread_still_slice,
    flat_models_are_refused_before_slicing,
    dangerous_settings_are_refused_and_never_run,
    config_embedded_in_a_3mf_never_reaches_the_slicer,
    sliced_models_go_to_the_farm_queue,
);
backend_cases!(
    slow_slices_are_stopped,
    shutdown_kills_running_slicers,
    slicer_resource_limits_end_the_slice_clearly,
    a_killed_worker_s_slice_finishes_once_after_restart,
    a_long_slice_keeps_its_short_lease,
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

type Tri = [[f32; 3]; 3];

/// A binary STL of the given triangles (normals left zero: PrusaSlicer recomputes them).
fn binary_stl(tris: &[Tri]) -> Vec<u8> {
    let mut out = vec![b' '; 80];
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

/// An axis-aligned box from the origin, two triangles per face, wound outwards; the faces
/// listed in `skip` (0 bottom, 1 top, 2 front, 3 back, 4 left, 5 right) are left out.
fn box_tris(size: [f32; 3], skip: &[usize]) -> Vec<Tri> {
    let p = |i: usize| {
        [
            (i & 1) as f32 * size[0],
            ((i >> 1) & 1) as f32 * size[1],
            ((i >> 2) & 1) as f32 * size[2],
        ]
    };
    let faces = [
        [0, 2, 3, 1],
        [4, 5, 7, 6],
        [0, 1, 5, 4],
        [2, 6, 7, 3],
        [0, 4, 6, 2],
        [1, 3, 7, 5],
    ];
    let mut tris = Vec::new();
    for (n, [a, b, c, d]) in faces.into_iter().enumerate() {
        if !skip.contains(&n) {
            tris.push([p(a), p(b), p(c)]);
            tris.push([p(a), p(c), p(d)]);
        }
    }
    tris
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
    binary_stl(&tris)
}

/// A closed pentagonal prism as OBJ with its two caps as 5-corner polygons: valid OBJ (our
/// upload triangulates it), but PrusaSlicer 2.5's loader takes only triangles and quads (it
/// slices because PrusaSlicer gets our own triangulated OBJ).
fn pentagon_prism_obj() -> Vec<u8> {
    let mut text = String::new();
    for z in [0.0f32, 10.0] {
        for i in 0..5 {
            let a = 2.0 * std::f32::consts::PI * i as f32 / 5.0;
            text += &format!(
                "v {} {} {z}\n",
                10.0 + 10.0 * a.cos(),
                10.0 + 10.0 * a.sin()
            );
        }
    }
    text += "f 5 4 3 2 1\nf 6 7 8 9 10\n";
    for i in 1..=5 {
        let j = i % 5 + 1;
        text += &format!("f {i} {j} {} {}\n", j + 5, i + 5);
    }
    text.into_bytes()
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
    if !crate::common::slicer_present() {
        return;
    }
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
    if !crate::common::slicer_present() {
        return;
    }
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
    let cmd = poll(token.clone()).await;
    assert_eq!(cmd["command"], "gcodes");
    assert_eq!(cmd["filename"], "cube.gcode");
    let res = app
        .client
        .get(cmd["payload"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // A printer in error refuses the next job when its slice ends: the slice and its G-code
    // stand (only the print job is rolled back) and no job is recorded.
    app.client
        .post(app.url("/apiprinter/v1/printer/command"))
        .json(&json!({"auth_token": token, "report": {"state": "error", "percent": 0}}))
        .send()
        .await
        .unwrap();
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
    assert_eq!(done["print_job_id"], Value::Null, "{done}");
    let out = done["output_file_id"].as_i64().unwrap();
    let mut c = app.conn();
    let state: String = files::table
        .find(out)
        .select(files::state)
        .first(&mut *c)
        .unwrap();
    assert_eq!(state, "ready");
    let jobs: i64 = printfarm::db::schema::jobs::table
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(jobs, 1, "only the first slice's job");
}

/// A running slicer as /proc shows it.
#[derive(Debug)]
struct Slicer {
    pid: i32,
    pgid: i32,
    env: Vec<String>,
    cwd: String,
    limits: String,
}

/// The process group of a process, from /proc/<pid>/stat (the 5th field, after the command
/// name in parentheses).
fn pgid_of(pid: &str) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
}

fn own_pgid() -> i32 {
    pgid_of("self").unwrap()
}

/// Processes whose command line names a file under `dir` (the slicer of one test server).
fn slicers_under(dir: &str) -> Vec<Slicer> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        let Ok(n) = pid.parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(dir) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let env = env
            .split(|&b| b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| {
                String::from_utf8_lossy(v)
                    .split('=')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        out.push(Slicer {
            pid: n,
            pgid: pgid_of(&pid).unwrap_or(0),
            env,
            cwd: std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            limits: std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default(),
        });
    }
    out
}

/// The pids of the processes in process group `pgid` (zombies included).
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().to_string();
            let n = pid.parse::<i32>().ok()?;
            (pgid_of(&pid)? == pgid).then_some(n)
        })
        .collect()
}

async fn slow_slices_are_stopped(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(db, &[("PRINTFARM_SLICER__TIME_LIMIT_SECS", "1")]).await else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    // A finely tessellated sphere takes PrusaSlicer several seconds.
    let sphere = upload(&app, &s, "sphere.stl", sphere_stl(40.0, 400)).await;
    let (status, body) = slice(&app, &s, sphere, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    // Watch this server's slicer (its command line names our staging folder) while it runs.
    let staging = app.state.config.storage.staging_dir.clone();
    let mut seen: Option<Slicer> = None;
    for _ in 0..200 {
        if let Some(p) = slicers_under(&staging).into_iter().next() {
            seen = Some(p);
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let slicer = seen.expect("the slicer process was seen running");
    // Its own process group, a minimal environment, an empty working folder, and limits.
    assert_eq!(slicer.pgid, slicer.pid, "{slicer:?}");
    assert_ne!(slicer.pgid, own_pgid(), "{slicer:?}");
    let mut env = slicer.env.clone();
    env.sort();
    assert_eq!(env, ["HOME", "LC_ALL", "PATH", "TMPDIR"], "{slicer:?}");
    assert!(slicer.cwd.contains("/work-"), "{slicer:?}");
    for limit in ["Max cpu time", "Max data size", "Max file size"] {
        let line = slicer
            .limits
            .lines()
            .find(|l| l.starts_with(limit))
            .unwrap();
        assert!(!line.contains("unlimited"), "{line}");
    }
    let core = slicer
        .limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
    let done = wait_done(&app, &s, body["message"]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    // The whole group was killed and reaped: no process of it remains.
    assert!(
        group_members(slicer.pgid).is_empty(),
        "{:?}",
        group_members(slicer.pgid)
    );
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
    if !crate::common::slicer_present() {
        return;
    }
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

/// Models that pass the upload checks but that PrusaSlicer cannot slice: each slice fails with
/// a message a client can act on, and leaves nothing behind (no output row, no stored object,
/// the reserved output id unusable).
async fn slicer_failures_are_clear_and_leave_nothing(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("maker@example.com").await;
    let cases: [(&str, Vec<u8>, &[&str]); 2] = [
        // A cube missing three faces meeting at a corner: open, no closed cross-section.
        (
            "open_box.stl",
            binary_stl(&box_tris([20.0; 3], &[1, 3, 5])),
            &["no layers were detected", "open"],
        ),
        // Closed, but thinner than the first layer.
        (
            "thin.stl",
            binary_stl(&box_tris([20.0, 20.0, 0.05], &[])),
            &["no layers were detected", "thinner than one layer"],
        ),
    ];
    let mut models = Vec::new();
    for (name, bytes, expected) in cases {
        let model = upload(app, &s, name, bytes).await;
        models.push(model);
        let stored = app.stored_files();
        let (status, body) = slice(app, &s, model, mk4(), &[]).await;
        assert_eq!(status, 200, "{name}: {body}");
        let reserved = body["message"]["output_file_id"].as_i64().unwrap();
        let uuid = body["message"]["job_id"].as_str().unwrap().to_string();
        let done = wait_done(app, &s, &uuid).await;
        assert_eq!(done["status"], "failed", "{name}: {done}");
        let error = done["error"].as_str().unwrap();
        for needle in expected {
            assert!(error.contains(needle), "{name}: {error:?} lacks {needle:?}");
        }
        assert!(!error.contains('/'), "{name}: no server paths in {error:?}");
        assert_eq!(done["output_file_id"], Value::Null, "{name}");
        assert_eq!(done["print_job_id"], Value::Null, "{name}");
        // PrusaSlicer's own words are kept with the slice.
        let log: Option<String> = {
            let mut c = app.conn();
            slice_jobs::table
                .filter(slice_jobs::uuid.eq(&uuid))
                .select(slice_jobs::stderr)
                .first(&mut *c)
                .unwrap()
        };
        let log = log.unwrap_or_default();
        assert!(
            log.contains("Loading of a model file failed")
                || log.contains("No layers were detected"),
            "{name}: {log}"
        );
        // The reserved id is gone: no row, no settings, no download, no new stored object.
        let row: i64 = {
            let mut c = app.conn();
            files::table
                .filter(files::id.eq(reserved))
                .count()
                .get_result(&mut *c)
                .unwrap()
        };
        assert_eq!(row, 0, "{name}: the reserved output row was removed");
        assert_fail(
            &app.post(
                "/apiglobal/get_slicer_settings_for_gcode",
                &[("session", &s), ("file_id", &reserved.to_string())],
            )
            .await,
            404,
        );
        let res = app
            .client
            .get(app.url(&format!("/files/{reserved}/download")))
            .bearer_auth(&s)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{name}");
        assert_eq!(
            app.stored_files(),
            stored,
            "{name}: nothing stored or staged"
        );
    }
    let mut c = app.conn();
    let ids: Vec<i64> = files::table
        .select(files::id)
        .order(files::id)
        .load(&mut *c)
        .unwrap();
    assert_eq!(ids, models, "only the uploaded models remain");
}

fn limits(secs: u64) -> printfarm::slicer::Limits {
    printfarm::slicer::Limits {
        time: std::time::Duration::from_secs(secs),
        cpu_secs: 600,
        memory_bytes: 4096 << 20,
        output_bytes: 512 << 20,
    }
}

/// The driver itself against the real PrusaSlicer: each way it refuses a model is named.
#[actix_web::test]
async fn driver_names_each_failure() {
    use printfarm::slicer::{run, Profile, SliceError};
    if !common::slicer_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("profile.ini");
    std::fs::write(&ini, Profile::from_json(&json!({})).unwrap().to_ini()).unwrap();
    let out = dir.path().join("out.gcode");
    let slice_file = |name: &str, bytes: Vec<u8>| {
        let model = dir.path().join(name);
        std::fs::write(&model, bytes).unwrap();
        let (ini, out) = (ini.clone(), out.clone());
        async move {
            let running = printfarm::slicer::Running::default();
            run("prusa-slicer", &ini, &model, &out, &limits(120), &running).await
        }
    };
    // Bytes that are no mesh at all (more than a binary STL header's worth).
    let (result, log) = slice_file("model.stl", b"garbage ".repeat(64)).await;
    assert!(
        matches!(result, Err(SliceError::Unreadable(_))),
        "{result:?} {log}"
    );
    assert!(log.contains("Loading of a model file failed"), "{log}");
    assert!(!out.exists());
    // A 3MF that is not a zip archive.
    let (result, _) = slice_file("model.3mf", b"PK\x03\x04 not really a zip".to_vec()).await;
    assert!(
        matches!(result, Err(SliceError::Unreadable(_))),
        "{result:?}"
    );
    // An ASCII STL behind a UTF-8 byte-order mark: PrusaSlicer's reader says why.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(fixture("cube_20mm_ascii.stl"));
    let (result, _) = slice_file("bom.stl", bom).await;
    match result {
        Err(e @ SliceError::Unreadable(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("ASCII STL") && !msg.contains('/'), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
    // An open box: loaded, but nothing to slice.
    let (result, log) = slice_file("open.stl", binary_stl(&box_tris([20.0; 3], &[1, 3, 5]))).await;
    assert_eq!(result, Err(SliceError::NoLayers), "{log}");
    assert!(!out.exists());
    // The same profile slices a good cube (the failures above are the models' own).
    let (result, log) = slice_file("cube.stl", fixture("cube_20mm.stl")).await;
    assert_eq!(result, Ok(()), "{log}");
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("; estimated printing time"));
    // A slicer that is not installed is named as such.
    let model = dir.path().join("cube.stl");
    let never = tempfile::tempdir().unwrap();
    let (result, _) = run(
        "/nonexistent/prusa-slicer",
        &ini,
        &model,
        &never.path().join("never.gcode"),
        &limits(5),
        &Default::default(),
    )
    .await;
    match result {
        Err(SliceError::Failed(msg)) => {
            assert!(msg.contains("cannot start") && !msg.contains('/'), "{msg}");
            // Says how to get it.
            assert!(msg.contains("apt-get install prusa-slicer"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

/// STLs our upload reads but PrusaSlicer 2.5's STL reader does not, and OBJ polygons its
/// loader refuses: they are handed to it as OBJ written from our own reading, and slice like
/// any other.
async fn stls_prusaslicer_would_misread_still_slice(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("maker@example.com").await;
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(fixture("cube_20mm_ascii.stl"));
    let upper = String::from_utf8(fixture("cube_20mm_ascii.stl"))
        .unwrap()
        .replacen("solid", "SOLID", 1)
        .into_bytes();
    // Round coordinates and zero normals: no byte above 127 where PrusaSlicer looks for one.
    let tower = binary_stl(&box_tris([10.0, 10.0, 150.0], &[]));
    let cube = binary_stl(&box_tris([20.0; 3], &[]));
    for (name, bytes) in [
        ("bom.stl", bom),
        ("upper.stl", upper),
        ("tower.stl", tower),
        ("cube.stl", cube),
        ("prism.obj", pentagon_prism_obj()),
    ] {
        let model = upload(app, &s, name, bytes).await;
        let (status, body) = slice(app, &s, model, mk4(), &[]).await;
        assert_eq!(status, 200, "{name}: {body}");
        let done = wait_done(app, &s, body["message"]["job_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "done", "{name}: {done}");
        let out = done["output_file_id"].as_i64().unwrap();
        let mut c = app.conn();
        let analysis: Option<String> = files::table
            .find(out)
            .select(files::analysis)
            .first(&mut *c)
            .unwrap();
        let a: Value = serde_json::from_str(&analysis.unwrap()).unwrap();
        let top = match name {
            "tower.stl" => 150.0,
            "prism.obj" => 10.0,
            _ => 20.0,
        };
        // The whole part was sliced: 0.2 mm layers up to its top.
        assert_eq!(a["layer_count"], json!((top / 0.2) as u64), "{name}: {a}");
        assert!(
            (a["max_z"].as_f64().unwrap() - top).abs() < 0.5,
            "{name}: {a}"
        );
    }
}

/// A surface without thickness is refused when asked, not failed by the slicer later.
async fn flat_models_are_refused_before_slicing(app: &TestApp) {
    let s = app.login_new_user("maker@example.com").await;
    let flat = binary_stl(&box_tris([20.0, 20.0, 0.0], &[1, 2, 3, 4, 5]));
    let wall = binary_stl(&box_tris([20.0, 0.0, 20.0], &[0, 1, 3, 4, 5]));
    for (name, bytes) in [("sheet.stl", flat), ("wall.stl", wall)] {
        let model = upload(app, &s, name, bytes).await;
        let msg = assert_fail(&slice(app, &s, model, mk4(), &[]).await, 400);
        assert!(msg.contains("flat"), "{name}: {msg}");
    }
    let mut c = app.conn();
    let (reserved, slices): (i64, i64) = (
        files::table
            .filter(files::state.eq("reserved"))
            .count()
            .get_result(&mut *c)
            .unwrap(),
        slice_jobs::table.count().get_result(&mut *c).unwrap(),
    );
    assert_eq!((reserved, slices), (0, 0));
}

/// Settings that would make PrusaSlicer run a program, write where it likes or expand a
/// template are refused by name before anything is queued; nothing they name ever runs.
async fn dangerous_settings_are_refused_and_never_run(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("maker@example.com").await;
    let cube = upload(app, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let cases: Vec<(&str, Value)> = vec![
        ("post_process", json!(touch)),
        (
            "start_gcode",
            json!("G28\\n{if 1}M117 [input_filename]{endif}"),
        ),
        ("end_gcode", json!("M84 ; [input_filename_base]")),
        ("before_layer_gcode", json!("M117 {layer_num}")),
        ("output_filename_format", json!("../../x.gcode")),
        ("notes", json!("hello")),
        ("printer_notes", json!("hello")),
        ("filament_notes", json!("hello")),
        ("template_custom_gcode", json!("M117")),
        ("thumbnails", json!("16x16")),
        // A newline would start a line of its own in the slicer's config file.
        (
            "fill_pattern",
            json!(format!("grid\npost_process = {touch}")),
        ),
        (
            "support_material",
            json!(format!("1\npost_process = {touch}")),
        ),
        (
            "filament_type",
            json!(format!("PLA\npost_process = {touch}")),
        ),
        ("perimeters", json!("2\r\npost_process = x")),
    ];
    for (key, value) in cases {
        let mut profile = mk4();
        profile[key] = value;
        let msg = assert_fail(&slice(app, &s, cube, profile, &[]).await, 400);
        assert!(msg.contains(key), "{key}: {msg}");
        assert!(
            !msg.contains("touch"),
            "{key}: the value is not echoed: {msg}"
        );
    }
    // Refused before anything was written: no queued slice, no reserved output file.
    {
        let mut c = app.conn();
        let queued: i64 = slice_jobs::table.count().get_result(&mut *c).unwrap();
        assert_eq!(queued, 0);
        let reserved: i64 = files::table
            .filter(files::state.eq("reserved"))
            .count()
            .get_result(&mut *c)
            .unwrap();
        assert_eq!(reserved, 0);
    }
    // The same profile without them slices (so a queued attack would have run by now).
    let (status, body) = slice(app, &s, cube, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let done = wait_done(app, &s, body["message"]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(!marker.exists(), "a refused post_process ran");
}

/// A 3MF's own slicer configuration (here a `post_process` command, which PrusaSlicer 2.5 runs
/// when it loads such a 3MF itself) never reaches the slicer: it gets only the mesh we read,
/// and the part is still sliced whole and to scale.
async fn config_embedded_in_a_3mf_never_reaches_the_slicer(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("maker@example.com").await;
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran");
    let config = format!(
        "; generated by PrusaSlicer 2.5.0\n\n; post_process = touch {}\n; before_layer_gcode = M117 INJECTED\n; layer_height = 0.3\n",
        marker.display()
    );
    let model = upload(
        app,
        &s,
        "cube.3mf",
        common::cube_3mf(&[("Metadata/Slic3r_PE.config", config.as_bytes())]),
    )
    .await;
    let (status, body) = slice(app, &s, model, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let done = wait_done(app, &s, body["message"]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(!marker.exists(), "the 3MF's post_process ran");
    let out = done["output_file_id"].as_i64().unwrap();
    let (analysis, key): (Option<String>, String) = {
        let mut c = app.conn();
        files::table
            .find(out)
            .select((files::analysis, files::storage_key))
            .first(&mut *c)
            .unwrap()
    };
    let a: Value = serde_json::from_str(&analysis.unwrap()).unwrap();
    // Our 0.2 mm layers (not the 3MF's 0.3) up to the cube's 20 mm top.
    assert_eq!(a["layer_count"], json!(100), "{a}");
    assert!((a["max_z"].as_f64().unwrap() - 20.0).abs() < 0.5, "{a}");
    let gcode = std::fs::read_to_string(
        std::path::Path::new(&app.state.config.storage.files_dir).join(&key),
    )
    .unwrap();
    assert!(
        !gcode.contains("INJECTED"),
        "the 3MF's G-code template was used"
    );
}

/// Stopping the server kills its running slicers' whole process groups (the slice itself is
/// retried by the next instance, as after any crash).
async fn shutdown_kills_running_slicers(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(db, &[("PRINTFARM_SLICER__TIME_LIMIT_SECS", "120")]).await
    else {
        return;
    };
    let s = app.login_new_user("maker@example.com").await;
    let sphere = upload(&app, &s, "sphere.stl", sphere_stl(40.0, 400)).await;
    let (status, body) = slice(&app, &s, sphere, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let staging = app.state.config.storage.staging_dir.clone();
    let mut seen = None;
    for _ in 0..500 {
        if let Some(p) = slicers_under(&staging).into_iter().next() {
            seen = Some(p);
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let slicer = seen.expect("the slicer process was seen running");
    assert_eq!(app.state.slicers.list(), vec![slicer.pgid]);
    app.stop().await;
    let mut left = group_members(slicer.pgid);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        left = group_members(slicer.pgid);
    }
    assert!(left.is_empty(), "still running after shutdown: {left:?}");
}

/// The slicer's CPU-time and output-size limits end a slice with a clear reason (no server
/// path, no slicer output) and leave no output behind.
async fn slicer_resource_limits_end_the_slice_clearly(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    for (key, value, needle) in [
        (
            "PRINTFARM_SLICER__CPU_LIMIT_SECS",
            "1",
            "ran out of CPU time",
        ),
        (
            "PRINTFARM_SLICER__MAX_OUTPUT_MB",
            "1",
            "larger than this server allows",
        ),
    ] {
        let Some(app) = TestApp::start(db, &[(key, value)]).await else {
            return;
        };
        let s = app.login_new_user("maker@example.com").await;
        let sphere = upload(&app, &s, "sphere.stl", sphere_stl(40.0, 400)).await;
        let (status, body) = slice(&app, &s, sphere, mk4(), &[]).await;
        assert_eq!(status, 200, "{body}");
        let done = wait_done(&app, &s, body["message"]["job_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "failed", "{key}: {done}");
        let error = done["error"].as_str().unwrap();
        assert!(error.contains(needle), "{key}: {error}");
        assert!(!error.contains('/'), "{key}: {error}");
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
}

/// The lease is short (the owner's heartbeat keeps it): a slice that runs several leases long
/// is done once, by its first worker, and nobody takes it over meanwhile.
async fn a_long_slice_keeps_its_short_lease(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(db, &[("PRINTFARM_SLICER__LEASE_SECS", "3")]).await else {
        return;
    };
    let second = app.second_instance().await; // another worker that would take a lapsed lease
    let s = app.login_new_user("maker@example.com").await;
    let sphere = upload(&app, &s, "sphere.stl", sphere_stl(40.0, 300)).await;
    let (status, body) = slice(&app, &s, sphere, mk4(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let uuid = body["message"]["job_id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let done = wait_done(&app, &s, &uuid).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["attempts"],
        json!(1),
        "a live worker lost its lease: {done}"
    );
    // Only meaningful when the slice outlived the lease.
    assert!(
        started.elapsed() > std::time::Duration::from_secs(3),
        "the model sliced too fast to test the lease"
    );
    second.stop().await;
    app.stop().await;
}

/// PrusaSlicer's `gcode_flavor` values (2.5.0 `--help-fff`) and `machine_limits_usage` values.
const FLAVORS: &[&str] = &[
    "reprap",
    "reprapfirmware",
    "repetier",
    "teacup",
    "makerware",
    "marlin",
    "marlin2",
    "sailfish",
    "mach3",
    "machinekit",
    "smoothie",
    "no-extrusion",
];
const LIMITS_USAGE: &[&str] = &["emit_to_gcode", "time_estimate_only", "ignore"];

/// Machine limits unlike PrusaSlicer's built-in ones (so applying or not applying them shows),
/// normal and silent values different (so reading the wrong one shows).
const LIMITS_INI: &str = "bed_shape = 0x0,220x0,220x220,0x220
max_print_height = 200
nozzle_diameter = 0.4
machine_max_feedrate_x = 200,100
machine_max_feedrate_y = 200,100
machine_max_feedrate_z = 12,12
machine_max_feedrate_e = 60,60
machine_max_acceleration_x = 800,500
machine_max_acceleration_y = 800,500
machine_max_acceleration_z = 200,200
machine_max_acceleration_e = 3000,3000
machine_max_acceleration_extruding = 600,400
machine_max_acceleration_retracting = 1000,800
machine_max_acceleration_travel = 1200,700
machine_max_jerk_x = 8,7
machine_max_jerk_y = 8,7
machine_max_jerk_z = 0.4,0.4
machine_max_jerk_e = 5,4
layer_height = 0.3
first_layer_height = 0.3
perimeters = 2
top_solid_layers = 3
bottom_solid_layers = 3
fill_density = 15%
perimeter_speed = 60
external_perimeter_speed = 40
infill_speed = 120
solid_infill_speed = 80
top_solid_infill_speed = 50
travel_speed = 180
first_layer_speed = 30
skirts = 1
retract_length = 1
";

/// A 48-facet cylinder, r 15 mm, h 4 mm (sliced twice side by side: travel between objects).
fn cylinder_stl() -> Vec<u8> {
    let (n, r, h) = (48usize, 15.0f32, 4.0f32);
    let p = |i: usize, z: f32| {
        let a = std::f32::consts::TAU * (i % n) as f32 / n as f32;
        [r * a.cos(), r * a.sin(), z]
    };
    let mut tris: Vec<Tri> = Vec::new();
    for i in 0..n {
        tris.push([p(i, 0.0), p(i + 1, 0.0), p(i + 1, h)]);
        tris.push([p(i, 0.0), p(i + 1, h), p(i, h)]);
        tris.push([[0.0, 0.0, 0.0], p(i + 1, 0.0), p(i, 0.0)]);
        tris.push([[0.0, 0.0, h], p(i, h), p(i + 1, h)]);
    }
    binary_stl(&tris)
}

/// Our estimate of G-code sliced by the real PrusaSlicer, under every `machine_limits_usage`
/// × `gcode_flavor` combination, through the upload analysis (which reads the limits from
/// the file's configuration block when it has no M201–M205), against PrusaSlicer's own
/// normal-mode figure: within 1 % each.
#[test]
fn estimates_match_prusaslicer_under_every_limits_usage_and_flavor() {
    use printfarm::services::files::{analyse_staged, Kind};
    if !common::slicer_present() {
        return;
    }
    let slicer = common::slicer_command();
    let dir = tempfile::tempdir().unwrap();
    let stl = dir.path().join("cylinder.stl");
    std::fs::write(&stl, cylinder_stl()).unwrap();
    let ini = dir.path().join("limits.ini");
    std::fs::write(&ini, LIMITS_INI).unwrap();
    let combos: Vec<(&str, &str)> = LIMITS_USAGE
        .iter()
        .flat_map(|u| FLAVORS.iter().map(move |f| (*u, *f)))
        .collect();
    // Two slicer processes at a time (the machine has two cores).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&(usage, flavor)) = combos.get(i) else {
                    break;
                };
                let out = dir.path().join(format!("{flavor}-{usage}.gcode"));
                let run = std::process::Command::new(slicer)
                    .args(["--loglevel", "0", "--load"])
                    .arg(&ini)
                    .args(["--gcode-flavor", flavor, "--machine-limits-usage", usage])
                    .args(["--duplicate", "2", "--export-gcode", "-o"])
                    .arg(&out)
                    .arg(&stl)
                    .output()
                    .unwrap();
                assert!(
                    run.status.success(),
                    "{flavor}/{usage}: {}",
                    String::from_utf8_lossy(&run.stderr)
                );
                let size = std::fs::metadata(&out).unwrap().len();
                let a = analyse_staged(&out, size, Kind::Gcode, false).unwrap();
                let ours = a.analysis["estimated_time_s"].as_f64().unwrap();
                let theirs = a.analysis["slicer_estimated_time_s"].as_f64().unwrap();
                results
                    .lock()
                    .unwrap()
                    .push((i, usage, flavor, ours, theirs));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    assert_eq!(results.len(), combos.len());
    let mut report = String::from("usage / flavor: ours s vs PrusaSlicer s (error)\n");
    let mut bad = Vec::new();
    for (_, usage, flavor, ours, theirs) in &results {
        let err = (ours - theirs) / theirs * 100.0;
        report += &format!("{usage:>18} {flavor:>14}: {ours:8.1} vs {theirs:6.0} ({err:+.2} %)\n");
        if err.abs() > 1.0 {
            bad.push(format!("{usage}/{flavor}"));
        }
    }
    eprintln!("{report}");
    assert!(bad.is_empty(), "more than 1 % off: {bad:?}\n{report}");

    // A zipped upload (no seeking into the entry) reads the same block: same estimate.
    let (_, usage, flavor, ours, _) = results
        .iter()
        .find(|r| r.1 == "time_estimate_only" && r.2 == "marlin2")
        .unwrap();
    let gcode = std::fs::read(dir.path().join(format!("{flavor}-{usage}.gcode"))).unwrap();
    let zipped = dir.path().join("part.gcode.zip");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
        z.start_file("part.gcode", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(&gcode).unwrap();
        z.finish().unwrap();
    }
    let size = std::fs::metadata(&zipped).unwrap().len();
    let a = analyse_staged(&zipped, size, Kind::Gcode, true).unwrap();
    assert_eq!(a.analysis["estimated_time_s"].as_f64().unwrap(), *ours);
}

/// A model for the farm queue: `print_file` with a printer type slices it for that type
/// first; `slice` with a farm target makes a farm job of its G-code; either way the copies
/// start on the free printers of the type as ordinary jobs.
async fn sliced_models_go_to_the_farm_queue(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("farmer@example.com").await;
    let mut tokens = vec![];
    for snr in ["FARM-S1", "FARM-S2"] {
        let (_, token) = app.register_printer(&s, snr).await;
        app.agent(
            "command",
            json!({"auth_token": token, "report": {"state": "ready"}, "bed_clear": true}),
        )
        .await;
        tokens.push(token);
    }
    let (_, types) = app
        .post("/apiglobal/get_printer_types", &[("session", &s)])
        .await;
    let mk4_type = types["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == "Prusa MK4")
        .map(|t| t["id"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no PRUSA_MK4 in {types}"))
        .to_string();
    let stl = upload(app, &s, "cube.stl", fixture("cube_20mm.stl")).await;
    let stl_id = stl.to_string();

    // print_file: a model is sliced for the type, then its copies go to the farm.
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &s),
                ("file_id", &stl_id),
                ("printer_type_id", &mk4_type),
                ("copies", "2"),
                ("material", "PETG"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let uuid = body["message"]["slice_job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_done(app, &s, &uuid).await;
    assert_eq!(done["status"], "done", "{done}");
    let fj = done["farm_job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{done}"));
    let (_, q) = app
        .post(
            "/apiglobal/get_farm_queue",
            &[("session", &s), ("farm_job_id", &fj.to_string())],
        )
        .await;
    let q = &q["message"][0];
    assert_eq!(q["file_id"], done["output_file_id"], "{q}");
    assert_eq!(q["material"], "PETG");
    assert_eq!(q["reason_code"], "material", "no PETG loaded: {q}");
    // The G-code was sliced for PETG.
    let settings = {
        let mut c = app.conn();
        files::table
            .find(done["output_file_id"].as_i64().unwrap())
            .select(files::slicer_settings)
            .first::<Option<String>>(&mut *c)
            .unwrap()
            .unwrap_or_default()
    };
    assert!(settings.contains("PET"), "{settings}");

    // slice with a farm target: the client's profile, then the farm.
    let (status, body) = slice(
        app,
        &s,
        stl,
        mk4(),
        &[("printer_type_id", mk4_type.as_str()), ("copies", "3")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let uuid = body["message"]["job_id"].as_str().unwrap().to_string();
    let done = wait_done(app, &s, &uuid).await;
    let fj = done["farm_job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{done}"));
    let mut started = 0;
    for _ in 0..50 {
        let (_, q) = app
            .post(
                "/apiglobal/get_farm_queue",
                &[("session", &s), ("farm_job_id", &fj.to_string())],
            )
            .await;
        started = q["message"][0]["printing"].as_i64().unwrap();
        if started == 2 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(started, 2, "both free printers took a copy");
    for token in &tokens {
        let cmd = app
            .agent(
                "command",
                json!({"auth_token": token, "report": {"state": "ready"}}),
            )
            .await;
        assert_eq!(cmd["command"], "gcodes", "{cmd}");
        assert_eq!(cmd["filename"], "cube.gcode");
    }

    // Refusals, before anything is sliced.
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("workgroup_id", "1")], "one printer type"),
        (
            &[("printer_type_id", "999999")],
            "Printer type 999999 not found",
        ),
        (
            &[("printer_type_id", mk4_type.as_str()), ("copies", "0")],
            "copies",
        ),
    ];
    for (extra, says) in cases {
        let mut form = vec![("session", s.as_str()), ("file_id", stl_id.as_str())];
        form.extend_from_slice(extra);
        let got = app.post("/apiglobal/print_file", &form).await;
        let status = if says.contains("not found") { 404 } else { 400 };
        assert!(
            assert_fail(&got, status).contains(says),
            "{extra:?}: {got:?}"
        );
    }
    let got = slice(
        app,
        &s,
        stl,
        mk4(),
        &[
            ("add_print_job_to_printer_id", "1"),
            ("printer_type_id", mk4_type.as_str()),
        ],
    )
    .await;
    assert!(assert_fail(&got, 400).contains("Name one target"));
    let got = slice(
        app,
        &s,
        stl,
        mk4(),
        &[
            ("printer_type_id", mk4_type.as_str()),
            ("start_print_job", "0"),
        ],
    )
    .await;
    assert!(assert_fail(&got, 400).contains("start_print_job"));
    let slices: i64 = {
        let mut c = app.conn();
        slice_jobs::table.count().get_result(&mut *c).unwrap()
    };
    assert_eq!(slices, 2, "refused calls queue no slice");
}
