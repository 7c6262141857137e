//! Shared state handed to every handler.

use std::{ops::Deref, sync::Arc};

use sqlx::PgPool;
use wharf_shared::{crypto::SecretBox, redis_conn::RedisHandle, Config};

use crate::auth::{jwt::JwtKeys, throttle::LoginThrottle};

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub config: Config,
    pub db: PgPool,
    pub redis: RedisHandle,
    pub jwt: JwtKeys,
    pub login_throttle: LoginThrottle,
    pub secrets: SecretBox,
}

impl AppState {
    pub fn new(config: Config, db: PgPool, redis: RedisHandle) -> Self {
        let jwt = JwtKeys::new(config.jwt_secret.expose().as_bytes());
        let login_throttle = LoginThrottle::new(
            config.login_attempts_per_email_per_minute,
            config.login_attempts_per_ip_per_minute,
        );
        let secrets = SecretBox::new(config.secret_key.expose());
        Self(Arc::new(AppStateInner {
            config,
            db,
            redis,
            jwt,
            login_throttle,
            secrets,
        }))
    }
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
