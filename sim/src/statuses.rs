//! Status webhooks that follow an accepted send: `sent` → `delivered` → `read`, or `failed`.
//!
//! Meta reports delivery asynchronously and not always in order, so the plan per number
//! decides which statuses fire, after which delays, and whether to shuffle or duplicate
//! them; the platform's monotonic status handling is tested against that. `pricing` rides on
//! `sent` and `delivered` (PMP); `conversation` appears only when the request used Graph
//! v23 or lower, as Meta dropped it from v24.

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::{json, Value};

use crate::errors::GraphError;
use crate::state::StatusPlan;
use crate::webhooks::{self, WebhookTarget};
use crate::Sim;

/// Pricing facts of one accepted message.
#[derive(Debug, Clone)]
pub struct Pricing {
    /// Billable (a delivered template outside free windows).
    pub billable: bool,
    /// `regular` | `free_customer_service`.
    pub kind: &'static str,
    /// `marketing` | `utility` | `authentication` | `service`.
    pub category: String,
}

/// One accepted outbound message whose statuses are to be reported.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Phone number id.
    pub number_id: String,
    /// WABA id.
    pub waba_id: String,
    /// Display number.
    pub display_phone_number: String,
    /// The message id.
    pub wamid: String,
    /// Recipient wa_id.
    pub recipient: String,
    /// Major Graph version used by the request (conversation object only for ≤ 23).
    pub version_major: u32,
    /// Pricing facts.
    pub pricing: Pricing,
    /// Echoed `biz_opaque_callback_data`.
    pub biz_opaque_callback_data: Option<String>,
}

/// Schedules the status webhooks for `msg` according to `plan`, or a single `failed`
/// status when `fail` is set.
pub fn schedule(
    sim: &Sim,
    target: WebhookTarget,
    plan: StatusPlan,
    msg: Outbound,
    fail: Option<GraphError>,
) {
    let mut steps: Vec<(&'static str, u64)> = Vec::with_capacity(3);
    if fail.is_some() {
        steps.push(("failed", plan.sent_ms.unwrap_or(50)));
    } else {
        if let Some(ms) = plan.sent_ms {
            steps.push(("sent", ms));
        }
        if let Some(ms) = plan.delivered_ms {
            steps.push(("delivered", ms));
        }
        if let Some(ms) = plan.read_ms {
            steps.push(("read", ms));
        }
    }
    if steps.is_empty() {
        return;
    }
    if plan.shuffle {
        let mut delays: Vec<u64> = steps.iter().map(|s| s.1).collect();
        delays.sort_unstable();
        steps.shuffle(&mut rand::thread_rng());
        for (step, d) in steps.iter_mut().zip(delays) {
            step.1 = d;
        }
    }
    let sim = sim.clone();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for (status, at) in steps {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            if sim.inner.shutdown.is_cancelled() {
                return;
            }
            let body = status_body(&msg, status, fail.as_ref());
            let times = if plan.duplicate { 2 } else { 1 };
            for _ in 0..times {
                webhooks::emit(
                    &sim,
                    target.clone(),
                    Some(msg.number_id.clone()),
                    format!("status:{status}:{}", msg.wamid),
                    body.clone(),
                );
            }
        }
    });
}

/// The full webhook body of one status event.
pub fn status_body(msg: &Outbound, status: &str, fail: Option<&GraphError>) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut st = json!({
        "id": msg.wamid,
        "status": status,
        "timestamp": now.to_string(),
        "recipient_id": msg.recipient,
    });
    if let Some(data) = &msg.biz_opaque_callback_data {
        st["biz_opaque_callback_data"] = data.clone().into();
    }
    if status == "sent" || status == "delivered" {
        if msg.version_major <= 23 {
            let mut conv = json!({
                "id": conversation_id(&msg.wamid),
                "origin": {"type": msg.pricing.category},
            });
            if status == "sent" {
                conv["expiration_timestamp"] = (now + 24 * 3600).to_string().into();
            }
            st["conversation"] = conv;
        }
        st["pricing"] = json!({
            "billable": msg.pricing.billable,
            "pricing_model": "PMP",
            "type": msg.pricing.kind,
            "category": msg.pricing.category,
        });
    }
    if let Some(err) = fail {
        st["errors"] = json!([err.webhook_object()]);
    }
    webhooks::envelope(
        &msg.waba_id,
        "messages",
        json!({
            "messaging_product": "whatsapp",
            "metadata": webhooks::metadata(&msg.display_phone_number, &msg.number_id),
            "statuses": [st],
        }),
    )
}

fn conversation_id(wamid: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(wamid.as_bytes())[..16])
}
