//! API tokens for the `/v1` API: JWTs signed with a key every server instance shares (kept in
//! the database), each naming its database row, so revoking a token takes effect at once.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::models::User;
use crate::db::schema::{api_tokens, server_secrets};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::services::auth::{random_token, token_hash};

const KEY_NAME: &str = "api_token_key";

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

/// The signing key, created once by whichever instance needs it first.
fn signing_key(conn: &mut DbConn) -> Result<String> {
    if let Some(k) = server_secrets::table
        .find(KEY_NAME)
        .select(server_secrets::value)
        .first::<String>(conn)
        .optional()?
    {
        return Ok(k);
    }
    let fresh = random_token();
    let now = db::now();
    crate::per_backend!(conn, |c| diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(KEY_NAME),
            server_secrets::value.eq(&fresh),
            server_secrets::created_at.eq(now),
        ))
        .on_conflict(server_secrets::name)
        .do_nothing()
        .execute(c))?;
    Ok(server_secrets::table
        .find(KEY_NAME)
        .select(server_secrets::value)
        .first(conn)?)
}

/// A new named token for the user; the JWT is returned once and stored only as a hash.
pub fn create(
    conn: &mut DbConn,
    user: &User,
    name: &str,
    valid_days: Option<i64>,
) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("token name must be 1 to 100 characters"));
    }
    if valid_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(Error::invalid("expires_in_days must be between 1 and 3650"));
    }
    db::write_transaction(conn, |c| {
        let key = signing_key(c)?;
        let now = db::now();
        let expires_at = valid_days.map(|d| now + Duration::days(d));
        let row: ApiToken = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user.id),
                api_tokens::name.eq(name),
                // Replaced below once the JWT (which names this row) exists.
                api_tokens::token_hash.eq(random_token()),
                api_tokens::created_at.eq(now),
                api_tokens::expires_at.eq(expires_at),
            ))
            .get_result(c)?;
        let claims = Claims {
            sub: user.id.to_string(),
            jti: row.id.to_string(),
            iat: now.and_utc().timestamp(),
            exp: expires_at.map(|e| e.and_utc().timestamp()),
        };
        let jwt = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .map_err(Error::internal)?;
        diesel::update(api_tokens::table.find(row.id))
            .set(api_tokens::token_hash.eq(token_hash(&jwt)))
            .execute(c)?;
        Ok((
            ApiToken {
                token_hash: token_hash(&jwt),
                ..row
            },
            jwt,
        ))
    })
}

pub fn list(conn: &mut DbConn, user: &User) -> Result<Vec<ApiToken>> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user.id))
        .order(api_tokens::id.asc())
        .load(conn)?)
}

pub fn revoke(conn: &mut DbConn, user: &User, id: i64) -> Result<()> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::user_id.eq(user.id))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(db::now())))
    .execute(conn)?;
    if n == 0 {
        return Err(Error::not_found(format!("API token {id} not found")));
    }
    Ok(())
}

fn unauthorized(m: &str) -> Error {
    Error::Unauthenticated(m.to_string())
}

/// The user a bearer token belongs to: a valid signature, not expired, and its database row
/// still live.
pub fn verify(conn: &mut DbConn, jwt: &str) -> Result<User> {
    let key = signing_key(conn)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims = Default::default();
    validation.leeway = 0;
    let claims = decode::<Claims>(jwt, &DecodingKey::from_secret(key.as_bytes()), &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                unauthorized("The API token has expired")
            }
            _ => unauthorized("Invalid API token"),
        })?
        .claims;
    let id: i64 = claims
        .jti
        .parse()
        .map_err(|_| unauthorized("Invalid API token"))?;
    let row: ApiToken = api_tokens::table
        .find(id)
        .first::<ApiToken>(conn)
        .optional()?
        .filter(|t| t.token_hash == token_hash(jwt) && t.user_id.to_string() == claims.sub)
        .ok_or_else(|| unauthorized("Invalid API token"))?;
    let now = db::now();
    if row.revoked_at.is_some() {
        return Err(unauthorized("The API token was revoked"));
    }
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(unauthorized("The API token has expired"));
    }
    let user = User::find(conn, row.user_id)?.ok_or_else(|| unauthorized("Invalid API token"))?;
    if user.disabled {
        return Err(Error::denied("This account is disabled"));
    }
    if row
        .last_used_at
        .is_none_or(|t| now - t > Duration::minutes(1))
    {
        diesel::update(api_tokens::table.find(row.id))
            .set(api_tokens::last_used_at.eq(Some(now)))
            .execute(conn)?;
    }
    Ok(user)
}
