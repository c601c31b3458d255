//! Google sign-in and GDPR registration (calls 24, 25), against ID tokens signed by the test
//! and a JWKS served on 127.0.0.1; and the slicer sign-in tokens. Both backends.

use crate::common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use common::{assert_fail, Db, TestApp, PASSWORD};
use diesel::prelude::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use printfarm::db::schema::{sessions, user_tokens, users};
use serde_json::{json, Value};

pub(crate) const CLIENT_ID: &str = "printfarm-test.apps.googleusercontent.com";
const KEY: &str = include_str!("../fixtures/google_test_key.pem");
const OTHER_KEY: &str = include_str!("../fixtures/google_other_key.pem");
const KID: &str = "test-key-1";
/// Open sign-up is off by default; the registration tests turn it on.
pub(crate) const SIGNUP: &[(&str, &str)] = &[("PRINTFARM_GOOGLE__ALLOW_SIGNUP", "true")];

backend_cases!(
    known_user_signs_in,
    new_user_registers_after_consent,
    registration_can_be_cancelled,
    bad_tokens_are_refused,
    signup_can_be_disabled_and_google_turned_off,
    signup_is_off_by_default,
    open_signup_joins_the_configured_organization,
    other_organization_cannot_capture_a_google_sign_in,
);
mod login_tokens {
    use super::*;
    backend_tests!(slicer_login_token_flow, slicer_login_token_refusals);
}

pub(crate) struct Jwks {
    url: String,
    hits: Arc<AtomicUsize>,
    pub(crate) handle: actix_web::dev::ServerHandle,
}

pub(crate) async fn serve_jwks() -> Jwks {
    let mut jwk = Jwk::from_encoding_key(
        &EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap(),
        Algorithm::RS256,
    )
    .unwrap();
    jwk.common.key_id = Some(KID.into());
    let set = JwkSet { keys: vec![jwk] };
    let body = serde_json::to_string(&set).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let body = body.clone();
        let counter = counter.clone();
        App::new().route(
            "/certs",
            web::get().to(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .insert_header(("Cache-Control", "public, max-age=19000"))
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Jwks { url, hits, handle }
}

pub(crate) async fn start(db: Db, jwks: &Jwks, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut overrides = vec![
        ("PRINTFARM_GOOGLE__CLIENT_IDS", CLIENT_ID),
        ("PRINTFARM_GOOGLE__JWKS_URL", jwks.url.as_str()),
    ];
    overrides.extend_from_slice(extra);
    TestApp::start(db, &overrides).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn claims(email: &str, sub: &str) -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "sub": sub,
        "email": email,
        "email_verified": true,
        "given_name": "Grace",
        "family_name": "Hopper",
        "iat": now(),
        "exp": now() + 600,
    })
}

pub(crate) fn sign(claims: &Value) -> String {
    sign_with(claims, KEY, Some(KID))
}

