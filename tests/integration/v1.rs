//! The Cloud-Slicer-compatible `/v1` API with API tokens, on both backends.

use crate::common;

use common::{Db, TestApp};
use diesel::prelude::*;
use printfarm::db::schema::{api_tokens, files, upload_ids};
use serde_json::{json, Value};

backend_tests!(
    tokens_and_their_refusals,
    files_uploads_and_printability,
    public_upload_ids,
    quotes_priced_from_the_gcode,
    a_100k_triangle_quote_matches_its_gcode,
    failed_quotes_are_clear_and_leave_nothing,
    dangerous_printer_config_is_refused_and_never_runs
);
backend_cases!(async_quotes_and_limits);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn token(app: &TestApp, session: &str, name: &str) -> (i64, String) {
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", session), ("name", name)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["message"]["id"].as_i64().unwrap(),
        body["message"]["token"].as_str().unwrap().to_string(),
    )
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    common::read(req.send().await.unwrap()).await
}

async fn upload(
    app: &TestApp,
    path: &str,
    bearer: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    let mut req = app.client.post(app.url(path)).multipart(form);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn detail(body: &Value) -> &Value {
    body.get("detail")
        .unwrap_or_else(|| panic!("no detail: {body}"))
}

async fn tokens_and_their_refusals(app: &TestApp) {
    let s = app.login_new_user("shop@example.com").await;
    let (id, t) = token(app, &s, "web shop").await;
    let (status, body) = get(app, "/v1/user", Some(&t)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user_id"].is_string());
    assert_eq!(body["email"], "shop@example.com");
    let usage = body["data_usage"].as_object().unwrap();
    for k in [
        "quotes_used",
        "quotes_limit",
        "storage_used",
        "storage_limit",
        "files",
        "days_till_reset",
        "reset_date",
        "last_updated",
    ] {
        assert!(usage.contains_key(k), "{k}");
    }
    // Absent, garbage and wrongly signed tokens.
    let (status, body) = get(app, "/v1/user", None).await;
    assert_eq!(status, 401);
    assert!(detail(&body).is_string());
    assert_eq!(get(app, "/v1/user", Some("not.a.jwt")).await.0, 401);
    let claims = json!({"sub": "1", "jti": id.to_string(), "iat": 0});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(get(app, "/v1/user", Some(&forged)).await.0, 401);
    // Listing and revocation (effective at once).
    let (_, body) = app
        .post("/apiglobal/list_api_tokens", &[("session", &s)])
        .await;
    assert_eq!(body["message"][0]["name"], "web shop");
    assert_eq!(body["message"][0]["revoked"], json!(false));
    let other = app.login_new_user("other@example.com").await;
    common::assert_fail(
        &app.post(
            "/apiglobal/revoke_api_token",
            &[("session", &other), ("token_id", &id.to_string())],
        )
        .await,
        404,
    );
    let (status, _) = app
        .post(
            "/apiglobal/revoke_api_token",
            &[("session", &s), ("token_id", &id.to_string())],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = get(app, "/v1/user", Some(&t)).await;
    assert_eq!(status, 401);
    assert!(detail(&body).as_str().unwrap().contains("revoked"));
    // Expired tokens.
    let (id2, t2) = token(app, &s, "short").await;
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
        diesel::update(api_tokens::table.find(id2))
            .set(api_tokens::expires_at.eq(Some(past)))
            .execute(&mut *c)
            .unwrap();
    }
    assert_eq!(get(app, "/v1/user", Some(&t2)).await.0, 401);
    common::assert_fail(
        &app.post(
            "/apiglobal/create_api_token",
            &[("session", &s), ("name", "")],
        )
        .await,
        400,
    );
}

async fn files_uploads_and_printability(app: &TestApp) {
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    let res = upload(
        app,
        "/v1/file",
        Some(&t),
        "cube.stl",
        fixture("cube_20mm.stl"),
    )
    .await;
    let (status, body) = common::read(res).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "user_id",
            "file_id",
            "file_path",
            "status",
            "timestamp",
            "file_name",
            "file_size"
        ]
    );
    let fid = body["file_id"].as_str().unwrap().to_string();
    // Megabytes, as Cloud Slicer's contract has it (MiB, to the byte).
    assert_eq!(body["file_size"], json!(0.000652));
    upload(
        app,
        "/v1/file",
        Some(&t),
        "cube.obj",
        b"v 0 0 0\nv 10 0 0\nv 0 10 0\nv 0 0 10\nf 1 3 2\nf 1 2 4\nf 2 3 4\nf 1 4 3\n".to_vec(),
    )
    .await;
    let (_, list) = get(app, "/v1/user/uploads", Some(&t)).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cube.obj", "cube.stl"], "newest first");
    // G-code is not a model for /v1.
    let res = upload(
        app,
        "/v1/file",
        Some(&t),
        "cube.gcode",
        fixture("cube_20mm.gcode"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 422);
    // No `file` part, or no multipart body at all: 422 located at body.file.
    for req in [
        app.client
            .post(app.url("/v1/file"))
            .bearer_auth(&t)
            .multipart(reqwest::multipart::Form::new().text("other", "x")),
        app.client
            .post(app.url("/v1/file"))
            .bearer_auth(&t)
            .json(&json!({})),
    ] {
        let (status, body) = common::read(req.send().await.unwrap()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "file"]), "{body}");
    }
    assert_eq!(
        upload(app, "/v1/file", None, "cube.stl", fixture("cube_20mm.stl"))
            .await
            .status()
            .as_u16(),
        401
    );

    let check = |dims: Value| {
        let (t, fid) = (t.clone(), fid.clone());
        async move {
            let res = app
                .client
                .post(app.url(&format!("/v1/printability/{fid}")))
                .bearer_auth(&t)
                .json(&dims)
                .send()
                .await
                .unwrap();
            common::read(res).await
        }
    };
    let (status, body) = check(json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["fits_printer"], json!(true));
    assert_eq!(
        body["printer_dimensions"],
        json!({"x": 210.0, "y": 210.0, "z": 250.0})
    );
    assert_eq!(
        body["model_dimensions"],
        json!({"x": 20.0, "y": 20.0, "z": 20.0})
    );
    assert_eq!(
        check(json!({"x": 100, "y": 100, "z": 10})).await.1["fits_printer"],
        json!(false)
    );
    let (status, body) = check(json!({"x": "wide"})).await;
    assert_eq!(status, 422);
    assert!(detail(&body)[0]["loc"].is_array());
    // Another user's file, download and deletion.
    let s2 = app.login_new_user("other@example.com").await;
    let (_, t2) = token(app, &s2, "x").await;
    assert_eq!(get(app, &format!("/v1/file/{fid}"), Some(&t2)).await.0, 404);
    let res = app
        .client
        .get(app.url(&format!("/v1/file/{fid}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        fixture("cube_20mm.stl")
    );
    let res = app
        .client
        .delete(app.url(&format!("/v1/file/{fid}")))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let (status, body) = common::read(
        app.client
            .delete(app.url(&format!("/v1/file/{fid}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["file_id"].clone(), body["status"].clone()),
        (json!(fid), json!("success"))
    );
    assert_eq!(get(app, &format!("/v1/file/{fid}"), Some(&t)).await.0, 404);
}

async fn public_upload_ids(app: &TestApp) {
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    let (status, body) = get(app, "/v1/file/upload-id", Some(&t)).await;
    assert_eq!(status, 200, "{body}");
    let id = body["upload_id"].as_str().unwrap().to_string();
    // The id the browser's upload will have (a string, as in Cloud Slicer's contract).
    let promised = body["file_id"]
        .as_str()
        .expect("file_id is a string")
        .to_string();
    let printability = |fid: String| {
        let t = t.clone();
        async move {
            let res = app
                .client
                .post(app.url(&format!("/v1/printability/{fid}")))
                .bearer_auth(&t)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    };
    // Nothing there yet; and an upload by the shop's server in between gets another id.
    assert_eq!(printability(promised.clone()).await, 404);
    let res = upload(
        app,
        "/v1/file",
        Some(&t),
        "side.stl",
        fixture("cube_20mm.stl"),
    )
    .await;
    let (status, side) = common::read(res).await;
    assert_eq!(status, 200, "{side}");
    assert_ne!(side["file_id"], json!(promised));
    let pre = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/v1/file/public/{id}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    let res = upload(
        app,
        &format!("/v1/file/public/{id}"),
        None,
        "cube.stl",
        fixture("cube_20mm.stl"),
    )
    .await;
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let (status, body) = common::read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["file_name"], "cube.stl");
    assert_eq!(
        body["file_id"],
        json!(promised),
        "the file has the promised id"
    );
    // The shop's server can now use it (quoting takes the same file id).
    assert_eq!(printability(promised.clone()).await, 200);
    // Single use.
    let res = upload(
        app,
        &format!("/v1/file/public/{id}"),
        None,
        "cube.stl",
        fixture("cube_20mm.stl"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 410);
    // Expired and unknown ids.
    let (_, body) = get(app, "/v1/file/upload-id", Some(&t)).await;
    let old = body["upload_id"].as_str().unwrap().to_string();
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
        diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(&old)))
            .set(upload_ids::expires_at.eq(past))
            .execute(&mut *c)
            .unwrap();
    }
    assert_eq!(
        upload(
            app,
            &format!("/v1/file/public/{old}"),
            None,
            "cube.stl",
            fixture("cube_20mm.stl")
        )
        .await
        .status()
        .as_u16(),
        410
    );
    assert_eq!(
        upload(
            app,
            "/v1/file/public/nope",
            None,
            "cube.stl",
            fixture("cube_20mm.stl")
        )
        .await
        .status()
        .as_u16(),
        404
    );
    {
        let mut c = app.conn();
        let n: i64 = files::table.count().get_result(&mut *c).unwrap();
        assert_eq!(n, 2, "refused uploads stored nothing");
    }

    // Reservations whose upload never came do not pile up: a day past their expiry they are
    // removed when new ones are made (until then a late upload hears 410, above).
    {
        let mut c = app.conn();
        let long_ago = chrono::Utc::now().naive_utc() - chrono::Duration::days(2);
        diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(&old)))
            .set(upload_ids::expires_at.eq(long_ago))
            .execute(&mut *c)
            .unwrap();
    }
    let (_, body) = get(app, "/v1/file/upload-id", Some(&t)).await;
    let fresh: i64 = body["file_id"].as_str().unwrap().parse().unwrap();
    let mut c = app.conn();
    let left: Vec<String> = upload_ids::table
        .select(upload_ids::upload_id)
        .load(&mut *c)
        .unwrap();
    assert!(!left.contains(&old), "the stale reservation is gone");
    assert_eq!(
        left.len(),
        2,
        "the used id (not yet expired) and the new one"
    );
    // Every reservation took an id of its own, never one a file already has.
    let max: Option<i64> = files::table
        .select(diesel::dsl::max(files::id))
        .first(&mut *c)
        .unwrap();
    assert!(fresh > max.unwrap());
}

