//! Printer shares with other users, workgroups and future accounts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printer_shares, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterShare {
    pub id: i64,
    pub printer_id: PrinterId,
    /// Shares are by email, so a share to someone without an account yet takes effect when
    /// that account is created.
    pub email: String,
    pub user_id: Option<UserId>,
    /// 2 can print, 5 can queue.
    pub role_id: i32,
    pub number_of_prints: Option<i32>,
    pub prints_used: i32,
    pub created_by_user_id: Option<UserId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

pub mod share_role {
    pub const CAN_PRINT: i32 = 2;
    pub const CAN_QUEUE: i32 = 5;
}

impl PrinterShare {
    /// One more print through this share.
    pub fn count_print(conn: &mut DbConn, id: i64) -> QResult<()> {
        diesel::update(printer_shares::table.find(id))
            .set(printer_shares::prints_used.eq(printer_shares::prints_used + 1))
            .execute(conn)?;
        Ok(())
    }

    pub fn of_printer(conn: &mut DbConn, printer: PrinterId) -> QResult<Vec<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::printer_id.eq(printer))
            .order(printer_shares::id.asc())
            .load(conn)
    }

    pub fn for_email(conn: &mut DbConn, email: &str) -> QResult<Vec<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::email.eq(email))
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<PrinterShare>> {
        printer_shares::table.find(id).first(conn).optional()
    }

    pub fn find_for(
        conn: &mut DbConn,
        printer: PrinterId,
        email: &str,
    ) -> QResult<Option<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::printer_id.eq(printer))
            .filter(printer_shares::email.eq(email))
            .first(conn)
            .optional()
    }

    pub fn insert(
        conn: &mut DbConn,
        printer: PrinterId,
        email: &str,
        role: i32,
        prints: Option<i32>,
        by: UserId,
    ) -> QResult<PrinterShare> {
        diesel::insert_into(printer_shares::table)
            .values((
                printer_shares::printer_id.eq(printer),
                printer_shares::email.eq(email),
                printer_shares::role_id.eq(role),
                printer_shares::number_of_prints.eq(prints),
                printer_shares::prints_used.eq(0),
                printer_shares::created_by_user_id.eq(Some(by)),
                printer_shares::created_at.eq(crate::db::now()),
            ))
            .get_result(conn)
    }

    pub fn update_terms(
        conn: &mut DbConn,
        id: i64,
        role: i32,
        prints: Option<i32>,
    ) -> QResult<usize> {
        diesel::update(printer_shares::table.find(id))
            .set((
                printer_shares::role_id.eq(role),
                printer_shares::number_of_prints.eq(prints),
            ))
            .execute(conn)
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<usize> {
        diesel::delete(printer_shares::table.find(id)).execute(conn)
    }
}
