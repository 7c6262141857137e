//! The simulator's in-memory world: WABAs, phone numbers, tokens, templates, media, what
//! was received, and run-time settings.
//!
//! Locking is deliberately fine-grained so the send path scales: the maps of objects sit
//! behind `RwLock`s that are only *read* on a request (clone an `Arc`, drop the guard), and
//! each phone number owns its own small `Mutex`es (throughput bucket, per-recipient state,
//! counters). No lock is ever held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::errors::{GraphError, GraphResult};
use crate::faults::Faults;
use crate::limits::{Gcra, RollingBudget};
use crate::webhooks::{Dispatcher, WebhookTarget};
use crate::SimConfig;

/// Meta throughput levels.
pub fn throughput_mps(level: &str) -> f64 {
    match level {
        "HIGH" => 1000.0,
        "COEXISTENCE" => 20.0,
        _ => 80.0,
    }
}

/// How free-form sends outside the 24 h window fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// Synchronous `131047` error (HTTP 400).
    #[default]
    Sync,
    /// HTTP 200 + wamid, then a `failed` status webhook carrying 131047.
    Async,
    /// No window enforcement.
    Off,
}

/// Which status webhooks follow an accepted send, and when (milliseconds after accept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatusPlan {
    /// Delay before `sent`; `None` skips it.
    pub sent_ms: Option<u64>,
    /// Delay before `delivered`; `None` skips it.
    pub delivered_ms: Option<u64>,
    /// Delay before `read`; `None` skips it.
    pub read_ms: Option<u64>,
    /// Deliver the statuses in random order.
    pub shuffle: bool,
    /// Deliver every status twice.
    pub duplicate: bool,
}

impl Default for StatusPlan {
    fn default() -> Self {
        Self {
            sent_ms: Some(50),
            delivered_ms: Some(100),
            read_ms: Some(150),
            shuffle: false,
            duplicate: false,
        }
    }
}

/// Run-time settings (all adjustable through the control API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Lifetime of media download URLs.
    pub media_url_ttl_ms: u64,
    /// Attempts per webhook before giving up.
    pub webhook_max_attempts: u32,
    /// Base of the exponential webhook retry backoff.
    pub webhook_retry_base_ms: u64,
    /// Default window enforcement (numbers may override).
    pub window_mode: WindowMode,
    /// Keep the raw request body of each received message.
    pub record_raw_bodies: bool,
    /// Default status plan for numbers without their own.
    pub status_plan: StatusPlan,
    /// Latency added to every Graph request.
    pub default_latency_ms: u64,
    /// Management calls per hour per WABA for new WABAs.
    pub default_management_budget: u32,
    /// App secret used to sign webhooks when a target has none of its own.
    pub default_app_secret: String,
    /// If set, `oauth/access_token` checks `client_id` / `client_secret` against these.
    pub app_id: Option<String>,
    /// See `app_id`.
    pub app_secret: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            media_url_ttl_ms: 5 * 60 * 1000,
            webhook_max_attempts: 8,
            webhook_retry_base_ms: 1000,
            window_mode: WindowMode::Sync,
            record_raw_bodies: true,
            status_plan: StatusPlan::default(),
            default_latency_ms: 0,
            default_management_budget: 200,
            default_app_secret: "sim-app-secret".into(),
            app_id: None,
            app_secret: None,
        }
    }
}

/// An access token known to the simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token string.
    pub token: String,
    /// WABAs it may act on; `None` = all.
    pub wabas: Option<Vec<String>>,
    /// Unix seconds after which it is expired.
    pub expires_at: Option<i64>,
    /// Revoked tokens fail with 190/460.
    pub revoked: bool,
}

/// A message template in a WABA.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Numeric id.
    pub id: String,
    /// `^[a-z0-9_]+$`.
    pub name: String,
    /// e.g. `en_US`.
    pub language: String,
    /// MARKETING | UTILITY | AUTHENTICATION.
    pub category: String,
    /// APPROVED | PENDING | REJECTED | PAUSED | DISABLED | ...
    pub status: String,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: String,
    /// Components as Meta stores them (`HEADER`, `BODY`, `FOOTER`, `BUTTONS`).
    pub components: Value,
    /// GREEN | YELLOW | RED | UNKNOWN.
    pub quality_score: String,
    /// Rejection reason (`NONE` unless rejected).
    pub rejected_reason: String,
}

