//! Redis connection (optional). Shared rate-limit state and pub/sub live here; without Redis
//! the platform runs on one machine with process-local limiters.
//!
//! [`RedisHandle`] connects in the background and keeps retrying, so a process started while
//! Redis is down picks it up once it comes back instead of running degraded until a restart.

use std::{sync::Arc, time::Duration};

use redis::aio::ConnectionManager;
use tokio::sync::RwLock;

use crate::Config;

#[derive(Clone, Default)]
pub struct RedisHandle {
    /// `false` when REDIS_URL=none: callers use process-local state on purpose.
    configured: bool,
    conn: Arc<RwLock<Option<ConnectionManager>>>,
}

impl RedisHandle {
    /// A handle for a process without Redis.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Connects when configured; on failure retries every few seconds in the background.
    pub async fn connect(config: &Config) -> Self {
        let Some(url) = config.redis_url.as_ref() else {
            tracing::warn!(
                "REDIS_URL=none: rate limits are process-local; scaling out needs Redis"
            );
            return Self::disabled();
        };
        let client = match redis::Client::open(url.expose().as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL is invalid; running without Redis");
                return Self::disabled();
            }
        };
        let handle = Self {
            configured: true,
            conn: Arc::new(RwLock::new(None)),
        };
        // Bounded: start-up never waits long on an unreachable Redis.
        match tokio::time::timeout(Duration::from_secs(3), open(&client)).await {
            Ok(Ok(conn)) => *handle.conn.write().await = Some(conn),
            result => {
                let e = match result {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                tracing::warn!(error = %e, "Redis unreachable at start-up; retrying in the background");
                let slot = handle.conn.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        if let Ok(Ok(conn)) =
                            tokio::time::timeout(Duration::from_secs(3), open(&client)).await
                        {
                            tracing::info!("connected to Redis");
                            *slot.write().await = Some(conn);
                            break;
                        }
                    }
                });
            }
        }
        handle
    }

    /// Like [`Self::connect`] without waiting: connects (and keeps retrying) in the background.
    /// Must be called inside a tokio runtime. Until connected, callers see no connection and
    /// use their process-local fallbacks.
    pub fn connect_in_background(config: &Config) -> Self {
        let Some(url) = config.redis_url.as_ref() else {
            return Self::disabled();
        };
        let Ok(client) = redis::Client::open(url.expose().as_str()) else {
            tracing::error!("REDIS_URL is invalid; running without Redis");
            return Self::disabled();
        };
        let handle = Self {
            configured: true,
            conn: Arc::new(RwLock::new(None)),
        };
        let slot = handle.conn.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(50);
            loop {
                if let Ok(Ok(conn)) =
                    tokio::time::timeout(Duration::from_secs(3), open(&client)).await
                {
                    *slot.write().await = Some(conn);
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
        });
        handle
    }

    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// A connection when Redis is configured and has been reached. Cheap to clone.
    pub async fn get(&self) -> Option<ConnectionManager> {
        self.conn.read().await.clone()
    }

    /// True when Redis answers PING within two seconds.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.get().await else {
            return false;
        };
        matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                redis::cmd("PING").query_async::<String>(&mut conn)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

async fn open(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client.clone(), cfg).await
}
