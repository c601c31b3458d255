//! Issue #13 item 9, through HTTP on both backends: what holders of a share from another
//! organization see of a printer's jobs, who may load previews at `/render/<picture>`, and who
//! may toggle the build-tray flag.

use crate::common;

use common::{assert_fail, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{jobs, printers, sessions, users};
use serde_json::{json, Value};

backend_tests!(
    cross_org_share_holder_sees_own_jobs_only,
    previews_need_the_right_to_see_them,
    queue_only_holders_cannot_toggle_the_build_tray,
    reads_take_one_statement_for_everyone_allowed,
);

/// Registers a virtual printer for the session's user, who becomes its owner; it reports ready.
async fn printer(app: &TestApp, session: &str, snr: &str) -> (i64, String) {
    let dev = json!({"VID": "VIRT", "PID": "VIRT", "SNR": snr, "type": "PRUSA_MK4"});
    let code = app.agent("register", dev.clone()).await["registration_code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", session), ("registration_code", &code)],
        )
        .await;
    let id = body["message"]["printer_id"].as_i64().unwrap();
    let mut d = dev;
    d["registration_code"] = json!(code);
    let token = app.agent("register", d).await["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ready = json!({"auth_token": token, "report": {"state": "ready", "percent": 0}});
    assert_eq!(app.agent("command", ready).await, json!({}));
    (id, token)
}

