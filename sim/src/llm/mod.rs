//! The LLM providers, played on the simulator's own server: one base URL stands in for OpenAI
//! (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`), DeepSeek (`/chat/completions`,
//! `/models`), Kimi and local servers (the OpenAI paths), Anthropic (`/v1/messages`; its
//! `GET /v1/models` is told from OpenAI's by the `x-api-key`/`anthropic-version` headers) and
//! Gemini (`/v1beta/models/{model}:generateContent|:streamGenerateContent|:embedContent|
//! :batchEmbedContents`, `GET /v1beta/models`).
//!
//! Strict like the real ones (ARCHITECTURE.md "LLM providers in the simulator"): registered keys only,
//! each provider's error shapes, request-shape checks (roles, tool pairing, required fields,
//! per-model parameters). Deterministic: the default answer is `You said: <last user
//! message>` (after tool results: `Tool result: <content>`), tokens are counted as
//! `round(words × 1.3)`, embeddings are hashed bags of words. Scriptable from tests through
//! [`LlmSim`] (`sim.llm()`) or the same operations under `/_sim/llm/...`: keys, reply rules,
//! latency per provider, faults, and a log of what was received.
//!
//! For `./dev up` every provider has a development key registered from the start:
//! `sim-openai-key`, `sim-anthropic-key`, `sim-google-key`, `sim-deepseek-key`,
//! `sim-kimi-key`, `sim-local-key` (LOCAL also takes requests without a key, as Ollama does).

// Checks return the provider's finished error response as their `Err`: it is what the
// handler sends, on a cold path, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod anthropic;
mod control;
mod engine;
mod gemini;
mod http;
mod openai;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Sim;

pub use engine::{embed_text, tokens};

/// A provider the simulator plays (same names as the platform's `Provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    #[serde(rename = "OPENAI")]
    OpenAi,
    #[serde(rename = "ANTHROPIC")]
    Anthropic,
    #[serde(rename = "GOOGLE")]
    Google,
    #[serde(rename = "DEEPSEEK")]
    DeepSeek,
    #[serde(rename = "KIMI")]
    Kimi,
    #[serde(rename = "LOCAL")]
    Local,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Google,
        Provider::DeepSeek,
        Provider::Kimi,
        Provider::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI",
            Provider::Anthropic => "ANTHROPIC",
            Provider::Google => "GOOGLE",
            Provider::DeepSeek => "DEEPSEEK",
            Provider::Kimi => "KIMI",
            Provider::Local => "LOCAL",
        }
    }

    /// Speaks OpenAI's Chat Completions format.
    pub fn openai_compatible(self) -> bool {
        !matches!(self, Provider::Anthropic | Provider::Google)
    }
}

/// What a rule answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleReply {
    /// Answer this text.
    Text { text: String },
    /// Call this tool (only if the request offers it), optionally with text before the call.
    Tool {
        name: String,
        #[serde(default)]
        arguments: Value,
        #[serde(default)]
        text: Option<String>,
    },
}

/// "When the last user message contains `contains`, answer `reply`."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Only for this provider (`None`: any).
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Case-insensitive substring of the last user message; empty matches every message.
    #[serde(default)]
    pub contains: String,
    pub reply: RuleReply,
    /// How many answers it gives before it is removed (`None`: until cleared).
    #[serde(default)]
    pub times: Option<u32>,
}

impl RuleSpec {
    pub fn text(contains: &str, text: &str) -> Self {
        Self {
            provider: None,
            contains: contains.into(),
            reply: RuleReply::Text { text: text.into() },
            times: None,
        }
    }

    pub fn tool(contains: &str, name: &str, arguments: Value) -> Self {
        Self {
            provider: None,
            contains: contains.into(),
            reply: RuleReply::Tool {
                name: name.into(),
                arguments,
                text: None,
            },
            times: None,
        }
    }

