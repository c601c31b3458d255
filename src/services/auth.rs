//! Secrets: Argon2id password hashes, random tokens, and the hashes tokens are stored as.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A real hash of a random password, verified when the user does not exist so that
    /// unknown accounts take as long to refuse as wrong passwords. Made at the first such
    /// sign-in, not at start: a hash holds `argon2_memory_kib` of memory while it runs, which
    /// the allocator may keep for the life of an idle server.
    dummy_hash: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl PasswordHasher {
    pub fn new(cfg: &AuthConfig) -> Result<Self> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| Error::internal(format!("invalid argon2 parameters: {e}")))?;
        let hasher = PasswordHasher {
            params,
            dummy_hash: Default::default(),
        };
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub fn hash(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(Error::internal)?;
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::internal)
    }

    /// Verifies against the stored hash (its own parameters apply), or burns the same time
    /// against the dummy hash when there is none.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let dummy = || {
            self.dummy_hash.get_or_init(|| {
                // Hashing a random password with valid parameters cannot fail; were it to,
                // the empty hash below refuses the sign-in all the same.
                self.hash(&random_password()).unwrap_or_default()
            })
        };
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (dummy().as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    }
}

/// 256 random bits, hex encoded: session, invitation and API tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `token` has the shape of [`random_token`]'s output (64 hex digits): anything else
/// names nothing we handed out, and need not reach the database.
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares a presented secret with the expected one in constant time.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Tokens are stored only as this hash; a database leak does not hand out live sessions.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A one-time password for new accounts created from the command line or at first start.
pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

pub const MIN_PASSWORD_LEN: usize = 8;

pub fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        let mut cfg = crate::config::Config::load_from(&[]).unwrap().auth;
        cfg.argon2_memory_kib = 1024;
        cfg.argon2_iterations = 1;
        PasswordHasher::new(&cfg).unwrap()
    }

    #[test]
    fn hash_and_verify() {
        let h = cheap();
        let stored = h.hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", Some(&stored)));
        assert!(!h.verify("wrong horse", Some(&stored)));
        assert!(!h.verify("correct horse", None));
        assert!(!h.verify("x", Some("not a hash")));
    }

    #[test]
    fn tokens_are_256_bit_and_hashed() {
        let t = random_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_token());
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), t);
    }
}