impl Template {
    /// The template as Graph returns it, restricted to `fields` when given.
    pub fn to_json(&self, fields: Option<&[String]>) -> Value {
        let full = serde_json::json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
            "quality_score": {"score": self.quality_score, "date": chrono::Utc::now().timestamp()},
            "rejected_reason": self.rejected_reason,
        });
        match fields {
            None => {
                let mut v = full;
                if let Some(o) = v.as_object_mut() {
                    o.remove("quality_score");
                    o.remove("rejected_reason");
                }
                v
            }
            Some(fields) => pick_fields(&full, fields),
        }
    }
}

/// Keeps only `fields` (plus `id`, which Graph always returns) of a JSON object.
pub fn pick_fields(full: &Value, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(obj) = full.as_object() {
        for f in fields {
            if let Some(v) = obj.get(f.as_str()) {
                out.insert(f.clone(), v.clone());
            }
        }
        if let Some(id) = obj.get("id") {
            out.insert("id".into(), id.clone());
        }
    }
    Value::Object(out)
}

/// Mutable part of a WABA.
#[derive(Debug)]
pub struct WabaState {
    /// Display name.
    pub name: String,
    /// Currency for analytics.
    pub currency: String,
    /// Templates ordered by id (ids increase, so this is creation order).
    pub templates: Vec<Template>,
    /// Management call budget (→ 80008).
    pub budget: RollingBudget,
    /// Webhook target for numbers without their own.
    pub webhook: Option<WebhookTarget>,
    /// Apps subscribed via `POST /{waba}/subscribed_apps`.
    pub subscribed: Option<Value>,
    /// Approve created templates right away (and emit the webhook).
    pub auto_approve_templates: bool,
    /// Phone number ids in this WABA, in creation order.
    pub numbers: Vec<String>,
}

/// A WhatsApp Business Account.
#[derive(Debug)]
pub struct Waba {
    /// Numeric id.
    pub id: String,
    /// Lock-protected state.
    pub state: Mutex<WabaState>,
}

/// Static-ish configuration of a phone number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberConfig {
    /// Display number (digits).
    pub display_phone_number: String,
    /// Verified business name.
    pub verified_name: String,
    /// GREEN | YELLOW | RED | NA.
    pub quality_rating: String,
    /// STANDARD | HIGH | COEXISTENCE | NOT_APPLICABLE.
    pub throughput_level: String,
    /// Effective messages/s (inbound + outbound).
    pub mps: f64,
    /// Burst of the throughput bucket (cells); defaults to one second's worth.
    pub burst: u32,
    /// TIER_250 .. TIER_UNLIMITED.
    pub messaging_limit: String,
    /// Registration PIN.
    pub pin: String,
    /// Registered with Cloud API (sends otherwise fail 133010).
    pub registered: bool,
    /// Coexistence (Business app) number.
    pub coexistence: bool,
    /// CONNECTED, ...
    pub status: String,
    /// APPROVED, ...
    pub name_status: String,
    /// Own webhook target (else the WABA's).
    pub webhook: Option<WebhookTarget>,
    /// Own status plan (else the global one).
    pub status_plan: Option<StatusPlan>,
    /// Own window mode (else the global one).
    pub window_mode: Option<WindowMode>,
}

/// Per-recipient state of a number.
#[derive(Debug)]
pub struct Peer {
    /// Pair limiter (burst 45, 1 per 6 s).
    pub pair: Gcra,
    /// Unix seconds of the last inbound message (opens the 24 h window).
    pub last_inbound: Option<i64>,
}

/// Counters per number.
#[derive(Debug, Default, Clone, Serialize)]
pub struct NumberStats {
    /// Accepted outbound sends.
    pub accepted: u64,
    /// Rejected sends per error code.
    pub errors: BTreeMap<u32, u64>,
    /// Inbound customer messages.
    pub inbound: u64,
    /// Requests answered by a transport fault (injected 5xx, drop, timeout).
    pub faulted: u64,
    /// Unix ms of the first accepted send.
    pub first_accepted_ms: Option<i64>,
    /// Unix ms of the last accepted send.
    pub last_accepted_ms: Option<i64>,
    #[serde(skip)]
    first_instant: Option<Instant>,
    #[serde(skip)]
    last_instant: Option<Instant>,
}

impl NumberStats {
    /// Accepted sends per second between the first and last accepted send.
    pub fn achieved_rate(&self) -> Option<f64> {
        let (a, b) = (self.first_instant?, self.last_instant?);
        let secs = b.duration_since(a).as_secs_f64();
        (self.accepted > 1 && secs > 0.0).then(|| (self.accepted - 1) as f64 / secs)
    }
}

