//! Sign-in, sessions with sliding expiry, and throttling of failed logins.

use chrono::{Duration, NaiveDateTime};

use crate::config::AuthConfig;
use crate::db::models::signed::LiveSession;
use crate::db::models::{LoginFailure, NewSession, Session, User, UserId};
use crate::db::{self, DbConn, Pool};
use crate::error::{Error, Result};
use crate::services::auth::{random_token, token_hash, PasswordHasher};

#[derive(Debug, Clone)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub max_age: Duration,
    pub throttle_window: Duration,
    pub max_failures_per_account: i64,
    pub max_failures_per_address: i64,
}

impl SessionPolicy {
    pub fn from_config(cfg: &AuthConfig) -> Self {
        SessionPolicy {
            idle: Duration::minutes(cfg.session_idle_minutes),
            max_age: Duration::days(cfg.session_max_days.max(0)),
            throttle_window: Duration::seconds(cfg.throttle_window_secs.max(1)),
            max_failures_per_account: cfg.throttle_max_per_account,
            max_failures_per_address: cfg.throttle_max_per_address,
        }
    }

    fn expiry(&self, created_at: NaiveDateTime, now: NaiveDateTime) -> NaiveDateTime {
        let idle = now + self.idle;
        if self.max_age > Duration::zero() {
            idle.min(created_at + self.max_age)
        } else {
            idle
        }
    }
}

/// The result of a successful login.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub token: String,
    pub user: User,
}

fn account_key(email: &str) -> String {
    format!("account:{}", crate::db::models::normalize_email(email))
}

fn address_key(addr: &str) -> String {
    format!("address:{addr}")
}

/// Refuses with 429 while either key has too many failures inside the window.
fn check_throttle(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    keys: &[(String, i64, &str)],
    now: NaiveDateTime,
) -> Result<()> {
    let since = now - policy.throttle_window;
    for (key, max, what) in keys {
        if LoginFailure::count_since(conn, key, since)? >= *max {
            let oldest = LoginFailure::oldest_since(conn, key, since)?.unwrap_or(now);
            let wait = (oldest + policy.throttle_window - now).num_seconds().max(1);
            return Err(Error::RateLimited(format!(
                "Too many failed login attempts for this {what}; try again in {wait} seconds"
            )));
        }
    }
    Ok(())
}

/// Username + password sign-in: checks the credentials and opens a session.
pub fn login(
    pool: &Pool,
    hasher: &PasswordHasher,
    policy: &SessionPolicy,
    username: &str,
    password: &str,
    client_addr: &str,
) -> Result<LoginOutcome> {
    let user = verify_credentials(pool, hasher, policy, username, password, client_addr)?;
    let mut conn = pool.get()?;
    let token = create_session(&mut conn, policy, user.id, Some(client_addr), db::now())?;
    Ok(LoginOutcome { token, user })
}

/// Checks a password under the login throttle (per account and per client address). The
/// password hash is verified without holding a connection.
pub fn verify_credentials(
    pool: &Pool,
    hasher: &PasswordHasher,
    policy: &SessionPolicy,
    username: &str,
    password: &str,
    client_addr: &str,
) -> Result<User> {
    let keys = [
        (
            account_key(username),
            policy.max_failures_per_account,
            "account",
        ),
        (
            address_key(client_addr),
            policy.max_failures_per_address,
            "address",
        ),
    ];
    // The check and the recording are one atomic step: each attempt is counted as a failure
    // before the password is checked (per key, under a lock), and the count is taken back
    // when the password was right. Parallel guesses therefore cannot all pass one check.
    let (user, attempt) = {
        let mut conn = pool.get()?;
        let now = db::now();
        let attempt = db::write_transaction(&mut conn, |c| -> Result<Vec<i64>> {
            let mut sorted: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
            sorted.sort_unstable();
            for key in sorted {
                db::lock_key(c, key)?;
            }
            check_throttle(c, policy, &keys, now)?;
            keys.iter()
                .map(|(key, _, _)| Ok(LoginFailure::record(c, key, now)?))
                .collect()
        })?;
        (User::find_by_email(&mut conn, username)?, attempt)
    };

    let verified = hasher.verify(
        password,
        user.as_ref().and_then(|u| u.password_hash.as_deref()),
    );

    match user {
        Some(user) if verified => {
            let mut conn = pool.get()?;
            db::write_transaction(&mut conn, |c| -> Result<()> {
                LoginFailure::clear(c, &keys[0].0)?;
                LoginFailure::delete_ids(c, &attempt)?;
                Ok(())
            })?;
            if user.disabled {
                return Err(Error::denied("This account is disabled"));
            }
            Ok(user)
        }
        _ => Err(Error::Unauthenticated(
            "Invalid username or password".into(),
        )),
    }
}