    pub fn for_provider(mut self, p: Provider) -> Self {
        self.provider = Some(p);
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// A live rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: u64,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub hits: u64,
}

/// What a fault does to a matching call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LlmFaultAction {
    /// 429 in the provider's shape; the wait (default 1 s) goes where the provider puts it:
    /// `retry-after` (OpenAI, Anthropic, LOCAL), `RetryInfo.retryDelay` (Gemini), the message
    /// text (Kimi), nowhere (DeepSeek documents none).
    RateLimited {
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// This status (500, 503, 529, …) with the provider's error body.
    Http { status: u16 },
    /// Never answer; the connection closes when the simulator stops.
    Hang,
    /// The provider's answer to a wrong key, whatever key was sent.
    InvalidKey,
}

/// "The next `count` calls (of `provider`) fail with `action`."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmFaultSpec {
    #[serde(default)]
    pub provider: Option<Provider>,
    pub action: LlmFaultAction,
    /// Calls it affects (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl LlmFaultSpec {
    pub fn new(action: LlmFaultAction, count: u32) -> Self {
        Self {
            provider: None,
            action,
            count,
        }
    }

    pub fn for_provider(mut self, p: Provider) -> Self {
        self.provider = Some(p);
        self
    }
}

/// A live fault.
#[derive(Debug, Clone, Serialize)]
pub struct LlmFault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: LlmFaultSpec,
}

/// One request as received.
#[derive(Debug, Clone, Serialize)]
pub struct LlmRequest {
    pub seq: u64,
    /// Unix milliseconds at arrival.
    pub at_ms: i64,
    /// Arrival, for measuring in-process.
    #[serde(skip)]
    pub at: Instant,
    /// The provider it was taken for (for an unknown key: the one whose error it got).
    pub provider: Provider,
    /// Whether the key was accepted.
    pub authenticated: bool,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    /// `sha256:` and 12 hex digits of the key, never the key (`None`: no key sent).
    pub key_fingerprint: Option<String>,
    pub stream: bool,
    /// Status answered (`None` while pending or for a hang).
    pub status: Option<u16>,
    /// The JSON body (`null` for GETs and bodies that are not JSON).
    pub body: Value,
}

/// Behaviour switches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    /// Requests without any key on the OpenAI-compatible paths are LOCAL (Ollama ignores
    /// keys). Off: they get OpenAI's 401.
    pub local_keyless: bool,
    /// Anthropic: refuse a first turn that is not `user` and non-alternating roles (the API
    /// did in 2024; whether it still does is unconfirmed).
    pub anthropic_strict_alternation: bool,
    /// Dimension of embeddings when the request does not ask for one.
    pub embedding_dims: usize,
    /// Accept any model name (no 404 for unknown models).
    pub accept_any_model: bool,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            local_keyless: true,
            anthropic_strict_alternation: true,
            embedding_dims: 256,
            accept_any_model: false,
        }
    }
}

/// The models each provider knows by default (the providers' published lists, plus the common
/// older ids the platform offers). Replace with [`LlmSim::set_models`].
fn default_models(p: Provider) -> Vec<String> {
    let list: &[&str] = match p {
        Provider::OpenAi => &[
            "gpt-5.5",
            "gpt-5.5-pro",
            "gpt-5.4",
            "gpt-5.4-mini",
            "gpt-5.4-nano",
            "gpt-5.2",
            "gpt-5.1",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "o3",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
        ],
        Provider::Anthropic => &[
            "claude-opus-5",
            "claude-sonnet-5",
            "claude-opus-4-7",
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-opus-4-5",
            "claude-opus-4-5-20251101",
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "claude-haiku-4-5",
            "claude-haiku-4-5-20251001",
            "claude-opus-4-1",
            "claude-3-5-haiku-latest",
        ],
        Provider::Google => &[
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.5-flash-lite",
            "gemini-3-pro-preview",
            "gemini-3-flash-preview",
            "gemini-3.1-pro",
            "gemini-flash-latest",
            "gemini-embedding-001",
        ],
        Provider::DeepSeek => &[
            "deepseek-flash",
            "deepseek-v4-pro",
            "deepseek-v4-flash",
            "deepseek-chat",
            "deepseek-reasoner",
        ],
        Provider::Kimi => &[
            "kimi-k3",
            "kimi-k2.7-code",
            "kimi-k2.6",
            "kimi-k2-0905-preview",
            "moonshot-v1-8k",
            "moonshot-v1-32k",
            "moonshot-v1-128k",
        ],
        Provider::Local => &[
            "llama3.1",
            "llama3.2",
            "qwen2.5",
            "mistral",
            "nomic-embed-text",
        ],
    };
    list.iter().map(|s| s.to_string()).collect()
}

