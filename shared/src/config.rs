//! Process configuration from environment variables (and a `.env` file in development).
//!
//! Every variable has a working local default so `./dev up` runs on a fresh machine. In
//! production (`WHARF_ENV=production`) the secrets have no default: a missing one stops start-up
//! with a message naming it, because a platform that silently signs tokens with a dev key is
//! worse than one that does not start.

use std::{env, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use base64::{engine::general_purpose::STANDARD as B64, Engine};

use crate::Secret;

/// Development key material. Only ever used outside production, always with a warning.
const DEV_JWT_SECRET: &str = "wharf-dev-jwt-secret-change-me";
const DEV_VERIFY_TOKEN: &str = "wharf-dev-verify-token";
const DEV_APP_SECRET: &str = "wharf-dev-app-secret";
/// "wharf-dev-secret-key-32-bytes!!!", base64. Only for development.
const DEV_SECRET_KEY: &str = "d2hhcmYtZGV2LXNlY3JldC1rZXktMzItYnl0ZXMhISE=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub database_url: Secret<String>,
    /// Connections of the api's pool (`DATABASE_POOL_SIZE`).
    pub database_pool_size: u32,
    /// `None` when `REDIS_URL=none`: everything runs on one machine with process-local limits.
    pub redis_url: Option<Secret<String>>,
    /// Prefix for every Redis key, so tests (and several deployments) can share one Redis.
    pub redis_prefix: String,
    pub api_addr: SocketAddr,
    pub meta_graph_url: String,
    pub meta_api_version: String,
    /// How long one Graph API call may take before it counts as timed out.
    pub meta_timeout: Duration,
    pub meta_app_id: Option<String>,
    /// Signs the platform app's webhooks (`X-Hub-Signature-256`) and authenticates
    /// Embedded Signup code exchanges.
    pub meta_app_secret: Secret<String>,
    pub meta_verify_token: Secret<String>,
    pub public_url: String,
    /// 32-byte key encrypting secrets at rest (AES-256-GCM).
    pub secret_key: Secret<[u8; 32]>,
    pub jwt_secret: Secret<String>,
    pub super_admin_email: Option<String>,
    pub super_admin_password: Option<Secret<String>>,
    pub sim_addr: SocketAddr,
    pub blob_dir: PathBuf,
    pub log_format: LogFormat,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Login attempts allowed per email per minute (burst = the same number).
    pub login_attempts_per_email_per_minute: u32,
    /// Login attempts allowed per client address per minute.
    pub login_attempts_per_ip_per_minute: u32,
    /// LLM provider origins (`LLM_OPENAI_URL`, …): scheme, host and optional prefix, no API
    /// path. `./dev up` points all five at the simulator.
    pub llm_openai_url: String,
    pub llm_anthropic_url: String,
    pub llm_google_url: String,
    pub llm_deepseek_url: String,
    pub llm_kimi_url: String,
    /// How long one LLM attempt may take (`LLM_TIMEOUT_SECS`).
    pub llm_timeout: Duration,
    /// Model calls per minute per organization and provider (`LLM_REQUESTS_PER_MINUTE`).
    pub llm_requests_per_minute: u32,
    /// Estimated tokens per minute per organization and provider (`LLM_TOKENS_PER_MINUTE`).
    pub llm_tokens_per_minute: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} must be set when WHARF_ENV=production ({hint})")]
    MissingSecret {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads `.env` (if present, development convenience) and then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the configuration from any variable source; tests pass a map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let environment = match get("WHARF_ENV").as_deref() {
            Some("production") | Some("prod") => Environment::Production,
            _ => Environment::Development,
        };
        let production = environment == Environment::Production;

        let secret =
            |name: &'static str, hint: &'static str, dev: &str| -> Result<String, ConfigError> {
                match get(name) {
                    Some(v) => Ok(v),
                    None if production => Err(ConfigError::MissingSecret { name, hint }),
                    None => {
                        warn_dev_default_once(name);
                        Ok(dev.to_string())
                    }
                }
            };

        let jwt_secret = secret(
            "JWT_SECRET",
            "a long random string signing access tokens",
            DEV_JWT_SECRET,
        )?;
        if production && jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: "must be at least 32 characters in production".into(),
            });
        }
        let secret_key_b64 = secret(
            "WHARF_SECRET_KEY",
            "32 random bytes, base64 (openssl rand -base64 32)",
            DEV_SECRET_KEY,
        )?;
        let secret_key = decode_key(&secret_key_b64)?;
        let meta_verify_token = secret(
            "META_VERIFY_TOKEN",
            "the token Meta echoes in the webhook GET challenge",
            DEV_VERIFY_TOKEN,
        )?;
        let meta_app_secret = secret(
            "META_APP_SECRET",
            "the Meta app secret that signs webhooks (X-Hub-Signature-256)",
            DEV_APP_SECRET,
        )?;

        let redis_url = match get("REDIS_URL").as_deref() {
            Some("none") | Some("off") => None,
            Some(url) => Some(Secret::new(url.to_string())),
            None => Some(Secret::new("redis://127.0.0.1:6379".to_string())),
        };

        let log_format = match get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") | Some("text") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    reason: format!("expected json or pretty, got {other:?}"),
                })
            }
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
        };

        Ok(Self {
            environment,
            database_url: Secret::new(
                get("DATABASE_URL")
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/wharf".into()),
            ),
            database_pool_size: parse_or("DATABASE_POOL_SIZE", get("DATABASE_POOL_SIZE"), "20")?,
            redis_url,
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| "wharf".into()),
            api_addr: parse_or("API_ADDR", get("API_ADDR"), "127.0.0.1:8080")?,
            meta_graph_url: get("META_GRAPH_URL")
                .unwrap_or_else(|| "https://graph.facebook.com".into())
                .trim_end_matches('/')
                .to_string(),
            meta_api_version: get("META_API_VERSION").unwrap_or_else(|| "v23.0".into()),
            meta_timeout: Duration::from_millis(parse_or(
                "META_TIMEOUT_MS",
                get("META_TIMEOUT_MS"),
                "30000",
            )?),
            meta_app_id: get("META_APP_ID"),
            meta_app_secret: Secret::new(meta_app_secret),
            meta_verify_token: Secret::new(meta_verify_token),
            public_url: get("PUBLIC_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_string(),
            secret_key: Secret::new(secret_key),
            jwt_secret: Secret::new(jwt_secret),
            super_admin_email: get("SUPER_ADMIN_EMAIL"),
            super_admin_password: get("SUPER_ADMIN_PASSWORD").map(Secret::new),
            sim_addr: parse_or("SIM_ADDR", get("SIM_ADDR"), "127.0.0.1:8090")?,
            blob_dir: PathBuf::from(get("BLOB_DIR").unwrap_or_else(|| "./data/blobs".into())),
            log_format,
            access_token_ttl: Duration::from_secs(parse_or(
                "ACCESS_TOKEN_TTL_SECS",
                get("ACCESS_TOKEN_TTL_SECS"),
                "900",
            )?),
            refresh_token_ttl: Duration::from_secs(parse_or(
                "REFRESH_TOKEN_TTL_SECS",
                get("REFRESH_TOKEN_TTL_SECS"),
                "2592000",
            )?),
            login_attempts_per_email_per_minute: parse_or(
                "LOGIN_ATTEMPTS_PER_EMAIL_PER_MINUTE",
                get("LOGIN_ATTEMPTS_PER_EMAIL_PER_MINUTE"),
                "5",
            )?,
            login_attempts_per_ip_per_minute: parse_or(
                "LOGIN_ATTEMPTS_PER_IP_PER_MINUTE",
                get("LOGIN_ATTEMPTS_PER_IP_PER_MINUTE"),
                "30",
            )?,
            llm_openai_url: url_or(get("LLM_OPENAI_URL"), "https://api.openai.com"),
            llm_anthropic_url: url_or(get("LLM_ANTHROPIC_URL"), "https://api.anthropic.com"),
            llm_google_url: url_or(
                get("LLM_GOOGLE_URL"),
                "https://generativelanguage.googleapis.com",
            ),
            llm_deepseek_url: url_or(get("LLM_DEEPSEEK_URL"), "https://api.deepseek.com"),
            llm_kimi_url: url_or(get("LLM_KIMI_URL"), "https://api.moonshot.ai"),
            llm_timeout: Duration::from_secs(parse_or(
                "LLM_TIMEOUT_SECS",
                get("LLM_TIMEOUT_SECS"),
                "60",
            )?),
            llm_requests_per_minute: parse_or(
                "LLM_REQUESTS_PER_MINUTE",
                get("LLM_REQUESTS_PER_MINUTE"),
                "500",
            )?,
            llm_tokens_per_minute: parse_or(
                "LLM_TOKENS_PER_MINUTE",
                get("LLM_TOKENS_PER_MINUTE"),
                "200000",
            )?,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

fn decode_key(b64: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = B64.decode(b64.trim()).map_err(|e| ConfigError::Invalid {
        name: "WHARF_SECRET_KEY",
        reason: format!("not valid base64: {e}"),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| ConfigError::Invalid {
        name: "WHARF_SECRET_KEY",
        reason: format!("must decode to 32 bytes, got {}", b.len()),
    })
}

/// A base URL without its trailing slash (paths are appended to it).
fn url_or(value: Option<String>, default: &str) -> String {
    value
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// Parses a variable or its default. Shared by every process's own settings.
pub fn parse_or<T: FromStr>(
    name: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = value.unwrap_or_else(|| default.to_string());
    raw.trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: format!("{raw:?}: {e}"),
        })
}

/// Warns that `name` runs on its development default, once per process however often the
/// configuration is read.
fn warn_dev_default_once(name: &'static str) {
    static WARNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&name) {
        warned.push(name);
        tracing::warn!(variable = name, "not set; using the development default");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn development_has_a_default_for_everything() {
        let cfg = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(cfg.api_addr.to_string(), "127.0.0.1:8080");
        assert!(cfg.redis_url.is_some());
        assert_eq!(cfg.log_format, LogFormat::Pretty);
        assert_eq!(cfg.llm_openai_url, "https://api.openai.com");
        assert_eq!(cfg.llm_kimi_url, "https://api.moonshot.ai");
        assert_eq!(cfg.llm_timeout, Duration::from_secs(60));
        assert_eq!(cfg.llm_requests_per_minute, 500);
        assert_eq!(cfg.llm_tokens_per_minute, 200_000);
    }

    #[test]
    fn production_refuses_to_start_without_secrets() {
        let err = Config::from_lookup(lookup(&[("WHARF_ENV", "production")])).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn production_names_each_missing_secret() {
        let err = Config::from_lookup(lookup(&[
            ("WHARF_ENV", "production"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("WHARF_SECRET_KEY"), "{err}");
    }

    #[test]
    fn redis_can_be_switched_off() {
        let cfg = Config::from_lookup(lookup(&[("REDIS_URL", "none")])).unwrap();
        assert!(cfg.redis_url.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_lookup(lookup(&[("API_ADDR", "nope")])).unwrap_err();
        assert!(err.to_string().contains("API_ADDR"));
    }
}
