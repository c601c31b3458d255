//! The OpenAPI document and the offline docs page, on both backends. (`tests/schemathesis/run.sh`,
//! run by `.ci/run`, fuzzes a running server against this document.)

use crate::common;

use common::{assert_fail, TestApp};
use printfarm::http::apiglobal::CALLS;
use serde_json::Value;

backend_tests!(
    document_lists_every_call,
    documented_shapes_match_the_wire,
    docs_page_works_offline,
    nul_characters_are_refused,
);

/// Every route the server answers, in matching order: a route added, removed or moved shows up
/// as a snapshot diff (`INSTA_UPDATE=always cargo test --test integration openapi::`).
#[test]
fn route_list_is_as_recorded() {
    insta::assert_snapshot!("routes", printfarm::http::route_list().join("\n"));
}

/// The whole OpenAPI document: a changed parameter, schema or description is a visible diff.
#[test]
fn openapi_document_is_as_recorded() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(printfarm::http::openapi::ApiDoc::openapi()).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}

async fn openapi(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The schema of a JSON answer, with `$ref`s to components resolved (one level at a time).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

async fn document_lists_every_call(app: &TestApp) {
    let doc = openapi(app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let names = CALLS.iter().map(|c| c.name);
    for name in names {
        let op = &paths[&format!("/apiglobal/{name}")]["post"];
        assert!(op.is_object(), "{name} is not documented");
        for status in ["200", "400", "401", "404", "500"] {
            assert!(
                op["responses"][status].is_object(),
                "{name} does not document {status}"
            );
        }
        // Every call but the one that takes none documents its parameters as a form.
        if name != "generate_login_token" {
            let content = &op["requestBody"]["content"];
            assert!(
                content["application/x-www-form-urlencoded"].is_object()
                    || content["multipart/form-data"].is_object(),
                "{name}: {content}"
            );
        }
    }
    for (method, path) in [
        ("get", "/v1/user"),
        ("get", "/v1/user/uploads"),
        ("post", "/v1/printability/{file_id}"),
        ("get", "/v1/file/upload-id"),
        ("post", "/v1/file/public/{upload_id}"),
        ("post", "/v1/file"),
        ("get", "/v1/file/{file_id}"),
        ("delete", "/v1/file/{file_id}"),
        ("post", "/v1/quote/{file_id}"),
        ("post", "/v1/file/quote/{file_id}"),
        ("get", "/v1/quote/{quote_id}"),
        ("delete", "/v1/quote/{quote_id}"),
        ("get", "/v1/quote/gcode/{quote_id}"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let public = path.starts_with("/v1/file/public");
        assert_eq!(
            op["security"].is_array(),
            !public,
            "{method} {path}: security {}",
            op["security"]
        );
        assert!(op["responses"]["422"].is_object(), "{method} {path}");
    }
    assert_eq!(
        paths["/v1/file/quote/{file_id}"]["post"]["deprecated"],
        Value::Bool(true)
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_token"]["scheme"],
        "bearer"
    );
}

/// DESIGN §3's string-vs-number choices are what the document says, and what the server sends.
async fn documented_shapes_match_the_wire(app: &TestApp) {
    let doc = openapi(app).await;
    let schemas = &doc["components"]["schemas"];
    let job = &schemas["JobInfo"]["properties"];
    for key in [
        "id",
        "status_id",
        "printer_id",
        "file_id",
        "weight",
        "extruders",
    ] {
        assert_eq!(job[key]["type"], "string", "JobInfo.{key}");
    }
    let printer = &schemas["UserPrinterItem"]["properties"];
    assert_eq!(printer["id"]["type"], "integer");
    assert_eq!(printer["printer_id"]["type"], "integer");
    assert_eq!(
        schemas["Failure"]["properties"]["message"]["type"],
        "string"
    );
    let cursor = &schemas["PrinterJobsAnswer"]["properties"]["time"];
    assert_eq!(cursor["type"], "integer");

    // The answers of a few calls carry exactly the documented keys.
    let session = app.login_new_user("doc@example.com").await;
    let (status, body) = app
        .post("/apiglobal/get_projects", &[("session", &session)])
        .await;
    assert_eq!(status, 200);
    assert!(body["message"].as_array().unwrap().is_empty());
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &session), ("name", "docs")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ok = &doc["paths"]["/apiglobal/create_api_token"]["post"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let envelope = resolve(&doc, ok);
    let message = resolve(&doc, &envelope["properties"]["message"]);
    let documented: Vec<&String> = message["properties"].as_object().unwrap().keys().collect();
    let sent: Vec<&String> = body["message"].as_object().unwrap().keys().collect();
    assert_eq!(documented, sent);
    for key in message["required"].as_array().unwrap() {
        assert!(body["message"].get(key.as_str().unwrap()).is_some());
    }
}

async fn docs_page_works_offline(app: &TestApp) {
    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = res.text().await.unwrap();
    // Everything the page loads comes from this server, not a CDN.
    assert!(!page.contains("https://"), "{page}");
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(page.contains(asset), "{asset} not in the page");
        let res = app
            .client
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        let body = res.text().await.unwrap();
        assert!(body.len() > 100, "{asset}");
        if asset == "swagger-initializer.js" {
            assert!(body.contains("\"url\": \"/openapi.json\""), "{body}");
            // No validator badge: it would call swagger.io.
            assert!(body.contains("\"validatorUrl\": \"none\""), "{body}");
        }
    }
}

/// Postgres text cannot hold NUL; such input answers 400 on both backends (found by
/// schemathesis: it was a 500 on Postgres).
async fn nul_characters_are_refused(app: &TestApp) {
    let session = app.login_new_user("nul@example.com").await;
    let got = app
        .post(
            "/apiglobal/get_printer_types",
            &[("session", &session), ("description", "a\0b")],
        )
        .await;
    assert!(assert_fail(&got, 400).contains("NUL"));
    let got = app
        .post_raw(
            &format!("/apiglobal/check_session?session={session}&x%00=1"),
            None,
            Vec::new(),
        )
        .await;
    assert!(assert_fail(&got, 400).contains("NUL"));
    // Without NUL the same call works.
    let (status, _) = app
        .post(
            "/apiglobal/get_printer_types",
            &[("session", &session), ("description", "ab")],
        )
        .await;
    assert_eq!(status, 200);
}
