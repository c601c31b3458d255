//! `/v1` API tokens (rows naming a JWT by hash) and the server secrets that sign them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, serde::Serialize)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ApiToken {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub revoked_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub expires_at: Option<NaiveDateTime>,
}

impl ApiToken {
    pub fn insert(
        conn: &mut DbConn,
        user_id: UserId,
        name: &str,
        token_hash: &str,
        now: NaiveDateTime,
        expires_at: Option<NaiveDateTime>,
    ) -> QResult<ApiToken> {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user_id),
                api_tokens::name.eq(name),
                api_tokens::token_hash.eq(token_hash),
                api_tokens::created_at.eq(now),
                api_tokens::expires_at.eq(expires_at),
            ))
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<ApiToken>> {
        api_tokens::table.find(id).first(conn).optional()
    }

    pub fn set_hash(conn: &mut DbConn, id: i64, token_hash: &str) -> QResult<()> {
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::token_hash.eq(token_hash))
            .execute(conn)?;
        Ok(())
    }

    pub fn of_user(conn: &mut DbConn, user_id: UserId) -> QResult<Vec<ApiToken>> {
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .order(api_tokens::id.asc())
            .load(conn)
    }

    /// Revokes the user's live token `id`; false when there is none.
    pub fn revoke(
        conn: &mut DbConn,
        user_id: UserId,
        id: i64,
        now: NaiveDateTime,
    ) -> QResult<bool> {
        let n = diesel::update(
            api_tokens::table
                .filter(api_tokens::id.eq(id))
                .filter(api_tokens::user_id.eq(user_id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(Some(now)))
        .execute(conn)?;
        Ok(n == 1)
    }

    pub fn mark_used(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<()> {
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::last_used_at.eq(Some(now)))
            .execute(conn)?;
        Ok(())
    }
}

/// Named secrets every server instance shares.
pub struct ServerSecret;

impl ServerSecret {
    pub fn get(conn: &mut DbConn, name: &str) -> QResult<Option<String>> {
        server_secrets::table
            .find(name)
            .select(server_secrets::value)
            .first(conn)
            .optional()
    }

    /// Stores `value` under `name` unless another instance stored one first; answers the
    /// value that stands.
    pub fn get_or_insert(
        conn: &mut DbConn,
        name: &str,
        value: &str,
        now: NaiveDateTime,
    ) -> QResult<String> {
        crate::per_backend!(conn, |c| diesel::insert_into(server_secrets::table)
            .values((
                server_secrets::name.eq(name),
                server_secrets::value.eq(value),
                server_secrets::created_at.eq(now),
            ))
            .on_conflict(server_secrets::name)
            .do_nothing()
            .execute(c))?;
        server_secrets::table
            .find(name)
            .select(server_secrets::value)
            .first(conn)
    }
}