fn sign_with(claims: &Value, pem: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn google(app: &TestApp, token: &str) -> (u16, Value) {
    app.post("/apiglobal/google_login", &[("token", token)])
        .await
}

async fn known_user_signs_in(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, &[]).await else {
        return;
    };
    let uid = app.create_user(app.org_id, "grace@example.com", 0);

    let (status, body) = google(&app, &sign(&claims("Grace@Example.com", "g-123"))).await;
    assert_eq!(status, 200, "{body}");
    let session = body["message"]["session"].as_str().unwrap().to_string();
    assert_eq!(body["message"]["email"], "grace@example.com");
    assert_eq!(body["message"].as_object().unwrap().len(), 2);
    let (status, _) = app
        .post("/apiglobal/check_session", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    {
        let mut c = app.conn();
        let sub: Option<String> = users::table
            .find(uid)
            .select(users::google_sub)
            .first(&mut *c)
            .unwrap();
        assert_eq!(sub.as_deref(), Some("g-123"));
    }
    // The other issuer spelling works too, and the keys were fetched once.
    let mut c2 = claims("grace@example.com", "g-123");
    c2["iss"] = json!("accounts.google.com");
    assert_eq!(google(&app, &sign(&c2)).await.0, 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "JWKS is cached");
    // The same email with another Google subject is refused.
    assert_fail(
        &google(&app, &sign(&claims("grace@example.com", "g-999"))).await,
        409,
    );

    app.stop().await;
    jwks.handle.stop(false).await;
}

async fn new_user_registers_after_consent(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, SIGNUP).await else {
        return;
    };
    let token = sign(&claims("newbie@example.com", "g-new"));
    let (status, body) = google(&app, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"]["gdpr_needed"], json!(true));
    let pending = body["message"]["session"].as_str().unwrap().to_string();

    // The pending session can do nothing else.
    for call in [
        "check_session",
        "get_workgroups_simple_list",
        "get_printer_types",
        "update_user_settings",
    ] {
        let got = app
            .post(&format!("/apiglobal/{call}"), &[("session", &pending)])
            .await;
        assert!(assert_fail(&got, 403).contains("GDPR"), "{call}");
    }
    // gdpr1 is required.
    assert_fail(
        &app.post("/apiglobal/gdpr_registration", &[("session", &pending)])
            .await,
        400,
    );
    assert_fail(
        &app.post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("gdpr1", "off")],
        )
        .await,
        400,
    );
    // A normal session is not a pending registration.
    let normal = app.login_new_user("someone@example.com").await;
    assert_fail(
        &app.post(
            "/apiglobal/gdpr_registration",
            &[("session", &normal), ("gdpr1", "on")],
        )
        .await,
        400,
    );

    let (status, body) = app
        .post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("gdpr1", "on")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        json!({"session": pending, "email": "newbie@example.com"})
    );
    assert_eq!(
        app.post("/apiglobal/check_session", &[("session", &pending)])
            .await
            .0,
        200
    );
    {
        let mut c = app.conn();
        let row: (i64, i32, i32, String, Option<String>) = users::table
            .filter(users::email.eq("newbie@example.com"))
            .select((
                users::organization_id,
                users::access_role,
                users::gdpr,
                users::firstname,
                users::google_sub,
            ))
            .first(&mut *c)
            .unwrap();
        assert_eq!(
            row,
            (app.org_id, 0, 1, "Grace".into(), Some("g-new".into()))
        );
    }
    // Registration cannot be replayed; the next Google sign-in is a plain session.
    assert_fail(
        &app.post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("gdpr1", "on")],
        )
        .await,
        400,
    );
    let (_, body) = google(&app, &token).await;
    assert_eq!(body["message"]["email"], "newbie@example.com");
    app.stop().await;
}

async fn registration_can_be_cancelled(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, SIGNUP).await else {
        return;
    };
    let (_, body) = google(&app, &sign(&claims("shy@example.com", "g-shy"))).await;
    let pending = body["message"]["session"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("cancel", "1")],
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": []}))
    );
    assert_fail(
        &app.post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("gdpr1", "on")],
        )
        .await,
        401,
    );
    let mut c = app.conn();
    let n: i64 = users::table
        .filter(users::email.eq("shy@example.com"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = sessions::table
        .filter(sessions::gdpr_pending.is_not_null())
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

async fn bad_tokens_are_refused(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, SIGNUP).await else {
        return;
    };
    app.create_user(app.org_id, "grace@example.com", 0);
    let good = claims("grace@example.com", "g-1");

    let mut expired = good.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else.apps.googleusercontent.com");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    let mut unverified = good.clone();
    unverified["email_verified"] = json!(false);
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");

    let hs256 = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": KID})),
        b64(&good)
    );
    let good_token = sign(&good);
    let (head, rest) = good_token.split_once('.').unwrap();
    let (_, sig) = rest.rsplit_once('.').unwrap();
    let mut tampered_claims = good.clone();
    tampered_claims["email"] = json!("admin@example.com");
    let tampered = format!("{head}.{}.{sig}", b64(&tampered_claims));

    let cases = [
        ("expired", sign(&expired)),
        ("wrong audience", sign(&wrong_aud)),
        ("wrong issuer", sign(&wrong_iss)),
        ("unverified email", sign(&unverified)),
        ("no subject", sign(&no_sub)),
        (
            "other key, same kid",
            sign_with(&good, OTHER_KEY, Some(KID)),
        ),
        ("no kid", sign_with(&good, KEY, None)),
        ("HS256", hs256),
        ("unsigned", unsigned),
        ("tampered", tampered),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in &cases {
        let got = google(&app, token).await;
        assert_eq!(got.0, 401, "{what}: {}", got.1);
        assert_fail(&got, 401);
    }
    // An unknown key id triggers at most one refetch within the minute.
    let before = jwks.hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_fail(
            &google(&app, &sign_with(&good, KEY, Some("unknown-kid"))).await,
            401,
        );
    }
    assert!(jwks.hits.load(Ordering::SeqCst) - before <= 1);
    assert_fail(&app.post("/apiglobal/google_login", &[]).await, 400);
    // Nobody got a session.
    let mut c = app.conn();
    let n: i64 = sessions::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 0);
    // And the good token still works.
    assert_eq!(google(&app, &good_token).await.0, 200);
    app.stop().await;
}

