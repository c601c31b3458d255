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
    /// The disk (or the database's disk) is full: nothing was kept (507).
    #[error("{0}")]
    StorageFull(String),
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

    /// A local file error: a full disk (or quota) becomes `StorageFull`, anything else is
    /// internal (with `context` for the log).
    pub fn io(context: &str, e: std::io::Error) -> Self {
        if is_storage_full(&e) {
            storage_full()
        } else {
            Error::Internal(format!("{context}: {e}"))
        }
    }

    fn client_message(&self) -> String {
        match self {
            Error::Internal(_) => "Internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

/// The one answer for a full disk. It is logged once per incident: the flag is cleared when a
/// file is stored again (`storage_recovered`).
pub fn storage_full() -> Error {
    if new_storage_incident() {
        tracing::error!(
            "storage is full: uploads and slices are refused with 507 until space is freed"
        );
    }
    Error::StorageFull("The server's storage is full; nothing was kept. Try again later.".into())
}

/// True for the first full-disk error since the last stored file.
fn new_storage_incident() -> bool {
    !STORAGE_FULL_REPORTED.swap(true, std::sync::atomic::Ordering::AcqRel)
}

static STORAGE_FULL_REPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A file was stored: a later full disk is a new incident (logged again).
pub fn storage_recovered() {
    use std::sync::atomic::Ordering;
    if STORAGE_FULL_REPORTED.swap(false, Ordering::AcqRel) {
        tracing::info!("storage accepts files again");
    }
}

/// Whether an error (or one it wraps) is a full disk or an exceeded quota.
pub fn is_storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
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
            // SQLite's SQLITE_FULL (diesel passes only its message); Postgres's disk_full.
            D::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().starts_with("database or disk is full")
                    || info.message().starts_with("could not extend file") =>
            {
                storage_full()
            }
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
            Error::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_one_incident_until_a_file_is_stored_again() {
        storage_recovered();
        assert!(new_storage_incident());
        assert!(!new_storage_incident());
        assert!(!new_storage_incident());
        storage_recovered();
        assert!(new_storage_incident());
        storage_recovered();
    }

    #[test]
    fn a_full_disk_is_recognised_through_wrapping_errors() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(is_storage_full(&enospc));
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(enospc),
        };
        assert!(is_storage_full(&wrapped));
        assert_eq!(
            Error::io("x", std::io::Error::from_raw_os_error(28)).status_code(),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            Error::io("x", std::io::Error::from_raw_os_error(5)).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
