//! Google sign-in: verifies ID tokens (RS256) against the configured JWKS, and turns a
//! verified identity into a session or a GDPR-pending registration.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::GoogleConfig;
use crate::db::models::{normalize_email, OrgId, Organization, Session, User};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::auth::PasswordHasher;
use crate::services::bootstrap::{create_user, NewAccount};
use crate::services::sessions::{create_pending_session, create_session, find_live, SessionPolicy};

/// Keys are refetched for an unknown key id at most this often, so forged kids cannot make
/// us hammer the issuer.
const MIN_REFRESH: Duration = Duration::from_secs(60);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// What a verified ID token tells us.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoogleIdentity {
    pub sub: String,
    pub email: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
    given_name: Option<String>,
    family_name: Option<String>,
    hd: Option<String>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    max_age: Duration,
}

pub struct GoogleVerifier {
    cfg: GoogleConfig,
    /// Made on first use: its TLS roots and code stay out of a server that never verifies a
    /// Google token (issue #20 goal 5, idle memory).
    http: std::sync::OnceLock<reqwest::Client>,
    cache: RwLock<KeyCache>,
}

fn bad_token(why: impl std::fmt::Display) -> Error {
    Error::Unauthenticated(format!("Invalid Google ID token: {why}"))
}

impl GoogleVerifier {
    pub fn new(cfg: GoogleConfig) -> Self {
        GoogleVerifier {
            cfg,
            http: std::sync::OnceLock::new(),
            cache: RwLock::new(KeyCache::default()),
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
    }

    pub fn enabled(&self) -> bool {
        !self.cfg.client_ids.is_empty()
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.cfg
    }

    pub async fn verify(&self, token: &str) -> Result<GoogleIdentity> {
        // A switched-off feature is the caller's dead end, not a server fault (no 5xx).
        if !self.enabled() {
            return Err(Error::denied(
                "Google sign-in is not configured on this server",
            ));
        }
        let header = decode_header(token).map_err(bad_token)?;
        // Only RS256: anything else (HS256 with the public key as secret, "none") is refused
        // before any key is looked up.
        if header.alg != Algorithm::RS256 {
            return Err(bad_token(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or_else(|| bad_token("no key id"))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&self.cfg.client_ids);
        validation.set_issuer(&self.cfg.issuers);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = self.cfg.leeway_secs;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(bad_token)?
            .claims;

        let verified = matches!(claims.email_verified, serde_json::Value::Bool(true))
            || claims.email_verified == serde_json::Value::String("true".into());
        let email = claims
            .email
            .filter(|e| !e.is_empty())
            .ok_or_else(|| bad_token("no email"))?;
        if !verified {
            return Err(bad_token("the email address is not verified"));
        }
        if !self.cfg.hosted_domains.is_empty()
            && !claims.hd.as_deref().is_some_and(|hd| {
                self.cfg
                    .hosted_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(hd))
            })
        {
            return Err(Error::denied(
                "This Google account's domain may not sign in here",
            ));
        }
        Ok(GoogleIdentity {
            sub: claims.sub,
            email: normalize_email(&email),
            given_name: claims.given_name.unwrap_or_default(),
            family_name: claims.family_name.unwrap_or_default(),
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|t| t.elapsed() < cache.max_age);
            if let Some(k) = cache.keys.get(kid).filter(|_| fresh) {
                return Ok(k.clone());
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have refreshed while we waited for the lock.
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < cache.max_age);
        if let Some(k) = cache.keys.get(kid).filter(|_| fresh) {
            return Ok(k.clone());
        }
        let may_fetch = cache.fetched_at.is_none_or(|t| t.elapsed() >= MIN_REFRESH) || !fresh;
        if may_fetch {
            match self.fetch().await {
                Ok((keys, max_age)) => {
                    cache.keys = keys;
                    cache.max_age = max_age;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) if cache.keys.contains_key(kid) => {
                    // Keep serving a known key when the issuer is briefly unreachable.
                    tracing::warn!(error = %e, "JWKS refresh failed; using cached keys");
                }
                Err(e) => return Err(e),
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| bad_token("signed with an unknown key"))
    }

    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, Duration)> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::Unavailable(format!("Cannot fetch Google's signing keys: {e}"))
        };
        let res = self
            .http()
            .get(&self.cfg.jwks_url)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !res.status().is_success() {
            return Err(unavailable(&format!("HTTP {}", res.status())));
        }
        let max_age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .filter_map(|p| p.trim().strip_prefix("max-age="))
                    .find_map(|n| n.parse::<u64>().ok())
            })
            .map_or(DEFAULT_MAX_AGE, Duration::from_secs);
        let set: JwkSet = res.json().await.map_err(|e| unavailable(&e))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        Ok((keys, max_age))
    }
}

