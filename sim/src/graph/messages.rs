//! `POST /{version}/{phone_number_id}/messages`: sends and read receipts.
//!
//! This is the hot path (campaigns push thousands per second through it), so it does one
//! JSON parse, takes only per-number locks for a few microseconds each, and hands status
//! webhooks to background tasks. Order of checks mirrors Meta: faults (transport-level) →
//! token (190) → object (100/33) → scope (10) → registration → payload validation → 24 h
//! window → throughput (130429) → pair rate (131056) → accept.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{authenticate, authorize, check_version, faults_for, validate};
use crate::errors::{ErrorCode, GraphError, GraphResult};
use crate::faults::{self, Endpoint, FaultAction};
use crate::state::{self, normalize_phone, Number, PricedMessage, Received, WindowMode};
use crate::statuses::{self, Outbound, Pricing};
use crate::{ids, Sim};

const WINDOW_SECS: i64 = 24 * 3600;
const READ_RECEIPT_SECS: i64 = 30 * 24 * 3600;

/// Handler.
pub async fn send(
    State(sim): State<Sim>,
    Path((version, number_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    match send_inner(&sim, &version, &number_id, &headers, &uri, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn send_inner(
    sim: &Sim,
    version: &str,
    number_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    raw: Bytes,
) -> Result<Response, Response> {
    let version_major = check_version(sim, version).map_err(IntoResponse::into_response)?;
    let parsed: Result<Map<String, Value>, _> = serde_json::from_slice(&raw);
    let recipient = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.get("to"))
        .and_then(Value::as_str)
        .and_then(normalize_phone);
    let injected = match faults_for(sim, number_id, recipient.as_deref(), Endpoint::Messages).await
    {
        Ok(action) => action,
        Err(resp) => {
            record_fault(sim, number_id, recipient, &resp, &raw);
            return Err(resp);
        }
    };
    let token = authenticate(sim, headers, uri).map_err(IntoResponse::into_response)?;
    let number = sim
        .number(number_id)
        .map_err(|_| GraphError::no_object(number_id, "post").into_response())?;
    authorize(sim, &token, &number.waba_id, 10).map_err(IntoResponse::into_response)?;

    let now = Instant::now();
    let mut rec = Received {
        seq: sim.inner.next_seq(),
        number_id: number.id.clone(),
        to: recipient.clone().unwrap_or_default(),
        kind: "unknown",
        template: None,
        language: None,
        wamid: None,
        at_ms: chrono::Utc::now().timestamp_millis(),
        error_code: None,
        raw: sim
            .inner
            .settings
            .read()
            .record_raw_bodies
            .then(|| raw.clone()),
    };
    let result = process(
        sim,
        &number,
        version_major,
        parsed,
        recipient,
        injected,
        now,
        &mut rec,
    );
    match &result {
        Ok(_) => {}
        Err(e) => {
            rec.error_code = Some(e.code);
            number.count_error(e.code);
        }
    }
    sim.inner.received.lock().push(rec);
    result.map_err(IntoResponse::into_response)
}

#[allow(clippy::too_many_arguments)]
fn process(
    sim: &Sim,
    number: &Number,
    version_major: u32,
    parsed: Result<Map<String, Value>, serde_json::Error>,
    recipient: Option<String>,
    injected: Option<FaultAction>,
    now: Instant,
    rec: &mut Received,
) -> GraphResult<Response> {
    let body = parsed
        .map_err(|e| GraphError::invalid_param(format!("Request body is not valid JSON: {e}")))?;
    let (registered, display) = {
        let c = number.config.read();
        (c.registered, c.display_phone_number.clone())
    };
    if !registered {
        return Err(GraphError::new(
            133010,
            "The phone number is not registered on the WhatsApp Business Platform.",
        ));
    }
    match body.get("messaging_product") {
        Some(Value::String(p)) if p == "whatsapp" => {}
        Some(_) => {
            return Err(GraphError::invalid_param(
                "Param messaging_product must be one of {WHATSAPP} - got an invalid value.",
            ))
        }
        None => {
            return Err(GraphError::invalid_param(
                "The parameter messaging_product is required.",
            ))
        }
    }
    if body.get("status").is_some() {
        rec.kind = "read";
        return mark_read(number, &body);
    }
    let to_raw = match body.get("to") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) => return Err(GraphError::missing("to")),
        Some(_) => return Err(GraphError::invalid_param("Param to must be a string.")),
    };
    let to = recipient.ok_or_else(|| {
        GraphError::invalid_value(format!(
            "Recipient phone number `{to_raw}` is not a valid phone number."
        ))
    })?;
    if to == display {
        return Err(GraphError::new(
            131021,
            "Sender and recipient phone number are the same.",
        ));
    }
    let checked = validate::check_message(sim, number, &body)?;
    rec.kind = checked.kind;
    if let Some((name, lang, _)) = &checked.template {
        rec.template = Some(name.clone());
        rec.language = Some(lang.clone());
    }

    let window_open = number
        .last_inbound(&to)
        .is_some_and(|t| chrono::Utc::now().timestamp() - t < WINDOW_SECS);
    let mode = number
        .config
        .read()
        .window_mode
        .unwrap_or_else(|| sim.inner.settings.read().window_mode);
    let mut async_fail = None;
    if checked.is_free_form() && !window_open {
        match mode {
            WindowMode::Sync => {
                return Err(GraphError::new(
                    131047,
                    crate::errors::default_details(131047),
                ))
            }
            WindowMode::Async => {
                async_fail = Some(GraphError::new(
                    131047,
                    crate::errors::default_details(131047),
                ))
            }
            WindowMode::Off => {}
        }
    }
    let lose_response = matches!(injected, Some(FaultAction::LoseResponse));
    if let Some(FaultAction::MetaError {
        code,
        subcode,
        title,
        details,
        http_status,
        is_async: true,
    }) = injected
    {
        async_fail = Some(faults::meta_error(
            code,
            subcode,
            title,
            details,
            http_status,
        ));
    }
    number.take_throughput(now)?;
    number.take_pair(&to, now)?;

    // Accepted.
    let wamid = ids::wamid(&to);
    number.count_accepted(now);
    rec.wamid = Some(wamid.clone());

    let pricing = match &checked.template {
        Some((_, _, category)) => {
            let free = category == "UTILITY" && window_open;
            Pricing {
                billable: !free,
                kind: if free {
                    "free_customer_service"
                } else {
                    "regular"
                },
                category: category.to_ascii_lowercase(),
            }
        }
        None => Pricing {
            billable: false,
            kind: "free_customer_service",
            category: "service".into(),
        },
    };
    let plan = number
        .config
        .read()
        .status_plan
        .clone()
        .unwrap_or_else(|| sim.inner.settings.read().status_plan.clone());
    if let Some((_, _, category)) = &checked.template {
        if async_fail.is_none() && (plan.delivered_ms.is_some() || plan.read_ms.is_some()) {
            let country = state::country_of(&to);
            sim.inner.priced.lock().push(PricedMessage {
                waba_id: number.waba_id.clone(),
                number_id: number.id.clone(),
                at: chrono::Utc::now().timestamp(),
                country,
                category: category.clone(),
                pricing_type: if pricing.billable {
                    "REGULAR"
                } else {
                    "FREE_CUSTOMER_SERVICE"
                },
                cost: if pricing.billable {
                    state::price(category, country)
                } else {
                    0.0
                },
            });
        }
    }
    if let Some(target) = sim.webhook_target(number) {
        let msg = Outbound {
            number_id: number.id.clone(),
            waba_id: number.waba_id.clone(),
            display_phone_number: display,
            wamid: wamid.clone(),
            recipient: to.clone(),
            version_major,
            pricing,
            biz_opaque_callback_data: body
                .get("biz_opaque_callback_data")
                .and_then(Value::as_str)
                .map(String::from),
        };
        statuses::schedule(sim, target, plan, msg, async_fail);
    }

    let mut message = json!({"id": wamid});
    if checked.template.is_some() {
        message["message_status"] = "accepted".into();
    }
    let mut response = Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to_raw, "wa_id": to}],
        "messages": [message],
    }))
    .into_response();
    if lose_response {
        response.extensions_mut().insert(faults::DropConnection);
    }
    Ok(response)
}

