//! The 3DPrinterOS Cura plugin, `plugins/3DPrinterOSIntegrationv142a/3DPrinterOSIntegrationv142a/`
//! in 3DPrinterOS-SDK/Cura at commit 2020868d1ac48cdd851207192e4d18162f77a126: `CloudAPI.js`
//! (every form call), `LoginView.qml`, `OptionsView.qml` (what it does with the answers) and
//! `ThreeDPrinterOSUtils.py` (the upload).
//!
//! Form calls (`sendForm`): POST `<cloud>/apiglobal/<call>` with a hand-built body (session
//! not encoded, description encoded with `encodeURIComponent`), `Content-type:
//! application/x-www-form-urlencoded`, `Connection: close`; a non-200 answer becomes
//! `{result: false}` without reading the body. The upload (`construct_multipart`) is built
//! by hand with an 8-character boundary: the `file` part FIRST, then a closing delimiter
//! `--B--`, then the text parts (`gtype`, `ptype`, `zip`, `session`, `project_*`) AFTER it,
//! then another closing delimiter. A strict parser drops everything after the first closing
//! delimiter (RFC 2046 calls it the epilogue) and never sees the session; 3DPrinterOS accepts
//! it, so printfarm must too. After the upload it sends `file_update` with
//! `updates[<id>][ptype]=<int>&updates[<id>][gtype]=Cura&updates[<id>][zip]=false` and
//! succeeds only on `result === true`.

use crate::common::{Db, TestApp, PASSWORD};
use serde_json::Value;

crate::backend_cases!(cura_signs_in_uploads_after_the_closing_delimiter_and_updates_the_file);

/// `sendForm`: the answer parsed as JSON when the status is 200, `{result: false, message:
/// <status>}` otherwise.
async fn send_form(app: &TestApp, call: &str, params: String) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/apiglobal/{call}")))
        .header("Content-type", "application/x-www-form-urlencoded")
        .header("Content-length", params.len().to_string())
        .header("Connection", "close")
        .body(params)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status == 200 {
        res.json().await.unwrap()
    } else {
        serde_json::json!({"result": false, "message": status})
    }
}

/// `encodeURIComponent`.
fn encode_uri_component(s: &str) -> String {
    const KEEP: &[u8] = b"-_.!~*'()";
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `ThreeDPrinterOSUtils.construct_multipart`, byte for byte (Python dicts keep insertion
/// order: the order `OptionsView.qml` filled `uploadData` in).
fn construct_multipart(
    boundary: &str,
    data: &[(&str, String)],
    filename: &str,
    file: &[u8],
) -> Vec<u8> {
    let mut post = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type:application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    post.extend_from_slice(file);
    post.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    for (key, value) in data {
        post.extend_from_slice(b"\r\n");
        post.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}"
            )
            .as_bytes(),
        );
    }
    post.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    post
}

/// A Cura-sized G-code (several MiB: what a real model slices to).
fn cura_gcode() -> Vec<u8> {
    let cube = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.gcode"
    ))
    .unwrap();
    let mut out = b";FLAVOR:Marlin\n;Generated with Cura_SteamEngine 5.2.1\n".to_vec();
    while out.len() < 3 * 1024 * 1024 {
        out.extend_from_slice(&cube);
    }
    out
}