/// Creates a session for a user and returns the only copy of its token.
pub fn create_session(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    user_id: UserId,
    client_addr: Option<&str>,
    now: NaiveDateTime,
) -> Result<String> {
    let token = random_token();
    let hash = token_hash(&token);
    Session::insert(
        conn,
        &NewSession {
            user_id: Some(user_id),
            token_hash: &hash,
            gdpr_pending: None,
            client_addr,
            created_at: now,
            last_seen_at: now,
            expires_at: policy.expiry(now, now),
        },
    )?;
    Ok(token)
}

/// How long a Google sign-up may wait for its GDPR consent.
const PENDING_REGISTRATION: i64 = 30;

/// A session with no user yet: it can only complete or cancel the GDPR registration.
pub fn create_pending_session(
    conn: &mut DbConn,
    pending: &str,
    client_addr: Option<&str>,
    now: NaiveDateTime,
) -> Result<String> {
    let token = random_token();
    Session::insert(
        conn,
        &NewSession {
            user_id: None,
            token_hash: &token_hash(&token),
            gdpr_pending: Some(pending),
            client_addr,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::minutes(PENDING_REGISTRATION),
        },
    )?;
    Ok(token)
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub session: Session,
    pub user: User,
}

/// Validates a session token and slides its expiry. Expired sessions are removed.
pub fn authenticate(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    token: &str,
) -> Result<Authenticated> {
    let (session, user) =
        Session::find_with_user(conn, &hash_of(token)?)?.ok_or_else(invalid_session)?;
    check_live(conn, &session)?;
    if session.user_id.is_none() {
        return Err(Error::denied(
            "Registration is waiting for GDPR consent; call gdpr_registration first",
        ));
    }
    let user = user.ok_or_else(invalid_session)?;
    if user.disabled {
        return Err(Error::denied("This account is disabled"));
    }
    slide(
        conn,
        policy,
        &LiveSession {
            id: session.id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
        },
        db::now(),
    )?;
    Ok(Authenticated { session, user })
}

/// Sliding expiry without a write on every request: refreshed once a minute at most.
pub fn slide(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    session: &LiveSession,
    now: NaiveDateTime,
) -> Result<()> {
    if now - session.last_seen_at >= Duration::minutes(1) {
        let expires_at = policy.expiry(session.created_at, now);
        Session::touch(conn, session.id, now, expires_at)?;
    }
    Ok(())
}

fn invalid_session() -> Error {
    Error::Unauthenticated("Invalid session".into())
}

/// A session that has not expired (GDPR-pending ones included).
pub fn find_live(conn: &mut DbConn, token: &str) -> Result<Session> {
    let session = Session::find_by_hash(conn, &hash_of(token)?)?.ok_or_else(invalid_session)?;
    check_live(conn, &session)?;
    Ok(session)
}

fn hash_of(token: &str) -> Result<String> {
    if token.is_empty() {
        return Err(Error::Unauthenticated("Missing session".into()));
    }
    Ok(token_hash(token))
}

/// An expired session is removed when it is next presented.
fn check_live(conn: &mut DbConn, session: &Session) -> Result<()> {
    if session.expires_at <= db::now() {
        Session::delete(conn, session.id)?;
        return Err(Error::Unauthenticated("Session expired".into()));
    }
    Ok(())
}

/// Ends a session (pending GDPR sessions included).
pub fn logout(conn: &mut DbConn, token: &str) -> Result<()> {
    let session = find_live(conn, token)?;
    Session::delete(conn, session.id)?;
    Ok(())
}

/// Housekeeping: drop expired sessions and login failures older than the throttle window.
pub fn prune(conn: &mut DbConn, policy: &SessionPolicy) -> Result<(usize, usize)> {
    let now = db::now();
    let sessions = Session::delete_expired(conn, now)?;
    let failures = LoginFailure::prune(conn, now - policy.throttle_window)?;
    Ok((sessions, failures))
}