/// A business phone number.
#[derive(Debug)]
pub struct Number {
    /// Phone number id.
    pub id: String,
    /// Owning WABA.
    pub waba_id: String,
    /// Configuration.
    pub config: RwLock<NumberConfig>,
    /// Throughput limiter (inbound + outbound).
    pub throughput: Mutex<Gcra>,
    /// Recipient state by wa_id.
    pub peers: Mutex<HashMap<String, Peer>>,
    /// Inbound wamids (for read receipts): wamid → (from, unix secs).
    pub inbound_ids: Mutex<HashMap<String, (String, i64)>>,
    /// Counters.
    pub stats: Mutex<NumberStats>,
    /// Pair limiter parameters (tests may shrink them).
    pub pair_params: RwLock<(Duration, u32)>,
}

impl Number {
    /// Takes a throughput cell (130429 when none).
    pub fn take_throughput(&self, now: Instant) -> GraphResult<()> {
        self.throughput
            .lock()
            .check(now)
            .map_err(|_| GraphError::new(130429, crate::errors::default_details(130429)))
    }

    /// Takes a pair cell for `peer` (131056 when none).
    pub fn take_pair(&self, peer: &str, now: Instant) -> GraphResult<()> {
        let (interval, burst) = *self.pair_params.read();
        let mut peers = self.peers.lock();
        let entry = peers.entry(peer.to_string()).or_insert_with(|| Peer {
            pair: Gcra::with_interval(interval, burst),
            last_inbound: None,
        });
        entry
            .pair
            .check(now)
            .map_err(|_| GraphError::new(131056, crate::errors::default_details(131056)))
    }

    /// Unix seconds of the last inbound message from `peer`.
    pub fn last_inbound(&self, peer: &str) -> Option<i64> {
        self.peers.lock().get(peer).and_then(|p| p.last_inbound)
    }

    /// Sets (or clears) the last inbound time of `peer`.
    pub fn set_last_inbound(&self, peer: &str, at: Option<i64>) {
        let (interval, burst) = *self.pair_params.read();
        let mut peers = self.peers.lock();
        peers
            .entry(peer.to_string())
            .or_insert_with(|| Peer {
                pair: Gcra::with_interval(interval, burst),
                last_inbound: None,
            })
            .last_inbound = at;
    }

    /// Records an accepted send.
    pub fn count_accepted(&self, now: Instant) {
        let mut s = self.stats.lock();
        s.accepted += 1;
        let ms = chrono::Utc::now().timestamp_millis();
        if s.first_accepted_ms.is_none() {
            s.first_accepted_ms = Some(ms);
            s.first_instant = Some(now);
        }
        s.last_accepted_ms = Some(ms);
        s.last_instant = Some(now);
    }

    /// Records a rejected send.
    pub fn count_error(&self, code: u32) {
        *self.stats.lock().errors.entry(code).or_default() += 1;
    }

    /// Rebuilds the throughput bucket from the config.
    pub fn reset_throughput(&self) {
        let cfg = self.config.read();
        *self.throughput.lock() = Gcra::per_second(cfg.mps, cfg.burst);
    }
}

/// Stored media (uploaded by the business or sent by a customer).
#[derive(Debug)]
pub struct Media {
    /// Numeric id.
    pub id: String,
    /// Owning phone number.
    pub number_id: String,
    /// MIME type.
    pub mime_type: String,
    /// Content.
    pub bytes: Bytes,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
    /// Original file name, if any.
    pub filename: Option<String>,
}

/// A short-lived download URL.
#[derive(Debug, Clone)]
pub struct MediaUrl {
    /// Media it serves.
    pub media_id: String,
    /// Expiry.
    pub expires: Instant,
}

/// One message request the simulator received on `/{number}/messages`.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Sequence number (ordering).
    pub seq: u64,
    /// Phone number id.
    pub number_id: String,
    /// Recipient wa_id (empty for read receipts).
    pub to: String,
    /// Message type (`text`, `template`, `read`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Template name for template sends.
    pub template: Option<String>,
    /// Template language for template sends.
    pub language: Option<String>,
    /// Assigned wamid when accepted.
    pub wamid: Option<String>,
    /// Unix ms.
    pub at_ms: i64,
    /// Error code when rejected.
    pub error_code: Option<u32>,
    /// Raw request body when recording is on.
    #[serde(skip)]
    pub raw: Option<Bytes>,
}

/// A billable (or free) delivered message, for pricing analytics.
#[derive(Debug, Clone, Serialize)]
pub struct PricedMessage {
    /// WABA id.
    pub waba_id: String,
    /// Phone number id.
    pub number_id: String,
    /// Unix seconds.
    pub at: i64,
    /// ISO country of the recipient.
    pub country: &'static str,
    /// MARKETING | UTILITY | AUTHENTICATION | SERVICE.
    pub category: String,
    /// REGULAR | FREE_CUSTOMER_SERVICE.
    pub pricing_type: &'static str,
    /// Cost in the WABA's currency.
    pub cost: f64,
}

