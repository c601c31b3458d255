//! A Cloud Slicer client, following the docs' quick-start and its OpenAPI document:
//! `pages/quick-start.mdx`, `pages/introduction/core-concepts.mdx` and `apis/openapi.json` in
//! Cloud-Slicer/cloud-slicer-docs at commit cf2b9421805133bded9ebd45854ffc1c2bbcfd6e (the
//! OpenAPI file as last changed by feaabd3bbc40f7d49d134167e2f0f86b21e948be).
//!
//! The quick-start: make an API token on the dashboard's Tokens tab (a name, the expiry in
//! days or blank), send it as `Authorization: Bearer <token>`, and make the first call,
//! `POST /v1/file` with the model in the multipart part `file` (what the API playground sends);
//! the answer's `file_id` is the key for printability, quotes and file management. The core
//! concepts add the browser flow: `GET /v1/file/upload-id`, then `POST /v1/file/public/
//! {upload_id}` from the browser with no token.
//!
//! Every answer is checked against Cloud Slicer's own response schemas, kept below as copied
//! shape definitions (types, required keys, nesting; titles and descriptions left out), so
//! a client generated from their document reads every answer printfarm gives.

use std::collections::BTreeSet;

use crate::common::{Db, TestApp};
use serde_json::{json, Value};

crate::backend_cases!(cloud_slicer_quick_start_and_contract);

/// `components.schemas` of Cloud Slicer's `apis/openapi.json` (commit above): the response
/// shapes, copied.
const SCHEMAS: &str = r##"{
    "PublicAccountInfoResponse": {"properties": {"user_id": {"type": "string"}, "email": {"type": "string"}, "user_name": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "created_at": {"type": "string"}, "data_usage": {"$ref": "#/components/schemas/DataUsageResponse"}}, "type": "object", "required": ["user_id", "email", "created_at", "data_usage"]},
    "DataUsageResponse": {"properties": {"quotes_used": {"type": "integer"}, "quotes_limit": {"type": "integer"}, "storage_used": {"type": "number"}, "storage_limit": {"type": "number"}, "files": {"type": "integer"}, "days_till_reset": {"type": "integer"}, "reset_date": {"type": "string"}, "last_updated": {"type": "string"}}, "type": "object", "required": ["quotes_used", "quotes_limit", "storage_used", "storage_limit", "files", "days_till_reset", "reset_date", "last_updated"]},
    "UploadRecordResponse": {"properties": {"user_id": {"type": "string"}, "file_id": {"type": "string"}, "file_path": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "file_name": {"type": "string"}, "file_size": {"type": "number"}}, "type": "object", "required": ["user_id", "file_id", "file_path", "status", "timestamp", "file_name", "file_size"]},
    "PrintabilityResponse": {"properties": {"user_id": {"type": "string"}, "file_path": {"type": "string"}, "fits_printer": {"type": "boolean"}, "model_dimensions": {"$ref": "#/components/schemas/XYZDimensions"}, "printer_dimensions": {"$ref": "#/components/schemas/XYZDimensions"}}, "type": "object", "required": ["user_id", "file_path", "fits_printer", "model_dimensions", "printer_dimensions"]},
    "XYZDimensions": {"properties": {"x": {"type": "number"}, "y": {"type": "number"}, "z": {"type": "number"}}, "type": "object", "required": ["x", "y", "z"]},
    "FileUploadLink": {"properties": {"user_id": {"type": "string"}, "upload_id": {"type": "string"}, "file_id": {"type": "string"}, "timestamp": {"type": "string"}}, "type": "object", "required": ["user_id", "upload_id", "file_id", "timestamp"]},
    "FileUploadResponse": {"properties": {"user_id": {"type": "string"}, "file_id": {"type": "string"}, "file_path": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "file_name": {"type": "string"}, "file_size": {"type": "number"}}, "type": "object", "required": ["user_id", "file_id", "file_path", "status", "timestamp", "file_name", "file_size"]},
    "DeleteFileResponse": {"properties": {"user_id": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "file_id": {"type": "string"}, "removed_file_path": {"type": "string"}}, "type": "object", "required": ["user_id", "status", "timestamp", "file_id", "removed_file_path"]},
    "QuoteResponse": {"properties": {"quote_id": {"type": "string"}, "user_id": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "quote_duration": {"type": "number"}, "file_path": {"type": "string"}, "gcode_path": {"type": "string"}, "gcode_name": {"type": "string"}, "gcode_file_size": {"type": "number"}, "estimated_time": {"type": "string"}, "estimated_time_seconds": {"type": "integer"}, "filament_weight": {"type": "number"}, "filament_cost": {"type": "number"}, "total_price": {"type": "number"}}, "type": "object", "required": ["quote_id", "user_id", "status", "timestamp", "quote_duration", "file_path", "gcode_path", "gcode_name", "gcode_file_size", "estimated_time", "estimated_time_seconds", "filament_weight", "filament_cost", "total_price"]},
    "QuoteDetailsResponse": {"properties": {"quote_id": {"type": "string"}, "user_id": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "quote_duration": {"type": "number"}, "file_path": {"type": "string"}, "gcode_path": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "gcode_name": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "gcode_file_size": {"type": "number"}, "estimated_time": {"type": "string"}, "estimated_time_seconds": {"type": "integer"}, "filament_weight": {"type": "number"}, "filament_cost": {"type": "number"}, "total_price": {"type": "number"}, "quote_config": {"additionalProperties": true, "type": "object"}, "printer_config": {"additionalProperties": true, "type": "object"}}, "type": "object", "required": ["quote_id", "user_id", "status", "timestamp", "quote_duration", "file_path", "gcode_path", "gcode_name", "gcode_file_size", "estimated_time", "estimated_time_seconds", "filament_weight", "filament_cost", "total_price", "quote_config", "printer_config"]},
    "DeleteQuoteResponse": {"properties": {"user_id": {"type": "string"}, "quote_id": {"type": "string"}, "status": {"type": "string"}, "timestamp": {"type": "string"}, "removed_gcode_path": {"type": "string"}}, "type": "object", "required": ["user_id", "quote_id", "status", "timestamp", "removed_gcode_path"]},
    "HTTPValidationError": {"properties": {"detail": {"items": {"$ref": "#/components/schemas/ValidationError"}, "type": "array"}}, "type": "object"},
    "ValidationError": {"properties": {"loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array"}, "msg": {"type": "string"}, "type": {"type": "string"}}, "type": "object", "required": ["loc", "msg", "type"]}
}"##;

