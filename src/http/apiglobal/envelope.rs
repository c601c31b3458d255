//! The Global API envelope `{"result": …, "message": …}`: the success half, the failure half
//! (how an `Error` is rendered, also for the pages and downloads), the OpenAPI description of
//! both, and how answers write times.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::{AgentCode, Error};
use serde::{Serialize, Serializer};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// A time as the Global API writes it (`2016-08-18 20:39:52`), with chrono's format items
/// prepared once: a job list writes one per job.
pub fn datetime(t: &chrono::NaiveDateTime) -> String {
    static ITEMS: LazyLock<Vec<chrono::format::Item<'static>>> = LazyLock::new(|| {
        chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M:%S")
            .parse_to_owned()
            .expect("a valid chrono format")
    });
    t.format_with_items(ITEMS.iter()).to_string()
}

pub fn ok(message: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        result: true,
        message,
    })
}

/// The HTTP status of an error, for every API.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) | Error::AgentRefused(AgentCode::BadToken, _) => {
            StatusCode::UNAUTHORIZED
        }
        Error::AgentRefused(AgentCode::BodyTooLarge, _) | Error::TooLarge(_) => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Error::AgentRefused(..) => StatusCode::BAD_REQUEST,
        Error::Denied(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(..) => StatusCode::CONFLICT,
        Error::Gone(_) => StatusCode::GONE,
        Error::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        Error::OutOfRange(_) => StatusCode::RANGE_NOT_SATISFIABLE,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) | Error::Transient => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal in the envelope, with the given status.
pub fn fail(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(Failure {
        result: false,
        message: message.into(),
    })
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Error::Internal(format!("blocking task: {e}"))
    }
}

/// Errors render as the Global API's failure envelope (pages and downloads share it).
impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status_of(self)
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let mut res = fail(self.status_code(), self.client_message());
        let headers = res.headers_mut();
        if let Error::OutOfRange(size) = self {
            if let Ok(v) = format!("bytes */{size}").parse() {
                headers.insert(actix_web::http::header::CONTENT_RANGE, v);
            }
        }
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
        }
        res
    }
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
