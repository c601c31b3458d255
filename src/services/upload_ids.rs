//! One-time ids for browser uploads (`/v1/file/upload-id`, then `POST /v1/file/public/{id}`):
//! each promises the uploaded file its id, is used once, and expires after an hour.

use chrono::NaiveDateTime;

use crate::db::models::{FileId, UploadId, User, UserId};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

/// Upload ids are kept a day past their expiry (so a late upload hears 410 "expired", not
/// 404), then removed with their unused file id reservation.
const KEPT_EXPIRED: chrono::Duration = chrono::Duration::days(1);

/// How long an upload id can be used.
const VALID_FOR: chrono::Duration = chrono::Duration::hours(1);

/// Makes the upload id `id` for `user_id` at `now`, reserving the file id it returns.
pub fn reserve(conn: &mut DbConn, id: &str, user_id: UserId, now: NaiveDateTime) -> Result<FileId> {
    db::write_transaction(conn, |c| {
        // Expired reservations go as new ones are made, so they never pile up.
        UploadId::prune(c, now - KEPT_EXPIRED)?;
        let file_id = db::reserve_file_id(c)?;
        UploadId::insert(c, id, user_id, now, now + VALID_FOR, file_id)?;
        Ok(file_id)
    })
}

/// Uses the upload id `id` (once: a second claim is 410, like an expired one) and answers who
/// made it and the file id it reserved. Claimed before the upload is read, so two uploads
/// racing on one id cannot both succeed.
pub fn claim(conn: &mut DbConn, id: &str) -> Result<(User, Option<FileId>)> {
    db::write_transaction(conn, |c| {
        let row = UploadId::find(c, id)?.ok_or_else(|| Error::not_found("Unknown upload id"))?;
        if row.used_at.is_some() {
            return Err(Error::Gone("This upload id was already used".into()));
        }
        if row.expires_at <= db::now() {
            return Err(Error::Gone("This upload id has expired".into()));
        }
        UploadId::mark_used(c, id, db::now())?;
        let (uid, reserved) = (row.user_id, row.reserved_file_id);
        let user = User::find(c, uid)?.ok_or_else(|| Error::not_found("Unknown upload id"))?;
        Ok((user, reserved))
    })
}

/// Links a used upload id to the file that arrived with it.
pub fn link_file(conn: &mut DbConn, id: &str, file_id: FileId) -> Result<()> {
    Ok(UploadId::link_file(conn, id, file_id)?)
}