/// Each operation of their document with its answers: (method, path, status, schema name;
/// `[Name]` a list of them; `binary` an answer their document gives no JSON schema).
const OPERATIONS: [(&str, &str, u16, &str); 16] = [
    ("GET", "/v1/user", 200, "PublicAccountInfoResponse"),
    ("GET", "/v1/user/uploads", 200, "[UploadRecordResponse]"),
    (
        "POST",
        "/v1/printability/{file_id}",
        200,
        "PrintabilityResponse",
    ),
    (
        "POST",
        "/v1/printability/{file_id}",
        422,
        "HTTPValidationError",
    ),
    ("GET", "/v1/file/upload-id", 200, "FileUploadLink"),
    (
        "POST",
        "/v1/file/public/{upload_id}",
        200,
        "FileUploadResponse",
    ),
    (
        "POST",
        "/v1/file/public/{upload_id}",
        422,
        "HTTPValidationError",
    ),
    ("POST", "/v1/file", 200, "FileUploadResponse"),
    ("POST", "/v1/file", 422, "HTTPValidationError"),
    ("DELETE", "/v1/file/{file_id}", 200, "DeleteFileResponse"),
    ("POST", "/v1/file/quote/{file_id}", 200, "QuoteResponse"),
    ("POST", "/v1/quote/{file_id}", 200, "QuoteResponse"),
    ("POST", "/v1/quote/{file_id}", 422, "HTTPValidationError"),
    ("GET", "/v1/quote/{quote_id}", 200, "QuoteDetailsResponse"),
    ("DELETE", "/v1/quote/{quote_id}", 200, "DeleteQuoteResponse"),
    // Binary answers (no JSON schema in their document): checked for content below.
    ("GET", "/v1/quote/gcode/{quote_id}", 200, "binary"),
];

