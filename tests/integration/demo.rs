//! The demo farm (`printfarm serve --demo`, issue #19): virtual printers run by the server's
//! own agent print the sample files through the real protocol, and one action removes all of
//! it and nothing else; only an admin of its organization may.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::Value;

use printfarm::db::schema::{demo_farm, files, registration_codes, users};
use printfarm::services::demo::{DEMO_EMAIL, PRINTERS, SAMPLES};

use crate::common::{Db, TestApp, PASSWORD};
use crate::console::http_sign_in;

backend_cases!(a_demo_farm_prints_and_one_action_removes_it_and_nothing_else);

/// Waits (generously: not a speed check) until `f` answers something.
async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn printers(app: &TestApp, session: &str) -> Vec<Value> {
    let (status, body) = app
        .post(
            "/apiglobal/get_organization_printers_list",
            &[("session", session)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"].as_array().unwrap().clone()
}

fn demo_codes(app: &TestApp) -> i64 {
    let mut c = app.conn();
    registration_codes::table
        .filter(registration_codes::device_key.like("DEMO:%"))
        .count()
        .get_result(&mut *c)
        .unwrap()
}

async fn a_demo_farm_prints_and_one_action_removes_it_and_nothing_else(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let admin_email = "admin@demo.test";
    app.create_user(app.org_id, admin_email, 1);
    let admin = app.login(admin_email, PASSWORD).await;
    // The organization's own printer and file, which the removal must leave alone.
    let gcode = std::fs::read("fixtures/cube_20mm.gcode").unwrap();
    let (status, own) = app.upload(&admin, "own.gcode", gcode, &[]).await;
    assert_eq!(status, 200, "{own}");
    let own_file = own["message"]["file_id"].as_i64().unwrap();
    let (own_printer, _) = app.register_printer(&admin, "OWN-1").await;
    let stored_before = app.stored_files();

    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    assert!(printfarm::background::demo::start(&app.state, addr)
        .await
        .unwrap());
    let hasher = app.state.hasher.clone();
    let (_, again) = app
        .state
        .db(move |c| printfarm::services::demo::ensure(c, &hasher))
        .await
        .unwrap();
    assert!(!again, "a second start adds no second demo");

    // The virtual printers join under their names, with their filaments, and print.
    let demo = until("the demo printers print", 90, || async {
        let list = printers(&app, &admin).await;
        let demo: Vec<Value> = list
            .into_iter()
            .filter(|p| PRINTERS.iter().any(|d| p["name"] == d.name))
            .collect();
        (demo.len() == PRINTERS.len() && demo.iter().any(|p| p["state"] == "printing"))
            .then_some(demo)
    })
    .await;
    for p in &demo {
        let d = PRINTERS.iter().find(|d| p["name"] == d.name).unwrap();
        assert_eq!(p["type"], d.printer_type, "{p}");
        assert_eq!(p["snr"], d.snr, "{p}");
    }
    // The samples are stored (file and preview each) and owned by the demo user.
    let stored_with_demo: Vec<String> = app
        .stored_files()
        .into_iter()
        .filter(|f| f.starts_with("files/"))
        .collect();
    assert_eq!(
        stored_with_demo.len(),
        stored_before.len() + 2 * SAMPLES.len(),
        "{stored_with_demo:?}"
    );
    // History: a sample printed to the end (77) on a demo printer, through the agent.
    let ids: Vec<String> = demo.iter().map(|p| p["id"].to_string()).collect();
    until("a demo job is done", 180, || async {
        for id in &ids {
            let (status, body) = app
                .post(
                    "/apiglobal/get_printer_jobs",
                    &[("session", &admin), ("printer_id", id)],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["message"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["status_id"].to_string().trim_matches('"') == "77")
            {
                return Some(());
            }
        }
        None
    })
    .await;

    // Refused: a member, a workgroup admin (whose printers page does not offer it), an admin
    // of another organization, and a forged form.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    app.create_user(app.org_id, "member@demo.test", 0);
    app.create_user(app.org_id, "wgadmin@demo.test", 2);
    let other_org = app.create_org("Elsewhere");
    app.create_user(other_org, "admin@elsewhere.test", 1);
    let remove = |cookie: String, csrf: String| {
        let client = client.clone();
        let url = app.url("/admin/demo/remove");
        async move {
            client
                .post(url)
                .header("cookie", cookie)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap()
        }
    };
    for who in [
        "member@demo.test",
        "wgadmin@demo.test",
        "admin@elsewhere.test",
    ] {
        let (cookie, csrf) = http_sign_in(&app, &client, who).await;
        if who == "wgadmin@demo.test" {
            let page = client
                .get(app.url("/admin/printers"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
            let page = page.text().await.unwrap();
            assert!(!page.contains("Remove the demo farm"), "{page}");
        }
        let res = remove(cookie, csrf).await;
        assert_eq!(res.status(), 403, "{who} removed the demo");
    }
    let (cookie, csrf) = http_sign_in(&app, &client, admin_email).await;
    assert_eq!(remove(cookie.clone(), "0000".into()).await.status(), 403);
    assert_eq!(printers(&app, &admin).await.len(), PRINTERS.len() + 1);

    // The admin's page offers the removal; one click removes it.
    let page_as_admin = |path: &str| {
        let req = client.get(app.url(path)).header("cookie", cookie.clone());
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let page = page_as_admin("/admin/printers").await;
    assert!(page.contains("Remove the demo farm"), "{page}");
    let res = remove(cookie.clone(), csrf).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/printers?demo=removed");
    let page = page_as_admin("/admin/printers?demo=removed").await;
    assert!(page.contains("The demo farm was removed"), "{page}");
    assert!(!page.contains("Remove the demo farm"), "{page}");

    // Gone: the printers, their jobs, the samples and their stored objects, the user. Left:
    // the organization's own printer and file.
    let left = printers(&app, &admin).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], own_printer);
    // (the virtual printers' scratch folder goes once they stopped)
    until(
        "only the organization's own objects are stored",
        30,
        || async { (app.stored_files() == stored_before).then_some(()) },
    )
    .await;
    {
        let mut c = app.conn();
        let demo_users: i64 = users::table
            .filter(users::email.eq(DEMO_EMAIL))
            .count()
            .get_result(&mut *c)
            .unwrap();
        assert_eq!(demo_users, 0);
        let demo_rows: i64 = demo_farm::table.count().get_result(&mut *c).unwrap();
        assert_eq!(demo_rows, 0);
        let own_left: i64 = files::table
            .filter(files::id.eq(own_file))
            .count()
            .get_result(&mut *c)
            .unwrap();
        assert_eq!(own_left, 1);
    }
    // The virtual printers stopped: were they still running, they would be registering again
    // (their tokens are gone) within a second or two.
    actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(demo_codes(&app), 0, "the demo printers still register");
    let again = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[("session", &admin), ("printer_id", &ids[0])],
        )
        .await;
    assert_eq!(again.0, 404, "{}", again.1);
    app.stop().await;
}

/// The real binary: `printfarm serve --demo` on a fresh SQLite file shows the bootstrap admin
/// a printing farm; `printfarm admin remove-demo` (another process, same database) removes it
/// and the server stops its printers.
#[actix_web::test]
async fn serve_demo_then_admin_remove_demo() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = |cmd: &mut Command| {
        cmd.current_dir(dir.path())
            .env("PRINTFARM_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PRINTFARM_AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("PRINTFARM_AUTH__ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "info,printfarm::access=warn")
            .env_remove("DATABASE_URL");
    };
    let log = dir.path().join("server.log");
    let start = || {
        let mut serve = Command::new(env!("CARGO_BIN_EXE_printfarm"));
        env(&mut serve);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        serve
            .args(["serve", "--demo"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start printfarm serve --demo")
    };
    let stop = |mut server: std::process::Child| {
        // SAFETY: kill(2) on our own child process.
        unsafe {
            libc::kill(server.id() as i32, libc::SIGTERM);
        }
        assert!(server.wait().unwrap().success());
    };
    let mut server = start();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // The first start's one-time password, from the log (where a newcomer reads it).
    let password = until("the first start's password", 120, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.split("password=")
            .nth(1)
            .map(|r| r.split_whitespace().next().unwrap().to_string())
    })
    .await;
    let sign_in = || async {
        let res = client
            .post(format!("{base}/apiglobal/login"))
            .form(&[
                ("username", "admin@printfarm.local"),
                ("password", &password),
            ])
            .send()
            .await
            .ok()?;
        let body: Value = res.json().await.ok()?;
        body["message"]["session"].as_str().map(str::to_string)
    };
    let session = until("the admin signs in", 60, sign_in).await;
    let list = |session: String| {
        let (client, url) = (
            client.clone(),
            format!("{base}/apiglobal/get_organization_printers_list"),
        );
        async move {
            let body: Value = client
                .post(url)
                .form(&[("session", session)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["message"].as_array().unwrap().clone()
        }
    };
    let printing = |session: String| async move {
        let l = list(session).await;
        let mut ids: Vec<i64> = l.iter().map(|p| p["id"].as_i64().unwrap()).collect();
        ids.sort();
        (l.len() == PRINTERS.len() && l.iter().any(|p| p["state"] == "printing")).then_some(ids)
    };
    let ids = until("the demo farm prints", 90, || printing(session.clone())).await;
    // A restart with --demo runs the same printers again (they register afresh and are
    // admitted as the printers they were); nothing is added twice.
    stop(server);
    server = start();
    let session = until("the admin signs in again", 60, sign_in).await;
    let again = until("the demo farm prints after a restart", 90, || {
        printing(session.clone())
    })
    .await;
    assert_eq!(again, ids);

    let mut remove = Command::new(env!("CARGO_BIN_EXE_printfarm"));
    env(&mut remove);
    let out = remove.args(["admin", "remove-demo"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with("demo farm removed: 4 printers, 3 files, "),
        "{said}"
    );
    until("the printers are gone", 30, || async {
        list(session.clone()).await.is_empty().then_some(())
    })
    .await;
    until("the server stopped its printers", 30, || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("its printers stopped")
            .then_some(())
    })
    .await;
    // Removing twice says there is nothing to remove.
    let mut again = Command::new(env!("CARGO_BIN_EXE_printfarm"));
    env(&mut again);
    let out = again.args(["admin", "remove-demo"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("There is no demo farm"));

    stop(server);
}
