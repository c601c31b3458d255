//! The Global API envelope `{"result": …, "message": …}`: the success half, and the OpenAPI
//! description of both halves (failures come from `Error`'s mapping).

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use serde::{Serialize, Serializer};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, PartialSchema, ToSchema};

pub fn ok(message: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        result: true,
        message,
    })
}

/// A successful answer: `result` is always `true`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(example = true)]
    pub result: bool,
    pub message: T,
}

/// A refused call: `result` is always `false` and `message` says why (naming the parameter
/// when one is missing or malformed).
#[derive(Serialize, ToSchema)]
pub struct Failure {
    #[schema(example = false)]
    pub result: bool,
    #[schema(example = "missing required parameter 'session'")]
    pub message: String,
}

/// The seed's empty success message `[]`.
pub struct Nothing;

impl Serialize for Nothing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(std::iter::empty::<()>())
    }
}

impl PartialSchema for Nothing {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(serde_json::Value::schema())
            .max_items(Some(0))
            .into()
    }
}

impl ToSchema for Nothing {}

/// The failures every call may answer, each with the `Failure` body.
pub struct Failures;

impl IntoResponses for Failures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        crate::http::openapi::failure_responses(
            &[
                (
                    "400",
                    "A parameter is missing or malformed (the message names it)",
                ),
                (
                    "401",
                    "No session, or an invalid, expired or logged-out one",
                ),
                ("403", "The caller may not do this"),
                ("404", "No such thing visible to the caller"),
                ("405", "Global API calls use POST"),
                ("409", "The thing is in a state that does not allow it"),
                ("410", "A one-time token was already used or has expired"),
                ("413", "The body is larger than the server accepts"),
                (
                    "429",
                    "Too many failed attempts; the message says how long to wait",
                ),
                (
                    "500",
                    "The server failed; the message does not leak details",
                ),
                (
                    "503",
                    "The database is unreachable or busy; retry after the `Retry-After` seconds",
                ),
                ("507", "The server's storage is full; nothing was kept"),
            ],
            "Failure",
        )
    }
}
