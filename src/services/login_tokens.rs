//! Slicer sign-in: `generate_login_token` makes a token, the user confirms it in a browser
//! (`/noauth/apiglobal_login_with_token/<token>`), and the slicer's `login_with_token` poll
//! then receives a session once.

use chrono::Duration;

use crate::db::models::{User, UserToken};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::services::auth::{random_token, token_hash};
use crate::services::sessions::{create_session, SessionPolicy};

pub const LOGIN: &str = "login";

pub fn generate(conn: &mut DbConn, ttl: Duration) -> Result<String> {
    let token = random_token();
    UserToken::insert(conn, LOGIN, &token_hash(&token), None, db::now() + ttl)?;
    Ok(token)
}

fn usable(conn: &mut DbConn, token: &str) -> Result<UserToken> {
    let t = UserToken::find(conn, LOGIN, &token_hash(token))?
        .ok_or_else(|| Error::not_found("Unknown login token"))?;
    if t.used_at.is_some() {
        return Err(Error::Gone("This login token was already used".into()));
    }
    if t.expires_at <= db::now() {
        return Err(Error::Gone(
            "This login token has expired; generate a new one".into(),
        ));
    }
    Ok(t)
}

/// Checks that a token can still be confirmed (for the confirmation page).
pub fn check(conn: &mut DbConn, token: &str) -> Result<()> {
    let t = usable(conn, token)?;
    if t.confirmed_at.is_some() {
        return Err(Error::Gone("This login token was already confirmed".into()));
    }
    Ok(())
}

/// Whether the user has confirmed the token (read only; `poll` hands out the session).
pub fn is_confirmed(conn: &mut DbConn, token: &str) -> Result<bool> {
    Ok(UserToken::find(conn, LOGIN, &token_hash(token))?.is_some_and(|t| t.confirmed_at.is_some()))
}

/// The signed-in user confirms the token in the browser.
pub fn confirm(conn: &mut DbConn, token: &str, user: &User) -> Result<()> {
    db::write_transaction(conn, |c| {
        let t = usable(c, token)?;
        if t.confirmed_at.is_some() || !UserToken::confirm(c, t.id, user.id, db::now())? {
            return Err(Error::Gone("This login token was already confirmed".into()));
        }
        Ok(())
    })
}

/// The slicer's poll: `None` while unconfirmed; once confirmed, a new session (exactly once).
pub fn poll(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    token: &str,
) -> Result<Option<(String, String)>> {
    db::write_transaction(conn, |c| {
        let t = usable(c, token)?;
        let Some(user_id) = t.user_id.filter(|_| t.confirmed_at.is_some()) else {
            return Ok(None);
        };
        let now = db::now();
        if !UserToken::mark_used(c, t.id, now)? {
            return Err(Error::Gone("This login token was already used".into()));
        }
        let user =
            User::find(c, user_id)?.ok_or_else(|| Error::not_found("Unknown login token"))?;
        if user.disabled {
            return Err(Error::forbidden("This account is disabled"));
        }
        let session = create_session(c, policy, user.id, None, now)?;
        Ok(Some((session, user.email)))
    })
}
