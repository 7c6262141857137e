//! [`Sim`]'s Rust API: everything the control HTTP API can do, callable directly.
//!
//! Tests that start the simulator in-process usually seed it through these methods (no
//! JSON, no HTTP round trip); tests in other processes use `/_sim/...`, which is a thin
//! JSON layer over the same functions (see `control.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::errors::GraphError;
use crate::faults::{Fault, FaultSpec};
use crate::limits::{Gcra, RollingBudget};
use crate::state::{
    self, Inner, Number, NumberConfig, NumberStats, PricedMessage, Received, Settings, StatusPlan,
    Template, TokenInfo, Waba, WabaState, WindowMode,
};
use crate::webhooks::{self, Delivery, WebhookTarget};
use crate::{ids, Sim, SimConfig};

/// A control operation failed (unknown object, bad input).
#[derive(Debug, Clone, Serialize)]
pub struct ControlError {
    /// HTTP status for the control API.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong.
    pub error: String,
}

impl ControlError {
    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: format!("unknown {what} {id}"),
        }
    }
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: msg.into(),
        }
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

impl std::error::Error for ControlError {}

/// Creates a WABA.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WabaSpec {
    /// Id (generated when absent).
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Currency (default USD).
    pub currency: Option<String>,
    /// Management calls per hour (default 200).
    pub management_budget: Option<u32>,
    /// Webhook target for its numbers.
    pub webhook: Option<WebhookTarget>,
    /// Approve created templates immediately.
    pub auto_approve_templates: bool,
}

/// Creates a phone number.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NumberSpec {
    /// Phone number id (generated when absent).
    pub id: Option<String>,
    /// Owning WABA (must exist).
    pub waba_id: String,
    /// Display number (digits; generated when absent).
    pub display_phone_number: Option<String>,
    /// Verified name.
    pub verified_name: Option<String>,
    /// STANDARD (80/s, default) | HIGH (1000/s) | COEXISTENCE (20/s).
    pub throughput_level: Option<String>,
    /// Explicit messages/s (overrides the level).
    pub mps: Option<f64>,
    /// Burst of the throughput bucket (default: one second's worth).
    pub burst: Option<u32>,
    /// GREEN (default) | YELLOW | RED.
    pub quality_rating: Option<String>,
    /// e.g. TIER_250 (default TIER_1K).
    pub messaging_limit: Option<String>,
    /// 6-digit PIN (default 123456).
    pub pin: Option<String>,
    /// Registered (default true).
    pub registered: Option<bool>,
    /// Coexistence number (20 mps unless `mps`).
    pub coexistence: bool,
    /// Own webhook target.
    pub webhook: Option<WebhookTarget>,
    /// Own status plan.
    pub status_plan: Option<StatusPlan>,
    /// Own window mode.
    pub window_mode: Option<WindowMode>,
}

/// Creates an access token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenSpec {
    /// Token string (generated when absent).
    pub token: Option<String>,
    /// WABAs it may act on (absent: all).
    pub wabas: Option<Vec<String>>,
    /// Lifetime in seconds (absent: never expires).
    pub expires_in_secs: Option<i64>,
}

/// Seeds a template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TemplateSpec {
    /// Id (generated when absent).
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Language (default en_US).
    pub language: Option<String>,
    /// Category (default UTILITY).
    pub category: Option<String>,
    /// Status (default APPROVED).
    pub status: Option<String>,
    /// POSITIONAL (default) | NAMED.
    pub parameter_format: Option<String>,
    /// Components as Meta stores them.
    pub components: Option<Value>,
    /// Shortcut: a BODY component with this text when `components` is absent.
    pub body: Option<String>,
}

/// Filters for [`Sim::received`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReceivedFilter {
    /// Only this phone number.
    pub number_id: Option<String>,
    /// Only this recipient.
    pub to: Option<String>,
    /// Only accepted (`true`) or rejected (`false`).
    pub accepted: Option<bool>,
    /// Only the last N.
    pub limit: Option<usize>,
}

