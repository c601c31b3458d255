//! Calls 1–3 and the envelope rules every Global API call shares, on both backends.

use crate::common;

use chrono::{Duration, Utc};
use common::{assert_fail, TestApp, PASSWORD};
use diesel::prelude::*;
use printfarm::db::schema::{sessions, users};
use serde_json::{json, Value};

backend_tests!(
    login_check_and_logout,
    a_bad_session_answers_401_before_bad_parameters,
    login_accepts_sloppy_clients,
    wrong_password_and_unknown_user_are_refused_alike,
    missing_parameters_name_the_parameter,
    sessions_are_stored_only_as_hashes,
    expired_session_is_refused_and_removed,
    use_slides_the_expiry,
    throttles_failed_logins_per_account,
    throttles_failed_logins_per_address,
    parallel_guesses_cannot_outrun_the_throttle,
    access_log_hides_credentials,
    metrics_only_for_local_direct_readers,
    made_up_methods_share_one_metrics_label,
    logout_alias_and_trailing_slash,
    router_refusals_answer_the_envelope,
    every_documented_call_is_routed,
    first_start_created_the_admin,
    health_ready_and_metrics,
    password_reset_ends_sessions,
);

backend_cases!(metrics_token_decides_who_reads);

async fn login_check_and_logout(app: &TestApp) {
    let session = app.login_new_user("alice@example.com").await;
    assert_eq!(session.len(), 64);

    let (status, body) = app
        .post("/apiglobal/check_session", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"result": true, "message": "Session is valid"}));

    let (status, body) = app
        .post("/apiglobal/loginout", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"result": true, "message": []}));

    let got = app
        .post("/apiglobal/check_session", &[("session", &session)])
        .await;
    assert_fail(&got, 401);
    let got = app
        .post("/apiglobal/loginout", &[("session", &session)])
        .await;
    assert_fail(&got, 401);
}

