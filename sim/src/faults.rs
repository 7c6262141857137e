//! Fault injection: make the next N requests (or all until cleared) for a number, a
//! recipient, or an endpoint slow, failing, hanging or dropped.
//!
//! The platform's retry and classification logic is only trustworthy if it has been driven
//! through each failure for real, over HTTP. Rules are checked in insertion order; every
//! matching `latency` rule adds its delay, and the first matching non-latency rule decides
//! the outcome. An atomic counter of live rules keeps the common no-fault path lock-free.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::{default_details, default_title, fbtrace_id, GraphError};

/// Which endpoint a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /{number}/messages`.
    Messages,
    /// `POST /{number}/media`.
    MediaUpload,
    /// `GET /{media_id}` (URL retrieval).
    MediaGet,
    /// `GET /media-download/{token}`.
    MediaDownload,
    /// `GET /{number}`, `POST /{number}/register`.
    PhoneNumber,
}

/// What a matching rule does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Add latency, then carry on.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Answer with this HTTP status and a transient Graph error body (code 2) or `body`.
    Http {
        /// Status code (e.g. 500, 502, 503).
        status: u16,
        /// Raw body to send instead of the Graph error.
        #[serde(default)]
        body: Option<String>,
    },
    /// Never answer (until the client gives up or the simulator shuts down).
    Timeout,
    /// Close the connection without a response.
    Drop,
    /// Answer with a Meta error.
    MetaError {
        /// Error code.
        code: u32,
        /// Optional subcode.
        #[serde(default)]
        subcode: Option<u32>,
        /// Title (default: Meta's title for the code).
        #[serde(default)]
        title: Option<String>,
        /// Details (default: Meta's details for the code).
        #[serde(default)]
        details: Option<String>,
        /// HTTP status (default: the status table).
        #[serde(default)]
        http_status: Option<u16>,
        /// Messages only: accept with 200 + wamid, then send a `failed` status webhook.
        #[serde(default, rename = "async")]
        is_async: bool,
    },
    /// Fail as if the token had expired (190 / 463).
    ExpiredToken,
    /// Messages only: accept the message (wamid, status webhooks) but close the connection
    /// instead of answering, so the sender cannot know it went out.
    LoseResponse,
    /// Media download: answer 404 as for an expired URL.
    MediaExpiredUrl,
    /// Media download: serve different bytes (sha256 mismatch).
    MediaCorrupt,
}

/// A rule as created through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Phone number id it applies to (`None`: any).
    #[serde(default)]
    pub number_id: Option<String>,
    /// Recipient wa_id it applies to (`None`: any).
    #[serde(default)]
    pub recipient: Option<String>,
    /// Endpoint it applies to (`None`: any).
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// What happens.
    pub action: FaultAction,
    /// How many matching requests it affects (`None`: until cleared).
    #[serde(default)]
    pub count: Option<u32>,
}

/// A live rule.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Id for deletion.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests it has affected.
    pub hits: u64,
}

/// The set of live rules.
#[derive(Debug, Default)]
pub struct Faults {
    live: AtomicUsize,
    rules: Mutex<(u64, Vec<Fault>)>,
}

/// The outcome of fault matching for one request.
#[derive(Debug, Default)]
pub struct Decision {
    /// Total added latency.
    pub latency: Duration,
    /// The deciding action, if any.
    pub action: Option<FaultAction>,
}

impl Faults {
    /// Adds a rule; returns its id.
    pub fn add(&self, spec: FaultSpec) -> u64 {
        let mut g = self.rules.lock();
        g.0 += 1;
        let id = g.0;
        g.1.push(Fault { id, spec, hits: 0 });
        self.live.store(g.1.len(), Ordering::Release);
        id
    }

    /// Removes one rule.
    pub fn remove(&self, id: u64) -> bool {
        let mut g = self.rules.lock();
        let before = g.1.len();
        g.1.retain(|f| f.id != id);
        self.live.store(g.1.len(), Ordering::Release);
        before != g.1.len()
    }