/// Counts a fault-injected answer: Meta error codes as rejections (and in the received
/// log), transport faults (5xx, drop, timeout) in `faulted` only.
fn record_fault(
    sim: &Sim,
    number_id: &str,
    recipient: Option<String>,
    resp: &Response,
    raw: &Bytes,
) {
    let Ok(number) = sim.number(number_id) else {
        return;
    };
    match resp.extensions().get::<ErrorCode>() {
        Some(ErrorCode(code, _)) => {
            number.count_error(*code);
            let rec = Received {
                seq: sim.inner.next_seq(),
                number_id: number.id.clone(),
                to: recipient.unwrap_or_default(),
                kind: "unknown",
                template: None,
                language: None,
                wamid: None,
                at_ms: chrono::Utc::now().timestamp_millis(),
                error_code: Some(*code),
                raw: sim
                    .inner
                    .settings
                    .read()
                    .record_raw_bodies
                    .then(|| raw.clone()),
            };
            sim.inner.received.lock().push(rec);
        }
        None => number.stats.lock().faulted += 1,
    }
}

fn mark_read(number: &Number, body: &Map<String, Value>) -> GraphResult<Response> {
    match body.get("status").and_then(Value::as_str) {
        Some("read") => {}
        _ => return Err(GraphError::invalid_value("Param status must be `read`.")),
    }
    let id = match body.get("message_id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(GraphError::missing("message_id")),
    };
    let known = number.inbound_ids.lock().get(id).map(|(_, ts)| *ts);
    match known {
        None => Err(GraphError::invalid_param(format!(
            "Invalid message_id: message {id} was not received by this phone number."
        ))),
        Some(ts) if chrono::Utc::now().timestamp() - ts > READ_RECEIPT_SECS => {
            Err(GraphError::invalid_param(
                "Message is older than 30 days and cannot be marked as read.",
            ))
        }
        Some(_) => {
            if let Some(t) = body.get("typing_indicator") {
                if t.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(GraphError::invalid_value(
                        "typing_indicator.type must be `text`.",
                    ));
                }
            }
            Ok(Json(json!({"success": true})).into_response())
        }
    }
}