/// Shared state behind [`crate::Sim`].
pub struct Inner {
    pub(crate) settings: RwLock<Settings>,
    pub(crate) status_overrides: RwLock<HashMap<u32, StatusCode>>,
    pub(crate) wabas: RwLock<HashMap<String, Arc<Waba>>>,
    pub(crate) numbers: RwLock<HashMap<String, Arc<Number>>>,
    pub(crate) tokens: RwLock<HashMap<String, TokenInfo>>,
    pub(crate) oauth_codes: Mutex<HashMap<String, String>>,
    pub(crate) media: RwLock<HashMap<String, Arc<Media>>>,
    pub(crate) media_urls: Mutex<HashMap<String, MediaUrl>>,
    pub(crate) template_owner: RwLock<HashMap<String, String>>,
    pub(crate) received: Mutex<Vec<Received>>,
    pub(crate) priced: Mutex<Vec<PricedMessage>>,
    pub(crate) faults: Faults,
    pub(crate) webhooks: Dispatcher,
    pub(crate) base_url: OnceLock<String>,
    pub(crate) seq: AtomicU64,
    pub(crate) shutdown: CancellationToken,
}

impl Inner {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let settings = Settings {
            webhook_retry_base_ms: config.webhook_retry_base.as_millis() as u64,
            default_latency_ms: config.default_latency.as_millis() as u64,
            status_plan: StatusPlan {
                sent_ms: Some(config.status_delays.sent.as_millis() as u64),
                delivered_ms: Some(config.status_delays.delivered.as_millis() as u64),
                read_ms: Some(config.status_delays.read.as_millis() as u64),
                shuffle: false,
                duplicate: false,
            },
            media_url_ttl_ms: config.media_url_ttl.as_millis() as u64,
            webhook_max_attempts: config.webhook_max_attempts,
            ..Settings::default()
        };
        Self {
            settings: RwLock::new(settings),
            status_overrides: RwLock::new(HashMap::new()),
            wabas: RwLock::new(HashMap::new()),
            numbers: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
            oauth_codes: Mutex::new(HashMap::new()),
            media: RwLock::new(HashMap::new()),
            media_urls: Mutex::new(HashMap::new()),
            template_owner: RwLock::new(HashMap::new()),
            received: Mutex::new(Vec::new()),
            priced: Mutex::new(Vec::new()),
            faults: Faults::default(),
            webhooks: Dispatcher::new(config.webhook_concurrency),
            base_url: OnceLock::new(),
            seq: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// Digits of a phone number (`"+1 (650) 555-1234"` → `"16505551234"`), or `None` if it
/// contains anything but digits and the separators Meta accepts.
pub fn normalize_phone(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '0'..='9' => out.push(c),
            '+' | '-' | '(' | ')' | ' ' | '.' => {}
            _ => return None,
        }
    }
    (7..=15).contains(&out.len()).then_some(out)
}

/// ISO country for a wa_id's calling code (enough for pricing analytics).
pub fn country_of(wa_id: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("1", "US"),
        ("7", "RU"),
        ("20", "EG"),
        ("27", "ZA"),
        ("33", "FR"),
        ("34", "ES"),
        ("39", "IT"),
        ("44", "GB"),
        ("49", "DE"),
        ("52", "MX"),
        ("54", "AR"),
        ("55", "BR"),
        ("57", "CO"),
        ("62", "ID"),
        ("91", "IN"),
        ("234", "NG"),
        ("966", "SA"),
        ("971", "AE"),
    ];
    let mut best: (&str, usize) = ("OTHER", 0);
    for (prefix, cc) in TABLE {
        if wa_id.starts_with(prefix) && prefix.len() > best.1 {
            best = (cc, prefix.len());
        }
    }
    best.0
}

/// Price per delivered template message, by category and country (USD; simplified).
pub fn price(category: &str, country: &str) -> f64 {
    let base: f64 = match category {
        "MARKETING" => 0.025,
        "UTILITY" => 0.004,
        "AUTHENTICATION" => 0.0135,
        _ => 0.0,
    };
    let factor = match country {
        "US" => 1.0,
        "IN" => 0.4,
        "BR" => 2.5,
        "GB" | "DE" | "FR" => 2.0,
        _ => 1.2,
    };
    (base * factor * 10_000.0).round() / 10_000.0
}