    /// Removes all rules (optionally only those for one number).
    pub fn clear(&self, number_id: Option<&str>) {
        let mut g = self.rules.lock();
        match number_id {
            Some(n) => g.1.retain(|f| f.spec.number_id.as_deref() != Some(n)),
            None => g.1.clear(),
        }
        self.live.store(g.1.len(), Ordering::Release);
    }

    /// Lists live rules.
    pub fn list(&self) -> Vec<Fault> {
        self.rules.lock().1.clone()
    }

    /// Matches a request, consuming counts.
    pub fn check(&self, number_id: &str, recipient: Option<&str>, endpoint: Endpoint) -> Decision {
        let mut decision = Decision::default();
        if self.live.load(Ordering::Acquire) == 0 {
            return decision;
        }
        let mut g = self.rules.lock();
        for f in g.1.iter_mut() {
            let s = &f.spec;
            let matches = s.number_id.as_deref().is_none_or(|n| n == number_id)
                && s.recipient.as_deref().is_none_or(|r| Some(r) == recipient)
                && s.endpoint.is_none_or(|e| e == endpoint)
                && s.count != Some(0);
            if !matches {
                continue;
            }
            match &s.action {
                FaultAction::Latency { ms } => decision.latency += Duration::from_millis(*ms),
                _ if decision.action.is_some() => continue,
                other => decision.action = Some(other.clone()),
            }
            f.hits += 1;
            if let Some(c) = f.spec.count.as_mut() {
                *c -= 1;
            }
        }
        g.1.retain(|f| f.spec.count != Some(0));
        self.live.store(g.1.len(), Ordering::Release);
        decision
    }
}

/// Marker extension: the server closes the connection instead of answering.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Applies a decision's generic effects. Returns the response to send instead of the
/// normal one, if any. `MetaError{async}` and the media-specific actions are left to the
/// caller (returned through `Err`).
pub async fn apply(sim: &crate::Sim, decision: Decision) -> Result<Option<FaultAction>, Response> {
    let latency =
        decision.latency + Duration::from_millis(sim.inner.settings.read().default_latency_ms);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(action) = decision.action else {
        return Ok(None);
    };
    match action {
        FaultAction::Latency { .. } => Ok(None),
        FaultAction::Http { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = body.unwrap_or_else(|| {
                json!({"error": {
                    "message": "An unexpected error has occurred. Please retry your request later.",
                    "type": "OAuthException", "is_transient": true, "code": 2,
                    "fbtrace_id": fbtrace_id()}})
                .to_string()
            });
            Err((status, [("content-type", "application/json")], body).into_response())
        }
        FaultAction::Timeout => {
            let token = sim.inner.shutdown.clone();
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            let mut r = StatusCode::GATEWAY_TIMEOUT.into_response();
            r.extensions_mut().insert(DropConnection);
            Err(r)
        }
        FaultAction::Drop => {
            let mut r = StatusCode::BAD_GATEWAY.into_response();
            r.extensions_mut().insert(DropConnection);
            Err(r)
        }
        FaultAction::MetaError { is_async: true, .. } => Ok(Some(action)),
        FaultAction::MetaError {
            code,
            subcode,
            title,
            details,
            http_status,
            ..
        } => Err(meta_error(code, subcode, title, details, http_status).into_response()),
        FaultAction::ExpiredToken => Err(GraphError::expired_token().into_response()),
        FaultAction::MediaExpiredUrl | FaultAction::MediaCorrupt | FaultAction::LoseResponse => {
            Ok(Some(action))
        }
    }
}

/// Builds the error for a `MetaError` action.
pub fn meta_error(
    code: u32,
    subcode: Option<u32>,
    title: Option<String>,
    details: Option<String>,
    http_status: Option<u16>,
) -> GraphError {
    let mut e = GraphError::titled(
        code,
        title.unwrap_or_else(|| default_title(code).to_string()),
        details.unwrap_or_else(|| default_details(code).to_string()),
    );
    e.subcode = subcode;
    if let Some(s) = http_status.and_then(|s| StatusCode::from_u16(s).ok()) {
        e.status = Some(s);
    }
    e
}