impl Sim {
    /// A simulator with no accounts, not yet serving.
    pub fn new(config: SimConfig) -> Self {
        Self {
            inner: Arc::new(Inner::new(&config)),
            config: Arc::new(config),
            llm: Arc::default(),
        }
    }

    /// The LLM providers' stand-ins: keys, reply rules, latency, faults, request log.
    pub fn llm(&self) -> &crate::llm::LlmSim {
        &self.llm
    }

    pub(crate) fn set_base_url(&self, url: &str) {
        let _ = self.inner.base_url.set(url.to_string());
    }

    /// `http://host:port` the simulator serves on.
    pub fn base_url(&self) -> String {
        self.inner.base_url.get().cloned().unwrap_or_default()
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        self.inner.settings.read().clone()
    }

    /// Changes settings in place.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.inner.settings.write());
    }

    /// Overrides the HTTP status returned for an error code (e.g. 130429 → 400).
    pub fn set_error_status(&self, code: u32, status: StatusCode) {
        self.inner.status_overrides.write().insert(code, status);
    }

    /// Removes all HTTP status overrides.
    pub fn clear_error_statuses(&self) {
        self.inner.status_overrides.write().clear();
    }

    pub(crate) fn error_status_override(&self, code: u32) -> Option<StatusCode> {
        let map = self.inner.status_overrides.read();
        if map.is_empty() {
            None
        } else {
            map.get(&code).copied()
        }
    }

    // ---- accounts -------------------------------------------------------------------

    /// Creates (or replaces) a WABA; returns its id.
    pub fn create_waba(&self, spec: WabaSpec) -> Result<String, ControlError> {
        let id = spec.id.unwrap_or_else(ids::object_id);
        let budget = spec
            .management_budget
            .unwrap_or_else(|| self.settings().default_management_budget);
        let waba = Waba {
            id: id.clone(),
            state: Mutex::new(WabaState {
                name: spec.name.unwrap_or_else(|| format!("WABA {id}")),
                currency: spec.currency.unwrap_or_else(|| "USD".into()),
                templates: Vec::new(),
                budget: RollingBudget::new(budget, Duration::from_secs(3600)),
                webhook: spec.webhook,
                subscribed: None,
                auto_approve_templates: spec.auto_approve_templates,
                numbers: Vec::new(),
            }),
        };
        self.inner.wabas.write().insert(id.clone(), Arc::new(waba));
        Ok(id)
    }

    /// Creates (or replaces) a phone number in an existing WABA; returns its id.
    pub fn create_number(&self, spec: NumberSpec) -> Result<String, ControlError> {
        let waba = self.waba(&spec.waba_id)?;
        let id = spec.id.unwrap_or_else(ids::object_id);
        let level = spec.throughput_level.unwrap_or_else(|| {
            if spec.coexistence {
                "COEXISTENCE"
            } else {
                "STANDARD"
            }
            .to_string()
        });
        let mps = spec.mps.unwrap_or_else(|| state::throughput_mps(&level));
        if mps <= 0.0 || !mps.is_finite() {
            return Err(ControlError::bad("mps must be positive"));
        }
        let burst = spec.burst.unwrap_or_else(|| mps.ceil().max(1.0) as u32);
        let display = spec
            .display_phone_number
            .unwrap_or_else(|| format!("1555{:07}", rand::random::<u32>() % 10_000_000));
        let config = NumberConfig {
            display_phone_number: display,
            verified_name: spec.verified_name.unwrap_or_else(|| "Wharf Test".into()),
            quality_rating: spec.quality_rating.unwrap_or_else(|| "GREEN".into()),
            throughput_level: if level == "COEXISTENCE" {
                "STANDARD".into()
            } else {
                level
            },
            mps,
            burst,
            messaging_limit: spec.messaging_limit.unwrap_or_else(|| "TIER_1K".into()),
            pin: spec.pin.unwrap_or_else(|| "123456".into()),
            registered: spec.registered.unwrap_or(true),
            coexistence: spec.coexistence,
            status: "CONNECTED".into(),
            name_status: "APPROVED".into(),
            webhook: spec.webhook,
            status_plan: spec.status_plan,
            window_mode: spec.window_mode,
        };
        let number = Number {
            id: id.clone(),
            waba_id: waba.id.clone(),
            throughput: Mutex::new(Gcra::per_second(mps, burst)),
            config: RwLock::new(config),
            peers: Mutex::new(HashMap::new()),
            inbound_ids: Mutex::new(HashMap::new()),
            stats: Mutex::new(NumberStats::default()),
            pair_params: RwLock::new((Duration::from_secs(6), 45)),
        };
        self.inner
            .numbers
            .write()
            .insert(id.clone(), Arc::new(number));
        let mut ws = waba.state.lock();
        if !ws.numbers.contains(&id) {
            ws.numbers.push(id.clone());
        }
        Ok(id)
    }

    /// Creates an access token; returns it.
    pub fn create_token(&self, spec: TokenSpec) -> String {
        let token = spec.token.unwrap_or_else(|| ids::token("EAAG"));
        let expires_at = spec
            .expires_in_secs
            .map(|s| chrono::Utc::now().timestamp() + s);
        self.inner.tokens.write().insert(
            token.clone(),
            TokenInfo {
                token: token.clone(),
                wabas: spec.wabas,
                expires_at,
                revoked: false,
            },
        );
        token
    }

    /// Revokes a token (190 / 460 from now on).
    pub fn revoke_token(&self, token: &str) -> Result<(), ControlError> {
        let mut tokens = self.inner.tokens.write();
        let t = tokens
            .get_mut(token)
            .ok_or_else(|| ControlError::not_found("token", "…"))?;
        t.revoked = true;
        Ok(())
    }

    /// Expires a token now (190 / 463 from now on).
    pub fn expire_token(&self, token: &str) -> Result<(), ControlError> {
        let mut tokens = self.inner.tokens.write();
        let t = tokens
            .get_mut(token)
            .ok_or_else(|| ControlError::not_found("token", "…"))?;
        t.expires_at = Some(chrono::Utc::now().timestamp() - 1);
        Ok(())
    }

    /// Registers an OAuth code that `GET /oauth/access_token` exchanges for `token` (which
    /// is created, scoped to `wabas`, if it does not exist yet).
    pub fn register_oauth_code(&self, code: &str, token: &str, wabas: Option<Vec<String>>) {
        if !self.inner.tokens.read().contains_key(token) {
            self.create_token(TokenSpec {
                token: Some(token.into()),
                wabas,
                expires_in_secs: None,
            });
        }
        self.inner
            .oauth_codes
            .lock()
            .insert(code.into(), token.into());
    }

    pub(crate) fn waba(&self, id: &str) -> Result<Arc<Waba>, ControlError> {
        self.inner
            .wabas
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| ControlError::not_found("waba", id))
    }

    pub(crate) fn number(&self, id: &str) -> Result<Arc<Number>, ControlError> {
        self.inner
            .numbers
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| ControlError::not_found("phone number", id))
    }

    /// A number's configuration.
    pub fn number_config(&self, number_id: &str) -> Result<NumberConfig, ControlError> {
        Ok(self.number(number_id)?.config.read().clone())
    }

    /// Changes a number's configuration (throughput changes rebuild its bucket).
    pub fn update_number(
        &self,
        number_id: &str,
        f: impl FnOnce(&mut NumberConfig),
    ) -> Result<(), ControlError> {
        let n = self.number(number_id)?;
        f(&mut n.config.write());
        n.reset_throughput();
        Ok(())
    }

    /// Sets a number's throughput: a level (STANDARD/HIGH/COEXISTENCE) and/or explicit mps.
    pub fn set_throughput(
        &self,
        number_id: &str,
        level: Option<&str>,
        mps: Option<f64>,
        burst: Option<u32>,
    ) -> Result<(), ControlError> {
        self.update_number(number_id, |c| {
            if let Some(level) = level {
                c.throughput_level = level.to_string();
                c.mps = state::throughput_mps(level);
            }
            if let Some(mps) = mps {
                c.mps = mps;
            }
            c.burst = burst.unwrap_or_else(|| c.mps.ceil().max(1.0) as u32);
        })
    }

    /// Sets the pair limiter for a number (default: 1 per 6 s, burst 45). Resets pair state.
    pub fn set_pair_limit(
        &self,
        number_id: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<(), ControlError> {
        let n = self.number(number_id)?;
        *n.pair_params.write() = (interval, burst);
        for peer in n.peers.lock().values_mut() {
            peer.pair = Gcra::with_interval(interval, burst);
        }
        Ok(())
    }

    /// Sets the last inbound time (unix seconds) of `peer`, or clears it (`None`).
    pub fn set_last_inbound(
        &self,
        number_id: &str,
        peer: &str,
        at: Option<i64>,
    ) -> Result<(), ControlError> {
        let peer = state::normalize_phone(peer).ok_or_else(|| ControlError::bad("bad phone"))?;
        self.number(number_id)?.set_last_inbound(&peer, at);
        Ok(())
    }

    /// Opens the 24 h window for `peer` (as if they had just written).
    pub fn open_window(&self, number_id: &str, peer: &str) -> Result<(), ControlError> {
        self.set_last_inbound(number_id, peer, Some(chrono::Utc::now().timestamp()))
    }

    /// Closes the 24 h window for `peer`.
    pub fn close_window(&self, number_id: &str, peer: &str) -> Result<(), ControlError> {
        self.set_last_inbound(number_id, peer, None)
    }

    /// Whether the 24 h window with `peer` is open.
    pub fn window_open(&self, number_id: &str, peer: &str) -> Result<bool, ControlError> {
        let peer = state::normalize_phone(peer).ok_or_else(|| ControlError::bad("bad phone"))?;
        let last = self.number(number_id)?.last_inbound(&peer);
        Ok(last.is_some_and(|t| chrono::Utc::now().timestamp() - t < 24 * 3600))
    }

    /// Sets a WABA's management budget (calls/hour) and optionally forgets past calls.
    pub fn set_management_budget(
        &self,
        waba_id: &str,
        budget: u32,
        reset: bool,
    ) -> Result<(), ControlError> {
        let w = self.waba(waba_id)?;
        let mut s = w.state.lock();
        s.budget.budget = budget;
        if reset {
            s.budget.reset();
        }
        Ok(())
    }

    /// Sets (or clears) a WABA's webhook target.
    pub fn set_waba_webhook(
        &self,
        waba_id: &str,
        target: Option<WebhookTarget>,
    ) -> Result<(), ControlError> {
        self.waba(waba_id)?.state.lock().webhook = target;
        Ok(())
    }

    /// Sets (or clears) a number's own webhook target.
    pub fn set_number_webhook(
        &self,
        number_id: &str,
        target: Option<WebhookTarget>,
    ) -> Result<(), ControlError> {
        self.number(number_id)?.config.write().webhook = target;
        Ok(())
    }

    /// Sets (or clears) a number's status plan.
    pub fn set_status_plan(
        &self,
        number_id: &str,
        plan: Option<StatusPlan>,
    ) -> Result<(), ControlError> {
        self.number(number_id)?.config.write().status_plan = plan;
        Ok(())
    }

    /// Sets (or clears) a number's window mode.
    pub fn set_window_mode(
        &self,
        number_id: &str,
        mode: Option<WindowMode>,
    ) -> Result<(), ControlError> {
        self.number(number_id)?.config.write().window_mode = mode;
        Ok(())
    }

    /// Where webhooks about `number` go (its own target, else its WABA's).
    pub(crate) fn webhook_target(&self, number: &Number) -> Option<WebhookTarget> {
        let own = number.config.read().webhook.clone();
        let target = own.or_else(|| {
            self.inner
                .wabas
                .read()
                .get(&number.waba_id)
                .and_then(|w| w.state.lock().webhook.clone())
        })?;
        Some(self.with_secret(target))
    }

    pub(crate) fn waba_webhook_target(&self, waba: &Waba) -> Option<WebhookTarget> {
        let (own, numbers) = {
            let s = waba.state.lock();
            (s.webhook.clone(), s.numbers.clone())
        };
        let target = own.or_else(|| {
            // Fall back to the first number with its own target.
            let map = self.inner.numbers.read();
            numbers
                .iter()
                .find_map(|n| map.get(n).and_then(|n| n.config.read().webhook.clone()))
        })?;
        Some(self.with_secret(target))
    }

    fn with_secret(&self, mut t: WebhookTarget) -> WebhookTarget {
        if t.app_secret.is_empty() {
            t.app_secret = self.settings().default_app_secret;
        }
        t
    }

    // ---- templates ------------------------------------------------------------------

    /// Seeds a template (any status) without emitting a webhook; returns its id.
    pub fn seed_template(&self, waba_id: &str, spec: TemplateSpec) -> Result<String, ControlError> {
        let waba = self.waba(waba_id)?;
        let components = match (spec.components, spec.body) {
            (Some(c), _) => c,
            (None, Some(body)) => json!([{"type": "BODY", "text": body}]),
            (None, None) => json!([{"type": "BODY", "text": "Hello"}]),
        };
        if spec.name.is_empty() {
            return Err(ControlError::bad("name is required"));
        }
        let t = Template {
            id: spec.id.unwrap_or_else(ids::object_id),
            name: spec.name,
            language: spec.language.unwrap_or_else(|| "en_US".into()),
            category: spec
                .category
                .unwrap_or_else(|| "UTILITY".into())
                .to_uppercase(),
            status: spec
                .status
                .unwrap_or_else(|| "APPROVED".into())
                .to_uppercase(),
            parameter_format: spec
                .parameter_format
                .unwrap_or_else(|| "POSITIONAL".into())
                .to_uppercase(),
            components,
            quality_score: "GREEN".into(),
            rejected_reason: "NONE".into(),
        };
        let id = t.id.clone();
        self.insert_template(&waba, t);
        Ok(id)
    }

    pub(crate) fn insert_template(&self, waba: &Waba, t: Template) {
        let id = t.id.clone();
        let mut s = waba.state.lock();
        s.templates
            .retain(|x| x.id != id && !(x.name == t.name && x.language == t.language));
        s.templates.push(t);
        drop(s);
        self.inner
            .template_owner
            .write()
            .insert(id, waba.id.clone());
    }

    /// All templates of a WABA.
    pub fn templates(&self, waba_id: &str) -> Result<Vec<Template>, ControlError> {
        Ok(self.waba(waba_id)?.state.lock().templates.clone())
    }

    /// Changes a template's status and emits `message_template_status_update`.
    /// `event` is APPROVED | REJECTED | PAUSED | DISABLED | PENDING | FLAGGED | ...
    pub fn set_template_status(
        &self,
        template_id: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Result<(), ControlError> {
        let waba_id = self
            .inner
            .template_owner
            .read()
            .get(template_id)
            .cloned()
            .ok_or_else(|| ControlError::not_found("template", template_id))?;
        let waba = self.waba(&waba_id)?;
        let event = event.to_uppercase();
        let (name, language, category) = {
            let mut s = waba.state.lock();
            let t = s
                .templates
                .iter_mut()
                .find(|t| t.id == template_id)
                .ok_or_else(|| ControlError::not_found("template", template_id))?;
            t.status = event.clone();
            if event == "REJECTED" {
                t.rejected_reason = reason.unwrap_or("INVALID_FORMAT").to_string();
            }
            (t.name.clone(), t.language.clone(), t.category.clone())
        };
        self.emit_template_status(
            &waba,
            template_id,
            &name,
            &language,
            &category,
            &event,
            reason,
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit_template_status(
        &self,
        waba: &Waba,
        template_id: &str,
        name: &str,
        language: &str,
        category: &str,
        event: &str,
        reason: Option<&str>,
    ) {
        let Some(target) = self.waba_webhook_target(waba) else {
            return;
        };
        let mut value = json!({
            "event": event,
            "message_template_id": template_id.parse::<u64>().map(Value::from).unwrap_or_else(|_| template_id.into()),
            "message_template_name": name,
            "message_template_language": language,
            "reason": reason.map(Value::from).unwrap_or_else(|| if event == "REJECTED" { "INVALID_FORMAT".into() } else { "NONE".into() }),
            "message_template_category": category,
        });
        match event {
            "PAUSED" => {
                value["other_info"] = json!({"title": "FIRST_PAUSE", "description": "Your WhatsApp message template has been paused for 3 hours due to low quality."});
            }
            "DISABLED" => {
                value["disable_info"] = json!({"disable_date": chrono::Utc::now().timestamp()});
            }
            "REJECTED" => {
                value["rejection_info"] = json!({"reason": "The template does not follow our formatting guidelines.", "recommendation": "Review the template formatting rules."});
            }
            _ => {}
        }
        let mut body = webhooks::envelope(&waba.id, "message_template_status_update", value);
        body["entry"][0]["time"] = chrono::Utc::now().timestamp().into();
        webhooks::emit(self, target, None, format!("template:{name}:{event}"), body);
    }

    /// Emits `phone_number_quality_update` (e.g. event FLAGGED/UNFLAGGED/UPGRADE/DOWNGRADE/
    /// THROUGHPUT_UPGRADE) and applies `current_limit` / `quality` to the number.
    pub fn quality_update(
        &self,
        number_id: &str,
        event: &str,
        current_limit: Option<&str>,
        quality: Option<&str>,
    ) -> Result<u64, ControlError> {
        let n = self.number(number_id)?;
        let display = {
            let mut c = n.config.write();
            if let Some(l) = current_limit {
                c.messaging_limit = l.to_string();
            }
            if let Some(q) = quality {
                c.quality_rating = q.to_string();
            }
            if event == "THROUGHPUT_UPGRADE" {
                c.throughput_level = "HIGH".into();
                c.mps = 1000.0;
                c.burst = 1000;
            }
            c.display_phone_number.clone()
        };
        n.reset_throughput();
        let limit = n.config.read().messaging_limit.clone();
        let value =
            json!({"display_phone_number": display, "event": event, "current_limit": limit});
        let target = self
            .webhook_target(&n)
            .ok_or_else(|| ControlError::bad("no webhook target"))?;
        let body = webhooks::envelope(&n.waba_id, "phone_number_quality_update", value);
        Ok(webhooks::emit(
            self,
            target,
            Some(number_id.into()),
            format!("quality:{event}"),
            body,
        ))
    }

    /// Emits an `account_update` webhook with `value` as given.
    pub fn account_update(&self, waba_id: &str, value: Value) -> Result<u64, ControlError> {
        let waba = self.waba(waba_id)?;
        let target = self
            .waba_webhook_target(&waba)
            .ok_or_else(|| ControlError::bad("no webhook target"))?;
        let event = value["event"].as_str().unwrap_or("").to_string();
        let body = webhooks::envelope(waba_id, "account_update", value);
        Ok(webhooks::emit(
            self,
            target,
            None,
            format!("account_update:{event}"),
            body,
        ))
    }

    /// Emits any webhook `field` with `value` to the WABA's target.
    pub fn raw_webhook(
        &self,
        waba_id: &str,
        field: &str,
        value: Value,
    ) -> Result<u64, ControlError> {
        let waba = self.waba(waba_id)?;
        let target = self
            .waba_webhook_target(&waba)
            .ok_or_else(|| ControlError::bad("no webhook target"))?;
        let body = webhooks::envelope(waba_id, field, value);
        Ok(webhooks::emit(
            self,
            target,
            None,
            format!("raw:{field}"),
            body,
        ))
    }

    // ---- faults ---------------------------------------------------------------------

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> u64 {
        self.inner.faults.add(spec)
    }

    /// Removes a fault rule.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.inner.faults.remove(id)
    }

    /// Removes all fault rules (or those of one number).
    pub fn clear_faults(&self, number_id: Option<&str>) {
        self.inner.faults.clear(number_id)
    }

    /// Live fault rules.
    pub fn faults(&self) -> Vec<Fault> {
        self.inner.faults.list()
    }

    // ---- observation ----------------------------------------------------------------

    /// Message requests received on `/messages`, oldest first.
    pub fn received(&self, filter: &ReceivedFilter) -> Vec<Received> {
        let all = self.inner.received.lock();
        let mut out: Vec<Received> = all
            .iter()
            .filter(|r| filter.number_id.as_deref().is_none_or(|n| r.number_id == n))
            .filter(|r| filter.to.as_deref().is_none_or(|t| r.to == t))
            .filter(|r| filter.accepted.is_none_or(|a| a == r.error_code.is_none()))
            .cloned()
            .collect();
        if let Some(limit) = filter.limit {
            let skip = out.len().saturating_sub(limit);
            out.drain(..skip);
        }
        out
    }

    /// Forgets received messages, counters and pricing records.
    pub fn clear_received(&self) {
        self.inner.received.lock().clear();
        self.inner.priced.lock().clear();
        for n in self.inner.numbers.read().values() {
            *n.stats.lock() = NumberStats::default();
        }
    }

    /// Counters of a number.
    pub fn stats(&self, number_id: &str) -> Result<NumberStats, ControlError> {
        Ok(self.number(number_id)?.stats.lock().clone())
    }

    /// Webhook deliveries, oldest first.
    pub fn webhook_log(&self) -> Vec<Delivery> {
        self.inner.webhooks.log()
    }

    /// Forgets the webhook delivery log.
    pub fn clear_webhook_log(&self) {
        self.inner.webhooks.clear()
    }

    /// Waits until no webhook delivery is pending, or `timeout`.
    pub async fn webhooks_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.inner.webhooks.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Priced (delivered) messages, as used by pricing analytics.
    pub fn priced(&self) -> Vec<PricedMessage> {
        self.inner.priced.lock().clone()
    }

    /// Whether `token` may act on `waba_id` (`GraphError` in Meta's shape otherwise).
    pub fn check_token(&self, token: &str, waba_id: Option<&str>) -> Result<(), GraphError> {
        let tokens = self.inner.tokens.read();
        let info = tokens.get(token).ok_or_else(GraphError::invalid_token)?;
        if info.revoked {
            return Err(GraphError::revoked_token());
        }
        if info
            .expires_at
            .is_some_and(|t| t <= chrono::Utc::now().timestamp())
        {
            return Err(GraphError::expired_token());
        }
        if let (Some(allowed), Some(waba)) = (&info.wabas, waba_id) {
            if !allowed.iter().any(|w| w == waba) {
                return Err(GraphError::new(
                    200,
                    "The access token does not have permission for this WhatsApp Business Account.",
                ));
            }
        }
        Ok(())
    }

    /// Token info (for `debug_token`).
    pub(crate) fn token_info(&self, token: &str) -> Option<TokenInfo> {
        self.inner.tokens.read().get(token).cloned()
    }
}