async fn post_quote(app: &TestApp, t: &str, path: &str, body: Value) -> (u16, Value) {
    common::read(
        app.client
            .post(app.url(path))
            .bearer_auth(t)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn quotes_priced_from_the_gcode(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    let (_, body) = common::read(
        upload(
            app,
            "/v1/file",
            Some(&t),
            "cube.stl",
            fixture("cube_20mm.stl"),
        )
        .await,
    )
    .await;
    let fid = body["file_id"].as_str().unwrap().to_string();
    let cfg = json!({
        "printer_config": {"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220, "fill_density": 15, "perimeters": 2},
        "quote_config": {"currency": "EUR", "cost_per_hour": 3.0, "cost_per_gram": 0.05, "base_price": 2.0}
    });
    let (status, q) = post_quote(app, &t, &format!("/v1/quote/{fid}"), cfg.clone()).await;
    assert_eq!(status, 200, "{q}");
    for k in [
        "quote_id",
        "user_id",
        "status",
        "timestamp",
        "quote_duration",
        "file_path",
        "gcode_path",
        "gcode_name",
        "gcode_file_size",
        "estimated_time",
        "estimated_time_seconds",
        "filament_weight",
        "filament_cost",
        "total_price",
    ] {
        assert!(q.get(k).is_some_and(|v| !v.is_null()), "{k} in {q}");
    }
    assert_eq!(q["status"], "success");
    // Time and grams are the G-code footer's.
    let qid = q["quote_id"].as_str().unwrap().to_string();
    let res = app
        .client
        .get(app.url(&format!("/v1/quote/gcode/{qid}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let gcode = res.text().await.unwrap();
    let footer = |key: &str| {
        gcode
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.split('=').nth(1).unwrap().trim().to_string())
            .unwrap()
    };
    let grams: f64 = footer("; filament used [g]").parse().unwrap();
    assert_eq!(q["filament_weight"].as_f64().unwrap(), grams);
    assert_eq!(
        q["estimated_time"],
        footer("; estimated printing time (normal mode)")
    );
    let secs = q["estimated_time_seconds"].as_f64().unwrap();
    let expected = ((2.0 + grams * 0.05 + secs / 3600.0 * 3.0) * 100.0).round() / 100.0;
    assert_eq!(q["total_price"].as_f64().unwrap(), expected);
    // Details carry the configs; the deprecated path works; other users see nothing.
    let (status, d) = get(app, &format!("/v1/quote/{qid}"), Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(d["quote_config"]["currency"], "EUR");
    assert_eq!(d["printer_config"]["fill_density"], 15);
    // Every value used, defaults included (not only what the request named).
    assert_eq!(d["printer_config"]["bed_size_x"], 250, "{d}");
    assert_eq!(d["printer_config"]["first_layer_speed"], 50, "{d}");
    assert_eq!(d["printer_config"]["filament_type"], "PLA", "{d}");
    assert!(d["quote_config"]["cost_per_hour"].is_number(), "{d}");
    // Quote G-code is not an upload.
    let (_, list) = get(app, "/v1/user/uploads", Some(&t)).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|u| !u["file_name"].as_str().unwrap().ends_with(".gcode")),
        "{list}"
    );
    assert_eq!(
        post_quote(app, &t, &format!("/v1/file/quote/{fid}"), json!({}))
            .await
            .0,
        200
    );
    let s2 = app.login_new_user("other@example.com").await;
    let (_, t2) = token(app, &s2, "x").await;
    assert_eq!(
        get(app, &format!("/v1/quote/{qid}"), Some(&t2)).await.0,
        404
    );
    assert_eq!(
        post_quote(app, &t2, &format!("/v1/quote/{fid}"), json!({}))
            .await
            .0,
        404
    );
    // Validation: unknown printer_config keys and too-tall models.
    let (status, body) = post_quote(
        app,
        &t,
        &format!("/v1/quote/{fid}"),
        json!({"printer_config": {"bed_size_q": 1}}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(detail(&body)[0]["msg"]
        .as_str()
        .unwrap()
        .contains("bed_size_q"));
    assert_eq!(
        post_quote(
            app,
            &t,
            &format!("/v1/quote/{fid}"),
            json!({"quote_config": {"tip": 1}})
        )
        .await
        .0,
        422
    );
    let (status, _) = post_quote(
        app,
        &t,
        &format!("/v1/quote/{fid}"),
        json!({"printer_config": {"bed_size_z": 10}}),
    )
    .await;
    assert_eq!(status, 400);
    // Deleting the quote deletes its G-code; deleting the file deletes its quotes.
    let (status, body) = common::read(
        app.client
            .delete(app.url(&format!("/v1/quote/{qid}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The quote's own gcode_path, never a storage key.
    let path = body["removed_gcode_path"].as_str().unwrap();
    assert!(path.starts_with(&format!("quotes/{qid}/")), "{path}");
    assert_eq!(
        app.client
            .get(app.url(&format!("/v1/quote/gcode/{qid}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let (_, q2) = post_quote(app, &t, &format!("/v1/quote/{fid}"), json!({})).await;
    let q2 = q2["quote_id"].as_str().unwrap().to_string();
    app.client
        .delete(app.url(&format!("/v1/file/{fid}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(get(app, &format!("/v1/quote/{q2}"), Some(&t)).await.0, 404);
    let mut c = app.conn();
    let left: i64 = files::table.count().get_result(&mut *c).unwrap();
    assert_eq!(
        left, 0,
        "the model, its quotes' G-code and all were deleted"
    );
}

async fn async_quotes_and_limits(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(
        db,
        &[
            ("PRINTFARM_V1__QUOTE_WAIT_SECS", "0"),
            ("PRINTFARM_V1__QUOTES_PER_MONTH", "1"),
            ("PRINTFARM_V1__STORAGE_LIMIT_MB", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(&app, &s, "shop").await;
    let (_, body) = common::read(
        upload(
            &app,
            "/v1/file",
            Some(&t),
            "cube.stl",
            fixture("cube_20mm.stl"),
        )
        .await,
    )
    .await;
    let fid = body["file_id"].as_str().unwrap().to_string();
    let (status, q) = post_quote(&app, &t, &format!("/v1/quote/{fid}"), json!({})).await;
    assert_eq!(status, 202, "{q}");
    assert_eq!(q["status"], "pending");
    let qid = q["quote_id"].as_str().unwrap().to_string();
    let mut last = (0, Value::Null);
    for _ in 0..300 {
        last = get(&app, &format!("/v1/quote/{qid}"), Some(&t)).await;
        if last.0 != 202 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert!(last.1["total_price"].as_f64().unwrap() > 5.0);
    let (status, body) = post_quote(&app, &t, &format!("/v1/quote/{fid}"), json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert!(detail(&body).as_str().unwrap().contains("limit"));
    let (_, user) = get(&app, "/v1/user", Some(&t)).await;
    assert_eq!(
        (
            user["data_usage"]["quotes_used"].clone(),
            user["data_usage"]["quotes_limit"].clone()
        ),
        (json!(1), json!(1))
    );
    // Deleting the quote does not give the month's quota back.
    let res = app
        .client
        .delete(app.url(&format!("/v1/quote/{qid}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (status, body) = post_quote(&app, &t, &format!("/v1/quote/{fid}"), json!({})).await;
    assert_eq!(status, 429, "deleting quotes got round the limit: {body}");
    let (_, user) = get(&app, "/v1/user", Some(&t)).await;
    assert_eq!(user["data_usage"]["quotes_used"], json!(1));

    // Storage: 1 MiB. A 700 kB model fits beside the cube; a second one does not (413, and
    // nothing is kept); the small cube still fits.
    let big = torus_stl(30.0, 8.0, 100, 70);
    assert!(big.len() > 600_000 && big.len() < 1_000_000);
    let res = upload(&app, "/v1/file", Some(&t), "ring.stl", big.clone()).await;
    assert_eq!(res.status().as_u16(), 200);
    let before = app.stored_files();
    let (status, body) =
        common::read(upload(&app, "/v1/file", Some(&t), "ring2.stl", big).await).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.to_string().contains("storage limit"),
        "says why: {body}"
    );
    assert_eq!(app.stored_files(), before, "a refused upload keeps nothing");
    let (_, user) = get(&app, "/v1/user", Some(&t)).await;
    assert_eq!(user["data_usage"]["files"], json!(2), "{user}");
    let res = upload(
        &app,
        "/v1/file",
        Some(&t),
        "cube2.stl",
        fixture("cube_20mm.stl"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    app.stop().await;
}

/// A binary STL of a torus (major radius `big`, tube radius `small`) of `2 * around * tube`
/// triangles, centred over the origin's quadrant, closed and wound outwards.
fn torus_stl(big: f32, small: f32, around: u32, tube: u32) -> Vec<u8> {
    let point = |i: u32, j: u32| {
        let u = 2.0 * std::f32::consts::PI * (i % around) as f32 / around as f32;
        let v = 2.0 * std::f32::consts::PI * (j % tube) as f32 / tube as f32;
        let r = big + small * v.cos();
        [
            r * u.cos() + big + small,
            r * u.sin() + big + small,
            small * v.sin() + small,
        ]
    };
    let count = 2 * around * tube;
    let mut out = vec![b' '; 80];
    out.extend_from_slice(&count.to_le_bytes());
    for i in 0..around {
        for j in 0..tube {
            let (a, b, c, d) = (
                point(i, j),
                point(i + 1, j),
                point(i + 1, j + 1),
                point(i, j + 1),
            );
            for t in [[a, b, c], [a, c, d]] {
                out.extend_from_slice(&[0u8; 12]);
                for p in t {
                    for x in p {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
                out.extend_from_slice(&[0u8; 2]);
            }
        }
    }
    out
}

/// PrusaSlicer's time format ("1d 2h 3m 4s", parts left out when zero) in seconds.
fn footer_seconds(text: &str) -> i64 {
    text.split_whitespace()
        .map(|part| {
            let (n, unit) = part.split_at(part.len() - 1);
            let n: i64 = n.parse().unwrap_or_else(|_| panic!("{text:?}"));
            n * match unit {
                "d" => 86400,
                "h" => 3600,
                "m" => 60,
                "s" => 1,
                _ => panic!("{text:?}"),
            }
        })
        .sum()
}

/// Posts a quote and, if it answers 202, polls it until the slice ended.
async fn quote_to_end(app: &TestApp, t: &str, fid: &str, cfg: Value) -> (u16, Value) {
    let (mut status, mut q) = post_quote(app, t, &format!("/v1/quote/{fid}"), cfg).await;
    for _ in 0..1200 {
        if status != 202 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        let qid = q["quote_id"].as_str().unwrap().to_string();
        (status, q) = get(app, &format!("/v1/quote/{qid}"), Some(t)).await;
    }
    (status, q)
}

async fn gcode_of(app: &TestApp, t: &str, qid: &str) -> String {
    let res = app
        .client
        .get(app.url(&format!("/v1/quote/gcode/{qid}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

fn footer<'a>(gcode: &'a str, key: &str) -> &'a str {
    gcode
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_once('='))
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("no {key:?} in the G-code"))
}

async fn a_100k_triangle_quote_matches_its_gcode(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    let torus = torus_stl(30.0, 10.0, 250, 200);
    assert_eq!(torus.len(), 84 + 50 * 100_000);
    let (status, body) =
        common::read(upload(app, "/v1/file", Some(&t), "torus.stl", torus).await).await;
    assert_eq!(status, 200, "{body}");
    let fid = body["file_id"].as_str().unwrap().to_string();
    let quote_config = json!({"currency": "EUR", "cost_per_hour": 4.0, "cost_per_gram": 0.03,
                              "base_price": 1.5, "minimum_price": 2.0});
    let printer_config = json!({"bed_size_x": 220, "bed_size_y": 220, "bed_size_z": 250,
                                "layer_height": 0.25, "fill_density": 10});
    let (status, q) = quote_to_end(
        app,
        &t,
        &fid,
        json!({"printer_config": printer_config, "quote_config": quote_config}),
    )
    .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["status"], "success");
    let qid = q["quote_id"].as_str().unwrap().to_string();
    let gcode = gcode_of(app, &t, &qid).await;
    assert!(gcode.contains("; generated by PrusaSlicer"));
    assert!(gcode.contains("layer_height = 0.25\n"));
    // Time and weight are the footer's, exactly.
    let time = footer(&gcode, "; estimated printing time (normal mode)");
    let secs = footer_seconds(time);
    assert!(secs > 600, "a 100k-triangle torus takes a while: {time}");
    assert_eq!(q["estimated_time_seconds"], json!(secs));
    assert_eq!(q["estimated_time"], time);
    let grams: f64 = footer(&gcode, "; filament used [g]").parse().unwrap();
    assert!(grams > 5.0, "{grams}");
    assert_eq!(q["filament_weight"].as_f64(), Some(grams));
    let mm: f64 = footer(&gcode, "; filament used [mm]").parse().unwrap();
    assert_eq!(q["filament_used_mm"].as_f64(), Some(mm));
    // The README's formula, rounded once to cents.
    let cents = |v: f64| (v * 100.0).round() / 100.0;
    let raw = 1.5 + grams * 0.03 + secs as f64 / 3600.0 * 4.0;
    assert!(raw > 2.0, "the minimum does not bind here");
    assert_eq!(q["total_price"].as_f64(), Some(cents(raw)));
    assert_eq!(q["filament_cost"].as_f64(), Some(cents(grams * 0.03)));
    assert_eq!(
        q["time_cost"].as_f64(),
        Some(cents(secs as f64 / 3600.0 * 4.0))
    );
    assert_eq!(q["currency"], "EUR");
    assert_eq!(
        q["gcode_file_size"].as_f64(),
        Some((gcode.len() as f64 / 1_048_576.0 * 1e6).round() / 1e6)
    );
    // A minimum price above the sum wins; time and grams stay the same model's.
    let (status, q2) = quote_to_end(
        app,
        &t,
        &fid,
        json!({"printer_config": printer_config,
               "quote_config": {"cost_per_kg": 20.0, "minimum_price": 1000.0}}),
    )
    .await;
    assert_eq!(status, 200, "{q2}");
    let gcode2 = gcode_of(app, &t, q2["quote_id"].as_str().unwrap()).await;
    let secs2 = footer_seconds(footer(&gcode2, "; estimated printing time (normal mode)"));
    let grams2: f64 = footer(&gcode2, "; filament used [g]").parse().unwrap();
    assert_eq!(q2["estimated_time_seconds"], json!(secs2));
    assert_eq!(q2["filament_weight"].as_f64(), Some(grams2));
    assert_eq!(
        q2["filament_cost"].as_f64(),
        Some(cents(grams2 / 1000.0 * 20.0))
    );
    assert_eq!(q2["total_price"].as_f64(), Some(1000.0));
    assert_eq!(q2["currency"], "USD");
}

/// A model PrusaSlicer cannot slice: the quote fails with the slicer's reason (422, also when
/// fetched later), has no G-code, and leaves no file or stored object behind.
async fn failed_quotes_are_clear_and_leave_nothing(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    // A box missing three faces that meet at a corner (upload accepts open meshes).
    let mut open_box = vec![b' '; 80];
    let p = |i: usize| {
        [
            (i & 1) as f32 * 20.0,
            ((i >> 1) & 1) as f32 * 20.0,
            ((i >> 2) & 1) as f32 * 20.0,
        ]
    };
    let faces = [[0, 2, 3, 1], [0, 1, 5, 4], [0, 4, 6, 2]];
    open_box.extend_from_slice(&6u32.to_le_bytes());
    for [a, b, c, d] in faces {
        for tri in [[p(a), p(b), p(c)], [p(a), p(c), p(d)]] {
            open_box.extend_from_slice(&[0u8; 12]);
            for v in tri {
                for x in v {
                    open_box.extend_from_slice(&x.to_le_bytes());
                }
            }
            open_box.extend_from_slice(&[0u8; 2]);
        }
    }
    // (An OBJ of 5-corner polygons, which PrusaSlicer 2.5's loader refuses, now slices: it
    // gets our own triangulated OBJ.)
    let mut models = Vec::new();
    for (name, bytes, needle) in [("open_box.stl", open_box, "no layers were detected")] {
        let (status, body) =
            common::read(upload(app, "/v1/file", Some(&t), name, bytes).await).await;
        assert_eq!(status, 200, "{name}: {body}");
        let fid = body["file_id"].as_str().unwrap().to_string();
        models.push(fid.parse::<i64>().unwrap());
        let stored = app.stored_files();
        let (status, q) = quote_to_end(app, &t, &fid, json!({})).await;
        assert_eq!(status, 422, "{name}: {q}");
        assert_eq!(q["status"], "error");
        let d = &detail(&q)[0];
        assert_eq!(d["type"], "slicing_error");
        assert!(d["msg"].as_str().unwrap().contains(needle), "{name}: {q}");
        let qid = q["quote_id"].as_str().unwrap().to_string();
        let (status, again) = get(app, &format!("/v1/quote/{qid}"), Some(&t)).await;
        assert_eq!(status, 422, "{again}");
        assert_eq!(detail(&again)[0]["msg"], d["msg"]);
        let res = app
            .client
            .get(app.url(&format!("/v1/quote/gcode/{qid}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{name}: no G-code");
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
    assert_eq!(ids, models, "only the two models remain");
}

/// `printer_config` goes through the slicer's typed allow-list: programs, templates, notes and
/// values carrying a newline are refused by name (422, like every validation error of /v1)
/// before any quote or slice exists, and nothing they name ever runs.
async fn dangerous_printer_config_is_refused_and_never_runs(app: &TestApp) {
    if !crate::common::slicer_present() {
        return;
    }
    let s = app.login_new_user("shop@example.com").await;
    let (_, t) = token(app, &s, "shop").await;
    let (_, body) = common::read(
        upload(
            app,
            "/v1/file",
            Some(&t),
            "cube.stl",
            fixture("cube_20mm.stl"),
        )
        .await,
    )
    .await;
    let fid = body["file_id"].as_str().unwrap().to_string();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let cases: Vec<(&str, Value)> = vec![
        ("post_process", json!(touch)),
        (
            "start_gcode",
            json!("G28\\n{if 1}M117 [input_filename]{endif}"),
        ),
        ("end_gcode", json!("M84")),
        ("output_filename_format", json!("../x.gcode")),
        ("notes", json!("hello")),
        (
            "filament_type",
            json!(format!("PLA\npost_process = {touch}")),
        ),
        (
            "support_material",
            json!(format!("1\npost_process = {touch}")),
        ),
        (
            "fill_pattern",
            json!(format!("grid\npost_process = {touch}")),
        ),
    ];
    for (key, value) in cases {
        let mut cfg = json!({"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220});
        cfg[key] = value;
        let (status, body) = post_quote(
            app,
            &t,
            &format!("/v1/quote/{fid}"),
            json!({ "printer_config": cfg }),
        )
        .await;
        assert_eq!(status, 422, "{key}: {body}");
        let msg = detail(&body)[0]["msg"].as_str().unwrap().to_string();
        assert!(msg.contains(key), "{key}: {msg}");
        assert!(!msg.contains("touch"), "{key}: {msg}");
    }
    {
        use printfarm::db::schema::{quotes, slice_jobs};
        let mut c = app.conn();
        let q: i64 = quotes::table.count().get_result(&mut *c).unwrap();
        let j: i64 = slice_jobs::table.count().get_result(&mut *c).unwrap();
        assert_eq!((q, j), (0, 0), "nothing was queued");
    }
    // A plain quote still slices (a queued attack would have run by now).
    let (status, q) = post_quote(
        app,
        &t,
        &format!("/v1/quote/{fid}"),
        json!({"printer_config": {"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220}}),
    )
    .await;
    assert_eq!(status, 200, "{q}");
    assert!(!marker.exists(), "a refused post_process ran");
}
