//! Camera viewing tokens and each printer's latest frame.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = camera_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct CameraToken {
    pub id: i64,
    pub token_hash: String,
    pub user_id: UserId,
    pub printer_id: Option<PrinterId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
}

impl CameraToken {
    pub fn insert(
        conn: &mut DbConn,
        hash: &str,
        user: UserId,
        printer: Option<PrinterId>,
        expires_at: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::insert_into(camera_tokens::table)
            .values((
                camera_tokens::token_hash.eq(hash),
                camera_tokens::user_id.eq(user),
                camera_tokens::printer_id.eq(printer),
                camera_tokens::created_at.eq(crate::db::now()),
                camera_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, hash: &str) -> QResult<Option<CameraToken>> {
        camera_tokens::table
            .filter(camera_tokens::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(camera_tokens::table.filter(camera_tokens::expires_at.le(before)))
            .execute(conn)
    }
}

pub struct CameraFrame;

impl CameraFrame {
    /// Keeps only the latest frame per printer.
    pub fn store(
        conn: &mut DbConn,
        printer: PrinterId,
        jpeg: &[u8],
        now: NaiveDateTime,
    ) -> QResult<usize> {
        crate::per_backend!(conn, |c| diesel::insert_into(camera_frames::table)
            .values((
                camera_frames::printer_id.eq(printer),
                camera_frames::jpeg.eq(jpeg),
                camera_frames::received_at.eq(now),
            ))
            .on_conflict(camera_frames::printer_id)
            .do_update()
            .set((
                camera_frames::jpeg.eq(jpeg),
                camera_frames::received_at.eq(now)
            ))
            .execute(c))
    }

    pub fn latest(
        conn: &mut DbConn,
        printer: PrinterId,
    ) -> QResult<Option<(Vec<u8>, NaiveDateTime)>> {
        camera_frames::table
            .find(printer)
            .select((camera_frames::jpeg, camera_frames::received_at))
            .first(conn)
            .optional()
    }
}