async fn cura_signs_in_uploads_after_the_closing_delimiter_and_updates_the_file(db: Db) {
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    app.create_user(app.org_id, "cura@example.com", 0);

    // LoginView.qml: CloudAPI.login, then saveSession(data["message"]["session"]).
    let login = send_form(
        &app,
        "login",
        format!(
            "username={}&password={}",
            encode_uri_component("cura@example.com"),
            encode_uri_component(PASSWORD)
        ),
    )
    .await;
    assert_eq!(login["result"], true, "{login}");
    let session = login["message"]["session"].as_str().unwrap().to_string();
    assert_eq!(
        send_form(&app, "check_session", format!("session={session}")).await["result"],
        true
    );

    // OptionsView.qml initProjectList: get_projects feeds a combo box with textRole 'name'
    // and reads "id", "name", "color".
    let projects = send_form(&app, "get_projects", format!("session={session}")).await;
    assert_eq!(projects["result"], true, "{projects}");
    for p in projects["message"].as_array().unwrap() {
        assert!(
            p["id"].is_number() && p["name"].is_string() && p["color"].is_string(),
            "{p}"
        );
    }

    // initPrinterTypeList: the active machine id before " #", software_version "Cura<ver>";
    // the dialog needs a non-empty list of {id, description}.
    let active_machine = "Original Prusa MK4 #2";
    let printer_type = active_machine.split(" #").next().unwrap();
    let types = send_form(
        &app,
        "get_printer_types",
        format!(
            "session={session}&description={}&software_version={}",
            encode_uri_component(printer_type),
            encode_uri_component("Cura5.2.1")
        ),
    )
    .await;
    assert_eq!(types["result"], true, "{types}");
    let types = types["message"].as_array().unwrap().clone();
    assert!(
        !types.is_empty(),
        "the upload button refuses an empty printer type list"
    );
    let chosen = types
        .iter()
        .find(|t| t["description"] == printer_type)
        .or(types.first())
        .unwrap();
    let ptype = chosen["id"].as_i64().expect("a numeric printer type id");

    // The upload button: uploadData = {gtype, ptype, zip, session, project_name,
    // project_color} (a new project), then construct_multipart with a uuid's 8 characters.
    let upload_data = vec![
        ("gtype", "Cura 5.2.1".to_string()),
        ("ptype", ptype.to_string()),
        ("zip", "False".to_string()),
        ("session", session.clone()),
        ("project_name", "Bracket v2".to_string()),
        ("project_color", "grey".to_string()),
    ];
    let gcode = cura_gcode();
    let body = construct_multipart("7f3c9e21", &upload_data, "bracket.gcode", &gcode);
    let res = app
        .client
        .post(app.url("/apiglobal/upload"))
        .header("User-Agent", "Cura Plugin")
        .header("Content-Type", "multipart/form-data; boundary=7f3c9e21")
        .header("Content-Length", body.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    // finishedSlot: the body as is; OptionsView.finished: result false is an error, else
    // message.file_id.
    let uploaded: Value = res.json().await.unwrap();
    assert_ne!(uploaded["result"], false, "{uploaded}");
    let file_id = uploaded["message"]["file_id"].as_i64().expect("file_id");

    // The project named in the upload exists now, with the uploaded file in it.
    let projects = send_form(&app, "get_projects", format!("session={session}")).await;
    assert!(
        projects["message"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Bracket v2"),
        "{projects}"
    );

    // CloudAPI.updateFile: ptype through parseInt, gtype "Cura", zip false.
    let updated = send_form(
        &app,
        "file_update",
        format!(
            "session={session}&updates[{file_id}][ptype]={ptype}&updates[{file_id}][gtype]=Cura&updates[{file_id}][zip]=false"
        ),
    )
    .await;
    assert_eq!(updated["result"], true, "{updated}");

    // The stored file is the whole G-code (not cut at the first closing delimiter).
    let info = send_form(
        &app,
        "get_slicer_settings_for_gcode",
        format!("session={session}&file_id={file_id}"),
    )
    .await;
    assert_eq!(info["result"], true, "{info}");
    let size: i64 = {
        use diesel::prelude::*;
        use printfarm::db::schema::files;
        files::table
            .find(file_id)
            .select(files::size)
            .first(&mut *app.conn())
            .unwrap()
    };
    assert_eq!(size as usize, gcode.len());

    // The "go to cloud" button: CloudAPI.getAuthToken, then the browser opens
    // `<cloud>noauth/login_with_auth_token/<message>` (or `<cloud>myfiles` when result is not
    // true). The page names the account and signs the browser in once the person continues.
    let auth = send_form(&app, "generate_auth_token", format!("session={session}")).await;
    assert_eq!(auth["result"], true, "{auth}");
    let link = format!(
        "/noauth/login_with_auth_token/{}",
        auth["message"]
            .as_str()
            .expect("the token as the message string")
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let confirm = browser.get(app.url(&link)).send().await.unwrap();
    assert_eq!(confirm.status(), 200);
    let html = confirm.text().await.unwrap();
    assert!(html.contains("cura@example.com"), "{html}");
    // Another site cannot post the form for a visitor (login CSRF).
    let forged = browser
        .post(app.url(&link))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let signed_in = browser
        .post(app.url(&link))
        .header("Origin", app.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/myfiles");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("printfarm_session="), "{cookie}");
    let files = browser
        .get(app.url("/myfiles"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(files.status(), 200);
    let html = files.text().await.unwrap();
    assert!(html.contains("bracket.gcode"), "{html}");
    assert!(
        html.contains(&format!("/quickprint?file_id={file_id}")),
        "{html}"
    );
    // The link works once; without the browser session /myfiles asks to sign in.
    let again = browser
        .post(app.url(&link))
        .header("Origin", app.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
    let anonymous = browser.get(app.url("/myfiles")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login?next=%2Fmyfiles");
    let unknown = browser
        .get(app.url("/noauth/login_with_auth_token/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Logout button: CloudAPI.logout.
    assert_eq!(
        send_form(&app, "logout", format!("session={session}")).await["result"],
        true
    );
    app.stop().await;
}
