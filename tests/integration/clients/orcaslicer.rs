//! OrcaSlicer's 3DPrinterOS print host, `src/slic3r/Utils/3DPrinterOS.cpp` in
//! OrcaSlicer/OrcaSlicer at commit 1097ac0fc09b146af24c80a78c0f55bdbe820d5d (PrusaSlicer's
//! pull request carries the same code).
//!
//! What it does, in order: `generate_login_token` (reads `message` as the token string),
//! opens `noauth/apiglobal_login_with_token/<token>` in the browser, and polls
//! `login_with_token` at most 10 times, 500 ms apart, each request with a 60 s timeout, until
//! `result` is true and `message.session` exists; then `check_session`, `get_projects`,
//! `get_printer_types` with `description=<printer_model>&software_version=OrcaSlicer`, a
//! multipart `upload`, and `file_update` with `updates[<id>][ptype|gtype|zip]`. Bodies are
//! built by hand (`key=value&…`, values not encoded except where it calls `url_encode`) and
//! sent by libcurl as `application/x-www-form-urlencoded`. Answers are read with boost's
//! property tree, where every JSON scalar reads as a string and an object read as a string
//! is empty.

use std::time::Duration;

use crate::common::{Db, TestApp, PASSWORD};
use serde_json::Value;

crate::backend_cases!(
    orca_signs_in_uploads_and_sets_the_printer_type,
    orca_sign_in_poll_is_held_until_its_bound_or_shutdown,
);

const ORCA: &str = "OrcaSlicer";

/// `C3DPrinterOS::make_url`: the host with a slash, then the path.
fn make_url(host: &str, path: &str) -> String {
    if host.ends_with('/') {
        format!("{host}{path}")
    } else {
        format!("{host}/{path}")
    }
}

/// `C3DPrinterOS::send_form`: a raw form body with its Content-Length; the answer parsed as
/// JSON, or `{result: false}` when it is not JSON.
async fn send_form(client: &reqwest::Client, host: &str, endpoint: &str, body: String) -> Value {
    let res = client
        .post(make_url(host, endpoint))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Content-length", body.len().to_string())
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    match res {
        Ok(r) => r.json::<Value>().await.unwrap_or(
            serde_json::json!({"result": false, "message": "Could not parse server response"}),
        ),
        Err(e) => serde_json::json!({"result": false, "message": e.to_string()}),
    }
}

/// boost ptree `get<std::string>`: scalars as text; objects and arrays have no text.
fn ptree_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Object(o) if o.is_empty() => Some(String::new()),
        Value::Array(a) if a.is_empty() => Some(String::new()),
        _ => Some(String::new()),
    }
}

/// ptree `get<bool>("result")`: the text "true" (JSON true reads as "true").
fn ptree_true(v: &Value) -> bool {
    ptree_string(&v["result"]).as_deref() == Some("true")
}

