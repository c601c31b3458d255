//! One-time ids for browser uploads (`/v1/file/upload-id`, then `POST /v1/file/public/{id}`):
//! each promises the uploaded file its id, is used once, and expires after an hour.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::User;
use crate::db::schema::upload_ids;
use crate::db::{self, DbConn};
use crate::error::{Error, Result};

/// Upload ids are kept a day past their expiry (so a late upload hears 410 "expired", not
/// 404), then removed with their unused file id reservation.
const KEPT_EXPIRED: chrono::Duration = chrono::Duration::days(1);

/// How long an upload id can be used.
const VALID_FOR: chrono::Duration = chrono::Duration::hours(1);

/// Makes the upload id `id` for `user_id` at `now`, reserving the file id it returns.
pub fn reserve(conn: &mut DbConn, id: &str, user_id: i64, now: NaiveDateTime) -> Result<i64> {
    db::write_transaction(conn, |c| {
        // Expired reservations go as new ones are made, so they never pile up.
        diesel::delete(upload_ids::table.filter(upload_ids::expires_at.lt(now - KEPT_EXPIRED)))
            .execute(c)?;
        let file_id = db::reserve_file_id(c)?;
        diesel::insert_into(upload_ids::table)
            .values((
                upload_ids::upload_id.eq(id),
                upload_ids::user_id.eq(user_id),
                upload_ids::created_at.eq(now),
                upload_ids::expires_at.eq(now + VALID_FOR),
                upload_ids::reserved_file_id.eq(Some(file_id)),
            ))
            .execute(c)?;
        Ok(file_id)
    })
}

/// Uses the upload id `id` (once: a second claim is 410, like an expired one) and answers who
/// made it and the file id it reserved. Claimed before the upload is read, so two uploads
/// racing on one id cannot both succeed.
pub fn claim(conn: &mut DbConn, id: &str) -> Result<(User, Option<i64>)> {
    db::write_transaction(conn, |c| {
        type Claim = (i64, NaiveDateTime, Option<NaiveDateTime>, Option<i64>);
        let row: Option<Claim> = upload_ids::table
            .filter(upload_ids::upload_id.eq(id))
            .select((
                upload_ids::user_id,
                upload_ids::expires_at,
                upload_ids::used_at,
                upload_ids::reserved_file_id,
            ))
            .first(c)
            .optional()?;
        let (uid, expires, used, reserved) =
            row.ok_or_else(|| Error::not_found("Unknown upload id"))?;
        if used.is_some() {
            return Err(Error::Gone("This upload id was already used".into()));
        }
        if expires <= db::now() {
            return Err(Error::Gone("This upload id has expired".into()));
        }
        diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(id)))
            .set(upload_ids::used_at.eq(Some(db::now())))
            .execute(c)?;
        let user = User::find(c, uid)?.ok_or_else(|| Error::not_found("Unknown upload id"))?;
        Ok((user, reserved))
    })
}

/// Links a used upload id to the file that arrived with it.
pub fn link_file(conn: &mut DbConn, id: &str, file_id: i64) -> Result<()> {
    diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(id)))
        .set(upload_ids::file_id.eq(Some(file_id)))
        .execute(conn)?;
    Ok(())
}