/// How `body` breaks the named schema (`[Name]`: a list of them); empty when it fits.
fn violations(schemas: &Value, name: &str, body: &Value) -> Vec<String> {
    let mut schema = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(item) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}})
        }
        None => json!({"$ref": format!("#/components/schemas/{name}")}),
    };
    schema["components"] = json!({"schemas": schemas.clone()});
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The check bites: answers printfarm gave before issue #14 break the copied schemas.
#[test]
fn the_contract_refuses_answers_that_broke_generated_clients() {
    let schemas: Value = serde_json::from_str(SCHEMAS).unwrap();
    let link = json!({"user_id": "1", "upload_id": "u", "file_id": null, "timestamp": "t"});
    assert!(!violations(&schemas, "FileUploadLink", &link).is_empty());
    let gone = json!({"user_id": "1", "quote_id": "2", "status": "success", "timestamp": "t",
        "removed_gcode_path": null});
    assert!(!violations(&schemas, "DeleteQuoteResponse", &gone).is_empty());
    let uploads = json!([{"user_id": "1", "file_id": 3, "file_path": "p", "status": "success",
        "timestamp": "t", "file_name": "a.stl", "file_size": 1.5}]);
    assert!(!violations(&schemas, "[UploadRecordResponse]", &uploads).is_empty());
    let fixed = json!({"user_id": "1", "upload_id": "u", "file_id": "7", "timestamp": "t"});
    assert!(violations(&schemas, "FileUploadLink", &fixed).is_empty());
}

/// Validates answers against the schemas and remembers which operations were seen.
struct Contract {
    schemas: Value,
    seen: BTreeSet<(&'static str, &'static str, u16)>,
}

impl Contract {
    fn new() -> Contract {
        Contract {
            schemas: serde_json::from_str(SCHEMAS).expect("the copied schemas are JSON"),
            seen: BTreeSet::new(),
        }
    }

    /// Checks one answer of an operation of the table against its schema.
    fn check(&mut self, method: &'static str, path: &'static str, status: u16, body: &Value) {
        let (_, _, _, name) = OPERATIONS
            .iter()
            .find(|(m, p, s, _)| *m == method && *p == path && *s == status)
            .unwrap_or_else(|| {
                panic!("{method} {path} answered {status}, not in the contract: {body}")
            });
        let errors = violations(&self.schemas, name, body);
        assert!(
            errors.is_empty(),
            "{method} {path} ({status}) does not match {name}: {errors:?}\n{body:#}"
        );
        self.seen.insert((method, path, status));
    }

    fn saw(&mut self, method: &'static str, path: &'static str, status: u16) {
        self.seen.insert((method, path, status));
    }

    fn all_seen(&self) {
        let missing: Vec<_> = OPERATIONS
            .iter()
            .filter(|(m, p, s, _)| !self.seen.contains(&(*m, *p, *s)))
            .collect();
        assert!(
            missing.is_empty(),
            "operations never exercised: {missing:?}"
        );
    }
}

fn stl() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cube_20mm.stl"
    ))
    .unwrap()
}

/// The API playground's multipart body: one part `file` with the chosen file.
fn model_form(name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("model/stl")
            .unwrap(),
    )
}

async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// The quote body their document defaults to (`ProfileConfig`), as a shop sends it.
fn profile() -> Value {
    json!({
        "printer_config": {
            "bed_size_x": 210, "bed_size_y": 210, "bed_size_z": 250, "print_speed": 100,
            "first_layer_speed": 50, "nozzle_diameter": 0.4, "layer_height": 0.2, "perimeters": 3,
            "top_solid_layers": 3, "bottom_solid_layers": 3, "fill_density": 20,
            "support_material": false, "color": "white", "filament_type": "PLA",
            "temperature": 210, "bed_temperature": 60
        },
        "quote_config": {"currency": "USD", "cost_per_hour": 2.5, "cost_per_gram": 0.02, "base_price": 5.0}
    })
}

