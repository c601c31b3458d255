//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types
//! they serialize, served at `/openapi.json`, with Swagger UI (vendored, works offline) at
//! `/docs/`.

use std::collections::BTreeMap;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::{apiglobal, v1};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "printfarm",
        description = include_str!("openapi_intro.md"),
        license(name = "MIT"),
    ),
    paths(
        v1::user,
        v1::uploads,
        v1::printability,
        v1::upload_id,
        v1::public_upload,
        v1::file_upload,
        v1::file_download,
        v1::file_delete,
        v1::create_quote,
        v1::create_quote_deprecated,
        v1::get_quote,
        v1::delete_quote,
        v1::quote_gcode,
    ),
    components(schemas(apiglobal::envelope::Failure, v1::ErrorBody)),
    modifiers(&GlobalApiCalls, &BearerAuth),
    tags(
        (name = "Sessions", description = "Global API: sign-in (password, Google, slicer login tokens) and sessions"),
        (name = "Files", description = "Global API: uploads, projects, G-code metadata"),
        (name = "Workgroups and users", description = "Global API: workgroups and organization users"),
        (name = "Printer types", description = "Global API: the printer-type catalogue"),
        (name = "Printers", description = "Global API: printers, shares, registration, camera, build tray"),
        (name = "Jobs", description = "Global API: the job queue and print control"),
        (name = "Reports", description = "Global API: reports for organization and workgroup admins"),
        (name = "Slicing", description = "Global API: slicing with PrusaSlicer"),
        (name = "printfarm extensions", description = "Global API calls printfarm adds"),
        (name = "v1 Account", description = "/v1: the API token's account"),
        (name = "v1 Part info", description = "/v1: measurements before quoting"),
        (name = "v1 Files", description = "/v1: model uploads and downloads"),
        (name = "v1 Quotes", description = "/v1: instant quotes sliced with PrusaSlicer"),
    )
)]
pub struct ApiDoc;

/// The Global API calls come from their one table (`apiglobal::CallsDoc`), placed before
/// the `/v1` paths.
struct GlobalApiCalls;

impl Modify for GlobalApiCalls {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut calls = apiglobal::CallsDoc::openapi();
        let v1 = std::mem::take(&mut doc.paths.paths);
        calls.paths.paths.extend(v1);
        doc.paths = calls.paths;
        if let Some(schemas) = calls.components.map(|c| c.schemas) {
            let components = doc.components.get_or_insert_with(Default::default);
            components.schemas.extend(schemas);
        }
    }
}

/// `/v1` takes `Authorization: Bearer <API token>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An API token from `create_api_token` or `printfarm admin token-create`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documented failure answers: each status with its reason and the same JSON body schema.
pub(crate) fn failure_responses(
    statuses: &[(&str, &str)],
    body_schema: &str,
) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, why)| {
            let body = ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name(body_schema))))
                .build();
            let response = ResponseBuilder::new()
                .description(*why)
                .content("application/json", body)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

pub fn routes(r: &mut crate::http::routes::Routes) {
    r.route(actix_web::http::Method::GET, "/openapi.json", openapi_json);
    r.service(
        "GET /docs/{_:.*} (Swagger UI)",
        SwaggerUi::new("/docs/{_:.*}")
            // The default validator badge calls swagger.io; the page must work offline.
            .config(Config::new(["/openapi.json"]).validator_url("none")),
    );
}

/// The document, serialized once when first asked for: built per worker at start, it held
/// 8 MiB in each worker of every idle server (issue #20).
static OPENAPI_JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    serde_json::to_string(&ApiDoc::openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI document");
        String::from("{}")
    })
});

async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON.as_str())
}
