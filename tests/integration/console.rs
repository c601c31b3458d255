//! The web console, driven by a real Chromium through WebDriver (Debian `chromium` and
//! `chromium-driver`), on both backends. Without them the tests print one loud line naming
//! the install command and pass, unless `PRINTFARM_TEST_REQUIRE_CHROMIUM=1` (CI) makes that a
//! failure. With `PRINTFARM_SCREENSHOTS=<dir>` the pages are saved there as PNG files.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::{program, Db, TestApp, PASSWORD};

backend_cases!(
    a_signed_in_admin_watches_a_printer_change_live,
    a_member_sees_only_printers_they_may_use,
    a_member_uploads_a_gcode_and_prints_it,
    a_member_slices_a_model_for_their_printer,
    an_admin_adds_a_person_and_a_workgroup_and_gives_it_a_printer,
    an_admin_reads_the_report_charts_and_downloads_the_csv,
    a_member_runs_a_printer_queue_from_its_page,
    an_admin_makes_an_api_token_and_sets_the_organization_up,
    google_sign_in_from_the_console,
    a_member_queues_copies_on_the_farm_and_follows_them,
    a_newcomer_watches_the_demo_farm_and_removes_it,
);

/// The browsers' time zone: far from UTC, so times shown in UTC would be caught.
const VIEWER_TZ: &str = "America/Sao_Paulo";

struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends chromedriver and its browsers.
    }
}

impl Drop for Browser {
    /// chromedriver and every Chromium it started share a process group of their own: a
    /// test that fails (panics) before `close` leaves no browser behind either.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's process group; no memory is involved.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// A headless Chromium at `width` × `height`, or None (after saying so) without one.
async fn browser(width: u32, height: u32) -> Option<Browser> {
    browser_with(width, height, false).await
}

/// [`browser`], with the system's dark appearance when `dark`.
async fn browser_with(width: u32, height: u32, dark: bool) -> Option<Browser> {
    let (Some(driver), Some(chromium)) = (program("chromedriver"), program("chromium")) else {
        let msg = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)";
        if std::env::var("PRINTFARM_TEST_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("!!! SKIPPING this browser test: {msg}. Set PRINTFARM_TEST_REQUIRE_CHROMIUM=1 to fail instead.");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .env("TZ", VIEWER_TZ)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}"),
                     if dark { "--force-dark-mode" } else { "--no-first-run" }],
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // chromedriver listens on plain HTTP on this machine: no TLS needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver: child,
                })
            }
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("PRINTFARM_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}

/// Waits until the element's text satisfies `ok` (the page updates by itself).
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_text_within(c, css, Duration::from_secs(15), ok).await
}

async fn wait_text_within(
    c: &Client,
    css: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        // Missing, or replaced by a live update between finding and reading: look again.
        let text = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        };
        if let Some(text) = text.as_deref().filter(|t| ok(t)) {
            return text.to_string();
        }
        let text = text.unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "{css} never matched; last text: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(c: &Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn sign_in(c: &Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/")).await.unwrap();
    // Not signed in: the dashboard sends the browser to the sign-in form.
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    type_into(c, "username", email).await;
    type_into(c, "password", PASSWORD).await;
    c.find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", |t| t == "Printers").await;
}

/// Uploads the sample cube's G-code and prints it on `printer` through the Global API;
/// answers the job's id.
async fn print_cube(app: &TestApp, session: &str, printer: i64) -> i64 {
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (status, body) = app.upload(session, "cube_20mm.gcode", cube, &[]).await;
    assert_eq!(status, 200, "{body}");
    let file = body["message"]["file_id"].as_i64().unwrap().to_string();
    let printer = printer.to_string();
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", session),
                ("file_id", &file),
                ("printer_id", &printer),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = &body["message"]["job_id"];
    id.as_i64()
        .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no job id in {body}"))
}