/// `TokenAuthDialog::SendRequest` and its timer: up to 10 attempts, 500 ms apart.
async fn token_auth_dialog(client: &reqwest::Client, host: &str, token: &str) -> Value {
    for attempt in 1..=10 {
        let resp = send_form(
            client,
            host,
            "apiglobal/login_with_token",
            format!("token={token}"),
        )
        .await;
        let has_session = resp["message"].get("session").is_some();
        if ptree_true(&resp) && has_session {
            return resp;
        }
        if !ptree_true(&resp) || attempt == 10 {
            return serde_json::json!({"result": false, "message": "Maximum login retries exceeded"});
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unreachable!()
}

/// `get_api_auth_token` + `login`: returns (session, email) or the error the slicer shows.
async fn orca_login(
    client: &reqwest::Client,
    host: &str,
    person: impl std::future::Future<Output = ()>,
) -> Result<(String, String), String> {
    let resp = send_form(
        client,
        host,
        "apiglobal/generate_login_token",
        format!("app_type=plugin&app_name={ORCA}"),
    )
    .await;
    let token = if ptree_true(&resp) {
        ptree_string(&resp["message"]).unwrap_or_default()
    } else {
        String::new()
    };
    if token.is_empty() {
        return Err("Error. Can't get API token for authorization".into());
    }
    // wxLaunchDefaultBrowser(login_url): the person signs in there while the dialog polls.
    let login_url = make_url(host, &format!("noauth/apiglobal_login_with_token/{token}"));
    let (login_resp, ()) = tokio::join!(token_auth_dialog(client, host, &token), async {
        person_at(client, &login_url, person).await
    });
    if !ptree_true(&login_resp) {
        return Err(ptree_string(&login_resp["message"]).unwrap_or_default());
    }
    let session = login_resp["message"]["session"]
        .as_str()
        .map(str::to_string);
    let email = login_resp["message"]["email"].as_str().map(str::to_string);
    match (session, email) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err("Could not parse server response.".into()),
    }
}

/// The person in the browser: opens the page, takes their time, signs in.
async fn person_at(
    client: &reqwest::Client,
    url: &str,
    think: impl std::future::Future<Output = ()>,
) {
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "the confirmation page opens");
    think.await;
    let res = client
        .post(url)
        .form(&[
            ("username", "orca.user@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
}

async fn orca_signs_in_uploads_and_sets_the_printer_type(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    app.create_user(app.org_id, "orca.user@example.com", 0);
    let client = reqwest::Client::new();
    let host = format!("{}/", app.base); // a print host URL as users type it, with a slash

    // A person who needs 10 s to sign in: with quick "keep waiting" answers the 10 polls
    // would run out after ~5 s.
    let (session, email) = orca_login(&client, &host, tokio::time::sleep(Duration::from_secs(10)))
        .await
        .expect("OrcaSlicer signs in");
    assert_eq!(email, "orca.user@example.com");

    // C3DPrinterOS::check_session
    let resp = send_form(
        &client,
        &host,
        "apiglobal/check_session",
        format!("session={session}"),
    )
    .await;
    assert!(ptree_true(&resp), "{resp}");

    // upload(): projects and printer types for the dialog.
    let projects = send_form(
        &client,
        &host,
        "apiglobal/get_projects",
        format!("session={session}"),
    )
    .await;
    assert!(ptree_true(&projects));
    assert!(projects["message"].is_array());
    let preset_name = "Prusa MK4S"; // printer_model of the slicer's printer preset
    let types = send_form(
        &client,
        &host,
        "apiglobal/get_printer_types",
        format!(
            "session={session}&description={}&software_version={ORCA}",
            enc(preset_name)
        ),
    )
    .await;
    assert!(ptree_true(&types), "{types}");
    let descriptions: Vec<String> = types["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| ptree_string(&t["description"]).unwrap())
        .collect();
    // UploadOptionsDialog: the first type containing the preset name is selected; with no
    // entry the OK button can never be enabled.
    let selected = descriptions
        .iter()
        .find(|d| d.contains(preset_name))
        .cloned()
        .or_else(|| (descriptions.len() == 1).then(|| descriptions[0].clone()))
        .expect("the upload dialog has a printer type to confirm");
    let printer_type_id = types["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| ptree_string(&t["description"]).as_deref() == Some(selected.as_str()))
        .map(|t| ptree_string(&t["id"]).unwrap())
        .unwrap();

    // A preset the server has no type for: the dialog lists every type for the user to pick.
    let unknown = send_form(
        &client,
        &host,
        "apiglobal/get_printer_types",
        format!(
            "session={session}&description={}&software_version={ORCA}",
            enc("Voron Trident 300")
        ),
    )
    .await;
    assert!(
        unknown["message"].as_array().unwrap().len() > 1,
        "{unknown}"
    );

    // The upload, a new project chosen in the dialog ("Project File" + a new name).
    let gcode = std::fs::read(format!(
        "{}/fixtures/cube_20mm.gcode",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let file_id = orca_upload(
        &client,
        &host,
        &session,
        gcode.clone(),
        None,
        Some("Orca jobs"),
    )
    .await;
    // update_file(file_id, printer_type_id, "OrcaSlicer")
    let resp = send_form(
        &client,
        &host,
        "apiglobal/file_update",
        format!(
            "session={session}&updates[{file_id}][ptype]={printer_type_id}&updates[{file_id}][gtype]={}&updates[{file_id}][zip]=false",
            enc(ORCA)
        ),
    )
    .await;
    assert!(ptree_true(&resp), "file_update: {resp}");

    // A second upload into the project the dialog now lists (by id).
    let projects = send_form(
        &client,
        &host,
        "apiglobal/get_projects",
        format!("session={session}"),
    )
    .await;
    let project_id = projects["message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| ptree_string(&p["name"]).as_deref() == Some("Orca jobs"))
        .map(|p| ptree_string(&p["id"]).unwrap())
        .expect("the new project is listed");
    orca_upload(&client, &host, &session, gcode, Some(&project_id), None).await;

    // "Upload and print": wxLaunchDefaultBrowser(make_url("quickprint?file_id=" + file_id)).
    quickprint_in_browser(&app, &host, &session, &file_id).await;

    // What the server stored, as the client asked.
    let (_, info) = app
        .post(
            "/apiglobal/get_slicer_settings_for_gcode",
            &[("session", &session), ("file_id", &file_id)],
        )
        .await;
    assert_eq!(info["result"], true, "{info}");
    app.stop().await;
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The multipart upload, parts in the client's order.
async fn orca_upload(
    client: &reqwest::Client,
    host: &str,
    session: &str,
    gcode: Vec<u8>,
    project_id: Option<&str>,
    project_name: Option<&str>,
) -> String {
    let mut form = reqwest::multipart::Form::new()
        .text("session", session.to_string())
        .text("upload_type_id", "7")
        .text("upload_soft_name", ORCA)
        .text("zip", "false")
        .part(
            "file",
            reqwest::multipart::Part::bytes(gcode).file_name("cube_20mm_PLA_23m.gcode"),
        );
    if let Some(id) = project_id {
        form = form.text("project_id", id.to_string());
    } else if let Some(name) = project_name {
        form = form
            .text("project_name", name.to_string())
            .text("project_color", "grey");
    }
    let resp: Value = client
        .post(make_url(host, "apiglobal/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ptree_true(&resp), "upload: {resp}");
    ptree_string(&resp["message"]["file_id"])
        .filter(|s| !s.is_empty())
        .expect("file_id")
}

/// The held poll answers "keep waiting" when its bound runs out, and at once when the server
/// shuts down (it never holds a stopping server up to its bound).
async fn orca_sign_in_poll_is_held_until_its_bound_or_shutdown(db: Db) {
    let Some(app) = TestApp::start(db, &[("PRINTFARM_AUTH__LOGIN_TOKEN_HOLD_SECS", "1")]).await
    else {
        return;
    };
    let client = reqwest::Client::new();
    let token = send_form(
        &client,
        &app.base,
        "apiglobal/generate_login_token",
        String::new(),
    )
    .await;
    let token = token["message"].as_str().unwrap().to_string();
    let resp = send_form(
        &client,
        &app.base,
        "apiglobal/login_with_token",
        format!("token={token}"),
    )
    .await;
    assert_eq!(resp["result"], true);
    assert_eq!(resp["message"]["waiting"], true, "{resp}");
    // Unknown tokens are not held.
    let resp = send_form(
        &client,
        &app.base,
        "apiglobal/login_with_token",
        format!("token={}", "ab".repeat(32)),
    )
    .await;
    assert_eq!(resp["result"], false);
    app.stop().await;

    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    let token = send_form(
        &client,
        &app.base,
        "apiglobal/generate_login_token",
        String::new(),
    )
    .await;
    let token = token["message"].as_str().unwrap().to_string();
    let base = app.base.clone();
    let held = tokio::spawn({
        let client = client.clone();
        async move {
            let started = std::time::Instant::now();
            let resp = send_form(
                &client,
                &base,
                "apiglobal/login_with_token",
                format!("token={token}"),
            )
            .await;
            (resp, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    let (resp, waited) = held.await.unwrap();
    assert_eq!(resp["message"]["waiting"], true, "{resp}");
    // Far below the 45 s hold: the shutdown ended it.
    assert!(
        waited < Duration::from_secs(20),
        "held {waited:?} through a shutdown"
    );
}

/// The person's browser on the page the slicer opened: signs in, picks a printer of the
/// file's type and queues the file there; the forged and foreign requests are refused.
async fn quickprint_in_browser(app: &TestApp, host: &str, session: &str, file_id: &str) {
    // A printer of the selected type (Prusa MK4S) the user owns, and one of another type.
    let mk4s = pair_printer(app, session, "ORCA-MK4S-1", "PRUSA_MK4S").await;
    pair_printer(app, session, "ORCA-MINI-1", "PRUSA_MINI_PLUS").await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = make_url(host, &format!("quickprint?file_id={file_id}"));
    // Not signed in yet: the console's sign-in, which comes back to the file afterwards.
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 303);
    let next = format!("/quickprint?file_id={file_id}");
    assert_eq!(
        page.headers()["location"],
        format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )
    );
    let page = browser.get(make_url(host, "login")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/login\""), "{html}");

    // A wrong password stays on the form with the reason; no cookie.
    let res = browser
        .post(make_url(host, "login"))
        .form(&[
            ("username", "orca.user@example.com"),
            ("password", "nope-nope"),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let res = browser
        .post(make_url(host, "login"))
        .form(&[
            ("username", "orca.user@example.com"),
            ("password", PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], next);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let html = browser
        .get(&url)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("ORCA-MK4S-1") || html.contains(&format!("value=\"{mk4s}\"")),
        "{html}"
    );
    assert!(
        !html.contains("ORCA-MINI-1"),
        "a printer of another type is offered: {html}"
    );
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let mk4s_id = mk4s.to_string();
    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut req = browser.post(make_url(host, "quickprint")).form(&form);
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let form = |csrf: &str, file: &str, printer: &str, action: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("file_id", file.to_string()),
            ("printer_id", printer.to_string()),
            ("action", action.to_string()),
        ]
    };
    // Refusals: no session, a forged form, a file that is not the user's, a printer out of
    // reach, an unknown action.
    assert_eq!(
        post(form(&csrf, file_id, &mk4s_id, "queue"), None).await.0,
        401
    );
    assert_eq!(
        post(
            form("forged", file_id, &mk4s_id, "queue"),
            Some(cookie.clone())
        )
        .await
        .0,
        403
    );
    let other = app.login_new_user("someone.else@example.com").await;
    let gcode = std::fs::read(format!(
        "{}/fixtures/cube_20mm.gcode",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (_, theirs) = app.upload(&other, "theirs.gcode", gcode, &[]).await;
    let theirs = theirs["message"]["file_id"].as_i64().unwrap().to_string();
    assert_eq!(
        post(
            form(&csrf, &theirs, &mk4s_id, "queue"),
            Some(cookie.clone())
        )
        .await
        .0,
        404
    );
    let (status, _) = app
        .client
        .get(make_url(host, &format!("quickprint?file_id={theirs}")))
        .header("Cookie", &cookie)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 404);
    let their_printer = pair_printer(app, &other, "THEIRS-1", "PRUSA_MK4S").await;
    assert_eq!(
        post(
            form(&csrf, file_id, &their_printer.to_string(), "queue"),
            Some(cookie.clone())
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post(
            form(&csrf, file_id, &mk4s_id, "explode"),
            Some(cookie.clone())
        )
        .await
        .0,
        400
    );
    assert_eq!(
        browser
            .get(make_url(host, "quickprint?file_id=abc"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );

    // Queued for real: the job is on the printer's list.
    let (status, html) = post(
        form(&csrf, file_id, &mk4s_id, "queue"),
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("queue"), "{html}");
    let (_, jobs) = app
        .post(
            "/apiglobal/get_printer_jobs",
            &[("session", session), ("printer_id", &mk4s_id)],
        )
        .await;
    assert_eq!(jobs["message"][0]["status_id"], "11", "{jobs}");
    assert_eq!(
        jobs["message"][0]["filename"], "cube_20mm_PLA_23m.gcode",
        "{jobs}"
    );

    // Signing out needs the page's own form too (a forged one is refused, the session stays).
    let res = browser
        .post(make_url(host, "logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    // Signing out ends the browser session.
    let res = browser
        .post(make_url(host, "logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let res = browser
        .get(&url)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "still signed in");
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?next="));
}

/// Registers a device and redeems its code as the user (who then owns the printer).
async fn pair_printer(app: &TestApp, session: &str, snr: &str, kind: &str) -> i64 {
    let prefix = "/apiprinter/v1/printer";
    let dev =
        serde_json::json!({"VID": "VIRT", "PID": "VIRT", "SNR": snr, "type": kind, "name": snr});
    let reg: Value = app
        .client
        .post(app.url(&format!("{prefix}/register")))
        .json(&dev)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = reg["registration_code"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/add_printer_by_registration_code",
            &[("session", session), ("registration_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["message"]["printer_id"].as_i64().unwrap()
}