async fn upload(app: &TestApp, session: &str) -> i64 {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(session, "cube.gcode", bytes, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["message"]["file_id"].as_i64().unwrap()
}

async fn queue(app: &TestApp, session: &str, printer: i64, file: i64) -> i64 {
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

async fn share(app: &TestApp, owner: &str, printer: i64, email: &str, role: &str) {
    let (status, body) = app
        .post(
            "/apiglobal/share_printer",
            &[
                ("session", owner),
                ("printer_id", &printer.to_string()),
                ("role_id", role),
                ("user_email", email),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A workgroup "Lab" created by an organization admin, holding the printer, with the user of
/// that email as a member with these rights. Returns its id.
async fn workgroup_with_printer(
    app: &TestApp,
    admin: &str,
    printer: i64,
    email: &str,
    rights: &str,
) -> String {
    let (status, body) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", admin), ("name", "Lab"), ("password", "join-me")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let wg = body["message"]["id"].as_i64().unwrap().to_string();
    let printer = printer.to_string();
    for (call, form) in [
        (
            "set_printer_workgroups",
            [
                ("printer_id", printer.as_str()),
                ("workgroup_id[]", wg.as_str()),
            ],
        ),
        (
            "add_user_to_workgroup",
            [("workgroup_id", wg.as_str()), ("email", email)],
        ),
    ] {
        let mut f: Vec<(&str, &str)> = vec![("session", admin)];
        f.extend(form);
        if call == "add_user_to_workgroup" {
            f.push(("rights", rights));
        }
        let (status, body) = app.post(&format!("/apiglobal/{call}"), &f).await;
        assert_eq!(status, 200, "{call}: {body}");
    }
    wg
}

async fn job_info(app: &TestApp, session: &str, job: i64) -> (u16, Value) {
    app.post(
        "/apiglobal/get_job_info",
        &[("session", session), ("job_id", &job.to_string())],
    )
    .await
}

/// The job ids and emails `get_printer_jobs` shows to a session.
async fn listed(app: &TestApp, session: &str, printer: i64) -> (Vec<i64>, String) {
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[("session", session), ("printer_id", &printer.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ids = body["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().parse().unwrap())
        .collect();
    (ids, body.to_string())
}

async fn cross_org_share_holder_sees_own_jobs_only(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (pid, _) = printer(app, &owner, "SEC-1").await;
    let owner_job = queue(app, &owner, pid, upload(app, &owner).await).await;

    let other_org = app.create_org("Partner Lab");
    let (_, guest) = app
        .user_with_session(other_org, "guest@partner.example", 0)
        .await;
    share(app, &owner, pid, "guest@partner.example", "2").await;
    let guest_job = queue(app, &guest, pid, upload(app, &guest).await).await;

    // The guest lists and opens their own job only; the owner's is "not found".
    let (ids, text) = listed(app, &guest, pid).await;
    assert_eq!(ids, vec![guest_job]);
    assert!(!text.contains("owner@example.com"), "{text}");
    assert_eq!(job_info(app, &guest, guest_job).await.0, 200);
    assert_fail(&job_info(app, &guest, owner_job).await, 404);
    // Live updates (prev_time) are filtered the same way.
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &guest),
                ("printer_id", &pid.to_string()),
                ("prev_time", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("owner@example.com"), "{body}");
    // The guest cannot cancel the owner's job either.
    let (status, _) = app
        .post(
            "/apiglobal/job_cancel",
            &[("session", &guest), ("job_id", &owner_job.to_string())],
        )
        .await;
    assert_eq!(status, 404);

    // People of the printer's organization still see every job.
    let (ids, _) = listed(app, &owner, pid).await;
    assert_eq!(ids, vec![guest_job, owner_job]);
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    assert_eq!(job_info(app, &admin, guest_job).await.0, 200);
    let (ids, _) = listed(app, &admin, pid).await;
    assert_eq!(ids.len(), 2);
}

async fn render(app: &TestApp, picture: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let url = match auth {
        Some(("query", s)) => app.url(&format!("/render/{picture}?session={s}")),
        _ => app.url(&format!("/render/{picture}")),
    };
    let mut req = app.client.get(url);
    if let Some(("bearer", s)) = auth {
        req = req.bearer_auth(s);
    }
    req.send().await.unwrap()
}

async fn previews_need_the_right_to_see_them(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (pid, _) = printer(app, &owner, "SEC-2").await;
    let job = queue(app, &owner, pid, upload(app, &owner).await).await;
    let (_, info) = job_info(app, &owner, job).await;
    let picture = info["message"]["picture"].as_str().unwrap().to_string();

    let other_org = app.create_org("Partner Lab");
    let (_, guest) = app
        .user_with_session(other_org, "guest@partner.example", 0)
        .await;
    share(app, &owner, pid, "guest@partner.example", "2").await;
    let stranger = app.login_new_user("stranger@example.com").await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;

    // No session: 401, and nothing of the picture.
    let res = render(app, &picture, None).await;
    assert_eq!(res.status().as_u16(), 401);
    assert!(!res.bytes().await.unwrap().starts_with(b"\x89PNG"));
    // A bad session: 401.
    assert_eq!(
        render(app, &picture, Some(("bearer", "0123abcd")))
            .await
            .status()
            .as_u16(),
        401
    );
    // Sessions that cannot see the file or a job printing it: 404, as for no such picture.
    for s in [&stranger, &guest] {
        for how in ["query", "bearer"] {
            let res = render(app, &picture, Some((how, s))).await;
            assert_eq!(res.status().as_u16(), 404, "{how}");
        }
    }
    // The file's owner, and the organization admin who sees the job: the PNG.
    for s in [&owner, &admin] {
        for how in ["query", "bearer"] {
            let res = render(app, &picture, Some((how, s))).await;
            assert_eq!(res.status().as_u16(), 200, "{how}");
            assert_eq!(res.headers()["content-type"], "image/png");
            assert!(res.bytes().await.unwrap().starts_with(b"\x89PNG"));
        }
    }
    // The guest sees the preview of their own job's file.
    let guest_job = queue(app, &guest, pid, upload(app, &guest).await).await;
    let (_, info) = job_info(app, &guest, guest_job).await;
    let theirs = info["message"]["picture"].as_str().unwrap().to_string();
    assert_eq!(
        render(app, &theirs, Some(("bearer", &guest)))
            .await
            .status()
            .as_u16(),
        200
    );
    // A `/v1` API token of the owner works like the session; a tampered one is refused.
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &owner), ("name", "previews")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let api_token = body["message"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        render(app, &picture, Some(("bearer", &api_token)))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        render(app, &picture, Some(("bearer", &format!("{api_token}x"))))
            .await
            .status()
            .as_u16(),
        401
    );
    // A malformed name with a good session: 404.
    assert_eq!(
        render(app, "nope.png", Some(("bearer", &owner)))
            .await
            .status()
            .as_u16(),
        404
    );
}

async fn queue_only_holders_cannot_toggle_the_build_tray(app: &TestApp) {
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (status, body) = app
        .post(
            "/apiglobal/update_organization_settings",
            &[("session", &admin), ("auto_start_queue", "1")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let owner = app.login_new_user("owner@example.com").await;
    let (pid, _) = printer(app, &owner, "SEC-3").await;
    let job = queue(app, &owner, pid, upload(app, &owner).await).await;
    let tray = || {
        let mut c = app.conn();
        printers::table
            .find(pid)
            .select(printers::tray_clear)
            .first::<bool>(&mut *c)
            .unwrap()
    };
    let job_status = || {
        let mut c = app.conn();
        jobs::table
            .find(job)
            .select(jobs::status_id)
            .first::<i32>(&mut *c)
            .unwrap()
    };
    {
        // The tray is not clear: the queued job waits for someone to clear it.
        let mut c = app.conn();
        diesel::update(printers::table.find(pid))
            .set(printers::tray_clear.eq(false))
            .execute(&mut *c)
            .unwrap();
    }
    let set_tray = |session: String, clear: &'static str| async move {
        app.post(
            "/apiglobal/printer_clear_build_tray",
            &[
                ("session", &session),
                ("printer_id", &pid.to_string()),
                ("is_clear", clear),
            ],
        )
        .await
    };

    // Queue-only share holders, from this organization and from another: 403, nothing starts.
    let other_org = app.create_org("Partner Lab");
    let (_, far_queuer) = app
        .user_with_session(other_org, "queuer@partner.example", 0)
        .await;
    share(app, &owner, pid, "queuer@partner.example", "5").await;
    let near_queuer = app.login_new_user("queuer@example.com").await;
    share(app, &owner, pid, "queuer@example.com", "5").await;
    // And a workgroup member with rights 3 (can queue) on a workgroup holding the printer.
    let wg_queuer = app.login_new_user("wg-queuer@example.com").await;
    workgroup_with_printer(app, &admin, pid, "wg-queuer@example.com", "3").await;
    for s in [&far_queuer, &near_queuer, &wg_queuer] {
        assert_fail(&set_tray(s.clone(), "1").await, 403);
        assert!(!tray(), "the tray flag is unchanged");
        assert_eq!(job_status(), 11, "the queued job did not start");
    }
    // A stranger gets 404, as for a missing printer.
    let stranger = app.login_new_user("stranger@example.com").await;
    assert_fail(&set_tray(stranger, "1").await, 404);
    assert!(!tray());

    // Nor may they block the queue by marking a clear tray as not clear.
    {
        let mut c = app.conn();
        diesel::update(printers::table.find(pid))
            .set(printers::tray_clear.eq(true))
            .execute(&mut *c)
            .unwrap();
    }
    assert_fail(&set_tray(far_queuer.clone(), "0").await, 403);
    assert!(tray());
    {
        let mut c = app.conn();
        diesel::update(printers::table.find(pid))
            .set(printers::tray_clear.eq(false))
            .execute(&mut *c)
            .unwrap();
    }

    // A holder who may print clears it, and the queued job starts.
    let (_, printer_guest) = app
        .user_with_session(other_org, "printer@partner.example", 0)
        .await;
    share(app, &owner, pid, "printer@partner.example", "2").await;
    let (status, body) = set_tray(printer_guest, "1").await;
    assert_eq!(status, 200, "{body}");
    assert!(tray() || job_status() != 11);
    assert_ne!(job_status(), 11, "the cleared tray started the queued job");
}

/// How many signed reads the server answered in one statement and by the exact path so far.
async fn signed_reads(app: &TestApp) -> (u64, u64) {
    let text = app.metrics_text().await;
    let count = |label: &str| {
        let key = format!("printfarm_signed_reads_total{{statement=\"{label}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    (count("one"), count("exact"))
}

/// Issue #20: the read calls check the session and the caller's rights in the statement that
/// reads their data. Everyone the rules let read (organization admin, owner, workgroup member,
/// holder of a share from another organization) is answered in one statement, with exactly the
/// rows the rules allow; everyone else (and the live-update form of `get_printer_jobs`) takes
/// the exact path, which refuses as before.
async fn reads_take_one_statement_for_everyone_allowed(app: &TestApp) {
    let owner = app.login_new_user("owner@example.com").await;
    let (pid, _) = printer(app, &owner, "SIGNED-1").await;
    let p = pid.to_string();
    let owner_job = queue(app, &owner, pid, upload(app, &owner).await).await;
    let (_, admin) = app
        .user_with_session(app.org_id, "admin@example.com", 1)
        .await;
    let (_, member) = app
        .user_with_session(app.org_id, "member@example.com", 0)
        .await;
    let (_, stranger) = app
        .user_with_session(app.org_id, "stranger@example.com", 0)
        .await;

    let wg = workgroup_with_printer(app, &admin, pid, "member@example.com", "3").await;
    let member_job = queue(app, &member, pid, upload(app, &member).await).await;

    let partner = app.create_org("Partner Lab");
    let (_, guest) = app
        .user_with_session(partner, "guest@partner.example", 0)
        .await;
    share(app, &owner, pid, "guest@partner.example", "2").await;
    let guest_job = queue(app, &guest, pid, upload(app, &guest).await).await;

    let jobs_of = |session: &str| listed_ids(app, session.to_string(), pid);
    let mut counted = signed_reads(app).await;
    let mut expect = |one: u64, exact: u64, now: (u64, u64), what: &str| {
        assert_eq!(
            (now.0 - counted.0, now.1 - counted.1),
            (one, exact),
            "{what}: (one statement, exact path)"
        );
        counted = now;
    };

    // The organization admin: everything, each in one statement.
    let (status, body) = app
        .post("/apiglobal/get_projects", &[("session", &admin)])
        .await;
    assert_eq!((status, body["message"].clone()), (200, json!([])));
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &admin)],
        )
        .await;
    assert_eq!(
        body["message"],
        json!([{"id": wg.parse::<i64>().unwrap(), "name": "Lab", "rights": 2}])
    );
    let (_, body) = app
        .post(
            "/apiglobal/get_printer_shares",
            &[("session", &admin), ("printer_id", &p)],
        )
        .await;
    assert_eq!(
        body["message"][0]["email"],
        json!("guest@partner.example"),
        "{body}"
    );
    assert_eq!(
        jobs_of(&admin).await,
        vec![guest_job, member_job, owner_job]
    );
    assert_eq!(job_info(app, &admin, guest_job).await.0, 200);
    expect(5, 0, signed_reads(app).await, "admin");

    // The owner (no admin): the printer's shares, all its jobs.
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_shares",
            &[("session", &owner), ("printer_id", &p)],
        )
        .await;
    assert_eq!(
        (status, body["message"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(
        jobs_of(&owner).await,
        vec![guest_job, member_job, owner_job]
    );
    let (status, body) = app
        .post("/apiglobal/get_projects", &[("session", &owner)])
        .await;
    assert_eq!(
        (status, body["message"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    expect(3, 0, signed_reads(app).await, "owner");

    // The workgroup member (queue rights): their workgroup, every job of the printer (same
    // organization); the shares are the managers' (403, exact path).
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &member)],
        )
        .await;
    assert_eq!(
        body["message"],
        json!([{"id": wg.parse::<i64>().unwrap(), "name": "Lab", "rights": 3}])
    );
    assert_eq!(
        jobs_of(&member).await,
        vec![guest_job, member_job, owner_job]
    );
    assert_eq!(job_info(app, &member, owner_job).await.0, 200);
    assert_fail(
        &app.post(
            "/apiglobal/get_printer_shares",
            &[("session", &member), ("printer_id", &p)],
        )
        .await,
        403,
    );
    expect(3, 1, signed_reads(app).await, "member");

    // The share holder from another organization: only their own job, in one statement; the
    // owner's job is unknown to them (exact path).
    assert_eq!(jobs_of(&guest).await, vec![guest_job]);
    assert_eq!(job_info(app, &guest, guest_job).await.0, 200);
    assert_fail(&job_info(app, &guest, owner_job).await, 404);
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &guest)],
        )
        .await;
    assert_eq!(body["message"], json!([]));
    expect(3, 1, signed_reads(app).await, "guest");

    // Someone of the organization without rights: the printer and its jobs do not exist.
    for got in [
        app.post(
            "/apiglobal/get_printer_jobs",
            &[("session", &stranger), ("printer_id", &p)],
        )
        .await,
        job_info(app, &stranger, owner_job).await,
        app.post(
            "/apiglobal/get_printer_shares",
            &[("session", &stranger), ("printer_id", &p)],
        )
        .await,
    ] {
        assert_fail(&got, 404);
    }
    let (_, body) = app
        .post(
            "/apiglobal/get_workgroups_simple_list",
            &[("session", &stranger)],
        )
        .await;
    assert_eq!(body["message"], json!([]));
    expect(1, 3, signed_reads(app).await, "stranger");

    // Live updates (a change cursor) take the exact path, with the same rows.
    let (status, body) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", &admin),
                ("printer_id", &p),
                ("prev_time", "0"),
                ("is_actual", "1"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["message"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{body}"
    );
    expect(0, 1, signed_reads(app).await, "live updates");

    // A disabled account and an expired session: refused as before, by the exact path.
    let mut c = app.conn();
    diesel::update(users::table.filter(users::email.eq("member@example.com")))
        .set(users::disabled.eq(true))
        .execute(&mut *c)
        .unwrap();
    assert_fail(
        &app.post("/apiglobal/get_projects", &[("session", &member)])
            .await,
        403,
    );
    diesel::update(sessions::table)
        .set(sessions::expires_at.eq(chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1)))
        .execute(&mut *c)
        .unwrap();
    drop(c);
    let got = app
        .post("/apiglobal/get_projects", &[("session", &admin)])
        .await;
    assert!(assert_fail(&got, 401).to_lowercase().contains("expired"));
    assert_fail(&job_info(app, &owner, owner_job).await, 401);
    expect(0, 3, signed_reads(app).await, "refused sessions");
}

async fn listed_ids(app: &TestApp, session: String, printer: i64) -> Vec<i64> {
    listed(app, &session, printer).await.0
}
