//! The one error type of the application, mapped once to an HTTP status and the
//! `{"result": false, "message": "…"}` envelope every 3DPrinterOS client expects.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use diesel::result::DatabaseErrorKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// A single-use or expiring link that was already used or ran out.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A `Range` outside the object (its size is reported back).
    #[error("Requested range not satisfiable (size {0} bytes)")]
    RangeNotSatisfiable(u64),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    /// A deadlock or serialization failure that outlived its retries (503, retry later).
    #[error("The database is busy; please retry")]
    Transient,
    /// Details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(m: impl Into<String>) -> Self {
        Error::BadRequest(m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Error::NotFound(m.into())
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Error::Forbidden(m.into())
    }
    pub fn internal(m: impl std::fmt::Display) -> Self {
        Error::Internal(m.to_string())
    }

    fn client_message(&self) -> String {
        match self {
            Error::Internal(_) => "Internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::Error as D;
        match e {
            D::NotFound => Error::NotFound("Not found".into()),
            D::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::Conflict("Already exists".into())
            }
            D::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                Error::Conflict("Refers to a record that does not exist or is still in use".into())
            }
            ref e if crate::db::is_transient(e) => Error::Transient,
            D::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Error::Unavailable(format!("Database unavailable: {}", info.message()))
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl crate::db::TransactionError for Error {
    fn is_transient(&self) -> bool {
        matches!(self, Error::Transient)
    }
}

impl From<crate::db::Unavailable> for Error {
    fn from(e: crate::db::Unavailable) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Error::Internal(format!("blocking task: {e}"))
    }
}

impl From<crate::http::apiglobal::form::FormError> for Error {
    fn from(e: crate::http::apiglobal::form::FormError) -> Self {
        Error::BadRequest(e.to_string())
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Gone(_) => StatusCode::GONE,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Transient => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Error::RangeNotSatisfiable(size) = self {
            res.insert_header(("Content-Range", format!("bytes */{size}")));
        }
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header(("Retry-After", "1"));
        }
        res.json(serde_json::json!({
            "result": false,
            "message": self.client_message(),
        }))
    }
}