pub enum SignIn {
    /// A known user: a normal session.
    Session { token: String, email: String },
    /// A new user: a session that can only complete the GDPR registration.
    GdprNeeded { token: String },
}

/// The organization Google sign-in lets people into (`google.signup_organization_id`, 0 = the
/// first organization): new accounts join it, and only its accounts are linked by email.
fn signin_org(c: &mut DbConn, cfg: &GoogleConfig) -> Result<Option<Organization>> {
    Ok(match cfg.signup_organization_id {
        0 => Organization::first(c)?,
        id => Organization::find(c, OrgId(id))?,
    })
}

/// Known users (by Google subject) get a session. An account not yet linked is found by the
/// verified email and linked only when it belongs to the sign-in organization: an admin of
/// another organization could otherwise pre-create an account with someone's email and
/// capture their Google sign-in. Unknown people get a GDPR-pending registration only when
/// sign-up is on (`google.allow_signup`, off by default).
pub fn sign_in(
    conn: &mut DbConn,
    policy: &SessionPolicy,
    cfg: &GoogleConfig,
    who: &GoogleIdentity,
    client_addr: &str,
) -> Result<SignIn> {
    db::write_transaction(conn, |c| {
        let now = db::now();
        let user = match User::find_by_google_sub(c, &who.sub)? {
            Some(u) => Some(u),
            None => match User::find_by_email(c, &who.email)? {
                Some(u) if u.google_sub.as_deref().is_some_and(|s| s != who.sub) => {
                    return Err(Error::conflict(
                        Conflict::AlreadyExists,
                        "This email is linked to a different Google account",
                    ));
                }
                Some(u) => {
                    let org = signin_org(c, cfg)?;
                    if org.is_none_or(|o| o.id != u.organization_id) {
                        return Err(Error::denied(format!(
                            "The account for {} is not in the organization Google sign-in \
                             serves; sign in with your password",
                            who.email
                        )));
                    }
                    User::set_google_sub(c, u.id, &who.sub)?;
                    Some(u)
                }
                None => None,
            },
        };
        if let Some(user) = user {
            if user.disabled {
                return Err(Error::denied("This account is disabled"));
            }
            let token = create_session(c, policy, user.id, Some(client_addr), now)?;
            return Ok(SignIn::Session {
                token,
                email: user.email,
            });
        }
        if !cfg.allow_signup {
            return Err(Error::denied(format!(
                "There is no account for {}; ask your organization admin to create one",
                who.email
            )));
        }
        let pending = serde_json::to_string(who).map_err(Error::internal)?;
        let token = create_pending_session(c, &pending, Some(client_addr), now)?;
        Ok(SignIn::GdprNeeded { token })
    })
}

/// `gdpr_registration`: consent creates the user and turns the pending session into a normal
/// one (`Some((token, email))`); `cancel` drops the pending registration (`None`).
pub fn complete_registration(
    conn: &mut DbConn,
    hasher: &PasswordHasher,
    cfg: &GoogleConfig,
    token: &str,
    gdpr1: bool,
    gdpr2: bool,
    cancel: bool,
) -> Result<Option<(String, String)>> {
    db::write_transaction(conn, |c| {
        let session = find_live(c, token)?;
        let Some(pending) = session.gdpr_pending.as_deref() else {
            return Err(Error::invalid(
                "This session has no registration waiting for GDPR consent",
            ));
        };
        if cancel {
            Session::delete(c, session.id)?;
            return Ok(None);
        }
        if !gdpr1 {
            return Err(Error::invalid(
                "gdpr1 must be 'on': consent to processing your email and IP address is required",
            ));
        }
        let who: GoogleIdentity = serde_json::from_str(pending).map_err(Error::internal)?;
        let org = signin_org(c, cfg)?
            .ok_or_else(|| Error::internal("the sign-up organization does not exist"))?;
        let user = create_user(
            c,
            hasher,
            &NewAccount {
                organization_id: org.id,
                email: &who.email,
                password: None,
                firstname: &who.given_name,
                lastname: &who.family_name,
                company: "",
                access_role: crate::db::models::access_role::MEMBER,
                gdpr: if gdpr2 { 3 } else { 1 },
            },
        )?;
        User::set_google_sub(c, user.id, &who.sub)?;
        Session::attach_user(c, session.id, user.id)?;
        Ok(Some((token.to_string(), user.email)))
    })
}
