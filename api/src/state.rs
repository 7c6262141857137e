//! Shared state handed to every handler.

use std::{ops::Deref, sync::Arc};

use sqlx::PgPool;
use wharf_shared::{
    crypto::SecretBox, events::EventPublisher, llm::LlmClient, redis_conn::RedisHandle, Config,
};

use crate::{
    auth::{jwt::JwtKeys, throttle::LoginThrottle},
    live::EventHub,
    webhook_ingest::WebhookIngest,
};

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub config: Config,
    pub db: PgPool,
    pub redis: RedisHandle,
    pub jwt: JwtKeys,
    pub login_throttle: LoginThrottle,
    pub secrets: SecretBox,
    /// Group-commits Meta webhooks: its batchers run as long as this state lives.
    pub webhook_ingest: WebhookIngest,
    /// Publishes live events (new messages, assignments) for every replica's streams.
    pub events: EventPublisher,
    /// This replica's subscription to live events, feeding `GET /api/v1/events`.
    pub live: EventHub,
    /// The LLM providers (bot tests, key checks), within each organization's limits.
    pub llm: LlmClient,
}

impl AppState {
    /// Must run inside a tokio runtime: it starts the webhook ingestion batchers.
    pub fn new(config: Config, db: PgPool, redis: RedisHandle) -> Self {
        let jwt = JwtKeys::new(config.jwt_secret.expose().as_bytes());
        let login_throttle = LoginThrottle::new(
            config.login_attempts_per_email_per_minute,
            config.login_attempts_per_ip_per_minute,
        );
        let secrets = SecretBox::new(config.secret_key.expose());
        let webhook_ingest = WebhookIngest::start(db.clone());
        let events = EventPublisher::new(redis.clone(), &config.redis_prefix);
        let live = EventHub::new(&config);
        let llm = LlmClient::from_config(&config, redis.clone());
        Self(Arc::new(AppStateInner {
            config,
            db,
            redis,
            jwt,
            login_throttle,
            secrets,
            webhook_ingest,
            events,
            live,
            llm,
        }))
    }
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
