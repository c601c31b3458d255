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
            return Err(Error::denied("This account is disabled"));
        }
        let session = create_session(c, policy, user.id, None, now)?;
        Ok(Some((session, user.email)))
    })
}

/// A signed-in client's one-time link that signs a browser in as the same person (the Cura
/// plugin's "go to cloud" button: `generate_auth_token`, then
/// `/noauth/login_with_auth_token/<token>`).
pub const BROWSER: &str = "browser_login";

/// How long a browser sign-in link stays usable: the client opens it at once.
pub const BROWSER_TTL_MINUTES: i64 = 5;

pub fn generate_browser(conn: &mut DbConn, user: &User) -> Result<String> {
    let token = random_token();
    let expires = db::now() + Duration::minutes(BROWSER_TTL_MINUTES);
    UserToken::insert(conn, BROWSER, &token_hash(&token), Some(user.id), expires)?;
    Ok(token)
}

fn usable_browser(conn: &mut DbConn, token: &str) -> Result<(UserToken, User)> {
    let t = UserToken::find(conn, BROWSER, &token_hash(token))?
        .ok_or_else(|| Error::not_found("Unknown sign-in link"))?;
    if t.used_at.is_some() || t.expires_at <= db::now() {
        return Err(Error::Gone(
            "This sign-in link was already used or has expired; open it again from the slicer"
                .into(),
        ));
    }
    let user = t
        .user_id
        .map(|id| User::find(conn, id))
        .transpose()?
        .flatten()
        .filter(|u| !u.disabled)
        .ok_or_else(|| Error::not_found("Unknown sign-in link"))?;
    Ok((t, user))
}

/// Who a browser sign-in link would sign in (for the page that asks before using it).
pub fn browser_link_user(conn: &mut DbConn, token: &str) -> Result<User> {
    Ok(usable_browser(conn, token)?.1)
}

/// Uses a browser sign-in link (once): a new session for its person.
pub fn redeem_browser(conn: &mut DbConn, policy: &SessionPolicy, token: &str) -> Result<String> {
    db::write_transaction(conn, |c| {
        let (t, user) = usable_browser(c, token)?;
        let now = db::now();
        if !UserToken::mark_used(c, t.id, now)? {
            return Err(Error::Gone("This sign-in link was already used".into()));
        }
        create_session(c, policy, user.id, None, now)
    })
}
