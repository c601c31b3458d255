//! Configuration: `config/default.toml` (compiled in), an optional file named by
//! `PRINTFARM_CONFIG`, then `PRINTFARM_<SECTION>__<KEY>` variables and `DATABASE_URL`.

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub bootstrap: BootstrapConfig,
    pub google: GoogleConfig,
    pub printers: PrintersConfig,
    pub slicer: SlicerConfig,
    pub v1: V1Config,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsConfig {
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct V1Config {
    pub quote_wait_secs: u64,
    pub quotes_per_month: i64,
    pub storage_limit_mb: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlicerConfig {
    pub prusa_slicer: String,
    pub max_concurrent: usize,
    pub time_limit_secs: u64,
    pub cpu_limit_secs: u64,
    pub memory_limit_mb: u64,
    pub max_output_mb: u64,
    pub lease_secs: u64,
    pub in_process_workers: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PrintersConfig {
    pub registration_code_minutes: i64,
    pub offline_after_secs: i64,
    pub long_poll_max_secs: u64,
    pub camera_token_secs: i64,
    pub camera_watch_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerConfig {
    pub bind: String,
    pub public_url: String,
    pub workers: usize,
    pub max_form_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
    /// Requests that may wait for a connection before the next is refused (503); 0 = default.
    pub max_waiting: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    pub session_idle_minutes: i64,
    pub session_max_days: i64,
    pub throttle_window_secs: i64,
    pub throttle_max_per_account: i64,
    pub throttle_max_per_address: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub invitation_hours: i64,
    pub login_token_minutes: i64,
    pub login_token_hold_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoogleConfig {
    pub client_ids: Vec<String>,
    pub jwks_url: String,
    pub issuers: Vec<String>,
    pub leeway_secs: u64,
    pub allow_signup: bool,
    pub signup_organization_id: i64,
    pub hosted_domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageConfig {
    pub backend: String,
    pub files_dir: String,
    pub staging_dir: String,
    pub max_upload_mb: u64,
    pub max_unzipped_mb: u64,
    pub max_before_session_mb: u64,
    pub staging_max_age_secs: u64,
    pub orphan_grace_secs: u64,
    pub reconcile_every_secs: u64,
    pub s3_bucket: String,
    pub s3_endpoint: String,
    pub s3_region: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapConfig {
    pub organization: String,
    pub admin_email: String,
}

impl Config {
    /// Loads the layered configuration from the process environment.
    pub fn load() -> Result<Config, config::ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(&env)
    }

    /// Same as `load`, with the environment given explicitly (tests).
    pub fn load_from(env: &[(String, String)]) -> Result<Config, config::ConfigError> {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = get("PRINTFARM_CONFIG") {
            builder = builder.add_source(config::File::with_name(&path).required(true));
        }
        let vars: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("PRINTFARM_") && k != "PRINTFARM_CONFIG")
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("PRINTFARM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("google.client_ids")
                .with_list_parse_key("google.issuers")
                .with_list_parse_key("google.hosted_domains")
                .source(Some(vars)),
        );
        if let Some(url) = get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder.set_override("database.url", url)?;
        }
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), config::ConfigError> {
        let bad = |m: &str| Err(config::ConfigError::Message(m.to_string()));
        if self.auth.session_idle_minutes <= 0 {
            return bad("auth.session_idle_minutes must be positive");
        }
        if self.auth.throttle_max_per_account <= 0 || self.auth.throttle_max_per_address <= 0 {
            return bad("auth.throttle_max_* must be positive");
        }
        if self.slicer.lease_secs < 3 {
            return bad("slicer.lease_secs must be at least 3");
        }
        // Slicers give each login_with_token request 60 s.
        if self.auth.login_token_hold_secs >= 60 {
            return bad("auth.login_token_hold_secs must be below 60");
        }
        if !matches!(self.storage.backend.as_str(), "local" | "s3") {
            return bad("storage.backend must be \"local\" or \"s3\"");
        }
        if self.storage.backend == "s3" && self.storage.s3_bucket.is_empty() {
            return bad("storage.s3_bucket is required with storage.backend = \"s3\"");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format must be \"text\" or \"json\"");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_from(&[]).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.database.url, "data/printfarm.db");
    }

    #[test]
    fn env_overrides_and_database_url() {
        let c = Config::load_from(&env(&[
            ("PRINTFARM_SERVER__BIND", "0.0.0.0:9000"),
            ("PRINTFARM_AUTH__THROTTLE_MAX_PER_ACCOUNT", "3"),
            ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
        ]))
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.auth.throttle_max_per_account, 3);
        assert_eq!(c.database.url, "postgres://x@127.0.0.1/db");
        let c =
            Config::load_from(&env(&[("PRINTFARM_GOOGLE__CLIENT_IDS", "a.apps,b.apps")])).unwrap();
        assert_eq!(c.google.client_ids, vec!["a.apps", "b.apps"]);
        assert_eq!(c.google.issuers.len(), 2);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(Config::load_from(&env(&[("PRINTFARM_LOG__FORMAT", "xml")])).is_err());
        assert!(
            Config::load_from(&env(&[("PRINTFARM_AUTH__SESSION_IDLE_MINUTES", "abc")])).is_err()
        );
    }
}
