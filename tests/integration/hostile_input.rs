//! Hostile input against every documented call: each parameter of each `/apiglobal` call and
//! `/v1` route (read from the server's own OpenAPI document, so a new call is covered the day
//! it is documented) gets huge and negative numbers, 10k-character strings, invalid UTF-8,
//! NUL, repeated keys, arrays and maps where a scalar belongs, and the like, while the other
//! parameters stay valid so the hostile one is the one that gets parsed. No answer may be a
//! 5xx, and every answer keeps its envelope. On both backends.

use crate::common;

use common::{Db, TestApp};
use serde_json::{json, Value};

backend_cases!(every_call_survives_hostile_values);

/// Values as they appear in a form body (already percent-encoded where needed).
fn hostile_form_values() -> Vec<String> {
    let long = "A".repeat(10_000);
    let mut v: Vec<String> = [
        "99999999999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-1",
        "0",
        "1e308",
        "-1e308",
        "NaN",
        "inf",
        "0x10",
        "1.5",
        "%00",
        "a%00b",
        "%FF%FE%FD",
        "%C3%28",
        "%E2%80%AE%E2%80%AEevil",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%7B",
        "%5B%5D",
        "%7B%22a%22%3A",
        "%5B1%2C2%5D",
        "%7B%2212%22%3A%7B%22ptype%22%3A-1%7D%7D",
        "null",
        "true",
        "",
        "%20",
        "2019-02-30",
        "9999-99-99",
        "0000-00-00%2000%3A00%3A00",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(long);
    v.push(format!("{}%00", "9".repeat(5000)));
    v
}

/// Whole JSON values put in place of one field of a `/v1` body.
fn hostile_json_values() -> Vec<Value> {
    vec![
        json!(1e308),
        json!(-1e308),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.000_000_1),
        json!("12"),
        json!("NaN"),
        json!("A".repeat(10_000)),
        json!("a\u{0}b"),
        json!("\u{202e}evil"),
        json!("../../etc/passwd"),
        json!(null),
        json!(true),
        json!([]),
        json!([1, 2]),
        json!({}),
        json!({"nested": {"deeper": [1]}}),
    ]
}

/// Raw bodies that are not what a JSON route expects.
fn hostile_json_bodies() -> Vec<Vec<u8>> {
    vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe{\"a\":1}".to_vec(),
        b"{\"printer_config\":\"\xff\"}".to_vec(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        b"{\"printer_config\":{\"bed_size_x\":1},\"printer_config\":{\"bed_size_x\":2}}".to_vec(),
    ]
}

/// Path segments for `{file_id}`, `{quote_id}` and `{upload_id}`.
fn hostile_segments() -> Vec<String> {
    [
        "-1",
        "0",
        "99999999999999999999999999",
        "9223372036854775807",
        "%00",
        "%FF",
        "..%2F..%2Fetc%2Fpasswd",
        "1.5",
        "%E2%80%AE",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "A".repeat(10_000),
        "00000000-0000-0000-0000-000000000000".into(),
    ])
    .collect()
}

struct Setup {
    session: String,
    token: String,
    user_id: i64,
    gcode_id: i64,
    stl_id: i64,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn setup(app: &TestApp) -> Setup {
    let (user_id, session) = app
        .user_with_session(app.org_id, "fuzz@example.com", 1)
        .await;
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &session), ("name", "fuzz")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["message"]["token"].as_str().unwrap().to_string();
    let (_, g) = app
        .upload(&session, "cube.gcode", fixture("cube_20mm.gcode"), &[])
        .await;
    let (_, s) = app
        .upload(&session, "cube.stl", fixture("cube_20mm.stl"), &[])
        .await;
    Setup {
        session,
        token,
        user_id,
        gcode_id: g["message"]["file_id"].as_i64().expect("gcode uploaded"),
        stl_id: s["message"]["file_id"].as_i64().expect("stl uploaded"),
    }
}

