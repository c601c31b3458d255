//! Users, their organization roles, and single-use tokens tied to them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// Organization access roles as the Global API numbers them.
pub mod access_role {
    pub const MEMBER: i32 = 0;
    pub const ADMIN: i32 = 1;
    pub const WORKGROUP_ADMIN: i32 = 2;

    pub fn is_valid(role: i32) -> bool {
        (0..=2).contains(&role)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct User {
    pub id: UserId,
    pub organization_id: OrgId,
    pub email: String,
    pub password_hash: Option<String>,
    pub firstname: String,
    pub lastname: String,
    pub company: String,
    pub access_role: i32,
    pub gdpr: i32,
    pub google_sub: Option<String>,
    pub balance: Option<f64>,
    pub monthly_quota: Option<i32>,
    pub quota_used: i32,
    pub quota_period: Option<String>,
    pub disabled: bool,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub organization_id: OrgId,
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub firstname: &'a str,
    pub lastname: &'a str,
    pub company: &'a str,
    pub access_role: i32,
    pub gdpr: i32,
    pub quota_used: i32,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Emails are stored trimmed and lower-cased, so lookups need no case-insensitive SQL
/// (LIKE differs between the backends).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl User {
    /// (id, email) of these users.
    pub fn emails(conn: &mut DbConn, ids: &[UserId]) -> QResult<Vec<(UserId, String)>> {
        users::table
            .filter(users::id.eq_any(ids))
            .select((users::id, users::email))
            .load(conn)
    }

    /// Counts a started print against the user's quota and balance.
    pub fn charge(
        conn: &mut DbConn,
        id: UserId,
        quota_used: i32,
        quota_period: &str,
        balance: Option<f64>,
        now: NaiveDateTime,
    ) -> QResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::quota_used.eq(quota_used),
                users::quota_period.eq(Some(quota_period)),
                users::balance.eq(balance),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn insert(conn: &mut DbConn, new: &NewUser) -> QResult<User> {
        diesel::insert_into(users::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: UserId) -> QResult<Option<User>> {
        users::table.find(id).first(conn).optional()
    }

    pub fn find_by_email(conn: &mut DbConn, email: &str) -> QResult<Option<User>> {
        users::table
            .filter(users::email.eq(normalize_email(email)))
            .first(conn)
            .optional()
    }

    pub fn count(conn: &mut DbConn) -> QResult<i64> {
        users::table.count().get_result(conn)
    }

    pub fn set_password_hash(conn: &mut DbConn, id: UserId, hash: &str) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(Some(hash)),
                users::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.firstname, self.lastname)
            .trim()
            .to_string()
    }

    pub fn find_in_org(conn: &mut DbConn, org: OrgId, id: UserId) -> QResult<Option<User>> {
        users::table
            .filter(users::id.eq(id))
            .filter(users::organization_id.eq(org))
            .first(conn)
            .optional()
    }

    /// The organization's people, by email.
    pub fn of_org(conn: &mut DbConn, org: OrgId) -> QResult<Vec<User>> {
        users::table
            .filter(users::organization_id.eq(org))
            .order(users::email.asc())
            .load(conn)
    }

    pub fn set_role(conn: &mut DbConn, id: UserId, role: i32) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::access_role.eq(role),
                users::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_disabled(conn: &mut DbConn, id: UserId, disabled: bool) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::disabled.eq(disabled),
                users::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn find_by_google_sub(conn: &mut DbConn, sub: &str) -> QResult<Option<User>> {
        users::table
            .filter(users::google_sub.eq(sub))
            .first(conn)
            .optional()
    }

    pub fn set_google_sub(conn: &mut DbConn, id: UserId, sub: &str) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::google_sub.eq(Some(sub)),
                users::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_balance_and_quota(
        conn: &mut DbConn,
        id: UserId,
        balance: Option<Option<f64>>,
        quota: Option<Option<i32>>,
    ) -> QResult<usize> {
        let now = crate::db::now();
        let mut n = 0;
        if let Some(b) = balance {
            n += diesel::update(users::table.find(id))
                .set((users::balance.eq(b), users::updated_at.eq(now)))
                .execute(conn)?;
        }
        if let Some(q) = quota {
            n += diesel::update(users::table.find(id))
                .set((users::monthly_quota.eq(q), users::updated_at.eq(now)))
                .execute(conn)?;
        }
        Ok(n)
    }
}

/// Single-use tokens tied to a user: set-password invitations and slicer sign-in tokens.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = user_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserToken {
    pub id: i64,
    pub purpose: String,
    pub token_hash: String,
    pub user_id: Option<UserId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub confirmed_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub used_at: Option<NaiveDateTime>,
}

impl UserToken {
    /// Expired sign-in, set-password and unconfirmed slicer-login tokens: never usable again.
    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(user_tokens::table.filter(user_tokens::expires_at.le(before))).execute(conn)
    }

    pub fn insert(
        conn: &mut DbConn,
        purpose: &str,
        hash: &str,
        user_id: Option<UserId>,
        expires_at: NaiveDateTime,
    ) -> QResult<UserToken> {
        diesel::insert_into(user_tokens::table)
            .values((
                user_tokens::purpose.eq(purpose),
                user_tokens::token_hash.eq(hash),
                user_tokens::user_id.eq(user_id),
                user_tokens::created_at.eq(crate::db::now()),
                user_tokens::expires_at.eq(expires_at),
            ))
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, purpose: &str, hash: &str) -> QResult<Option<UserToken>> {
        user_tokens::table
            .filter(user_tokens::purpose.eq(purpose))
            .filter(user_tokens::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn delete_unused_for_user(
        conn: &mut DbConn,
        purpose: &str,
        user_id: UserId,
    ) -> QResult<usize> {
        diesel::delete(
            user_tokens::table
                .filter(user_tokens::purpose.eq(purpose))
                .filter(user_tokens::user_id.eq(user_id))
                .filter(user_tokens::used_at.is_null()),
        )
        .execute(conn)
    }

    /// Marks the token used, only if it still is unused: a second redeemer updates nothing.
    pub fn mark_used(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<bool> {
        let n = diesel::update(
            user_tokens::table
                .filter(user_tokens::id.eq(id))
                .filter(user_tokens::used_at.is_null()),
        )
        .set(user_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }

    pub fn confirm(
        conn: &mut DbConn,
        id: i64,
        user_id: UserId,
        now: NaiveDateTime,
    ) -> QResult<bool> {
        let n = diesel::update(
            user_tokens::table
                .filter(user_tokens::id.eq(id))
                .filter(user_tokens::confirmed_at.is_null()),
        )
        .set((
            user_tokens::user_id.eq(Some(user_id)),
            user_tokens::confirmed_at.eq(now),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }
}
