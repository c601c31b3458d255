//! API tokens for the `/v1` API: JWTs signed with a key every server instance shares (kept in
//! the database), each naming its database row, so revoking a token takes effect at once.

use chrono::Duration;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use crate::db::models::ApiToken;
use crate::db::models::{ServerSecret, User};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::services::auth::{random_token, token_hash};

const KEY_NAME: &str = "api_token_key";

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
    if let Some(k) = ServerSecret::get(conn, KEY_NAME)? {
        return Ok(k);
    }
    Ok(ServerSecret::get_or_insert(
        conn,
        KEY_NAME,
        &random_token(),
        db::now(),
    )?)
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
        // The hash is replaced below once the JWT (which names this row) exists.
        let row = ApiToken::insert(c, user.id, name, &random_token(), now, expires_at)?;
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
        ApiToken::set_hash(c, row.id, &token_hash(&jwt))?;
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
    Ok(ApiToken::of_user(conn, user.id)?)
}

pub fn revoke(conn: &mut DbConn, user: &User, id: i64) -> Result<()> {
    if !ApiToken::revoke(conn, user.id, id, db::now())? {
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
    let row = ApiToken::find(conn, id)?
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
        ApiToken::mark_used(conn, row.id, now)?;
    }
    Ok(user)
}
