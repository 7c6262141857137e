//! Phone numbers and WABAs: `GET /{number}`, `GET /{waba}`, `GET /{waba}/phone_numbers`,
//! registration, `subscribed_apps`, and `pricing_analytics` on the WABA node.
//!
//! WABA-level calls are management calls: they spend the WABA's hourly budget and carry
//! `x-business-use-case-usage` (see [`super::management`]).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::{Datelike, TimeZone};
use serde_json::{json, Map, Value};

use super::{authenticate, authorize, check_version, faults_for, fields_param, management};
use crate::errors::{GraphError, GraphResult};
use crate::faults::Endpoint;
use crate::state::{pick_fields, Number, Waba};
use crate::webhooks::WebhookTarget;
use crate::Sim;

const DEFAULT_NUMBER_FIELDS: [&str; 4] = [
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
];

fn number_json(sim: &Sim, n: &Number, fields: Option<&[String]>) -> Value {
    let webhook = sim.webhook_target(n).map(|t| t.url).unwrap_or_default();
    let c = n.config.read();
    let full = json!({
        "id": n.id,
        "display_phone_number": c.display_phone_number,
        "verified_name": c.verified_name,
        "quality_rating": c.quality_rating,
        "code_verification_status": "VERIFIED",
        "platform_type": if c.registered || c.coexistence { "CLOUD_API" } else { "NOT_APPLICABLE" },
        "throughput": {"level": c.throughput_level},
        "status": if c.registered { c.status.as_str() } else { "PENDING" },
        "name_status": c.name_status,
        "whatsapp_business_manager_messaging_limit": c.messaging_limit,
        "messaging_limit_tier": c.messaging_limit,
        "account_mode": "LIVE",
        "is_official_business_account": false,
        "is_pin_enabled": true,
        "is_on_biz_app": c.coexistence,
        "quality_score": {"score": c.quality_rating},
        "health_status": {"can_send_message": "AVAILABLE", "entities": []},
        "webhook_configuration": {"application": webhook},
    });
    let default: Vec<String> = DEFAULT_NUMBER_FIELDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    pick_fields(&full, fields.unwrap_or(&default))
}

/// `GET /{v}/{phone_number_id}`.
pub async fn get_number(
    sim: &Sim,
    number: &Number,
    token: &str,
    query: &HashMap<String, String>,
) -> GraphResult<Response> {
    if let Err(r) = faults_for(sim, &number.id, None, Endpoint::PhoneNumber).await {
        return Ok(r);
    }
    authorize(sim, token, &number.waba_id, 200)?;
    let fields = fields_param(query);
    Ok(Json(number_json(sim, number, fields.as_deref())).into_response())
}

