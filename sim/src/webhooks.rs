//! Webhooks the simulator sends to the platform, signed and retried like Meta's.
//!
//! Every event is wrapped in `{"object":"whatsapp_business_account","entry":[...]}`, signed
//! with `X-Hub-Signature-256: sha256=<hex hmac(app_secret, raw body)>`, and POSTed by a
//! background task. A semaphore bounds concurrent deliveries so a burst of 20k sends cannot
//! open 60k sockets, and nothing on the request path ever waits for a webhook. Non-200
//! answers and transport failures are retried with exponential backoff on a compressed
//! clock (`webhook_retry_base_ms`), up to `webhook_max_attempts`; every attempt is logged
//! so tests can assert on what the platform was sent and how it answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::Sim;

/// Where a number's (or WABA's) webhooks go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookTarget {
    /// Callback URL.
    pub url: String,
    /// App secret used for `X-Hub-Signature-256`.
    pub app_secret: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Unix ms when it was made.
    pub at_ms: i64,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
}

/// One webhook and its delivery history.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Sequence id.
    pub id: u64,
    /// Target URL.
    pub url: String,
    /// `changes[0].field` (`messages`, `message_template_status_update`, ...).
    pub field: String,
    /// Short description (`status:sent wamid...`, `inbound:text`, ...).
    pub summary: String,
    /// Phone number id, if the event concerns one.
    pub number_id: Option<String>,
    /// The JSON body sent.
    pub body: Value,
    /// Attempts so far.
    pub attempts: Vec<Attempt>,
    /// Got a 200.
    pub delivered: bool,
    /// Ran out of attempts.
    pub gave_up: bool,
}

/// The delivery pool and log.
pub struct Dispatcher {
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    log: Mutex<BTreeMap<u64, Delivery>>,
}

impl Dispatcher {
    /// A dispatcher with at most `concurrency` deliveries in flight.
    pub fn new(concurrency: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(concurrency)
            .build()
            .expect("reqwest client");
        Self {
            client,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            next_id: AtomicU64::new(1),
            log: Mutex::new(BTreeMap::new()),
        }
    }

    /// A copy of the log, oldest first.
    pub fn log(&self) -> Vec<Delivery> {
        self.log.lock().values().cloned().collect()
    }

    /// Clears the log.
    pub fn clear(&self) {
        self.log.lock().clear();
    }

    /// Deliveries not yet finished (delivered or given up).
    pub fn pending(&self) -> usize {
        self.log
            .lock()
            .values()
            .filter(|d| !d.delivered && !d.gave_up)
            .count()
    }
}

/// Hex HMAC-SHA256 signature header value for `body`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `{"object":"whatsapp_business_account","entry":[{"id":waba,"changes":[{value,field}]}]}`.
pub fn envelope(waba_id: &str, field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": field}]}]
    })
}

/// Queues a webhook for delivery in the background; returns its log id.
pub fn emit(
    sim: &Sim,
    target: WebhookTarget,
    number_id: Option<String>,
    summary: String,
    body: Value,
) -> u64 {
    let d = &sim.inner.webhooks;
    let id = d.next_id.fetch_add(1, Ordering::Relaxed);
    let field = body["entry"][0]["changes"][0]["field"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let raw = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    d.log.lock().insert(
        id,
        Delivery {
            id,
            url: target.url.clone(),
            field,
            summary,
            number_id,
            body,
            attempts: Vec::new(),
            delivered: false,
            gave_up: false,
        },
    );
    let sim = sim.clone();
    tokio::spawn(async move { deliver(sim, id, target, raw).await });
    id
}

async fn deliver(sim: Sim, id: u64, target: WebhookTarget, raw: Bytes) {
    let signature = sign(&target.app_secret, &raw);
    let (max_attempts, base) = {
        let s = sim.settings();
        (
            s.webhook_max_attempts.max(1),
            Duration::from_millis(s.webhook_retry_base_ms),
        )
    };
    let d = &sim.inner.webhooks;
    for attempt in 0..max_attempts {
        if attempt > 0 {
            let backoff = base.saturating_mul(1u32 << (attempt - 1).min(20));
            tokio::select! {
                _ = sim.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        let result = {
            let Ok(_permit) = d.permits.acquire().await else {
                return;
            };
            d.client
                .post(&target.url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", &signature)
                .header("user-agent", "facebookexternalua")
                .body(raw.clone())
                .send()
                .await
        };
        let (status, error) = match &result {
            Ok(resp) => (Some(resp.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let ok = status == Some(200);
        let mut log = d.log.lock();
        if let Some(entry) = log.get_mut(&id) {
            entry.attempts.push(Attempt {
                at_ms: chrono::Utc::now().timestamp_millis(),
                status,
                error,
            });
            entry.delivered = ok;
            entry.gave_up = !ok && attempt + 1 == max_attempts;
        }
        drop(log);
        if ok {
            return;
        }
        tracing::debug!(id, attempt, ?status, url = %target.url, "webhook delivery failed");
    }
}

/// The `metadata` object of a `messages` change.
pub fn metadata(display_phone_number: &str, number_id: &str) -> Value {
    json!({"display_phone_number": display_phone_number, "phone_number_id": number_id})
}
