//! One-time upload ids for browser uploads, each reserving the id of the file it will bring.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// An upload id's row, as a claim reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = upload_ids, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UploadId {
    pub user_id: UserId,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub used_at: Option<NaiveDateTime>,
    pub reserved_file_id: Option<FileId>,
}

impl UploadId {
    /// Deletes the ids that expired before `before`.
    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(upload_ids::table.filter(upload_ids::expires_at.lt(before))).execute(conn)
    }

    pub fn insert(
        conn: &mut DbConn,
        id: &str,
        user_id: UserId,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
        file_id: FileId,
    ) -> QResult<()> {
        diesel::insert_into(upload_ids::table)
            .values((
                upload_ids::upload_id.eq(id),
                upload_ids::user_id.eq(user_id),
                upload_ids::created_at.eq(now),
                upload_ids::expires_at.eq(expires_at),
                upload_ids::reserved_file_id.eq(Some(file_id)),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn find(conn: &mut DbConn, id: &str) -> QResult<Option<UploadId>> {
        upload_ids::table
            .filter(upload_ids::upload_id.eq(id))
            .select(UploadId::as_select())
            .first(conn)
            .optional()
    }

    pub fn mark_used(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QResult<()> {
        diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(id)))
            .set(upload_ids::used_at.eq(Some(now)))
            .execute(conn)?;
        Ok(())
    }

    /// Links a used upload id to the file that arrived with it.
    pub fn link_file(conn: &mut DbConn, id: &str, file_id: FileId) -> QResult<()> {
        diesel::update(upload_ids::table.filter(upload_ids::upload_id.eq(id)))
            .set(upload_ids::file_id.eq(Some(file_id)))
            .execute(conn)?;
        Ok(())
    }
}
