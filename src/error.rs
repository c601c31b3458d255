//! The one error type of the application, named by meaning; the runners under `http/` render it
//! for each API.

use diesel::result::DatabaseErrorKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by meaning. Each API renders it in its own shape: the Global API envelope
/// (`http::apiglobal::envelope`), `/v1`'s `detail` (`http::v1`) and the agent protocol's
/// `{"error": {"code", "message"}}` (`http::printer`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing or malformed (the message names it).
    #[error("{0}")]
    Invalid(String),
    /// No valid session, token or password.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed to do this.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    /// The request collides with the state of what it names.
    #[error("{1}")]
    Conflict(Conflict, String),
    /// A single-use or expiring link that was already used or ran out.
    #[error("{0}")]
    Gone(String),
    /// A body or file over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// A `Range` outside the object (its size is reported back).
    #[error("Requested range not satisfiable (size {0} bytes)")]
    OutOfRange(u64),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
    /// The disk (or the database's disk) is full: nothing was kept.
    #[error("{0}")]
    StorageFull(String),
    /// A deadlock or serialization failure that outlived its retries (retry later).
    #[error("The database is busy; please retry")]
    Transient,
    /// A printer agent's request refused with one of the agent protocol's codes.
    #[error("{1}")]
    AgentRefused(AgentCode, String),
    /// Details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kinds of conflict, for the code that decides by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A unique name, email or key is taken.
    AlreadyExists,
    /// A row another still refers to, or a reference to a missing row.
    InUse,
    /// A job, quote or printer is not in the state the request needs.
    WrongState,
}

/// The agent protocol's error codes (`{"error": {"code", …}}`); the agents act on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCode {
    /// The printer token is unknown: register again.
    BadToken = 3,
    /// A registration without the device's serial number.
    SerialMissing = 30,
    /// An unknown registration code, or another device's.
    BadRegistrationCode = 31,
    /// A camera frame that is not base64.
    ImageNotBase64 = 40,
    /// A camera frame that is not a JPEG, or too large.
    ImageRefused = 41,
    /// A body that is not a JSON object, or lacks a field.
    BadRequest = 400,
    /// A body over the request's limit.
    BodyTooLarge = 413,
}

impl AgentCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl Error {
    pub fn invalid(m: impl Into<String>) -> Self {
        Error::Invalid(m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Error::NotFound(m.into())
    }
    pub fn denied(m: impl Into<String>) -> Self {
        Error::Denied(m.into())
    }
    pub fn conflict(kind: Conflict, m: impl Into<String>) -> Self {
        Error::Conflict(kind, m.into())
    }
    pub fn agent(code: AgentCode, m: impl Into<String>) -> Self {
        Error::AgentRefused(code, m.into())
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

    /// What a client may read: internal details stay in the log.
    pub fn client_message(&self) -> String {
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
                Error::conflict(Conflict::AlreadyExists, "Already exists")
            }
            D::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => Error::conflict(
                Conflict::InUse,
                "Refers to a record that does not exist or is still in use",
            ),
            ref e if crate::db::is_transient(e) => Error::Transient,
            // SQLite's SQLITE_FULL (diesel passes only its message); Postgres's disk_full.
            D::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().starts_with("database or disk is full")
                    || info.message().starts_with("could not extend file") =>
            {
                storage_full()
            }
            D::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Error::Unavailable(format!("{}: {}", crate::db::UNAVAILABLE, info.message()))
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
        assert!(matches!(
            Error::io("x", std::io::Error::from_raw_os_error(28)),
            Error::StorageFull(_)
        ));
        assert!(matches!(
            Error::io("x", std::io::Error::from_raw_os_error(5)),
            Error::Internal(_)
        ));
    }
}