/// A valid value for a parameter, so that only the fuzzed one is hostile.
fn valid_value(call: &str, param: &str, s: &Setup) -> Option<String> {
    let v = match param {
        "session" => s.session.clone(),
        "file_id" if call == "slice" => s.stl_id.to_string(),
        "file_id" => s.gcode_id.to_string(),
        "user_id" => s.user_id.to_string(),
        "username" | "email" | "user_email" => "someone@example.com".into(),
        "password" => "not-the-password".into(),
        "profile" => r#"{"layer_height":0.2}"#.into(),
        "updates" => format!(r#"{{"{}":{{"ptype":1}}}}"#, s.gcode_id),
        "from" => "2026-01-01".into(),
        "to" => "2026-01-31".into(),
        "type" => "json".into(),
        "name" => "fuzz".into(),
        "gdpr" => "1".into(),
        "token" | "registration_code" => "no-such-token".into(),
        // Signing out would end the session the rest of the run uses.
        "cancel" | "gdpr1" | "gdpr2" => return None,
        _ => "1".into(),
    };
    Some(v)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn check(failures: &mut Vec<String>, what: &str, status: u16, body: &[u8], envelope: bool) {
    if status >= 500 {
        failures.push(format!(
            "{what}: {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
        return;
    }
    if envelope && status != 200 {
        // A refusal keeps the envelope with a string message.
        let ok = serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v["result"] == json!(false) && v["message"].is_string());
        if !ok {
            failures.push(format!(
                "{what}: {status} without the failure envelope: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
    }
}

async fn every_call_survives_hostile_values(db: Db) {
    // Slices and quotes are queued but not run: this test is about decoding input.
    let Some(app) = TestApp::start(
        db,
        &[
            ("PRINTFARM_SLICER__IN_PROCESS_WORKERS", "false"),
            ("PRINTFARM_V1__QUOTE_WAIT_SECS", "0"),
            // Hostile logins must not lock the test out of its own calls.
            ("PRINTFARM_AUTH__THROTTLE_MAX_PER_ADDRESS", "100000"),
        ],
    )
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut failures = Vec::new();
    let mut sent = 0usize;
    let values = hostile_form_values();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(call) = path.strip_prefix("/apiglobal/") else {
            continue;
        };
        let op = &item["post"];
        let content = &op["requestBody"]["content"];
        let (multipart, schema) = match (
            content.get("application/x-www-form-urlencoded"),
            content.get("multipart/form-data"),
        ) {
            (Some(c), _) => (false, &c["schema"]),
            (None, Some(c)) => (true, &c["schema"]),
            (None, None) => (false, &Value::Null),
        };
        let schema = match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        let params: Vec<String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().filter(|k| *k != "file").cloned().collect())
            .unwrap_or_default();
        if call == "loginout" || call == "logout" {
            // Only hostile sessions: a valid one would end the run's session.
            for v in &values {
                let body = format!("session={v}");
                let res = post_form(&app, path, body).await;
                sent += 1;
                check(
                    &mut failures,
                    &format!("{call} session={}", short(v)),
                    res.0,
                    &res.1,
                    true,
                );
            }
            continue;
        }
        for fuzzed in &params {
            let others: Vec<String> = params
                .iter()
                .filter(|p| *p != fuzzed)
                .filter_map(|p| valid_value(call, p, &s).map(|v| format!("{p}={}", enc(&v))))
                .collect();
            let mut variants: Vec<(String, String)> = values
                .iter()
                .map(|v| (short(v), format!("{fuzzed}={v}")))
                .collect();
            variants.push((
                "repeated".into(),
                format!("{fuzzed}=1&{fuzzed}=2&{fuzzed}=-1"),
            ));
            variants.push(("array".into(), format!("{fuzzed}[]=1&{fuzzed}[]=2")));
            variants.push(("map".into(), format!("{fuzzed}[a][b]=1&{fuzzed}[0]=x")));
            variants.push(("key only".into(), fuzzed.to_string()));
            variants.push((
                "deep map".into(),
                format!("{fuzzed}{}=1", "[a]".repeat(2_000)),
            ));
            for (label, hostile) in variants {
                let mut parts = others.clone();
                parts.push(hostile);
                let body = parts.join("&");
                let what = format!("{call} {fuzzed}={label}");
                let res = if multipart {
                    post_multipart(&app, path, &parts).await
                } else {
                    post_form(&app, path, body).await
                };
                sent += 1;
                check(&mut failures, &what, res.0, &res.1, true);
            }
        }
        if multipart {
            // Hostile file names, and a file part where a text part belongs.
            for name in [
                "A".repeat(10_000) + ".gcode",
                "../../../etc/passwd.gcode".into(),
                "a\u{0}b.gcode".into(),
                "\u{202e}edoc.gcode".into(),
                String::new(),
                ".gcode".into(),
            ] {
                let form = reqwest::multipart::Form::new()
                    .text("session", s.session.clone())
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(fixture("cube_20mm.gcode"))
                            .file_name(name.clone()),
                    );
                let (status, body) = outcome(app.client.post(app.url(path)).multipart(form)).await;
                sent += 1;
                check(
                    &mut failures,
                    &format!("{call} file name {}", short(&name)),
                    status,
                    &body,
                    true,
                );
            }
        }
    }

    // /v1: hostile path segments, bodies and fields, with a valid token.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, _op) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let segments: Vec<String> = if path.contains('{') {
                hostile_segments()
            } else {
                vec![String::new()]
            };
            for seg in &segments {
                let url = fill(path, seg);
                let (status, body) = outcome(
                    app.client
                        .request(method.clone(), app.url(&url))
                        .bearer_auth(&s.token),
                )
                .await;
                sent += 1;
                check(
                    &mut failures,
                    &format!("{method} {url}"),
                    status,
                    &body,
                    false,
                );
            }
            let takes_json =
                path.starts_with("/v1/printability") || path.contains("quote/{file_id}");
            if method != reqwest::Method::POST || !takes_json {
                continue;
            }
            let url = fill(path, &s.stl_id.to_string());
            for raw in hostile_json_bodies() {
                let (status, body) = outcome(
                    app.client
                        .post(app.url(&url))
                        .bearer_auth(&s.token)
                        .header("content-type", "application/json")
                        .body(raw.clone()),
                )
                .await;
                sent += 1;
                check(
                    &mut failures,
                    &format!("POST {url} raw {}", short(&String::from_utf8_lossy(&raw))),
                    status,
                    &body,
                    false,
                );
            }
            let fields: Vec<(Option<&str>, &str)> = if path.starts_with("/v1/printability") {
                ["x", "y", "z"].iter().map(|f| (None, *f)).collect()
            } else {
                printfarm::slicer::PRINTER_CONFIG_KEYS
                    .iter()
                    .map(|f| (Some("printer_config"), *f))
                    .chain(
                        ["currency", "cost_per_hour", "cost_per_gram", "base_price"]
                            .iter()
                            .map(|f| (Some("quote_config"), *f)),
                    )
                    .chain([(None, "printer_config"), (None, "quote_config")])
                    .collect()
            };
            for (section, field) in fields {
                for v in hostile_json_values() {
                    let body = match section {
                        Some(sec) => json!({ sec: { field: v.clone() } }),
                        None => json!({ field: v.clone() }),
                    };
                    let (status, bytes) = outcome(
                        app.client
                            .post(app.url(&url))
                            .bearer_auth(&s.token)
                            .json(&body),
                    )
                    .await;
                    sent += 1;
                    check(
                        &mut failures,
                        &format!(
                            "POST {url} {}.{field}={}",
                            section.unwrap_or(""),
                            short(&v.to_string())
                        ),
                        status,
                        &bytes,
                        false,
                    );
                }
            }
        }
    }
    assert!(
        sent > 3_000,
        "only {sent} requests: did the document lose its calls?"
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} hostile requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The server is still healthy afterwards.
    let (status, _) = app
        .post("/apiglobal/check_session", &[("session", &s.session)])
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push_str(&format!("…({} chars)", s.chars().count()));
    }
    out
}

fn fill(path: &str, seg: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(seg);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn post_form(app: &TestApp, path: &str, body: String) -> (u16, Vec<u8>) {
    outcome(
        app.client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// The same `key=value` pairs as multipart text parts (values percent-decoded to raw bytes,
/// so invalid UTF-8 and NUL reach the server as bytes).
async fn post_multipart(app: &TestApp, path: &str, parts: &[String]) -> (u16, Vec<u8>) {
    let mut form = reqwest::multipart::Form::new();
    for pair in parts.iter().flat_map(|p| p.split('&')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key: String = url::form_urlencoded::parse(format!("{k}=").as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        let raw: Vec<u8> = percent_decode(v);
        form = form.part(key, reqwest::multipart::Part::bytes(raw));
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(fixture("cube_20mm.gcode")).file_name("cube.gcode"),
    );
    outcome(app.client.post(app.url(path)).multipart(form)).await
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    out
}

/// Sends a request; its status and body.
async fn outcome(req: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.bytes().await.unwrap().to_vec())
}