/// The LLM half of the simulator's state. Reach it with [`Sim::llm`].
pub struct LlmSim {
    keys: RwLock<HashMap<String, Provider>>,
    rules: Mutex<(u64, Vec<Rule>)>,
    latency: RwLock<HashMap<Provider, Duration>>,
    faults: Mutex<(u64, Vec<LlmFault>)>,
    log: Mutex<Vec<LlmRequest>>,
    models: RwLock<HashMap<Provider, Vec<String>>>,
    settings: RwLock<LlmSettings>,
    seq: AtomicU64,
}

impl Default for LlmSim {
    fn default() -> Self {
        let sim = Self {
            keys: RwLock::default(),
            rules: Mutex::default(),
            latency: RwLock::default(),
            faults: Mutex::default(),
            log: Mutex::default(),
            models: RwLock::new(
                Provider::ALL
                    .into_iter()
                    .map(|p| (p, default_models(p)))
                    .collect(),
            ),
            settings: RwLock::default(),
            seq: AtomicU64::new(1),
        };
        sim.register_dev_keys();
        sim
    }
}

/// `sha256:` + 12 hex digits: enough to tell keys apart in a log, useless to call with.
pub fn fingerprint(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..12])
}

impl LlmSim {
    fn register_dev_keys(&self) {
        for p in Provider::ALL {
            self.register_key(p, &format!("sim-{}-key", p.as_str().to_ascii_lowercase()));
        }
    }

    // ---- keys -----------------------------------------------------------------------

    /// Accepts `key` for `provider` from now on; returns its fingerprint.
    pub fn register_key(&self, provider: Provider, key: &str) -> String {
        self.keys.write().insert(key.to_string(), provider);
        fingerprint(key)
    }

    /// Refuses `key` from now on.
    pub fn revoke_key(&self, key: &str) -> bool {
        self.keys.write().remove(key).is_some()
    }

    /// Forgets every key, the development keys included.
    pub fn clear_keys(&self) {
        self.keys.write().clear();
    }

    /// Registered keys as (provider, fingerprint).
    pub fn keys(&self) -> Vec<(Provider, String)> {
        self.keys
            .read()
            .iter()
            .map(|(k, p)| (*p, fingerprint(k)))
            .collect()
    }

    pub(crate) fn key_provider(&self, key: &str) -> Option<Provider> {
        self.keys.read().get(key).copied()
    }

    // ---- rules ----------------------------------------------------------------------

    /// Adds a reply rule (rules are tried in the order added); returns its id.
    pub fn add_rule(&self, spec: RuleSpec) -> u64 {
        let mut g = self.rules.lock();
        g.0 += 1;
        let id = g.0;
        g.1.push(Rule { id, spec, hits: 0 });
        id
    }

    pub fn remove_rule(&self, id: u64) -> bool {
        let mut g = self.rules.lock();
        let before = g.1.len();
        g.1.retain(|r| r.id != id);
        before != g.1.len()
    }

    pub fn clear_rules(&self) {
        self.rules.lock().1.clear();
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.rules.lock().1.clone()
    }

