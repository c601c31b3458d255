//! Registration codes: a printer agent waiting to be added by a person.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = registration_codes, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct RegistrationCode {
    pub id: i64,
    pub code: String,
    /// `VID:PID:SNR` of the agent's printer: only that device may collect the token.
    pub device_key: String,
    pub agent_info: String,
    pub printer_type_alias: Option<String>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
    pub redeemed_by_user_id: Option<UserId>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub redeemed_at: Option<NaiveDateTime>,
    pub printer_id: Option<PrinterId>,
    /// The printer's auth token, kept only until the agent first uses it.
    pub pending_auth_token: Option<String>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub delivered_at: Option<NaiveDateTime>,
}

impl RegistrationCode {
    pub fn insert(
        conn: &mut DbConn,
        code: &str,
        device_key: &str,
        agent_info: &str,
        alias: Option<&str>,
        expires_at: NaiveDateTime,
    ) -> QResult<RegistrationCode> {
        diesel::insert_into(registration_codes::table)
            .values((
                registration_codes::code.eq(code),
                registration_codes::device_key.eq(device_key),
                registration_codes::agent_info.eq(agent_info),
                registration_codes::printer_type_alias.eq(alias),
                registration_codes::created_at.eq(crate::db::now()),
                registration_codes::expires_at.eq(expires_at),
            ))
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, code: &str) -> QResult<Option<RegistrationCode>> {
        registration_codes::table
            .filter(registration_codes::code.eq(code))
            .first(conn)
            .optional()
    }

    /// Marks the code redeemed unless someone else did first.
    pub fn redeem(
        conn: &mut DbConn,
        id: i64,
        user: UserId,
        printer: PrinterId,
        token: &str,
    ) -> QResult<bool> {
        let n = diesel::update(
            registration_codes::table
                .filter(registration_codes::id.eq(id))
                .filter(registration_codes::redeemed_at.is_null()),
        )
        .set((
            registration_codes::redeemed_by_user_id.eq(Some(user)),
            registration_codes::redeemed_at.eq(crate::db::now()),
            registration_codes::printer_id.eq(Some(printer)),
            registration_codes::pending_auth_token.eq(Some(token)),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// The agent has used its token: forget the plain copy.
    pub fn forget_token(conn: &mut DbConn, printer: PrinterId) -> QResult<usize> {
        diesel::update(
            registration_codes::table
                .filter(registration_codes::printer_id.eq(printer))
                .filter(registration_codes::pending_auth_token.is_not_null()),
        )
        .set((
            registration_codes::pending_auth_token.eq(None::<String>),
            registration_codes::delivered_at.eq(Some(crate::db::now())),
        ))
        .execute(conn)
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(
            registration_codes::table
                .filter(registration_codes::expires_at.le(before))
                .filter(registration_codes::pending_auth_token.is_null()),
        )
        .execute(conn)
    }
}