/// Clicks the element; a live update may replace it between finding and clicking, so that is
/// tried again for a while.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tried = match c.find(Locator::Css(css)).await {
            Ok(e) => e.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match tried {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("cannot click {css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Polls as the printer's agent, acknowledging what it gets, until `wanted` arrives.
async fn next_command(app: &TestApp, token: &str, wanted: &str) -> serde_json::Value {
    let mut ack: Option<i64> = None;
    for _ in 0..100 {
        let mut body = json!({"auth_token": token});
        if let Some(n) = ack.take() {
            body["command_ack"] = json!({"number": n, "result": true});
        }
        let cmd = app.agent("command", body).await;
        match cmd.get("command").and_then(|c| c.as_str()) {
            Some(name) => {
                let n = cmd["number"].as_i64().unwrap();
                if name == wanted {
                    let done =
                        json!({"auth_token": token, "command_ack": {"number": n, "result": true}});
                    app.agent("command", done).await;
                    return cmd;
                }
                ack = Some(n);
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the agent never got {wanted}");
}

/// Signs in over plain HTTP; answers the cookie and the CSRF token of the dashboard.
pub(crate) async fn http_sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
) -> (String, String) {
    let res = client
        .post(app.url("/login"))
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = client
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    (cookie, csrf)
}

fn report(
    token: &str,
    state: &str,
    percent: f64,
    temps: [i64; 2],
    targets: [i64; 2],
) -> serde_json::Value {
    json!({"auth_token": token, "report": {
        "state": state, "percent": percent, "temps": temps, "target_temps": targets,
    }})
}

async fn a_signed_in_admin_watches_a_printer_change_live(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 900).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let admin = "admin@console.test";
    let session = {
        let id = app.create_user(app.org_id, admin, 1);
        assert!(id > 0);
        app.login(admin, PASSWORD).await
    };
    let (printer, token) = app.register_printer(&session, "SN-CONSOLE-1").await;

    // A wrong password stays on the form with the reason and the email kept.
    c.goto(&app.url("/login")).await.unwrap();
    type_into(c, "username", admin).await;
    type_into(c, "password", "wrong").await;
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = wait_text(c, ".alert", |t| !t.is_empty()).await;
    assert!(alert.to_lowercase().contains("password"), "{alert}");
    screenshot(c, "login-refused").await;

    sign_in(c, &app, admin).await;
    let card = format!("article[data-printer='{printer}']");
    // Registered but never polled: offline.
    wait_text(c, &format!("{card} .badge"), |t| t == "Offline").await;

    app.agent("command", report(&token, "ready", 0.0, [24, 23], [0, 0]))
        .await;
    wait_text(c, &format!("{card} .badge"), |t| t == "Ready").await;
    let nozzle = wait_text(c, &format!("{card} .temps div:nth-child(1) dd"), |t| {
        t.contains('°')
    })
    .await;
    assert_eq!(nozzle, "23 °C");

    // A print through the Global API shows on the card at once.
    let job = print_cube(&app, &session, printer).await;
    wait_text(c, &format!("{card} .job .file"), |t| t == "cube_20mm.gcode").await;

    // The agent heats up and prints; the open page follows without a reload.
    let before = c.current_url().await.unwrap();
    app.agent(
        "command",
        report(&token, "printing", 42.0, [60, 214], [60, 215]),
    )
    .await;
    wait_text(c, &format!("{card} .badge"), |t| t == "Printing").await;
    wait_text(c, &format!("{card} .temps div:nth-child(1) dd"), |t| {
        t == "214 / 215 °C"
    })
    .await;
    wait_text(c, &format!("{card} .meta"), |t| {
        t.starts_with("42 %") && t.contains("left")
    })
    .await;
    assert_eq!(c.current_url().await.unwrap(), before);
    screenshot(c, "dashboard").await;

    // Pause, resume and cancel (with a reason) from the card: each reaches the agent.
    click(c, &format!("{card} form[action$='/pause'] button")).await;
    next_command(&app, &token, "pause").await;
    app.agent(
        "command",
        report(&token, "paused", 42.0, [60, 214], [60, 215]),
    )
    .await;
    wait_text(c, &format!("{card} .badge"), |t| t == "Paused").await;
    click(c, &format!("{card} form[action$='/resume'] button")).await;
    next_command(&app, &token, "unpause").await;
    app.agent(
        "command",
        report(&token, "printing", 43.0, [60, 214], [60, 215]),
    )
    .await;
    wait_text(c, &format!("{card} .badge"), |t| t == "Printing").await;
    click(c, &format!("{card} details.cancel summary")).await;
    // While the person fills the form, live updates wait instead of wiping it.
    app.agent(
        "command",
        report(&token, "printing", 44.0, [60, 214], [60, 215]),
    )
    .await;
    let reason = c
        .find(Locator::Css(&format!("{card} select[name=reason]")))
        .await
        .unwrap();
    reason.select_by_value("print_quality").await.unwrap();
    c.find(Locator::Css(&format!("{card} textarea[name=details]")))
        .await
        .unwrap()
        .send_keys("stringing on the walls")
        .await
        .unwrap();
    screenshot(c, "cancel-with-reason").await;
    click(c, &format!("{card} form[action$='/cancel'] button")).await;
    next_command(&app, &token, "cancel").await;
    let stored =
        printfarm::db::models::Job::find(&mut app.conn(), printfarm::db::models::JobId(job))
            .unwrap()
            .unwrap();
    assert_eq!(stored.cancel_reason.as_deref(), Some("print_quality"));
    assert_eq!(
        stored.cancel_details.as_deref(),
        Some("stringing on the walls")
    );

    // An agent word the console does not know is shown as it is, readable.
    app.agent(
        "command",
        report(&token, "printing_locally", 42.0, [60, 214], [60, 215]),
    )
    .await;
    let odd = wait_text(c, &format!("{card} .badge"), |t| t != "Printing").await;
    assert_eq!(odd, "Printing locally");
    let word = c
        .find(Locator::Css(&format!("{card} .badge")))
        .await
        .unwrap()
        .attr("data-state")
        .await
        .unwrap();
    assert_eq!(word.as_deref(), Some("printing_locally"));

    // Signing out ends the session: the dashboard asks to sign in again.
    c.find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", |t| t == "Sign in").await;
    c.goto(&app.url("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    b.close().await;

    // The same at a phone's width.
    if let Some(phone) = browser(390, 844).await {
        sign_in(&phone.client, &app, admin).await;
        wait_text(&phone.client, &format!("{card} .badge"), |t| {
            t == "Printing locally"
        })
        .await;
        screenshot(&phone.client, "dashboard-phone").await;
        phone.close().await;
    }
    // And in the dark appearance, which the stylesheet follows.
    if let Some(dark) = browser_with(1280, 900, true).await {
        sign_in(&dark.client, &app, admin).await;
        let scheme = dark
            .client
            .execute(
                "return matchMedia('(prefers-color-scheme: dark)').matches \
                 && getComputedStyle(document.body).backgroundColor;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            scheme,
            json!("rgb(17, 21, 28)"),
            "the dark palette is not used"
        );
        screenshot(&dark.client, "dashboard-dark").await;
        dark.close().await;
    }
    app.stop().await;
}

async fn a_member_sees_only_printers_they_may_use(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 900).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let admin = app.login_new_user("owner@console.test").await;
    let (printer, _) = app.register_printer(&admin, "SN-CONSOLE-2").await;
    app.create_user(app.org_id, "member@console.test", 0);

    sign_in(c, &app, "member@console.test").await;
    // Not shared, in no workgroup of theirs: the member does not see it, and is told what to do.
    wait_text(c, ".empty h2", |t| t == "No printers yet").await;
    assert!(c
        .find(Locator::Css(&format!("article[data-printer='{printer}']")))
        .await
        .is_err());
    screenshot(c, "dashboard-empty").await;

    // Signed out elsewhere (another tab): the open dashboard notices and asks to sign in.
    let cookie = c.get_named_cookie("printfarm_session").await.unwrap();
    let token = cookie.value().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(app.url("/"))
        .header("cookie", format!("printfarm_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let res = client
        .post(app.url("/logout"))
        .header("cookie", format!("printfarm_session={token}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.current_url().await.unwrap().path().starts_with("/login") {
        assert!(
            Instant::now() < deadline,
            "the dashboard stayed after its session ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.close().await;
    app.stop().await;
}

async fn a_member_uploads_a_gcode_and_prints_it(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 900).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let maker = "maker@console.test";
    let session = app.login_new_user(maker).await;
    let (printer, token) = app.register_printer(&session, "SN-CONSOLE-4").await;
    app.agent("command", report(&token, "ready", 0.0, [22, 22], [0, 0]))
        .await;
    sign_in(c, &app, maker).await;
    click(c, "nav a[href='/myfiles']").await;
    wait_text(c, ".empty h2", |t| t == "No files yet").await;

    // A file that is not something a printer or the slicer takes: the reason, on the page.
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a print").unwrap();
    c.find(Locator::Id("file"))
        .await
        .unwrap()
        .send_keys(notes.to_str().unwrap())
        .await
        .unwrap();
    click(c, "form[data-upload] button[type=submit]").await;
    let refusal = wait_text(c, ".upload-status.bad", |t| !t.is_empty()).await;
    assert!(refusal.contains("unsupported file type 'txt'"), "{refusal}");
    screenshot(c, "upload-refused").await;

    // The sample cube: uploaded with the progress bar, then its own page with the preview.
    let cube = dir.path().join("cube_20mm.gcode");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cube_20mm.gcode"),
        &cube,
    )
    .unwrap();
    c.find(Locator::Id("file"))
        .await
        .unwrap()
        .send_keys(cube.to_str().unwrap())
        .await
        .unwrap();
    click(c, "form[data-upload] button[type=submit]").await;
    wait_text(c, "h1", |t| t == "cube_20mm.gcode").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/quickprint");
    let loaded = c
        .execute(
            "const i = document.querySelector('.preview img'); \
             return i && i.complete ? i.naturalWidth : 0;",
            vec![],
        )
        .await
        .unwrap();
    assert!(loaded.as_u64().unwrap_or(0) >= 256, "preview: {loaded}");
    let facts = wait_text(c, ".facts", |t| t.contains("Print time")).await;
    assert!(
        facts.contains("Filament") && facts.contains("Fits"),
        "{facts}"
    );
    // The upload time in the viewer's zone, with UTC kept in the title.
    let shown = c.find(Locator::Css("main time")).await.unwrap();
    let utc = shown.attr("title").await.unwrap().unwrap_or_default();
    assert!(utc.ends_with("UTC"), "{utc}");
    assert_ne!(shown.text().await.unwrap(), utc);
    screenshot(c, "file").await;

    // Print it on the only printer, which the page offers ready.
    let choice = wait_text(c, ".choice", |t| t.contains("SN-CONSOLE-4")).await;
    assert!(choice.contains("Ready"), "{choice}");
    click(c, "button[value=print]").await;
    let notice = wait_text(c, ".notice", |t| !t.is_empty()).await;
    assert!(notice.contains("is starting on"), "{notice}");
    let (_, jobs) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", session.as_str()),
                ("printer_id", &printer.to_string()),
            ],
        )
        .await;
    assert_eq!(jobs["message"][0]["filename"], "cube_20mm.gcode", "{jobs}");
    click(c, "nav a[href='/']").await;
    wait_text(
        c,
        &format!("article[data-printer='{printer}'] .job .file"),
        |t| t == "cube_20mm.gcode",
    )
    .await;

    // The files list: the cube with its thumbnail and a way to print it again; a file of
    // another project (uploaded by a slicer) and the projects to narrow the list to.
    let bracket = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cylinder_prusa.gcode"
    ))
    .unwrap();
    let (status, body) = app
        .upload(
            &session,
            "bracket.gcode",
            bracket,
            &[("project_name", "Brackets"), ("project_color", "#1E90FF")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    click(c, "nav a[href='/myfiles']").await;
    let row = wait_text(c, ".file-row", |t| t.contains("bracket.gcode")).await;
    assert!(row.contains("Brackets"), "{row}");
    let list = wait_text(c, ".files", |t| t.contains("cube_20mm.gcode")).await;
    assert!(list.contains("GCODE") && list.contains("Print"), "{list}");
    screenshot(c, "files").await;
    click(c, ".chips a:last-child").await;
    wait_text(c, ".chips a[aria-current=page]", |t| t == "Brackets").await;
    let narrowed = wait_text(c, ".files", |t| t.contains("bracket.gcode")).await;
    assert!(!narrowed.contains("cube_20mm"), "{narrowed}");
    b.close().await;

    if let Some(phone) = browser(390, 844).await {
        sign_in(&phone.client, &app, maker).await;
        phone.client.goto(&app.url("/myfiles")).await.unwrap();
        wait_text(&phone.client, ".files", |t| t.contains("cube_20mm")).await;
        screenshot(&phone.client, "files-phone").await;
        phone
            .client
            .find(Locator::Css(".file-row a.name"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&phone.client, "h1", |t| t == "bracket.gcode").await;
        screenshot(&phone.client, "file-phone").await;
        phone.close().await;
    }
    app.stop().await;
}

async fn a_member_slices_a_model_for_their_printer(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 1000).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let maker = "slicer@console.test";
    let session = app.login_new_user(maker).await;
    let (printer, token) = app.register_printer(&session, "SN-CONSOLE-5").await;
    app.agent("command", report(&token, "ready", 0.0, [22, 22], [0, 0]))
        .await;
    sign_in(c, &app, maker).await;
    c.goto(&app.url("/myfiles")).await.unwrap();
    c.find(Locator::Id("file"))
        .await
        .unwrap()
        .send_keys(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/cube_20mm.stl"
        ))
        .await
        .unwrap();
    click(c, "form[data-upload] button[type=submit]").await;
    wait_text(c, "h1", |t| t == "cube_20mm.stl").await;
    let facts = wait_text(c, ".facts", |t| t.contains("Size")).await;
    assert!(facts.contains("20.0 × 20.0 × 20.0 mm"), "{facts}");
    // The type of the person's printer comes first; the G-code is queued on it.
    let chosen = c
        .find(Locator::Css("#printer_type_id option:checked"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(chosen, "Prusa MK4");
    c.find(Locator::Id("then"))
        .await
        .unwrap()
        .select_by_value(&printer.to_string())
        .await
        .unwrap();
    c.find(Locator::Id("material"))
        .await
        .unwrap()
        .select_by_value("PETG")
        .await
        .unwrap();
    click(c, ".slice-form button[type=submit]").await;
    // The page follows the slice (PrusaSlicer, for real) until it is done.
    let done = wait_text_within(c, "#slices li", Duration::from_secs(120), |t| {
        t.contains("Sliced") || t.contains("Failed")
    })
    .await;
    assert!(done.contains("Sliced") && done.contains("PETG"), "{done}");
    assert!(done.contains("queued as job"), "{done}");
    screenshot(c, "slice").await;
    click(c, "#slices a.button").await;
    wait_text(c, "h1", |t| t == "cube_20mm.gcode").await;
    let facts = wait_text(c, ".facts", |t| t.contains("Print time")).await;
    assert!(
        facts.contains("of PET") && facts.contains("PrusaSlicer"),
        "{facts}"
    );
    let choices = wait_text(c, ".choices", |t| !t.is_empty()).await;
    assert!(choices.contains("SN-CONSOLE-5"), "{choices}");
    // The queued job is the sliced G-code, on the chosen printer.
    let (_, jobs) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[
                ("session", session.as_str()),
                ("printer_id", &printer.to_string()),
            ],
        )
        .await;
    assert_eq!(jobs["message"][0]["filename"], "cube_20mm.gcode", "{jobs}");
    b.close().await;
    app.stop().await;
}

async fn an_admin_adds_a_person_and_a_workgroup_and_gives_it_a_printer(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 900).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let admin = "head@console.test";
    app.create_user(app.org_id, admin, 1);
    let session = app.login(admin, PASSWORD).await;
    let (lab, lab_token) = app.register_printer(&session, "SN-LAB-1").await;
    let (office, _) = app.register_printer(&session, "SN-OFFICE-1").await;
    app.agent(
        "command",
        report(&lab_token, "ready", 0.0, [21, 21], [0, 0]),
    )
    .await;
    sign_in(c, &app, admin).await;
    click(c, "nav a[href='/admin']").await;
    wait_text(c, ".tabs a[aria-current=page]", |t| t == "People").await;

    // A new person: no password, a link for them instead.
    let student = "sam.student@console.test";
    type_into(c, "email", student).await;
    type_into(c, "firstname", "Sam").await;
    click(c, "form[action='/admin/people'] button[type=submit]").await;
    wait_text(c, "h1", |t| t == "Person added").await;
    let link = c
        .find(Locator::Id("invite-link"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(link.contains("/noauth/set_password/"), "{link}");
    screenshot(c, "admin-invite-link").await;
    c.goto(&app.url("/admin/people")).await.unwrap();
    let row = wait_text(c, "table", |t| t.contains(student)).await;
    assert!(row.contains("Invited"), "{row}");
    screenshot(c, "admin-people").await;

    // A workgroup with the student in it, reaching the lab printer only.
    click(c, ".tabs a[href='/admin/workgroups']").await;
    wait_text(c, ".empty h2", |t| t == "No workgroups yet").await;
    type_into(c, "name", "Design studio").await;
    click(c, "form[action='/admin/workgroups'] button[type=submit]").await;
    wait_text(c, ".page-title", |t| t == "Design studio").await;
    type_into(c, "member-email", student).await;
    click(c, "form[action$='/members'] button[type=submit]").await;
    wait_text(c, ".notice", |t| t == "Members saved.").await;
    wait_text(c, "#members-title", |t| t == "Members (1)").await;
    click(c, &format!("input[name=printer][value='{lab}']")).await;
    click(c, "form[action$='/printers'] button[type=submit]").await;
    wait_text(c, ".notice", |t| t.starts_with("Printers saved")).await;
    let checked = c
        .find(Locator::Css(&format!("input[name=printer][value='{lab}']")))
        .await
        .unwrap()
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(checked.as_deref(), Some("true"));
    screenshot(c, "admin-workgroup").await;
    click(c, ".tabs a[href='/admin/printers']").await;
    let lab_row = wait_text(c, &format!("tr[data-printer='{lab}']"), |t| !t.is_empty()).await;
    assert!(
        lab_row.contains("Design studio") && lab_row.contains("Ready"),
        "{lab_row}"
    );
    let office_row = wait_text(c, &format!("tr[data-printer='{office}']"), |t| {
        !t.is_empty()
    })
    .await;
    assert!(office_row.contains("none"), "{office_row}");
    // A new printer by the registration code its agent shows (typed in lower case, spaced).
    let dev = json!({"VID": "VIRT", "PID": "VIRT", "SNR": "SN-BY-CODE", "type": "PRUSA_MK4S"});
    let code = app.agent("register", dev).await["registration_code"]
        .as_str()
        .unwrap()
        .to_string();
    type_into(c, "code", &code.to_lowercase().replace('-', " ")).await;
    click(c, "form[action='/admin/printers'] button[type=submit]").await;
    let added = wait_text(c, "table", |t| t.contains("SN-BY-CODE")).await;
    assert!(added.contains("PRUSA_MK4S"), "{added}");
    // The same code again: already used.
    type_into(c, "code", &code).await;
    click(c, "form[action='/admin/printers'] button[type=submit]").await;
    let refusal = wait_text(c, ".alert", |t| !t.is_empty()).await;
    assert!(refusal.contains("already used"), "{refusal}");
    c.goto(&app.url("/admin/printers")).await.unwrap();
    screenshot(c, "admin-printers").await;
    click(c, "form.signout button").await;
    wait_text(c, "h1", |t| t == "Sign in").await;

    // The student sets a password from the link, signs in and sees the lab printer only.
    c.goto(&link).await.unwrap();
    type_into(c, "password", PASSWORD).await;
    type_into(c, "password2", PASSWORD).await;
    click(c, "form button[type=submit]").await;
    wait_text(c, "h1", |t| t == "Password set").await;
    sign_in(c, &app, student).await;
    wait_text(c, &format!("article[data-printer='{lab}'] .badge"), |t| {
        t == "Ready"
    })
    .await;
    assert!(c
        .find(Locator::Css(&format!("article[data-printer='{office}']")))
        .await
        .is_err());
    // No admin pages for a member.
    assert!(c.find(Locator::Css("nav a[href='/admin']")).await.is_err());
    b.close().await;

    // The admin disables the student: their session ends at once.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (student_cookie, _) = http_sign_in(&app, &client, student).await;
    let (admin_cookie, admin_csrf) = http_sign_in(&app, &client, admin).await;
    let student_id = printfarm::db::models::User::find_by_email(&mut app.conn(), student)
        .unwrap()
        .unwrap()
        .id;
    let res = client
        .post(app.url(&format!("/admin/people/{student_id}")))
        .header("cookie", &admin_cookie)
        .form(&[("csrf", admin_csrf.as_str()), ("action", "disable")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = client
        .get(app.url("/"))
        .header("cookie", &student_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "a disabled person's session still works");
    app.stop().await;
}

/// Inserts a job of `status` created now on `printer` that printed `hours` (no HTTP: outcomes
/// that would otherwise take agents through whole prints).
fn add_job(
    app: &TestApp,
    (printer, file, user): (i64, i64, i64),
    status: printfarm::db::models::JobStatus,
    hours: f64,
    reason: Option<&str>,
) {
    use diesel::prelude::*;
    use printfarm::db::models::{FileId, NewJob, OrgId, PrinterId, UserId};
    use printfarm::db::schema::jobs;
    let now = chrono::Utc::now().naive_utc();
    let mut c = app.conn();
    let id: i64 = diesel::insert_into(jobs::table)
        .values(&NewJob {
            organization_id: OrgId(app.org_id),
            printer_id: PrinterId(printer),
            file_id: FileId(file),
            user_id: UserId(user),
            share_id: None,
            status_id: status,
            change_seq: 0,
            notes: None,
            percent: 100.0,
            print_time: 0,
            printing_duration: 1200,
            material_type: "PLA",
            layer_height: 0.2,
            color_numbers: 1,
            extruders: "{}",
            weight: 12.5,
            heated_bed: true,
            heated_bed_temperature: 60,
            raft: false,
            supports: false,
            file_cost: None,
            charged: false,
            created_at: now,
            updated_at: now,
            farm_copy_id: None,
        })
        .returning(jobs::id)
        .get_result(&mut *c)
        .unwrap();
    let seconds = (hours * 3600.0) as i32;
    diesel::update(jobs::table.find(id))
        .set((
            jobs::started_at.eq(Some(now - chrono::Duration::seconds(i64::from(seconds)))),
            jobs::ended_at.eq(Some(now)),
            jobs::print_time.eq(seconds),
            jobs::cancel_reason.eq(reason),
        ))
        .execute(&mut *c)
        .unwrap();
}

async fn an_admin_reads_the_report_charts_and_downloads_the_csv(db: Db) {
    use printfarm::db::models::JobStatus;
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 1700).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let admin = "reports@console.test";
    app.create_user(app.org_id, admin, 1);
    let admin_session = app.login(admin, PASSWORD).await;
    let maker_id = app.create_user(app.org_id, "busy.maker@console.test", 0);
    let maker = app.login("busy.maker@console.test", PASSWORD).await;
    let (lab, _) = app.register_printer(&maker, "SN-REPORT-1").await;
    app.register_printer(&maker, "SN-REPORT-2").await;
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&maker, "cube_20mm.gcode", cube, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap();
    let (_, wg) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", admin_session.as_str()), ("name", "Lab")],
        )
        .await;
    let wg = wg["message"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{wg}"));
    let (status, body) = app
        .post(
            "/apiglobal/set_printer_workgroups",
            &[
                ("session", admin_session.as_str()),
                ("printer_id", &lab.to_string()),
                ("workgroup_id", &wg.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let on_lab = (lab, file, maker_id);
    for _ in 0..3 {
        add_job(&app, on_lab, JobStatus::Finished, 2.0, None);
    }
    add_job(&app, on_lab, JobStatus::Aborted, 0.5, Some("print_quality"));
    add_job(&app, on_lab, JobStatus::Failed, 0.25, None);

    sign_in(c, &app, admin).await;
    click(c, "nav a[href='/reports']").await;
    let figures = wait_text(c, ".figures", |t| t.contains("jobs")).await;
    assert!(
        figures.contains("5\njobs") || figures.contains("5 jobs"),
        "{figures}"
    );
    assert!(figures.contains("6.8 h"), "{figures}");
    // The day's column is drawn, in three outcomes.
    for class in ["done", "cancelled", "failed"] {
        c.find(Locator::Css(&format!("svg.days rect.{class}")))
            .await
            .unwrap_or_else(|_| panic!("no {class} bar"));
    }
    let util = wait_text(c, "[data-chart=util]", |t| !t.is_empty()).await;
    assert!(
        util.contains("SN-REPORT-1") && util.contains("SN-REPORT-2"),
        "{util}"
    );
    let groups = wait_text(c, "[data-chart=groups]", |t| !t.is_empty()).await;
    assert!(
        groups.contains("Lab") && groups.contains("6.8 h"),
        "{groups}"
    );
    let users = wait_text(c, "[data-chart=users]", |t| !t.is_empty()).await;
    assert!(users.contains("busy.maker@console.test"), "{users}");
    let reasons = wait_text(c, "[data-chart=reasons]", |t| !t.is_empty()).await;
    assert!(reasons.contains("Print quality"), "{reasons}");
    screenshot(c, "reports").await;

    // A range the rules refuse: the reason, on the page.
    c.goto(&app.url("/reports?from=2020-01-01&to=2024-01-01"))
        .await
        .unwrap();
    let alert = wait_text(c, ".alert", |t| !t.is_empty()).await;
    assert!(alert.contains("at most 365 days"), "{alert}");
    b.close().await;

    // The CSV: the columns chosen, the same rows as the API's report.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, _) = http_sign_in(&app, &client, admin).await;
    let res = client
        .get(app.url("/reports/download?fields=job_id&fields=status&fields=cancel_reason"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "Job ID,Status,Cancel Reason");
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(
        csv.contains("CANCELLED,Print quality") || csv.contains(",Print quality"),
        "{csv}"
    );
    // People without reports are refused, as by the API.
    let (member, _) = http_sign_in(&app, &client, "busy.maker@console.test").await;
    for path in ["/reports", "/reports/download"] {
        let res = client
            .get(app.url(path))
            .header("cookie", &member)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    let res = client
        .get(app.url("/reports/download?fields=bogus"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("bogus"));
    app.stop().await;
}

async fn a_member_runs_a_printer_queue_from_its_page(db: Db) {
    use base64::Engine;
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 1000).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let maker = "queue@console.test";
    let session = app.login_new_user(maker).await;
    let (printer, token) = app.register_printer(&session, "SN-QUEUE-1").await;
    app.agent("command", report(&token, "ready", 0.0, [22, 22], [0, 0]))
        .await;
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let mut queued = Vec::new();
    for name in ["first.gcode", "second.gcode", "third.gcode"] {
        let (_, up) = app.upload(&session, name, cube.clone(), &[]).await;
        let file = up["message"]["file_id"].as_i64().unwrap().to_string();
        let (status, body) = app
            .post(
                "/apiglobal/print_file",
                &[
                    ("session", session.as_str()),
                    ("file_id", &file),
                    ("printer_id", &printer.to_string()),
                    ("only_queue", "1"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        queued.push(body["message"]["job_id"].as_str().unwrap().to_string());
    }
    // A camera frame, as the agent sends them.
    let jpeg = b"\xFF\xD8\xFF\xE0printfarm-console-frame\xFF\xD9".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg);
    app.agent("camera", json!({"auth_token": token, "image": b64}))
        .await;

    sign_in(c, &app, maker).await;
    click(c, &format!("article[data-printer='{printer}'] a.card-link")).await;
    wait_text(c, "h1", |t| t == "Prusa MK4 SN-QUEUE-1").await;
    let queue = wait_text(c, "#queue-title", |t| t == "Queue (3)").await;
    assert_eq!(queue, "Queue (3)");
    let order = wait_text(c, "ol.jobs", |t| !t.is_empty()).await;
    let at = |name: &str| order.find(name).unwrap();
    assert!(
        at("first.gcode") < at("second.gcode") && at("second.gcode") < at("third.gcode"),
        "the oldest starts first: {order}"
    );
    // "Print next": the third goes to the front, for the page and for the printer's agent.
    click(
        c,
        &format!("li[data-job='{}'] form[action$='/front'] button", queued[2]),
    )
    .await;
    let order = wait_text(c, "ol.jobs li:first-child", |t| t.contains("third.gcode")).await;
    assert!(order.contains("third.gcode"), "{order}");
    let agent_queue = app
        .agent("get_queued_jobs", json!({"auth_token": token}))
        .await;
    let ids: Vec<i64> = agent_queue
        .as_array()
        .or_else(|| agent_queue["jobs"].as_array())
        .unwrap_or_else(|| panic!("{agent_queue}"))
        .iter()
        .map(|j| j["id"].as_i64().or_else(|| j["job_id"].as_i64()).unwrap())
        .collect();
    let wanted: Vec<i64> = [2, 0, 1]
        .iter()
        .map(|i| queued[*i].parse().unwrap())
        .collect();
    assert_eq!(ids, wanted, "{agent_queue}");
    screenshot(c, "printer").await;
    // The camera: a link of this person for this printer.
    let src = c
        .find(Locator::Css(".camera img"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap();
    // The script refreshes it with `?t=…`.
    let src = src.split('?').next().unwrap().to_string();
    assert!(
        src.starts_with("/camera/") && src.ends_with(&format!("/{printer}.jpg")),
        "{src}"
    );
    let still = app.client.get(app.url(&src)).send().await.unwrap();
    assert_eq!(still.status(), 200);
    assert_eq!(still.bytes().await.unwrap().to_vec(), jpeg);

    // Start the first: it becomes the printer's job, on the page, live.
    click(
        c,
        &format!("li[data-job='{}'] form[action$='/start'] button", queued[0]),
    )
    .await;
    next_command(&app, &token, "gcodes").await;
    app.agent(
        "command",
        report(&token, "printing", 5.0, [60, 214], [60, 215]),
    )
    .await;
    wait_text(c, ".card .badge", |t| t == "Printing").await;
    wait_text(c, ".card .job .file", |t| t == "first.gcode").await;
    wait_text(c, "#queue-title", |t| t == "Queue (2)").await;
    // Cancel the second from the queue, with a reason.
    click(
        c,
        &format!("li[data-job='{}'] details.cancel summary", queued[1]),
    )
    .await;
    c.find(Locator::Css(&format!(
        "li[data-job='{}'] select[name=reason]",
        queued[1]
    )))
    .await
    .unwrap()
    .select_by_value("not_needed")
    .await
    .unwrap();
    click(
        c,
        &format!(
            "li[data-job='{}'] form[action$='/cancel'] button",
            queued[1]
        ),
    )
    .await;
    wait_text(c, "#queue-title", |t| t == "Queue (1)").await;
    let recent = wait_text(c, "#recent-title + ul", |t| !t.is_empty()).await;
    assert!(recent.contains("No longer needed"), "{recent}");

    // The tray: marked not clear through the API, cleared from the page.
    let (status, body) = app
        .post(
            "/apiglobal/printer_clear_build_tray",
            &[
                ("session", session.as_str()),
                ("printer_id", &printer.to_string()),
                ("is_clear", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_text(c, "#tray-title", |t| t == "Build tray not cleared").await;
    screenshot(c, "printer-tray").await;
    click(c, ".tray button").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css("#tray-title")).await.is_ok() {
        assert!(Instant::now() < deadline, "the tray panel stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Shares: to a friend, to queue only, three prints; then taken back.
    type_into(c, "share-email", "friend@console.test").await;
    c.find(Locator::Id("share-role"))
        .await
        .unwrap()
        .select_by_value("5")
        .await
        .unwrap();
    type_into(c, "share-prints", "3").await;
    click(c, "form[action$='/shares'] button").await;
    let shared = wait_text(c, "#shares ul", |t| t.contains("friend@console.test")).await;
    assert!(
        shared.contains("Can only queue") && shared.contains("0 of 3"),
        "{shared}"
    );
    screenshot(c, "printer-shares").await;
    app.create_user(app.org_id, "friend@console.test", 0);
    let friend = app.login("friend@console.test", PASSWORD).await;
    let (_, list) = app
        .post(
            "/apiglobal/get_printers_list",
            &[("session", friend.as_str())],
        )
        .await;
    assert_eq!(list["message"][0]["id"], json!(printer), "{list}");
    // The friend queues a job there but may not put it first: that is the manager's call.
    let (_, up) = app.upload(&friend, "friend.gcode", cube.clone(), &[]).await;
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", friend.as_str()),
                (
                    "file_id",
                    &up["message"]["file_id"].as_i64().unwrap().to_string(),
                ),
                ("printer_id", &printer.to_string()),
                ("only_queue", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let friend_job = body["message"]["job_id"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (friend_cookie, friend_csrf) = http_sign_in(&app, &http, "friend@console.test").await;
    let res = http
        .post(app.url(&format!("/jobs/{friend_job}/front")))
        .header("cookie", &friend_cookie)
        .form(&[("csrf", friend_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("change the order"));
    click(c, "#shares li form button").await;
    wait_text(c, "#shares .hint", |t| t.starts_with("Nobody")).await;
    b.close().await;

    // Someone else's printer page is not found; a forged tray form is refused.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    app.create_user(app.org_id, "stranger@console.test", 0);
    let (stranger, stranger_csrf) = http_sign_in(&app, &client, "stranger@console.test").await;
    let res = client
        .get(app.url(&format!("/printers/{printer}")))
        .header("cookie", &stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .post(app.url(&format!("/printers/{printer}/tray")))
        .header("cookie", &stranger)
        .form(&[("csrf", stranger_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .get(app.url(&format!("/console/events?printer={printer}")))
        .header("cookie", &stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the live view of a printer out of reach");
    let (owner, owner_csrf) = http_sign_in(&app, &client, maker).await;
    let res = client
        .post(app.url(&format!("/printers/{printer}/tray")))
        .header("cookie", &owner)
        .form(&[("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Shares: only those who manage the printer share it or take a share back; an address
    // that is not one is refused; nothing is written.
    let res = client
        .post(app.url(&format!("/printers/{printer}/shares")))
        .header("cookie", &stranger)
        .form(&[
            ("csrf", stranger_csrf.as_str()),
            ("email", "x@console.test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .post(app.url(&format!("/printers/{printer}/shares")))
        .header("cookie", &owner)
        .form(&[("csrf", owner_csrf.as_str()), ("email", "not-an-address")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not a valid email"));
    let res = client
        .post(app.url(&format!("/printers/{printer}/shares")))
        .header("cookie", &owner)
        .form(&[
            ("csrf", owner_csrf.as_str()),
            ("email", "kept@console.test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let share: i64 = {
        use diesel::prelude::*;
        printfarm::db::schema::printer_shares::table
            .filter(printfarm::db::schema::printer_shares::email.eq("kept@console.test"))
            .select(printfarm::db::schema::printer_shares::id)
            .first(&mut *app.conn())
            .unwrap()
    };
    let res = client
        .post(app.url(&format!("/printers/{printer}/shares/{share}/remove")))
        .header("cookie", &stranger)
        .form(&[("csrf", stranger_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let shares: i64 = {
        use diesel::prelude::*;
        printfarm::db::schema::printer_shares::table
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(shares, 1, "a refused share was written or removed");
    app.stop().await;
}

async fn an_admin_makes_an_api_token_and_sets_the_organization_up(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 1100).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let admin = "settings@console.test";
    app.create_user(app.org_id, admin, 1);
    sign_in(c, &app, admin).await;

    // A /v1 token: made on the account page, shown once, working, then revoked.
    click(c, "a.who").await;
    wait_text(c, "h1", |t| t == "Your account").await;
    wait_text(c, "#jobs-title + p", |t| t.contains("No jobs yet")).await;
    type_into(c, "token-name", "quote script").await;
    click(c, "form[action='/account/tokens'] button[type=submit]").await;
    let jwt = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(e) = c.find(Locator::Id("new-token")).await {
                break e.prop("value").await.unwrap().unwrap();
            }
            assert!(Instant::now() < deadline, "no token shown");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(jwt.matches('.').count(), 2, "{jwt}");
    screenshot(c, "account").await;
    let me = app
        .client
        .get(app.url("/v1/user"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    c.goto(&app.url("/account")).await.unwrap();
    assert!(
        c.find(Locator::Id("new-token")).await.is_err(),
        "the token is shown again"
    );
    click(c, "form[action$='/revoke'] button").await;
    wait_text(c, "#tokens table", |t| t.contains("Revoked")).await;
    let me = app
        .client
        .get(app.url("/v1/user"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);

    // Organization settings: auto-start, the listing period, currency, prices, report columns.
    c.goto(&app.url("/admin/settings")).await.unwrap();
    wait_text(c, ".tabs a[aria-current=page]", |t| t == "Settings").await;
    click(c, "input[name=auto_start]").await;
    let hours = c.find(Locator::Id("actual_hours")).await.unwrap();
    hours.clear().await.unwrap();
    hours.send_keys("48").await.unwrap();
    let currency = c.find(Locator::Id("currency")).await.unwrap();
    currency.clear().await.unwrap();
    currency.send_keys("eur").await.unwrap();
    c.find(Locator::Css("input[name='price.PLA']"))
        .await
        .unwrap()
        .send_keys("25,5")
        .await
        .unwrap();
    click(c, "input[name='fields[]'][value=feedback]").await;
    screenshot(c, "admin-settings").await;
    click(c, "form.settings > .buttons button").await;
    wait_text(c, ".notice", |t| t == "Settings saved.").await;
    let org = printfarm::db::models::Organization::find(
        &mut app.conn(),
        printfarm::db::models::OrgId(app.org_id),
    )
    .unwrap()
    .unwrap();
    assert!(org.auto_start_queue);
    assert_eq!(org.actual_jobs_hours, 48);
    assert_eq!(org.currency, "EUR");
    let prices: serde_json::Value =
        serde_json::from_str(org.material_prices.as_deref().unwrap()).unwrap();
    assert_eq!(prices, json!({"PLA": 25.5}));
    let fields = org.report_fields.unwrap_or_default();
    // The click turned the column over from its default.
    let by_default = printfarm::services::reports::Field::DEFAULT
        .contains(&printfarm::services::reports::Field::Feedback);
    assert_eq!(fields.contains("feedback"), !by_default, "{fields}");
    b.close().await;

    // Refusals: a price that is not one, a member, a forged form.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, csrf) = http_sign_in(&app, &client, admin).await;
    let res = client
        .post(app.url("/admin/settings"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("actual_hours", "24"),
            ("currency", "EUR"),
            ("price.PLA", "cheap"),
            ("fields[]", "job_id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("The price of PLA"));
    let res = client
        .post(app.url("/admin/settings"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("actual_hours", "24"),
            ("currency", "EURO"),
            ("fields[]", "job_id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    app.create_user(app.org_id, "plain@console.test", 0);
    let (member, member_csrf) = http_sign_in(&app, &client, "plain@console.test").await;
    let res = client
        .get(app.url("/admin/settings"))
        .header("cookie", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = client
        .post(app.url("/admin/settings"))
        .header("cookie", &member)
        .form(&[
            ("csrf", member_csrf.as_str()),
            ("actual_hours", "1"),
            ("currency", "USD"),
            ("fields[]", "job_id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Someone else's token cannot be revoked (not found).
    let res = client
        .post(app.url("/account/tokens/1/revoke"))
        .header("cookie", &member)
        .form(&[("csrf", member_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.stop().await;
}

/// "Sign in with Google": the page carries Google's button (its script is the only thing
/// loaded from elsewhere, and only here); what the button posts is re-enacted over HTTP, since
/// Google's script cannot be loaded on this machine.
async fn google_sign_in_from_the_console(db: Db) {
    use crate::apiglobal_google::{claims, serve_jwks, sign, start, CLIENT_ID, SIGNUP};
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, SIGNUP).await else {
        return;
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/login")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self' https://accounts.google.com/gsi/client")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("data-client_id=\"{CLIENT_ID}\"")),
        "{html}"
    );
    assert!(
        html.contains(&format!("data-login_uri=\"{}/login/google\"", app.base)),
        "{html}"
    );
    // Other pages stay closed to Google's script.
    let other = client
        .get(app.url("/login/google/consent"))
        .send()
        .await
        .unwrap();
    assert!(!other.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("google"));
    let post = |credential: String, body_csrf: &'static str, cookie_csrf: Option<&'static str>| {
        let mut req = client.post(app.url("/login/google")).form(&[
            ("credential", credential.as_str()),
            ("g_csrf_token", body_csrf),
        ]);
        if let Some(c) = cookie_csrf {
            req = req.header("cookie", format!("g_csrf_token={c}"));
        }
        req.send()
    };
    let newcomer = sign(&claims("ada@console.test", "google-sub-ada"));
    // Google's double-submit token must match its cookie.
    assert_eq!(
        post(newcomer.clone(), "abc", None).await.unwrap().status(),
        403
    );
    assert_eq!(
        post(newcomer.clone(), "abc", Some("xyz"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post("not.a.token".into(), "abc", Some("abc"))
            .await
            .unwrap()
            .status(),
        401
    );
    // A newcomer consents first.
    let res = post(newcomer.clone(), "abc", Some("abc")).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login/google/consent");
    let pending = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        pending.starts_with("printfarm_pending=") && pending.contains("HttpOnly"),
        "{pending}"
    );
    let pending = pending.split(';').next().unwrap().to_string();
    let form = client
        .get(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let res = client
        .post(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "consent is required");
    assert!(res.text().await.unwrap().contains("consent"));
    let res = client
        .post(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .form(&[("csrf", "0000"), ("gdpr1", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a forged consent");
    let res = client
        .post(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .form(&[("csrf", csrf.as_str()), ("gdpr1", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("printfarm_session="))
        .expect("a session cookie");
    let session = session.split(';').next().unwrap().to_string();
    let home = client
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("ada@console.test"));
    // A second newcomer changes their mind: cancel drops the registration, no account.
    let res = post(
        sign(&claims("bob@console.test", "google-sub-bob")),
        "abc",
        Some("abc"),
    )
    .await
    .unwrap();
    let pending = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let pending = pending.split(';').next().unwrap().to_string();
    let form = client
        .get(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let res = client
        .post(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .form(&[("csrf", csrf.as_str()), ("cancel", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    assert!(
        printfarm::db::models::User::find_by_email(&mut app.conn(), "bob@console.test")
            .unwrap()
            .is_none()
    );
    let res = client
        .get(app.url("/login/google/consent"))
        .header("cookie", &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the dropped registration is gone");
    // Next time the same Google account signs straight in.
    let res = post(newcomer, "abc", Some("abc")).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    app.stop().await;
    jwks.handle.stop(false).await;
}

/// The farm queue in the console: copies queued from a file's page start on the free
/// printers; the queue shows the reason the others wait and when; a printer put in
/// maintenance from its page takes no copy and is listed; cancelling stops the waiting ones.
async fn a_member_queues_copies_on_the_farm_and_follows_them(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let Some(b) = browser(1280, 1000).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    let maker = "farm@console.test";
    let session = app.login_new_user(maker).await;
    let mut agents = vec![];
    for snr in ["SN-FARM-1", "SN-FARM-2"] {
        let (id, token) = app.register_printer(&session, snr).await;
        app.agent("command", report(&token, "ready", 0.0, [22, 22], [0, 0]))
            .await;
        agents.push((id, token));
    }
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&session, "bracket.gcode", cube, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap();

    sign_in(c, &app, maker).await;
    c.goto(&app.url(&format!("/quickprint?file_id={file}")))
        .await
        .unwrap();
    wait_text(c, "#farm-title", |t| t == "Print on the farm").await;
    let copies = c.find(Locator::Id("farm-copies")).await.unwrap();
    copies.clear().await.unwrap();
    copies.send_keys("5").await.unwrap();
    type_into(c, "farm-material", "PLA").await;
    screenshot(c, "farm-file").await;
    click(c, "form[action='/farm/jobs'] button[type=submit]").await;
    wait_text(c, "h1", |t| t == "Farm queue").await;
    // PLA is asked for and none is loaded: the reason says so, and nothing starts.
    let row = wait_text(c, "li.farm-job", |t| t.contains("bracket.gcode")).await;
    assert!(row.contains("5 copies on printer type Prusa MK4"), "{row}");
    assert!(row.contains("needs PLA"), "{row}");
    assert!(
        row.contains("Waiting: needs PLA, none loaded on the 2 matching printers"),
        "{row}"
    );
    // The spools are loaded: both printers take a copy, the rest wait for them.
    for (_, token) in &agents {
        app.agent(
            "command",
            json!({"auth_token": token, "report": {"state": "ready", "material_names": ["PLA"]}}),
        )
        .await;
    }
    let row = wait_text_within(c, "li.farm-job", Duration::from_secs(20), |t| {
        t.contains("2 printing")
    })
    .await;
    assert!(row.contains("3 waiting"), "{row}");
    c.refresh().await.unwrap();
    let row = wait_text(c, "li.farm-job", |t| {
        t.contains("all 2 Prusa MK4 printers busy")
    })
    .await;
    assert!(row.contains("Next copy starts about"), "{row}");
    assert!(row.contains("all done about"), "{row}");
    screenshot(c, "farm").await;

    // One printer goes into maintenance from its page.
    let (first, first_token) = agents[0].clone();
    c.goto(&app.url(&format!("/printers/{first}")))
        .await
        .unwrap();
    wait_text(c, "#maintenance-title", |t| t == "Maintenance").await;
    type_into(c, "maintenance-note", "Nozzle swap").await;
    click(c, "#maintenance button[value='start']").await;
    let notice = wait_text(c, "#maintenance .notice", |t| t.contains("In maintenance")).await;
    assert!(notice.contains("Nozzle swap"), "{notice}");
    screenshot(c, "printer-maintenance").await;
    // It finishes its copy and takes no next one; the farm queue lists it.
    next_command(&app, &first_token, "gcodes").await;
    app.agent(
        "command",
        report(&first_token, "printing", 100.0, [60, 215], [60, 215]),
    )
    .await;
    app.agent(
        "command",
        report(&first_token, "ready", 100.0, [60, 215], [0, 0]),
    )
    .await;
    let freed = app
        .agent(
            "command",
            json!({"auth_token": first_token, "bed_clear": true, "report": {"state": "ready"}}),
        )
        .await;
    assert_eq!(freed, json!({}), "in maintenance: no copy");
    c.goto(&app.url("/")).await.unwrap();
    let card = wait_text(c, &format!("article[data-printer='{first}']"), |t| {
        t.contains("Maintenance")
    })
    .await;
    assert!(card.contains("In maintenance: it takes no jobs"), "{card}");
    screenshot(c, "dashboard-maintenance").await;
    c.goto(&app.url("/farm")).await.unwrap();
    let listed = wait_text(c, "li[data-maintenance]", |t| t.contains("Nozzle swap")).await;
    assert!(listed.contains("SN-FARM-1"), "{listed}");
    let row = wait_text(c, "li.farm-job", |t| t.contains("1 printed")).await;
    assert!(
        row.contains("1 printing") && row.contains("3 waiting"),
        "{row}"
    );
    // Cancelling stops the waiting copies; the one printing goes on.
    click(c, "li.farm-job form[action$='/cancel'] button").await;
    let row = wait_text(c, "li.farm-job", |t| t.contains("Cancelled")).await;
    assert!(
        row.contains("3 cancelled") && row.contains("1 printing"),
        "{row}"
    );
    screenshot(c, "farm-cancelled").await;
    b.close().await;
    app.stop().await;
}

/// Admin pages refuse what the API refuses: members (403), forged forms (403), ids of another
/// organization (404), an admin demoting or disabling themselves (409), bad values (400).
async fn admin_refusals(app: &TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    app.create_user(app.org_id, "chief@console.test", 1);
    app.create_user(app.org_id, "pupil@console.test", 0);
    let (chief, chief_csrf) = http_sign_in(app, &client, "chief@console.test").await;
    let (pupil, pupil_csrf) = http_sign_in(app, &client, "pupil@console.test").await;
    let chief_id =
        printfarm::db::models::User::find_by_email(&mut app.conn(), "chief@console.test")
            .unwrap()
            .unwrap()
            .id;
    let pupil_id =
        printfarm::db::models::User::find_by_email(&mut app.conn(), "pupil@console.test")
            .unwrap()
            .unwrap()
            .id;
    let post = |cookie: &str, path: &str, form: Vec<(&'static str, String)>| {
        client
            .post(app.url(path))
            .header("cookie", cookie.to_string())
            .form(&form)
            .send()
    };
    let get = |cookie: &str, path: &str| {
        client
            .get(app.url(path))
            .header("cookie", cookie.to_string())
            .send()
    };
    for page in ["/admin", "/admin/people", "/admin/workgroups"] {
        assert_eq!(get(&pupil, page).await.unwrap().status(), 403, "{page}");
    }
    let res = post(
        &pupil,
        "/admin/people",
        vec![
            ("csrf", pupil_csrf.clone()),
            ("email", "x@console.test".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Only organization admins"));
    let res = post(
        &pupil,
        "/admin/printers",
        vec![("csrf", pupil_csrf.clone()), ("code", "ABCDEF".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(
        &chief,
        "/admin/people",
        vec![("csrf", "0000".into()), ("email", "x@console.test".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403, "a forged form");
    type Case = (String, Vec<(&'static str, String)>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            format!("/admin/people/{chief_id}"),
            vec![("action", "role".into()), ("role", "0".into())],
            409,
            "your own role",
        ),
        (
            format!("/admin/people/{chief_id}"),
            vec![("action", "disable".into())],
            409,
            "disable yourself",
        ),
        (
            format!("/admin/people/{pupil_id}"),
            vec![("action", "role".into()), ("role", "7".into())],
            400,
            "role must be",
        ),
        (
            format!("/admin/people/{pupil_id}"),
            vec![("action", "explode".into())],
            400,
            "action must be",
        ),
        (
            "/admin/people/999999".into(),
            vec![("action", "disable".into())],
            404,
            "not found",
        ),
        (
            "/admin/people".into(),
            vec![("email", "not-an-email".into())],
            400,
            "email address",
        ),
        (
            "/admin/workgroups".into(),
            vec![("name", "  ".into())],
            400,
            "must not be empty",
        ),
        (
            "/admin/workgroups/999999/members".into(),
            vec![("email", "pupil@console.test".into())],
            404,
            "not found",
        ),
        (
            "/admin/printers".into(),
            vec![("code", "NOPE-NOPE".into())],
            404,
            "Unknown registration code",
        ),
    ];
    for (path, mut form, status, says) in cases {
        form.push(("csrf", chief_csrf.clone()));
        let res = post(&chief, &path, form.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path} {form:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{path} {form:?}: {text}");
    }
    // Another organization's workgroup and people are not found.
    let other_org = app.create_org("Elsewhere");
    app.create_user(other_org, "far.admin@console.test", 1);
    let (far, far_csrf) = http_sign_in(app, &client, "far.admin@console.test").await;
    let res = post(
        &chief,
        "/admin/workgroups",
        vec![("csrf", chief_csrf.clone()), ("name", "Ours".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    let ours = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(get(&far, &ours).await.unwrap().status(), 404);
    let res = post(
        &far,
        &format!("/admin/people/{pupil_id}"),
        vec![("csrf", far_csrf.clone()), ("action", "disable".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    let res = post(
        &far,
        &format!("{ours}/members"),
        vec![
            ("csrf", far_csrf.clone()),
            ("email", "pupil@console.test".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    // A person of another organization cannot be put in our workgroup.
    let res = post(
        &chief,
        &format!("{ours}/members"),
        vec![
            ("csrf", chief_csrf.clone()),
            ("email", "far.admin@console.test".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    let pupil_row = printfarm::db::models::User::find(&mut app.conn(), pupil_id)
        .unwrap()
        .unwrap();
    assert!(
        !pupil_row.disabled && pupil_row.access_role == 0,
        "a refused change was written"
    );
}

/// The console's refusals, over plain HTTP: no session, a forged session, a sign-out without the
/// page's CSRF token, and a sign-in that would send the person to another site.
async fn refusals(app: &TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=%2F");
    let res = client
        .get(app.url("/"))
        .header(
            "cookie",
            "printfarm_session=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "a forged session is no session");
    let res = client.get(app.url("/console/events")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Without Google sign-in configured, nothing from Google is on the sign-in page.
    let login = client.get(app.url("/login")).send().await.unwrap();
    assert!(!login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("google"));
    assert!(!login.text().await.unwrap().contains("accounts.google.com"));
    let res = client
        .post(app.url("/login/google"))
        .form(&[("credential", "x"), ("g_csrf_token", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    app.create_user(app.org_id, "csrf@console.test", 0);
    // Another site cannot sign a visitor in (login CSRF): refused, no cookie.
    let res = client
        .post(app.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[("username", "csrf@console.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    let res = client
        .post(app.url("/login"))
        .header("Origin", app.base.trim_end_matches('/'))
        .form(&[("username", "csrf@console.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "our own page's sign-in");
    let res = client
        .post(app.url("/login"))
        .form(&[
            ("username", "csrf@console.test"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/",
        "only local paths are followed"
    );
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // The cookie lives as long as the session can (30 days by default): an open tab that keeps
    // its session in use keeps its cookie too.
    assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let page = client
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    // A live view follows the session: signing out (below) ends it.
    let mut live = client
        .get(app.url("/console/events"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let first = live.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: printers\n"), "{first:?}");
    let res = client
        .post(app.url("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "a sign-out without the page's token is refused"
    );
    // The session still works, and the page's own token signs out.
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let res = client
        .post(app.url("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = client
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the session ended");
    // The open stream ends at its next update (at most the 5 s refresh, plus the merge delay).
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(_chunk) = live.chunk().await.unwrap() {}
    })
    .await;
    assert!(ended.is_ok(), "the live view outlived its session");

    // A job on a printer out of the person's reach is not found, as in the API (404, not 403).
    let admin = app.login_new_user("boss@console.test").await;
    let (printer, token) = app.register_printer(&admin, "SN-CONSOLE-3").await;
    app.agent("command", report(&token, "ready", 0.0, [20, 20], [0, 0]))
        .await;
    let job = print_cube(app, &admin, printer).await;
    let (member, member_csrf) = http_sign_in(app, &client, "csrf@console.test").await;
    for action in ["pause", "resume", "cancel"] {
        let res = client
            .post(app.url(&format!("/jobs/{job}/{action}")))
            .header("cookie", &member)
            .form(&[("csrf", member_csrf.as_str()), ("reason", "other")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{action}");
        let text = res.text().await.unwrap();
        assert!(text.contains("not found"), "{text}");
    }
    // The job's owner without a reason is asked for one.
    let (boss, boss_csrf) = http_sign_in(app, &client, "boss@console.test").await;
    let res = client
        .post(app.url(&format!("/jobs/{job}/cancel")))
        .header("cookie", &boss)
        .form(&[("csrf", boss_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Choose why the job is cancelled"));
    let res = client
        .post(app.url(&format!("/jobs/{job}/explode")))
        .header("cookie", &boss)
        .form(&[("csrf", boss_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "only pause, resume and cancel are actions"
    );
    let res = client
        .post(app.url(&format!("/jobs/{job}/pause")))
        .header("cookie", &boss)
        .form(&[("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "a job action without the page's token is refused"
    );

    // Uploads: the browser's session and the page's token, checked before anything is kept.
    let gcode = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let upload = |cookie: Option<&str>, csrf: &str| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(gcode.clone()).file_name("cube.gcode"),
            );
        let mut req = client.post(app.url("/myfiles")).multipart(form);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let files_before: i64 = {
        use diesel::prelude::*;
        printfarm::db::schema::files::table
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(upload(None, &boss_csrf).await.unwrap().status(), 401);
    assert_eq!(upload(Some(&boss), "0000").await.unwrap().status(), 403);
    let files_after: i64 = {
        use diesel::prelude::*;
        printfarm::db::schema::files::table
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(files_before, files_after, "a refused upload left a file");
    let res = upload(Some(&boss), &boss_csrf).await.unwrap();
    assert_eq!(res.status(), 303);
    let page = res.headers()["location"].to_str().unwrap().to_string();
    assert!(page.starts_with("/quickprint?file_id="), "{page}");
    // Another person's file is not found; the file page of a bad id is a clear 400.
    let res = client
        .get(app.url(&page))
        .header("cookie", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .get(app.url("/quickprint?file_id=-3"))
        .header("cookie", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("file_id must be a file id"));

    // Slicing from a model's page: the page's token, the person's own model, values in range.
    let stl = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("csrf", boss_csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(stl).file_name("cube.stl"),
        );
    let res = client
        .post(app.url("/myfiles"))
        .header("cookie", &boss)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let model: i64 = res.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let slice = |cookie: &str, fields: Vec<(&'static str, String)>| {
        client
            .post(app.url(&format!("/myfiles/{model}/slice")))
            .header("cookie", cookie.to_string())
            .form(&fields)
            .send()
    };
    let good = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("printer_type_id", "1".to_string()),
            ("layer_height", "0.2".to_string()),
            ("infill", "20".to_string()),
            ("material", "PLA".to_string()),
        ]
    };
    let with = |csrf: &str, k: &'static str, v: &str| {
        let mut f = good(csrf);
        f.retain(|(name, _)| *name != k);
        f.push((k, v.to_string()));
        f
    };
    let cases = [
        (
            with(&boss_csrf, "csrf", "0000"),
            403,
            "did not come from this page",
        ),
        (
            with(&boss_csrf, "layer_height", "0.9"),
            400,
            "layer height must be",
        ),
        (
            with(&boss_csrf, "layer_height", "NaN"),
            400,
            "Choose a layer height",
        ),
        (
            with(&boss_csrf, "material", "wood"),
            400,
            "material must be one of",
        ),
        (with(&boss_csrf, "infill", "250"), 400, "infill must be"),
        (
            with(&boss_csrf, "printer_type_id", "99999"),
            404,
            "Printer type 99999 not found",
        ),
        (with(&boss_csrf, "then", "abc"), 400, "Choose a printer"),
    ];
    for (fields, status, says) in cases {
        let res = slice(&boss, fields.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{fields:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{fields:?}: {text}");
    }
    // The printer there is a Prusa MK4 (type 2): slicing for another type cannot queue on it.
    let res = slice(&boss, with(&boss_csrf, "then", &printer.to_string()))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("slice for its own type"));
    // Someone else's model is not found.
    let res = slice(&member, good(&member_csrf)).await.unwrap();
    assert_eq!(res.status(), 404);
    let slices: i64 = {
        use diesel::prelude::*;
        printfarm::db::schema::slice_jobs::table
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(slices, 0, "a refused slice was queued");

    // Assets: fingerprinted, cached for a year, gzip when asked.
    let css = html
        .split("href=\"/assets/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let res = client
        .get(app.url(&format!("/assets/{css}")))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let res = client
        .get(app.url("/assets/console.0000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

backend_tests!(
    refusals,
    admin_refusals,
    farm_refusals,
    live_updates_send_only_the_changed_cards
);

/// The farm pages refuse forged forms, bad values and what is out of reach, writing nothing.
async fn farm_refusals(app: &TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let owner = "owner@console.test";
    let session = app.login_new_user(owner).await;
    let (printer, token) = app.register_printer(&session, "SN-FARM-R").await;
    app.agent(
        "command",
        report(&token, "printing", 5.0, [60, 215], [60, 215]),
    )
    .await;
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let (_, up) = app.upload(&session, "cube.gcode", cube, &[]).await;
    let file = up["message"]["file_id"].as_i64().unwrap().to_string();
    let mk4 = printfarm::db::models::Printer::find(
        &mut app.conn(),
        printfarm::db::models::PrinterId(printer),
    )
    .unwrap()
    .unwrap()
    .printer_type_id
    .unwrap()
    .to_string();
    let (_, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", &session),
                ("file_id", &file),
                ("printer_type_id", &mk4),
                ("copies", "2"),
            ],
        )
        .await;
    let farm_job = body["message"]["farm_job_id"].as_i64().unwrap();
    let (cookie, csrf) = http_sign_in(app, &client, owner).await;
    app.create_user(app.org_id, "stranger@console.test", 0);
    let (stranger, stranger_csrf) = http_sign_in(app, &client, "stranger@console.test").await;
    let post = |cookie: &str, path: String, form: Vec<(&'static str, String)>| {
        client
            .post(app.url(&path))
            .header("cookie", cookie.to_string())
            .form(&form)
            .send()
    };
    let farm_form = |copies: &str, csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("file_id", file.clone()),
            ("printer_type_id", mk4.clone()),
            ("copies", copies.to_string()),
        ]
    };
    type Case<'a> = (&'a str, String, Vec<(&'static str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            &cookie,
            "/farm/jobs".into(),
            farm_form("2", "forged"),
            403,
            "",
        ),
        (
            &cookie,
            "/farm/jobs".into(),
            farm_form("0", &csrf),
            400,
            "copies must be",
        ),
        (
            &cookie,
            "/farm/jobs".into(),
            farm_form("ten", &csrf),
            400,
            "copies",
        ),
        (
            &stranger,
            "/farm/jobs".into(),
            farm_form("1", &stranger_csrf),
            404,
            "not found",
        ),
        (
            &stranger,
            format!("/farm/jobs/{farm_job}/cancel"),
            vec![("csrf", stranger_csrf.clone())],
            404,
            "not found",
        ),
        (
            &cookie,
            format!("/farm/jobs/{farm_job}/explode"),
            vec![("csrf", csrf.clone())],
            404,
            "No such action",
        ),
        (
            &cookie,
            format!("/farm/jobs/{farm_job}/retry"),
            vec![("csrf", csrf.clone())],
            409,
            "no failed copy",
        ),
        (
            &stranger,
            format!("/printers/{printer}/maintenance"),
            vec![("csrf", stranger_csrf.clone()), ("action", "start".into())],
            404,
            "not found",
        ),
        (
            &cookie,
            format!("/printers/{printer}/maintenance"),
            vec![
                ("csrf", csrf.clone()),
                ("action", "limits".into()),
                ("hours_limit", "lots".into()),
            ],
            400,
            "hours_limit must be a number",
        ),
        (
            &cookie,
            format!("/printers/{printer}/maintenance"),
            vec![("csrf", csrf.clone()), ("action", "nap".into())],
            400,
            "action must be",
        ),
    ];
    for (who, path, form, status, says) in cases {
        let res = post(who, path.clone(), form.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path} {form:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{path} {form:?}: {text}");
    }
    // Nothing changed: one farm job, two copies waiting, the printer in service.
    let (_, q) = app
        .post("/apiglobal/get_farm_queue", &[("session", &session)])
        .await;
    let list = q["message"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{q}");
    assert_eq!(list[0]["waiting"], 2);
    let (_, m) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[("session", &session), ("printer_id", &printer.to_string())],
        )
        .await;
    assert_eq!(
        (
            m["message"]["in_maintenance"].clone(),
            m["message"]["hours_limit"].clone()
        ),
        (json!(false), json!(null))
    );
    // The page itself, for a member with nothing queued: no error, the empty states.
    let page = client
        .get(app.url("/farm"))
        .header("cookie", stranger.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("No farm jobs yet."));
}

/// The dashboard's stream sends every card once, then only the cards that changed.
async fn live_updates_send_only_the_changed_cards(app: &TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = app.login_new_user("watcher@console.test").await;
    let (a, token_a) = app.register_printer(&session, "SN-LIVE-A").await;
    let (b, token_b) = app.register_printer(&session, "SN-LIVE-B").await;
    app.agent("command", report(&token_a, "ready", 0.0, [20, 20], [0, 0]))
        .await;
    app.agent("command", report(&token_b, "ready", 0.0, [20, 20], [0, 0]))
        .await;
    let (cookie, _) = http_sign_in(app, &client, "watcher@console.test").await;
    let mut live = client
        .get(app.url("/console/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    // Whole events, however the chunks fall.
    let mut buffer = String::new();
    let mut next_event = async || -> String {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if !event.starts_with(':') {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), live.chunk())
                .await
                .expect("an event within 15 s")
                .unwrap()
                .expect("the stream is open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let first = next_event().await;
    assert!(first.starts_with("event: printers\n"), "{first}");
    assert!(
        first.contains(&format!("data-printer=\"{a}\""))
            && first.contains(&format!("data-printer=\"{b}\"")),
        "{first}"
    );
    app.agent(
        "command",
        report(&token_a, "printing", 12.0, [60, 200], [60, 215]),
    )
    .await;
    let update = next_event().await;
    assert!(update.starts_with("event: cards\n"), "{update}");
    assert!(
        update.contains(&format!("data-printer=\"{a}\"")),
        "{update}"
    );
    assert!(
        !update.contains(&format!("data-printer=\"{b}\"")),
        "an unchanged card was sent again: {update}"
    );
}

/// axe-core (the npm package), installed once under `target/a11y` by the first test that needs
/// it: its script, or None (after saying so) where npm cannot provide it.
fn axe_source() -> Option<String> {
    static SOURCE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/a11y");
            let script = root.join("node_modules/axe-core/axe.min.js");
            if !script.is_file() {
                // Installed aside, then moved into place: a concurrent test process never
                // sees half a package.
                let aside = root.with_extension(format!("tmp{}", std::process::id()));
                let installed = Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&aside)
                    .arg("axe-core@4.10.3")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if installed {
                    let _ = std::fs::rename(&aside, &root);
                }
                let _ = std::fs::remove_dir_all(&aside);
            }
            match std::fs::read_to_string(&script) {
                Ok(s) => Some(s),
                Err(_) => {
                    let msg = "axe-core could not be installed with npm (apt-get install npm)";
                    if std::env::var("PRINTFARM_TEST_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
                        panic!("{msg}");
                    }
                    eprintln!("!!! SKIPPING the accessibility audit: {msg}.");
                    None
                }
            }
        })
        .clone()
}

/// The WCAG 2 A and AA rules axe-core finds broken on the open page: "rule: elements".
async fn audit(c: &Client, axe: &str) -> Vec<String> {
    c.execute(axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})\
               .then(r => done(r.violations.map(v => v.id + ' (' + v.help + '): ' +\
                  v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(' | '))))\
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Every console page, in the light and the dark appearance and at a phone's width, passes
/// axe-core's WCAG 2.1 A/AA audit (labels, contrast, landmarks, names of buttons and links).
#[actix_web::test]
async fn every_console_page_passes_an_accessibility_audit() {
    let Some(app) = TestApp::start(Db::Sqlite, &[]).await else {
        return;
    };
    let Some(axe) = axe_source() else {
        app.stop().await;
        return;
    };
    let admin = "a11y@console.test";
    app.create_user(app.org_id, admin, 1);
    let session = app.login(admin, PASSWORD).await;
    let (printer, token) = app.register_printer(&session, "SN-A11Y-1").await;
    app.agent("command", report(&token, "ready", 0.0, [21, 21], [0, 0]))
        .await;
    let job = print_cube(&app, &session, printer).await;
    app.agent(
        "command",
        report(&token, "printing", 30.0, [60, 214], [60, 215]),
    )
    .await;
    // Every badge colour: printing (above), paused, offline (never reported).
    let (paused_id, paused) = app.register_printer(&session, "SN-A11Y-2").await;
    app.agent(
        "command",
        report(&paused, "paused", 50.0, [60, 200], [60, 215]),
    )
    .await;
    app.register_printer(&session, "SN-A11Y-3").await;
    let stl = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap();
    let (_, model) = app.upload(&session, "cube.stl", stl, &[]).await;
    let model = model["message"]["file_id"].as_i64().unwrap();
    let gcode_file =
        printfarm::db::models::Job::find(&mut app.conn(), printfarm::db::models::JobId(job))
            .unwrap()
            .unwrap()
            .file_id
            .0;
    let (_, wg) = app
        .post(
            "/apiglobal/create_workgroup",
            &[("session", session.as_str()), ("name", "Lab")],
        )
        .await;
    let wg = wg["message"]["id"].as_i64().unwrap();
    // The farm queue with a waiting job, a printer in maintenance and a power circuit.
    let mk4 = printfarm::db::models::Printer::find(
        &mut app.conn(),
        printfarm::db::models::PrinterId(printer),
    )
    .unwrap()
    .unwrap()
    .printer_type_id
    .unwrap()
    .to_string();
    let (status, body) = app
        .post(
            "/apiglobal/print_file",
            &[
                ("session", session.as_str()),
                ("file_id", &gcode_file.to_string()),
                ("printer_type_id", &mk4),
                ("copies", "4"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/apiglobal/printer_maintenance",
            &[
                ("session", session.as_str()),
                ("printer_id", &paused_id.to_string()),
                ("maintenance", "1"),
                ("note", "Belt tension"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/apiglobal/set_power_circuit",
            &[
                ("session", session.as_str()),
                ("name", "Bench A"),
                ("max_heating", "2"),
                ("printer_id[]", &printer.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The pages reached from links: an invitation, a slicer's sign-in, Cura's browser link.
    let invited = app.create_user(app.org_id, "invited@console.test", 0);
    let invitation = printfarm::services::orgs::issue_invitation(
        &mut app.conn(),
        printfarm::db::models::UserId(invited),
        chrono::Duration::hours(1),
    )
    .unwrap();
    let (_, login_token) = app.post("/apiglobal/generate_login_token", &[]).await;
    let login_token = login_token["message"].as_str().unwrap().to_string();
    let (_, auth_token) = app
        .post(
            "/apiglobal/generate_auth_token",
            &[("session", session.as_str())],
        )
        .await;
    let auth_token = auth_token["message"].as_str().unwrap().to_string();
    let signed_out = [
        ("login", "/login".to_string()),
        ("set-password", format!("/noauth/set_password/{invitation}")),
        (
            "slicer-sign-in",
            format!("/noauth/apiglobal_login_with_token/{login_token}"),
        ),
        (
            "browser-link",
            format!("/noauth/login_with_auth_token/{auth_token}"),
        ),
    ];
    let pages = [
        "/".to_string(),
        format!("/printers/{printer}"),
        "/myfiles".into(),
        format!("/quickprint?file_id={gcode_file}"),
        format!("/quickprint?file_id={model}"),
        "/account".into(),
        "/farm".into(),
        "/reports".into(),
        "/admin/people".into(),
        "/admin/workgroups".into(),
        format!("/admin/workgroups/{wg}"),
        "/admin/printers".into(),
        "/admin/settings".into(),
        // A refusal's page.
        "/printers/999999".into(),
        // Signed in, a slicer's sign-in is allowed with one button.
        format!("/noauth/apiglobal_login_with_token/{login_token}"),
    ];
    let mut broken = Vec::new();
    // A desktop, the same dark, a phone, and a wall-mounted screen.
    for (width, height, dark) in [
        (1280, 900, false),
        (1280, 900, true),
        (390, 844, false),
        (1920, 1080, false),
    ] {
        let Some(b) = browser_with(width, height, dark).await else {
            app.stop().await;
            return;
        };
        let c = &b.client;
        // Signed out: the sign-in page and the pages links lead to.
        for (name, page) in &signed_out {
            c.goto(&app.url(page)).await.unwrap();
            if width == 1280 && !dark {
                screenshot(c, name).await;
            }
            for v in audit(c, &axe).await {
                broken.push(format!(
                    "{page} at {width}px{}: {v}",
                    if dark { " dark" } else { "" }
                ));
            }
        }
        sign_in(c, &app, admin).await;
        for page in &pages {
            c.goto(&app.url(page)).await.unwrap();
            if width > 1900 && page == "/" {
                screenshot(c, "dashboard-wall").await;
            }
            if width == 1280 && !dark && page.contains("apiglobal_login_with_token") {
                screenshot(c, "slicer-sign-in-one-click").await;
            }
            if width < 500 {
                let slug: String = page
                    .trim_start_matches('/')
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                    .collect();
                screenshot(
                    c,
                    &format!("phone-{}", if slug.is_empty() { "printers" } else { &slug }),
                )
                .await;
            }
            for v in audit(c, &axe).await {
                broken.push(format!(
                    "{page} at {width}px{}: {v}",
                    if dark { " dark" } else { "" }
                ));
            }
        }
        b.close().await;
    }
    app.stop().await;
    assert!(
        broken.is_empty(),
        "accessibility problems:\n{}",
        broken.join("\n")
    );
}

/// `serve --demo` as a newcomer meets it: the dashboard shows the virtual printers printing,
/// the admin's printer page offers the removal (accessible, as every page), one click removes
/// it and the dashboard is empty again.
async fn a_newcomer_watches_the_demo_farm_and_removes_it(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let admin = "newcomer@console.test";
    app.create_user(app.org_id, admin, 1);
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    printfarm::background::demo::start(&app.state, addr)
        .await
        .unwrap();
    let Some(b) = browser(1280, 900).await else {
        app.stop().await;
        return;
    };
    let c = &b.client;
    sign_in(c, &app, admin).await;
    let names = printfarm::services::demo::PRINTERS;
    // Live: the cards arrive and start printing without a reload.
    wait_text_within(c, "main", Duration::from_secs(90), |t| {
        names.iter().all(|p| t.contains(p.name)) && t.contains("Printing")
    })
    .await;
    // (a picture of it printing, for the README)
    wait_text_within(c, "main", Duration::from_secs(90), |t| {
        t.lines()
            .filter_map(|l| l.strip_suffix(" %")?.parse::<f64>().ok())
            .any(|p| p >= 20.0)
    })
    .await;
    screenshot(c, "demo-dashboard").await;

    c.goto(&app.url("/admin/printers")).await.unwrap();
    wait_text(c, "#demo-title", |t| t == "Demo farm").await;
    screenshot(c, "demo-admin-printers").await;
    if let Some(axe) = axe_source() {
        let broken = audit(c, &axe).await;
        assert!(broken.is_empty(), "{broken:?}");
    }
    c.find(Locator::Css("form[action='/admin/demo/remove'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "p.notice", |t| t.contains("The demo farm was removed")).await;
    screenshot(c, "demo-removed").await;
    assert!(c.find(Locator::Id("demo-title")).await.is_err());
    c.goto(&app.url("/")).await.unwrap();
    let main = wait_text(c, "main", |_| true).await;
    assert!(
        names.iter().all(|p| !main.contains(p.name)),
        "the dashboard still shows demo printers: {main}"
    );
    b.close().await;
    app.stop().await;
}