    // ---- latency, models, settings ------------------------------------------------------

    /// Fixed latency before every answer of `provider`.
    pub fn set_latency(&self, provider: Provider, latency: Duration) {
        self.latency.write().insert(provider, latency);
    }

    pub(crate) fn latency(&self, provider: Provider) -> Duration {
        self.latency
            .read()
            .get(&provider)
            .copied()
            .unwrap_or_default()
    }

    /// Replaces the models `provider` knows.
    pub fn set_models(&self, provider: Provider, models: Vec<String>) {
        self.models.write().insert(provider, models);
    }

    pub fn models(&self, provider: Provider) -> Vec<String> {
        self.models
            .read()
            .get(&provider)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `provider` knows `model` (always, with `accept_any_model`).
    pub fn knows_model(&self, provider: Provider, model: &str) -> bool {
        self.settings.read().accept_any_model
            || self
                .models
                .read()
                .get(&provider)
                .is_some_and(|m| m.iter().any(|x| x == model))
    }

    pub fn settings(&self) -> LlmSettings {
        self.settings.read().clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut LlmSettings)) {
        f(&mut self.settings.write());
    }

    // ---- faults -----------------------------------------------------------------------

    /// Adds a fault; returns its id. Faults are consumed in the order added.
    pub fn add_fault(&self, spec: LlmFaultSpec) -> u64 {
        let mut g = self.faults.lock();
        g.0 += 1;
        let id = g.0;
        g.1.push(LlmFault { id, spec });
        id
    }

    pub fn clear_faults(&self) {
        self.faults.lock().1.clear();
    }

    pub fn faults(&self) -> Vec<LlmFault> {
        self.faults.lock().1.clone()
    }

    /// Takes one use of the first live fault for `provider`.
    pub(crate) fn take_fault(&self, provider: Provider) -> Option<LlmFaultAction> {
        let mut g = self.faults.lock();
        let f =
            g.1.iter_mut()
                .find(|f| f.spec.count > 0 && f.spec.provider.is_none_or(|p| p == provider))?;
        f.spec.count -= 1;
        let action = f.spec.action.clone();
        g.1.retain(|f| f.spec.count > 0);
        Some(action)
    }

    // ---- request log ------------------------------------------------------------------

    /// Requests received, oldest first (only `provider`'s when given).
    pub fn requests(&self, provider: Option<Provider>) -> Vec<LlmRequest> {
        self.log
            .lock()
            .iter()
            .filter(|r| provider.is_none_or(|p| r.provider == p))
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        self.log.lock().clear();
    }

    pub(crate) fn record(&self, mut entry: LlmRequest) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        entry.seq = seq;
        let mut log = self.log.lock();
        // Bounded: a long-running `./dev up` simulator must not grow without end.
        if log.len() >= 10_000 {
            log.drain(..1_000);
        }
        log.push(entry);
        seq
    }

    pub(crate) fn set_status(&self, seq: u64, status: u16) {
        if let Some(e) = self.log.lock().iter_mut().rev().find(|e| e.seq == seq) {
            e.status = Some(status);
        }
    }

    /// Back to the start: default keys, models and settings; no rules, faults, latency, log.
    pub fn reset(&self) {
        self.clear_keys();
        self.register_dev_keys();
        self.clear_rules();
        self.clear_faults();
        self.clear_requests();
        self.latency.write().clear();
        *self.models.write() = Provider::ALL
            .into_iter()
            .map(|p| (p, default_models(p)))
            .collect();
        *self.settings.write() = LlmSettings::default();
    }
}

/// The provider routes and the `/_sim/llm` control routes.
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1beta/models", get(gemini::models))
        .route(
            "/v1beta/models/{model_action}",
            post(gemini::call).get(gemini::model),
        )
        // Anthropic refuses bodies above 32 MB (413); axum's default is 2 MB.
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
        .merge(control::router())
        .with_state(sim)
}
