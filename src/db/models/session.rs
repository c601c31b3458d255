//! Sign-in sessions and the failed-login record behind the rate limit.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Session {
    pub id: i64,
    pub user_id: Option<UserId>,
    pub token_hash: String,
    /// Set while a Google sign-up waits for GDPR consent (JSON of the verified identity).
    pub gdpr_pending: Option<String>,
    pub client_addr: Option<String>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub last_seen_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub user_id: Option<UserId>,
    pub token_hash: &'a str,
    pub gdpr_pending: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl Session {
    pub fn insert(conn: &mut DbConn, new: &NewSession) -> QResult<Session> {
        diesel::insert_into(sessions::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find_by_hash(conn: &mut DbConn, hash: &str) -> QResult<Option<Session>> {
        sessions::table
            .filter(sessions::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    /// A session and its user in one statement (the user is absent while a Google sign-up
    /// waits for GDPR consent).
    pub fn find_with_user(
        conn: &mut DbConn,
        hash: &str,
    ) -> QResult<Option<(Session, Option<User>)>> {
        crate::per_backend!(conn, |c| sessions::table
            .left_join(users::table)
            .filter(sessions::token_hash.eq(hash))
            .select((Session::as_select(), Option::<User>::as_select()))
            .first(c)
            .optional())
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<usize> {
        diesel::delete(sessions::table.find(id)).execute(conn)
    }

    pub fn delete_for_user(conn: &mut DbConn, user_id: UserId) -> QResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }

    pub fn delete_expired(conn: &mut DbConn, now: NaiveDateTime) -> QResult<usize> {
        diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
    }

    pub fn touch(
        conn: &mut DbConn,
        id: i64,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::last_seen_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
    }

    /// Turns a GDPR-pending session into a normal one for the newly registered user.
    pub fn attach_user(conn: &mut DbConn, id: i64, user_id: UserId) -> QResult<usize> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::user_id.eq(Some(user_id)),
                sessions::gdpr_pending.eq(None::<String>),
            ))
            .execute(conn)
    }
}

pub struct LoginFailure;

impl LoginFailure {
    /// Records one failure (or one attempt not yet known to succeed) and returns its id.
    pub fn record(conn: &mut DbConn, key: &str, at: NaiveDateTime) -> QResult<i64> {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::throttle_key.eq(key),
                login_failures::failed_at.eq(at),
            ))
            .returning(login_failures::id)
            .get_result(conn)
    }

    pub fn delete_ids(conn: &mut DbConn, ids: &[i64]) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::id.eq_any(ids))).execute(conn)
    }

    pub fn count_since(conn: &mut DbConn, key: &str, since: NaiveDateTime) -> QResult<i64> {
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.gt(since))
            .count()
            .get_result(conn)
    }

    /// The oldest failure still inside the window decides when the lock lifts.
    pub fn oldest_since(
        conn: &mut DbConn,
        key: &str,
        since: NaiveDateTime,
    ) -> QResult<Option<NaiveDateTime>> {
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.gt(since))
            .select(diesel::dsl::min(login_failures::failed_at))
            .first(conn)
    }

    pub fn clear(conn: &mut DbConn, key: &str) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::throttle_key.eq(key)))
            .execute(conn)
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::failed_at.le(before)))
            .execute(conn)
    }
}