async fn login_accepts_sloppy_clients(app: &TestApp) {
    app.create_user(app.org_id, "bob@example.com", 0);
    // Email case and surrounding spaces do not matter.
    let s1 = app.login(" Bob@Example.COM ", PASSWORD).await;
    // No content type at all.
    let body = format!("username=bob%40example.com&password={PASSWORD}").into_bytes();
    let (status, v) = app.post_raw("/apiglobal/login", None, body.clone()).await;
    assert_eq!(status, 200, "{v}");
    // A wrong content type.
    let (status, v) = app
        .post_raw("/apiglobal/login", Some("text/plain"), body)
        .await;
    assert_eq!(status, 200, "{v}");
    // A JSON body.
    let json_body =
        serde_json::to_vec(&json!({"username": "bob@example.com", "password": PASSWORD})).unwrap();
    let (status, v) = app
        .post_raw("/apiglobal/login", Some("application/json"), json_body)
        .await;
    assert_eq!(status, 200, "{v}");
    let s2 = v["message"]["session"].as_str().unwrap().to_string();
    assert_ne!(s1, s2, "every login gets its own session");
    // multipart/form-data text parts.
    let form = reqwest::multipart::Form::new()
        .text("username", "bob@example.com")
        .text("password", PASSWORD);
    let res = app
        .client
        .post(app.url("/apiglobal/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, v) = common::read(res).await;
    assert_eq!(status, 200, "{v}");
    // A file part on a call that takes none is refused by name.
    let form = reqwest::multipart::Form::new()
        .text("username", "bob@example.com")
        .part(
            "password",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("pw.txt"),
        );
    let res = app
        .client
        .post(app.url("/apiglobal/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(assert_fail(&common::read(res).await, 400).contains("password"));
    // The session may also come in the query string.
    let res = app
        .client
        .post(app.url(&format!("/apiglobal/check_session?session={s2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

async fn wrong_password_and_unknown_user_are_refused_alike(app: &TestApp) {
    app.create_user(app.org_id, "carol@example.com", 0);
    let wrong = app
        .post(
            "/apiglobal/login",
            &[
                ("username", "carol@example.com"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    let unknown = app
        .post(
            "/apiglobal/login",
            &[
                ("username", "nobody@example.com"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    assert_eq!(assert_fail(&wrong, 401), assert_fail(&unknown, 401));
}

async fn missing_parameters_name_the_parameter(app: &TestApp) {
    let got = app.post("/apiglobal/login", &[("password", "x")]).await;
    assert!(assert_fail(&got, 400).contains("username"));
    let got = app.post("/apiglobal/login", &[("username", "a@b.c")]).await;
    assert!(assert_fail(&got, 400).contains("password"));
    let got = app.post("/apiglobal/check_session", &[]).await;
    assert!(assert_fail(&got, 401).contains("session"));
    let got = app
        .post("/apiglobal/check_session", &[("session", "deadbeef")])
        .await;
    assert_fail(&got, 401);
}

async fn sessions_are_stored_only_as_hashes(app: &TestApp) {
    let token = app.login_new_user("dave@example.com").await;
    let mut c = app.conn();
    let stored: Vec<String> = sessions::table
        .select(sessions::token_hash)
        .load(&mut *c)
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);
    assert_eq!(stored[0], printfarm::services::auth::token_hash(&token));
    let hash: Option<String> = users::table
        .filter(users::email.eq("dave@example.com"))
        .select(users::password_hash)
        .first(&mut *c)
        .unwrap();
    assert!(hash.unwrap().starts_with("$argon2id$"));
}

async fn expired_session_is_refused_and_removed(app: &TestApp) {
    let token = app.login_new_user("erin@example.com").await;
    let past = Utc::now().naive_utc() - Duration::minutes(1);
    let mut c = app.conn();
    diesel::update(sessions::table)
        .set(sessions::expires_at.eq(past))
        .execute(&mut *c)
        .unwrap();
    let got = app
        .post("/apiglobal/check_session", &[("session", &token)])
        .await;
    assert!(assert_fail(&got, 401).to_lowercase().contains("expired"));
    let left: i64 = sessions::table.count().get_result(&mut *c).unwrap();
    assert_eq!(left, 0);
}

async fn use_slides_the_expiry(app: &TestApp) {
    let token = app.login_new_user("frank@example.com").await;
    let now = Utc::now().naive_utc();
    let mut c = app.conn();
    diesel::update(sessions::table)
        .set((
            sessions::last_seen_at.eq(now - Duration::minutes(10)),
            sessions::expires_at.eq(now + Duration::minutes(2)),
        ))
        .execute(&mut *c)
        .unwrap();
    let (status, _) = app
        .post("/apiglobal/check_session", &[("session", &token)])
        .await;
    assert_eq!(status, 200);
    let expires: chrono::NaiveDateTime = sessions::table
        .select(sessions::expires_at)
        .first(&mut *c)
        .unwrap();
    // Default idle time is 24 h: the expiry moved from +2 min to about +24 h.
    assert!(
        expires > now + Duration::hours(23),
        "expiry did not slide: {expires}"
    );
}

async fn throttles_failed_logins_per_account(app: &TestApp) {
    app.create_user(app.org_id, "gina@example.com", 0);
    for _ in 0..5 {
        let got = app
            .post(
                "/apiglobal/login",
                &[
                    ("username", "gina@example.com"),
                    ("password", "wrong-password"),
                ],
            )
            .await;
        assert_fail(&got, 401);
    }
    // Locked now, even with the right password.
    let got = app
        .post(
            "/apiglobal/login",
            &[("username", "GINA@example.com"), ("password", PASSWORD)],
        )
        .await;
    let msg = assert_fail(&got, 429);
    assert!(msg.contains("try again in"), "{msg}");
    // Other accounts from elsewhere are not affected by this account's lock.
    app.login_new_user("harry@example.com").await;
}

async fn throttles_failed_logins_per_address(app: &TestApp) {
    app.create_user(app.org_id, "ivan@example.com", 0);
    // Spread over many accounts so no single account reaches its own limit.
    for i in 0..20 {
        let email = format!("spray{}@example.com", i % 10);
        let got = app
            .post(
                "/apiglobal/login",
                &[("username", &email), ("password", "guess-guess")],
            )
            .await;
        assert_fail(&got, 401);
    }
    let got = app
        .post(
            "/apiglobal/login",
            &[("username", "ivan@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert!(assert_fail(&got, 429).contains("address"));
}

/// 60 wrong passwords for one account sent at once: the check and the recording are one step,
/// so no more passwords are checked (401) than the limit allows; the rest answer 429.
async fn parallel_guesses_cannot_outrun_the_throttle(app: &TestApp) {
    app.create_user(app.org_id, "jules@example.com", 0);
    let guesses = (0..60).map(|i| {
        let (client, url) = (app.client.clone(), app.url("/apiglobal/login"));
        async move {
            let res = client
                .post(url)
                .form(&[
                    ("username", "jules@example.com".to_string()),
                    ("password", format!("guess-{i}")),
                ])
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked + throttled, 60, "{statuses:?}");
    assert_eq!(checked, 5, "passwords checked past the limit: {statuses:?}");
    // The right password is refused while the lock holds, and a right password does not
    // leave an attempt behind: after a successful login the account counts from zero.
    let got = app
        .post(
            "/apiglobal/login",
            &[("username", "jules@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_fail(&got, 429);
    app.create_user(app.org_id, "kim@example.com", 0);
    for _ in 0..6 {
        app.login("kim@example.com", PASSWORD).await;
    }
}

async fn logout_alias_and_trailing_slash(app: &TestApp) {
    let token = app.login_new_user("judy@example.com").await;
    let (status, _) = app
        .post("/apiglobal/check_session/", &[("session", &token)])
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.post("/apiglobal/logout/", &[("session", &token)]).await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": []}))
    );
    assert_fail(
        &app.post("/apiglobal/check_session", &[("session", &token)])
            .await,
        401,
    );
}

async fn router_refusals_answer_the_envelope(app: &TestApp) {
    // Wrong method.
    let res = app
        .client
        .get(app.url("/apiglobal/login"))
        .send()
        .await
        .unwrap();
    let got = common::read(res).await;
    assert!(assert_fail(&got, 405).contains("POST"));
    let res = app
        .client
        .delete(app.url("/apiglobal/get_projects/"))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 405);
    // Unknown routes, inside and outside the API.
    assert_fail(&app.post("/apiglobal/no_such_call", &[]).await, 404);
    let res = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_fail(&common::read(res).await, 404);
    // Oversized body (default limit 1 MiB), with and without a declared length.
    let big = vec![b'a'; 2 * 1024 * 1024];
    assert_fail(
        &app.post_raw(
            "/apiglobal/login",
            Some("application/x-www-form-urlencoded"),
            big,
        )
        .await,
        413,
    );
    let stream = futures_util::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 64 * 1024]))),
    );
    let res = app
        .client
        .post(app.url("/apiglobal/login"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_fail(&common::read(res).await, 413);
    // Malformed bodies.
    let got = app
        .post_raw(
            "/apiglobal/login",
            Some("application/json"),
            b"{\"username\": ".to_vec(),
        )
        .await;
    assert_fail(&got, 400);
    let got = app
        .post_raw(
            "/apiglobal/login",
            Some("application/x-www-form-urlencoded"),
            vec![0xff, 0xfe, b'=', 0xc3],
        )
        .await;
    assert_fail(&got, 400);
}

async fn every_documented_call_is_routed(app: &TestApp) {
    use printfarm::http::apiglobal::CALLS;
    let names = CALLS.iter().map(|c| c.name);
    for name in names {
        // A bogus session: every call answers the envelope with a real refusal.
        let (status, body) = app
            .post(
                &format!("/apiglobal/{name}"),
                &[("session", "bogus"), ("token", "bogus")],
            )
            .await;
        // 404 only as a refusal of a thing (bad token), never as a missing route.
        let unrouted = status == 404
            && body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Unknown route"));
        assert!(
            !unrouted && ![405, 500, 501].contains(&status),
            "{name}: {status} {body}"
        );
        assert!(
            body["result"].is_boolean() && body.get("message").is_some(),
            "{name}: {body}"
        );
    }
}

async fn first_start_created_the_admin(app: &TestApp) {
    let mut c = app.conn();
    let admins: Vec<(String, i32, i64)> = users::table
        .select((users::email, users::access_role, users::organization_id))
        .load(&mut *c)
        .unwrap();
    assert_eq!(
        admins,
        vec![("bootstrap-admin@printfarm.test".to_string(), 1, app.org_id)]
    );
    // A second start on the same database creates nobody new.
    let created = printfarm::services::bootstrap::ensure_first_admin(
        &mut c,
        &app.state.hasher,
        "Other",
        "x@y.z",
    )
    .unwrap();
    assert!(created.is_none());
    let n: i64 = printfarm::db::schema::printer_types::table
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert!(n >= 25, "printer-type catalogue loaded: {n}");
}

async fn health_ready_and_metrics(app: &TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (status, body) =
        common::read(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body["message"]["database"].is_string());
    // The optional parts: the slicer (as found on this machine), the store, Google sign-in
    // (not configured here).
    let parts = &body["message"]["parts"];
    let slicer = common::slicer_command();
    assert_eq!(parts["slicer"]["command"], slicer, "{body}");
    assert_eq!(
        parts["slicer"]["present"],
        printfarm::slicer::installed(slicer),
        "{body}"
    );
    assert!(parts["slicer"]["install"]
        .as_str()
        .unwrap()
        .contains("apt-get install prusa-slicer"));
    assert_eq!(parts["storage"], "local", "{body}");
    assert_eq!(parts["google_sign_in"], false, "{body}");
    app.post("/apiglobal/check_session", &[("session", "nope")])
        .await;
    let text = app.metrics_text().await;
    assert!(
        text.contains("printfarm_http_requests_total{method=\"POST\",route=\"/apiglobal/check_session\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.contains("printfarm_http_request_duration_seconds_bucket"));
}

async fn password_reset_ends_sessions(app: &TestApp) {
    let token = app.login_new_user("kim@example.com").await;
    let mut c = app.conn();
    let new_pw = printfarm::services::bootstrap::reset_password(
        &mut c,
        &app.state.hasher,
        "KIM@example.com",
        None,
    )
    .unwrap();
    assert_fail(
        &app.post("/apiglobal/check_session", &[("session", &token)])
            .await,
        401,
    );
    let got = app
        .post(
            "/apiglobal/login",
            &[("username", "kim@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_fail(&got, 401);
    app.login("kim@example.com", &new_pw).await;
    let _: Value = json!(null);
}

/// Legacy scripts send `?session=` in the URL, and sign-in, set-password and agent download
/// links carry tokens in their path: none of them may reach the access log.
async fn access_log_hides_credentials(app: &TestApp) {
    common::access_log(); // start capturing
    let session = app.login_new_user("lena@example.com").await;
    let res = app
        .client
        .post(app.url(&format!(
            "/apiglobal/check_session?session={session}&probe=log-check-1"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    for path in [
        "/noauth/set_password/SECRET-SET-PASSWORD-TOKEN",
        "/noauth/apiglobal_login_with_token/SECRET-LOGIN-TOKEN",
        "/apiprinter/v1/download/1/SECRET-DOWNLOAD-TOKEN",
        "/camera/SECRET-CAMERA-TOKEN/1.jpg",
    ] {
        app.client.get(app.url(path)).send().await.unwrap();
    }
    // The line is written after the answer is sent; give the server a moment.
    let mut log = String::new();
    for _ in 0..50 {
        log = common::access_log();
        if log.contains("/camera/[redacted]/1.jpg") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        log.contains("/apiglobal/check_session?session=[redacted]&probe=log-check-1"),
        "{log}"
    );
    assert!(log.contains("/noauth/set_password/[redacted]"), "{log}");
    assert!(
        log.contains("/apiprinter/v1/download/1/[redacted]"),
        "{log}"
    );
    assert!(!log.contains(&session), "session token in the access log");
    assert!(
        !log.contains("SECRET-"),
        "a path token in the access log: {log}"
    );
}

async fn metrics_only_for_local_direct_readers(app: &TestApp) {
    let get = |header: Option<(&'static str, &'static str)>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 200);
    // Through a reverse proxy on the same host the page would be public: refused.
    assert_eq!(get(Some(("X-Forwarded-For", "203.0.113.9"))).await, 403);
    assert_eq!(get(Some(("Forwarded", "for=203.0.113.9"))).await, 403);
    assert_eq!(get(Some(("X-Real-IP", "203.0.113.9"))).await, 403);
}

async fn metrics_token_decides_who_reads(db: common::Db) {
    let Some(app) =
        TestApp::start(db, &[("PRINTFARM_METRICS__TOKEN", "scrape-me-0123456789")]).await
    else {
        return;
    };
    let get = |auth: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("Bearer wrong")).await, 401);
    assert_eq!(get(Some("Bearer scrape-me-012345678X")).await, 401);
    assert_eq!(get(Some("Bearer scrape-me-0123456789")).await, 200);
    app.stop().await;
}

/// 300 made-up HTTP methods used to make 300 label sets.
async fn made_up_methods_share_one_metrics_label(app: &TestApp) {
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        app.client
            .request(method, app.url("/apiglobal/login"))
            .send()
            .await
            .unwrap();
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("MADEUP"), "raw methods became labels");
    assert!(
        text.contains(
            "printfarm_http_requests_total{method=\"other\",route=\"/apiglobal/login\",status=\"405\"} 300"
        ),
        "{text}"
    );
}

/// The session is checked in the same database hop as the call's work, yet a bad session still
/// answers 401 ahead of a parameter the call itself refuses (before its work) or cannot decode.
async fn a_bad_session_answers_401_before_bad_parameters(app: &TestApp) {
    let session = app.login_new_user("order@sessions.test").await;
    let cases: [&[(&str, &str)]; 3] = [
        &[("printer_id", "1"), ("limit", "0")],
        &[("printer_id", "1"), ("offset", "-1")],
        &[("printer_id", "not-a-number")],
    ];
    for params in cases {
        let mut bad = vec![("session", "no-such-session")];
        bad.extend_from_slice(params);
        let (status, body) = app.post("/apiglobal/get_printer_jobs", &bad).await;
        assert_eq!(status, 401, "{params:?}: {body}");
        let mut good = vec![("session", session.as_str())];
        good.extend_from_slice(params);
        let (status, body) = app.post("/apiglobal/get_printer_jobs", &good).await;
        assert_eq!(status, 400, "{params:?}: {body}");
    }
    let (status, body) = app
        .post(
            "/apiglobal/get_farm_queue",
            &[("session", "no-such-session"), ("limit", "0")],
        )
        .await;
    assert_eq!(status, 401, "{body}");
}
