//! The api replica's side of live events (`wharf_shared::events`): one Redis pattern
//! subscription per process, fanned out to every open `GET /api/v1/events` stream through a
//! broadcast channel. The subscription starts with the first stream and ends when the last
//! one closes, so a replica nobody watches holds no Redis connection.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use wharf_shared::{
    events::{channel_pattern, Event},
    Config,
};

/// Events buffered per stream before a slow client misses some (it is told so).
const BUFFER: usize = 1024;
/// How often an idle subscription checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct EventHub(Arc<Inner>);

struct Inner {
    client: Option<redis::Client>,
    pattern: String,
    tx: broadcast::Sender<Arc<Event>>,
    /// Whether the subscription task runs (guarded, so start and stop never race).
    running: Mutex<bool>,
    /// `true` while the Redis subscription is established.
    subscribed: watch::Sender<bool>,
}

impl EventHub {
    pub fn new(config: &Config) -> Self {
        let client = config
            .redis_url
            .as_ref()
            .and_then(|url| redis::Client::open(url.expose().as_str()).ok());
        Self(Arc::new(Inner {
            client,
            pattern: channel_pattern(&config.redis_prefix),
            tx: broadcast::channel(BUFFER).0,
            running: Mutex::new(false),
            subscribed: watch::channel(false).0,
        }))
    }

    /// A receiver of every organization's events, once the subscription is up (waits up to
    /// `wait`); `None` without Redis or when it cannot be reached.
    pub async fn subscribe(&self, wait: Duration) -> Option<broadcast::Receiver<Arc<Event>>> {
        self.0.client.as_ref()?;
        let rx = {
            let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
            let rx = self.0.tx.subscribe();
            if !*running {
                *running = true;
                tokio::spawn(run(self.0.clone()));
            }
            rx
        };
        let mut subscribed = self.0.subscribed.subscribe();
        tokio::time::timeout(wait, subscribed.wait_for(|up| *up))
            .await
            .ok()?
            .ok()?;
        Some(rx)
    }
}

/// Stops the task when nobody listens; `true` when it stopped.
fn stop_if_unwatched(hub: &Inner) -> bool {
    let mut running = hub.running.lock().unwrap_or_else(|e| e.into_inner());
    if hub.tx.receiver_count() == 0 {
        *running = false;
        hub.subscribed.send_replace(false);
        return true;
    }
    false
}

async fn run(hub: Arc<Inner>) {
    let Some(client) = hub.client.clone() else {
        return;
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = tokio::time::timeout(Duration::from_secs(3), async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&hub.pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(mut pubsub)) = connected {
            delay = Duration::from_millis(100);
            hub.subscribed.send_replace(true);
            let mut messages = pubsub.on_message();
            let mut idle = tokio::time::interval(IDLE_CHECK);
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let payload: String = message.get_payload().unwrap_or_default();
                        match serde_json::from_str::<Event>(&payload) {
                            Ok(event) => { let _ = hub.tx.send(Arc::new(event)); }
                            Err(e) => tracing::debug!(error = %e, "unreadable live event ignored"),
                        }
                    }
                    _ = idle.tick() => {
                        if stop_if_unwatched(&hub) {
                            return;
                        }
                    }
                }
            }
            hub.subscribed.send_replace(false);
            tracing::warn!("live events: Redis subscription lost; reconnecting");
        }
        if stop_if_unwatched(&hub) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
