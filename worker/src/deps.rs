//! What domain job handlers need besides the pool the runtime hands them: the Meta client,
//! the key that decrypts account secrets, and where blobs go. Built once per process from the
//! shared configuration and captured by the handler closures.

use std::{path::PathBuf, sync::Arc};

use crate::send_ledger::SendLedger;

use wharf_shared::{
    crypto::SecretBox, events::EventPublisher, llm::LlmClient, meta::MetaClient,
    ratelimit::SendLimiter, redis_conn::RedisHandle, Config,
};

#[derive(Clone)]
pub struct WorkerDeps(Arc<Inner>);

pub struct Inner {
    pub meta: MetaClient,
    pub secrets: SecretBox,
    pub blob_dir: PathBuf,
    /// Meta's per-number and per-recipient send limits, shared by all workers through Redis.
    pub limiter: SendLimiter,
    /// Group commit of the send path's writes (one per process).
    pub ledger: SendLedger,
    /// Live events for agents' screens (new messages, statuses, assignments).
    pub events: EventPublisher,
    /// The LLM providers, within each organization's limits.
    pub llm: LlmClient,
}

impl WorkerDeps {
    pub fn from_config(config: &Config) -> Self {
        let redis = RedisHandle::connect_in_background(config);
        Self(Arc::new(Inner {
            meta: MetaClient::from_config(config),
            secrets: SecretBox::new(config.secret_key.expose()),
            blob_dir: config.blob_dir.clone(),
            limiter: SendLimiter::new(redis.clone(), &config.redis_prefix, worker_replicas()),
            ledger: SendLedger::default(),
            events: EventPublisher::new(redis.clone(), &config.redis_prefix),
            llm: LlmClient::from_config(config, redis),
        }))
    }
}

/// How many worker processes share Meta's limits (`WORKER_REPLICAS`, default 1): when Redis is
/// unreachable each process falls back to its share of every limit.
fn worker_replicas() -> u32 {
    std::env::var("WORKER_REPLICAS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
        .max(1)
}

impl std::ops::Deref for WorkerDeps {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