async fn cloud_slicer_quick_start_and_contract(db: Db) {
    if !crate::common::slicer_present() {
        return;
    }
    let Some(app) = TestApp::start(db, &[]).await else {
        return;
    };
    run(&app).await;
    app.stop().await;
}

async fn run(app: &TestApp) {
    let mut contract = Contract::new();
    let http = reqwest::Client::new();
    let api = |path: &str| app.url(path);

    // Step 2: a token from the dashboard (here: the Global API call behind it), a name and a
    // blank expiry.
    let session = app.login_new_user("shop@example.com").await;
    let (status, body) = app
        .post(
            "/apiglobal/create_api_token",
            &[("session", &session), ("name", "My First Token")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["message"]["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");

    // Step 3: the token authenticates (the docs' curl example is `GET /v1/user`).
    let res = http
        .get(api("/v1/user"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, me) = answer(res).await;
    assert_eq!(status, 200, "{me}");
    contract.check("GET", "/v1/user", 200, &me);
    assert_eq!(me["email"], "shop@example.com");

    // Step 4: the first call, the playground's upload.
    let res = http
        .post(api("/v1/file"))
        .header("Authorization", &bearer)
        .header("accept", "application/json")
        .multipart(model_form("cube_20mm.stl", stl()))
        .send()
        .await
        .unwrap();
    let (status, up) = answer(res).await;
    assert_eq!(status, 200, "{up}");
    contract.check("POST", "/v1/file", 200, &up);
    let file_id = up["file_id"].as_str().unwrap().to_string();
    assert_eq!(up["status"], "success");
    // A body without its `file` part: FastAPI's 422.
    let res = http
        .post(api("/v1/file"))
        .header("Authorization", &bearer)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(res).await;
    assert_eq!(status, 422, "{body}");
    contract.check("POST", "/v1/file", 422, &body);

    // "Checking dimensions and printability" with the file id.
    let printability = format!("/v1/printability/{file_id}");
    let res = http
        .post(api(&printability))
        .header("Authorization", &bearer)
        .json(&json!({"x": 210.0, "y": 210.0, "z": 250.0}))
        .send()
        .await
        .unwrap();
    let (status, fit) = answer(res).await;
    assert_eq!(status, 200, "{fit}");
    contract.check("POST", "/v1/printability/{file_id}", 200, &fit);
    assert_eq!(fit["fits_printer"], json!(true));
    let res = http
        .post(api(&printability))
        .header("Authorization", &bearer)
        .json(&json!({"x": "wide"}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(res).await;
    assert_eq!(status, 422, "{body}");
    contract.check("POST", "/v1/printability/{file_id}", 422, &body);

    // The browser flow: an upload id from the shop's server, the upload from the browser with
    // no token, then the server quotes the file by the id it was promised.
    let res = http
        .get(api("/v1/file/upload-id"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, link) = answer(res).await;
    assert_eq!(status, 200, "{link}");
    contract.check("GET", "/v1/file/upload-id", 200, &link);
    let upload_id = link["upload_id"].as_str().unwrap();
    let unfilled = link["file_id"].as_str().unwrap().to_string();
    let public = api(&format!("/v1/file/public/{upload_id}"));
    let res = http
        .post(&public)
        .header("Origin", "https://shop.example")
        .multipart(reqwest::multipart::Form::new().text("nofile", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let (status, body) = answer(res).await;
    assert_eq!(status, 422, "{body}");
    contract.check("POST", "/v1/file/public/{upload_id}", 422, &body);
    // The failed attempt spent the id (single use) and its file never came: nothing answers
    // to the promised id. The browser asks for a new one.
    let res = http
        .post(api(&format!("/v1/quote/{unfilled}")))
        .header("Authorization", &bearer)
        .json(&profile())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = http
        .get(api("/v1/file/upload-id"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (_, link) = answer(res).await;
    contract.check("GET", "/v1/file/upload-id", 200, &link);
    let promised = link["file_id"].as_str().unwrap().to_string();
    assert_ne!(promised, unfilled);
    let public = api(&format!(
        "/v1/file/public/{}",
        link["upload_id"].as_str().unwrap()
    ));
    let res = http
        .post(&public)
        .header("Origin", "https://shop.example")
        .multipart(model_form("browser cube.stl", stl()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let (status, browser) = answer(res).await;
    assert_eq!(status, 200, "{browser}");
    contract.check("POST", "/v1/file/public/{upload_id}", 200, &browser);
    assert_eq!(browser["file_id"], json!(promised));

    // Quotes: the browser's file by its promised id, and the first one on the older path.
    let res = http
        .post(api(&format!("/v1/quote/{promised}")))
        .header("Authorization", &bearer)
        .json(&profile())
        .send()
        .await
        .unwrap();
    let (status, quote) = answer(res).await;
    assert_eq!(status, 200, "{quote}");
    contract.check("POST", "/v1/quote/{file_id}", 200, &quote);
    assert_eq!(quote["status"], "success");
    assert!(quote["total_price"].as_f64().unwrap() >= 5.0);
    let res = http
        .post(api(&format!("/v1/file/quote/{file_id}")))
        .header("Authorization", &bearer)
        .json(&profile())
        .send()
        .await
        .unwrap();
    let (status, old_path) = answer(res).await;
    assert_eq!(status, 200, "{old_path}");
    contract.check("POST", "/v1/file/quote/{file_id}", 200, &old_path);
    let mut bad = profile();
    bad["printer_config"]["fill_density"] = json!(150);
    let res = http
        .post(api(&format!("/v1/quote/{file_id}")))
        .header("Authorization", &bearer)
        .json(&bad)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(res).await;
    assert_eq!(status, 422, "{body}");
    contract.check("POST", "/v1/quote/{file_id}", 422, &body);

    let quote_id = quote["quote_id"].as_str().unwrap().to_string();
    let res = http
        .get(api(&format!("/v1/quote/{quote_id}")))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, details) = answer(res).await;
    assert_eq!(status, 200, "{details}");
    contract.check("GET", "/v1/quote/{quote_id}", 200, &details);
    assert_eq!(details["total_price"], quote["total_price"]);
    let res = http
        .get(api(&format!("/v1/quote/gcode/{quote_id}")))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let gcode = res.bytes().await.unwrap();
    assert!(
        String::from_utf8_lossy(&gcode).contains("G1 "),
        "the quote's G-code"
    );
    contract.saw("GET", "/v1/quote/gcode/{quote_id}", 200);
    // The original file comes back as uploaded.
    let res = http
        .get(api(&format!("/v1/file/{file_id}")))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), stl());

    // "Account management": the uploads, newest first; then deletions.
    let res = http
        .get(api("/v1/user/uploads"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, uploads) = answer(res).await;
    assert_eq!(status, 200, "{uploads}");
    contract.check("GET", "/v1/user/uploads", 200, &uploads);
    let ids: Vec<&str> = uploads
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["file_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [promised.as_str(), file_id.as_str()]);
    let res = http
        .delete(api(&format!("/v1/quote/{quote_id}")))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, gone) = answer(res).await;
    assert_eq!(status, 200, "{gone}");
    contract.check("DELETE", "/v1/quote/{quote_id}", 200, &gone);
    assert_eq!(gone["removed_gcode_path"], details["gcode_path"]);
    let res = http
        .delete(api(&format!("/v1/file/{file_id}")))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, gone) = answer(res).await;
    assert_eq!(status, 200, "{gone}");
    contract.check("DELETE", "/v1/file/{file_id}", 200, &gone);
    let res = http
        .get(api("/v1/user"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    let (status, me) = answer(res).await;
    assert_eq!(status, 200);
    contract.check("GET", "/v1/user", 200, &me);
    assert_eq!(me["data_usage"]["files"], json!(1));

    contract.all_seen();
}