async fn signup_can_be_disabled_and_google_turned_off(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, &[("PRINTFARM_GOOGLE__ALLOW_SIGNUP", "false")]).await else {
        return;
    };
    assert_fail(
        &google(&app, &sign(&claims("stranger@example.com", "g-x"))).await,
        403,
    );
    app.stop().await;
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    assert!(assert_fail(
        &google(&app, &sign(&claims("a@example.com", "g-y"))).await,
        403
    )
    .contains("not configured"));
    app.stop().await;
}

/// Issue #13 item 10: with the defaults an unknown Google account is refused, and no
/// pending registration or account is left behind.
async fn signup_is_off_by_default(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, &[]).await else {
        return;
    };
    let msg = assert_fail(
        &google(&app, &sign(&claims("stranger@example.com", "g-s"))).await,
        403,
    );
    assert!(msg.contains("no account"), "{msg}");
    let mut c = app.conn();
    let n: i64 = sessions::table.count().get_result(&mut *c).unwrap();
    assert_eq!(n, 0, "no pending registration");
    let n: i64 = users::table
        .filter(users::email.eq("stranger@example.com"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 0);
    drop(c);
    app.stop().await;
    jwks.handle.stop(false).await;
}

/// With open sign-up on, a new Google account joins `signup_organization_id`, not the first
/// organization.
async fn open_signup_joins_the_configured_organization(db: Db) {
    let jwks = serve_jwks().await;
    // Every test database starts with one organization; the second one gets id 2.
    let Some(app) = start(
        db,
        &jwks,
        &[
            ("PRINTFARM_GOOGLE__ALLOW_SIGNUP", "true"),
            ("PRINTFARM_GOOGLE__SIGNUP_ORGANIZATION_ID", "2"),
        ],
    )
    .await
    else {
        return;
    };
    let lab = app.create_org("Lab");
    assert_eq!((app.org_id, lab), (1, 2));
    let (status, body) = google(&app, &sign(&claims("new@example.com", "g-new"))).await;
    assert_eq!(status, 200, "{body}");
    let pending = body["message"]["session"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            "/apiglobal/gdpr_registration",
            &[("session", &pending), ("gdpr1", "on")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut c = app.conn();
    let org: i64 = users::table
        .filter(users::email.eq("new@example.com"))
        .select(users::organization_id)
        .first(&mut *c)
        .unwrap();
    assert_eq!(org, lab);
    drop(c);
    app.stop().await;
    jwks.handle.stop(false).await;
}

/// Issue #13 item 10: an admin of another organization pre-creates a password-less account
/// with the victim's email; the victim's Google sign-in must not land in it. The victim's
/// own organization (the one Google sign-in serves) still links its invited accounts.
async fn other_organization_cannot_capture_a_google_sign_in(db: Db) {
    let jwks = serve_jwks().await;
    let Some(app) = start(db, &jwks, SIGNUP).await else {
        return;
    };
    let evil = app.create_org("Evil Corp");
    let (_, admin) = app.user_with_session(evil, "boss@evil.example", 1).await;
    let (status, body) = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &admin),
                ("email", "victim@example.com"),
                ("gdpr", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let msg = assert_fail(
        &google(&app, &sign(&claims("victim@example.com", "g-victim"))).await,
        403,
    );
    assert!(msg.contains("password"), "{msg}");
    let mut c = app.conn();
    let (org, sub): (i64, Option<String>) = users::table
        .filter(users::email.eq("victim@example.com"))
        .select((users::organization_id, users::google_sub))
        .first(&mut *c)
        .unwrap();
    assert_eq!(
        (org, sub),
        (evil, None),
        "the attacker's account stays unlinked"
    );
    let n: i64 = sessions::table
        .inner_join(users::table)
        .filter(users::email.eq("victim@example.com"))
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 0, "no session in the attacker's organization");
    drop(c);

    // An account invited by the sign-in organization's admin is linked as documented.
    let (_, own_admin) = app
        .user_with_session(app.org_id, "head@example.com", 1)
        .await;
    let (status, body) = app
        .post(
            "/apiglobal/create_organization_user",
            &[
                ("session", &own_admin),
                ("email", "invited@example.com"),
                ("gdpr", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = google(&app, &sign(&claims("invited@example.com", "g-inv"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["email"], "invited@example.com");
    app.stop().await;
    jwks.handle.stop(false).await;
}

async fn poll(app: &TestApp, token: &str) -> (u16, Value) {
    app.post("/apiglobal/login_with_token", &[("token", token)])
        .await
}

async fn confirm(app: &TestApp, token: &str, form: &[(&str, &str)]) -> (u16, String) {
    let res = app
        .client
        .post(app.url(&format!("/noauth/apiglobal_login_with_token/{token}")))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn slicer_login_token_flow(app: &TestApp) {
    app.create_user(app.org_id, "maker@example.com", 0);
    let (status, body) = app.post("/apiglobal/generate_login_token", &[]).await;
    assert_eq!(status, 200);
    // The token is the message itself (slicers read `message` as a string).
    let token = body["message"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let url = app.url(&format!("/noauth/apiglobal_login_with_token/{token}"));

    let page = app.client.get(url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let (status, html) = confirm(
        app,
        &token,
        &[
            ("username", "maker@example.com"),
            ("password", "wrong-password"),
        ],
    )
    .await;
    assert_eq!(status, 401, "{html}");
    // The poll is held until the user confirms, then answers the session.
    let confirmed_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        confirm(
            app,
            &token,
            &[("username", "maker@example.com"), ("password", PASSWORD)],
        )
        .await
    };
    let ((status, body), (confirmed, _)) = tokio::join!(poll(app, &token), confirmed_later);
    assert_eq!(confirmed, 200);
    assert_eq!(status, 200);
    assert_eq!(body["message"]["email"], "maker@example.com");
    let session = body["message"]["session"].as_str().unwrap();
    assert_eq!(
        app.post("/apiglobal/check_session", &[("session", session)])
            .await
            .0,
        200
    );
    // Used once only.
    assert_fail(&poll(app, &token).await, 410);
    assert_eq!(
        confirm(
            app,
            &token,
            &[("username", "maker@example.com"), ("password", PASSWORD)]
        )
        .await
        .0,
        410
    );

    // A signed-in client may confirm with its session instead of a password.
    let (_, body) = app.post("/apiglobal/generate_login_token", &[]).await;
    let token2 = body["message"].as_str().unwrap().to_string();
    let (status, _) = confirm(app, &token2, &[("session", session)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        poll(app, &token2).await.1["message"]["email"],
        "maker@example.com"
    );
}

async fn slicer_login_token_refusals(app: &TestApp) {
    app.create_user(app.org_id, "maker@example.com", 0);
    assert_fail(&poll(app, &"ab".repeat(32)).await, 404);
    assert_fail(&app.post("/apiglobal/login_with_token", &[]).await, 400);
    let (_, body) = app.post("/apiglobal/generate_login_token", &[]).await;
    let token = body["message"].as_str().unwrap().to_string();
    {
        let mut c = app.conn();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
        diesel::update(user_tokens::table)
            .set(user_tokens::expires_at.eq(past))
            .execute(&mut *c)
            .unwrap();
    }
    assert_fail(&poll(app, &token).await, 410);
    assert_eq!(
        confirm(
            app,
            &token,
            &[("username", "maker@example.com"), ("password", PASSWORD)]
        )
        .await
        .0,
        410
    );
    let page = app
        .client
        .get(app.url(&format!("/noauth/apiglobal_login_with_token/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 410);
    assert_eq!(confirm(app, "nonsense", &[("session", "x")]).await.0, 404);
}