/// `GET /{v}/{waba_id}/phone_numbers`.
pub async fn list_numbers(
    State(sim): State<Sim>,
    Path((version, waba_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = (|| -> GraphResult<Response> {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        let waba = sim
            .waba(&waba_id)
            .map_err(|_| GraphError::no_object(&waba_id, "get"))?;
        authorize(&sim, &token, &waba.id, 200)?;
        Ok(management(&waba, || {
            let fields = fields_param(&query);
            let ids = waba.state.lock().numbers.clone();
            let data: Vec<Value> = ids
                .iter()
                .filter_map(|id| sim.number(id).ok())
                .map(|n| number_json(&sim, &n, fields.as_deref()))
                .collect();
            let cursor = |v: Option<&Value>| {
                v.and_then(|v| v["id"].as_str())
                    .map(super::templates::encode_cursor)
                    .unwrap_or_default()
            };
            Ok(Json(json!({
                "data": data,
                "paging": {"cursors": {"before": cursor(data.first()), "after": cursor(data.last())}},
            }))
            .into_response())
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_body(body: &Bytes) -> GraphResult<Map<String, Value>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_slice(body)
        .or_else(|_| {
            // Graph also accepts form-encoded bodies.
            let s = std::str::from_utf8(body).map_err(|_| ())?;
            let mut m = Map::new();
            for kv in s.split('&') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            Ok::<_, ()>(m)
        })
        .map_err(|_| GraphError::invalid_param("Request body is not valid JSON."))
}

/// `POST /{v}/{phone_number_id}/register` with `{"messaging_product":"whatsapp","pin":"123456"}`.
pub async fn register(
    State(sim): State<Sim>,
    Path((version, number_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        if let Err(r) = faults_for(&sim, &number_id, None, Endpoint::PhoneNumber).await {
            return Ok(r);
        }
        let token = authenticate(&sim, &headers, &uri)?;
        let number = sim
            .number(&number_id)
            .map_err(|_| GraphError::no_object(&number_id, "post"))?;
        authorize(&sim, &token, &number.waba_id, 200)?;
        let body = json_body(&body)?;
        match body.get("messaging_product").and_then(Value::as_str) {
            Some("whatsapp") => {}
            _ => {
                return Err(GraphError::invalid_param(
                    "The parameter messaging_product is required.",
                ))
            }
        }
        let pin = body
            .get("pin")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::invalid_param("The parameter pin is required."))?;
        if pin.len() != 6 || !pin.chars().all(|c| c.is_ascii_digit()) {
            return Err(GraphError::invalid_param("Param pin must be 6 digits."));
        }
        let mut c = number.config.write();
        if c.pin != pin {
            return Err(GraphError::new(
                133005,
                "Two step verification PIN incorrect.",
            ));
        }
        c.registered = true;
        c.status = "CONNECTED".into();
        Ok(Json(json!({"success": true})).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /{v}/{phone_number_id}/deregister`.
pub async fn deregister(
    State(sim): State<Sim>,
    Path((version, number_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = (|| -> GraphResult<Response> {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        let number = sim
            .number(&number_id)
            .map_err(|_| GraphError::no_object(&number_id, "post"))?;
        authorize(&sim, &token, &number.waba_id, 200)?;
        number.config.write().registered = false;
        Ok(Json(json!({"success": true})).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST|DELETE /{v}/{waba_id}/subscribed_apps`.
pub async fn subscribed_apps(
    State(sim): State<Sim>,
    Path((version, waba_id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        let waba = sim.waba(&waba_id).map_err(|_| GraphError::no_object(&waba_id, &method.as_str().to_ascii_lowercase()))?;
        authorize(&sim, &token, &waba.id, 200)?;
        let body = json_body(&body)?;
        // Meta verifies an override callback with the GET challenge before accepting it.
        let override_uri = body.get("override_callback_uri").and_then(Value::as_str).map(String::from);
        if method == Method::POST {
            if let Some(uri) = &override_uri {
                let verify = body.get("verify_token").and_then(Value::as_str).unwrap_or("");
                if let Err(why) = verify_callback(&sim, uri, verify).await {
                    return Ok(management(&waba, || {
                        Err(GraphError::new(2200, format!("Callback verification failed with the following errors: {why}")).subcode(2200))
                    }));
                }
            }
        }
        Ok(management(&waba, || {
            let mut s = waba.state.lock();
            match method {
                Method::POST => {
                    s.subscribed = Some(json!({"override_callback_uri": override_uri}));
                    if let Some(url) = override_uri {
                        let app_secret = s.webhook.as_ref().map(|t| t.app_secret.clone()).unwrap_or_default();
                        s.webhook = Some(WebhookTarget { url, app_secret });
                    }
                    Ok(Json(json!({"success": true})).into_response())
                }
                Method::DELETE => {
                    s.subscribed = None;
                    Ok(Json(json!({"success": true})).into_response())
                }
                _ => {
                    let data: Vec<Value> = s
                        .subscribed
                        .iter()
                        .map(|sub| {
                            let mut v = json!({"whatsapp_business_api_data": {
                                "id": sim.settings().app_id.unwrap_or_else(|| "1000000000000001".into()),
                                "name": "Wharf",
                                "link": "https://www.facebook.com/games/?app_id=1000000000000001",
                            }});
                            if let Some(u) = sub["override_callback_uri"].as_str() {
                                v["override_callback_uri"] = u.into();
                            }
                            v
                        })
                        .collect();
                    Ok(Json(json!({"data": data})).into_response())
                }
            }
        }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Meta's GET challenge against a callback URL.
pub async fn verify_callback(sim: &Sim, url: &str, verify_token: &str) -> Result<(), String> {
    let challenge = rand::random::<u32>().to_string();
    let resp = reqwest::Client::new()
        .get(url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", verify_token),
        ])
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("URL couldn't be validated: {e}"))?;
    let _ = sim;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.as_u16() == 200 && text.trim() == challenge {
        Ok(())
    } else {
        Err(format!("The URL couldn't be validated. Response does not match challenge, expected value=\"{challenge}\", received=\"{}\" (HTTP {status})", text.chars().take(64).collect::<String>()))
    }
}

/// `GET /{v}/{waba_id}` (plain fields and `pricing_analytics...`).
pub fn get_waba(sim: &Sim, waba: &Waba, query: &HashMap<String, String>) -> GraphResult<Response> {
    let (name, currency) = {
        let s = waba.state.lock();
        (s.name.clone(), s.currency.clone())
    };
    let full = json!({
        "id": waba.id,
        "name": name,
        "currency": currency,
        "timezone_id": "1",
        "message_template_namespace": format!("ns_{}", waba.id),
        "account_review_status": "APPROVED",
        "business_verification_status": "verified",
        "ownership_type": "CLIENT_OWNED",
    });
    let Some(fields) = fields_param(query) else {
        return Ok(Json(pick_fields(&full, &["name".into()])).into_response());
    };
    let mut out = pick_fields(&full, &fields);
    for f in &fields {
        if let Some(spec) = f.strip_prefix("pricing_analytics") {
            out["pricing_analytics"] = pricing_analytics(sim, &waba.id, spec)?;
        }
    }
    Ok(Json(out).into_response())
}

/// Parses `.start(1).end(2).granularity(DAILY)...` into name → args.
fn modifiers(spec: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for part in spec.split(").") {
        let part = part.trim_start_matches('.').trim_end_matches(')');
        let Some((name, args)) = part.split_once('(') else {
            continue;
        };
        let args = args
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|a| a.trim().trim_matches('"').trim_matches('\'').to_string())
            .filter(|a| !a.is_empty())
            .collect();
        out.insert(name.trim().to_string(), args);
    }
    out
}

fn pricing_analytics(sim: &Sim, waba_id: &str, spec: &str) -> GraphResult<Value> {
    let m = modifiers(spec);
    let num = |k: &str| -> GraphResult<i64> {
        m.get(k)
            .and_then(|v| v.first())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                GraphError::invalid_param(format!("pricing_analytics requires {k}(<unix seconds>)"))
            })
    };
    let start = num("start")?;
    let end = num("end")?;
    let granularity = m
        .get("granularity")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_else(|| "DAILY".into());
    let dims: Vec<String> = m
        .get("dimensions")
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_uppercase())
        .collect();
    let countries = m.get("country_codes").cloned();
    let phones = m.get("phone_numbers").cloned();
    let metrics = m
        .get("metric_types")
        .cloned()
        .unwrap_or_else(|| vec!["COST".into(), "VOLUME".into()]);
    if !["HALF_HOUR", "DAILY", "MONTHLY"].contains(&granularity.as_str()) {
        return Err(GraphError::invalid_param(
            "granularity must be HALF_HOUR, DAILY or MONTHLY",
        ));
    }
    let bucket = |t: i64| -> (i64, i64) {
        match granularity.as_str() {
            "HALF_HOUR" => (t - t.rem_euclid(1800), t - t.rem_euclid(1800) + 1800),
            "DAILY" => (t - t.rem_euclid(86400), t - t.rem_euclid(86400) + 86400),
            _ => {
                let d = chrono::Utc.timestamp_opt(t, 0).single().unwrap_or_default();
                let first = chrono::Utc
                    .with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default();
                let (ny, nm) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                let next = chrono::Utc
                    .with_ymd_and_hms(ny, nm, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default();
                (first.timestamp(), next.timestamp())
            }
        }
    };
    let mut groups: BTreeMap<(i64, i64, Vec<String>), (u64, f64)> = BTreeMap::new();
    for p in sim.inner.priced.lock().iter() {
        if p.waba_id != waba_id || p.at < start || p.at >= end {
            continue;
        }
        if countries
            .as_ref()
            .is_some_and(|c| !c.iter().any(|c| c == p.country))
        {
            continue;
        }
        if phones
            .as_ref()
            .is_some_and(|ph| !ph.iter().any(|x| x == &p.number_id))
        {
            continue;
        }
        let (s, e) = bucket(p.at);
        let key: Vec<String> = dims
            .iter()
            .map(|d| match d.as_str() {
                "COUNTRY" => p.country.to_string(),
                "PHONE" => p.number_id.clone(),
                "PRICING_TYPE" => p.pricing_type.to_string(),
                "PRICING_CATEGORY" => p.category.clone(),
                "TIER" => {
                    if p.pricing_type == "REGULAR" {
                        "0:100000".into()
                    } else {
                        String::new()
                    }
                }
                _ => String::new(),
            })
            .collect();
        let g = groups.entry((s, e, key)).or_default();
        g.0 += 1;
        g.1 += p.cost;
    }
    let points: Vec<Value> = groups
        .into_iter()
        .map(|((s, e, key), (volume, cost))| {
            let mut dp = json!({"start": s, "end": e});
            for (d, v) in dims.iter().zip(key) {
                let name = match d.as_str() {
                    "COUNTRY" => "country",
                    "PHONE" => "phone_number",
                    "PRICING_TYPE" => "pricing_type",
                    "PRICING_CATEGORY" => "pricing_category",
                    "TIER" => "tier",
                    _ => continue,
                };
                if !v.is_empty() {
                    dp[name] = v.into();
                }
            }
            if metrics.iter().any(|m| m.eq_ignore_ascii_case("VOLUME")) {
                dp["volume"] = volume.into();
            }
            if metrics.iter().any(|m| m.eq_ignore_ascii_case("COST")) {
                dp["cost"] = ((cost * 10_000.0).round() / 10_000.0).into();
            }
            dp
        })
        .collect();
    Ok(json!({"data": [{"data_points": points}]}))
}
