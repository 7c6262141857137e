//! Template management: list (cursor paging, filters), create, edit, delete, get.
//!
//! Templates live per WABA, ordered by their (monotonic) numeric id, so an `after` cursor
//! (base64 of the last id seen) stays valid across inserts and deletes, as Meta's do. Every
//! call here is a management call (budget + usage header).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::validate::placeholders;
use super::{authenticate, authorize, check_version, fields_param, management};
use crate::errors::{GraphError, GraphResult};
use crate::state::{Template, Waba};
use crate::{ids, Sim};

const MAX_TEMPLATES: usize = 250;

/// Opaque paging cursor for an id.
pub fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("cursor:{id}"))
}

fn decode_cursor(c: &str) -> GraphResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("cursor:").map(String::from))
        .ok_or_else(|| GraphError::invalid_param("Invalid cursor"))
}

fn id_key(id: &str) -> (u128, &str) {
    (id.parse().unwrap_or(u128::MAX), id)
}

/// `GET /{v}/{waba_id}/message_templates`.
pub async fn list(
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
            list_page(&sim, &version, &waba, &query)
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn list_page(
    sim: &Sim,
    version: &str,
    waba: &Waba,
    query: &HashMap<String, String>,
) -> GraphResult<Response> {
    let limit: usize = match query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| GraphError::invalid_param("Param limit must be an integer."))?,
        None => 25,
    };
    let limit = limit.clamp(1, 1000);
    let fields = fields_param(query);
    let status = query.get("status").map(|s| s.to_uppercase());
    let name = query.get("name").map(|s| s.to_lowercase());
    let language = query.get("language");
    let category = query.get("category").map(|s| s.to_uppercase());
    let mut all: Vec<Template> = waba
        .state
        .lock()
        .templates
        .iter()
        .filter(|t| {
            status
                .as_ref()
                .is_none_or(|s| s.split(',').any(|s| s == t.status))
        })
        .filter(|t| name.as_ref().is_none_or(|n| t.name.contains(n.as_str())))
        .filter(|t| language.is_none_or(|l| &t.language == l))
        .filter(|t| category.as_ref().is_none_or(|c| &t.category == c))
        .cloned()
        .collect();
    all.sort_by(|a, b| id_key(&a.id).cmp(&id_key(&b.id)));
    let (page, has_more_after, has_before): (&[Template], bool, bool) =
        if let Some(before) = query.get("before") {
            let before = decode_cursor(before)?;
            let end = all
                .iter()
                .position(|t| id_key(&t.id) >= id_key(&before))
                .unwrap_or(all.len());
            let start = end.saturating_sub(limit);
            (&all[start..end], end < all.len(), start > 0)
        } else {
            let start = match query.get("after") {
                Some(after) => {
                    let after = decode_cursor(after)?;
                    all.iter()
                        .position(|t| id_key(&t.id) > id_key(&after))
                        .unwrap_or(all.len())
                }
                None => 0,
            };
            let end = (start + limit).min(all.len());
            (&all[start..end], end < all.len(), start > 0)
        };
    let data: Vec<Value> = page.iter().map(|t| t.to_json(fields.as_deref())).collect();
    let mut paging = json!({});
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        paging["cursors"] =
            json!({"before": encode_cursor(&first.id), "after": encode_cursor(&last.id)});
        let page_url = |key: &str, cursor: &str| {
            let mut params: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "before")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            params.sort();
            params.push((key.to_string(), cursor.to_string()));
            reqwest::Url::parse_with_params(
                &format!("{}/{version}/{}/message_templates", sim.base_url(), waba.id),
                &params,
            )
            .map(|u| u.to_string())
            .unwrap_or_default()
        };
        if has_more_after {
            paging["next"] = page_url("after", &encode_cursor(&last.id)).into();
        }
        if has_before {
            paging["previous"] = page_url("before", &encode_cursor(&first.id)).into();
        }
    }
    Ok(Json(json!({"data": data, "paging": paging})).into_response())
}

fn template_error(subcode: u32, user_title: &str, user_msg: impl Into<String>) -> GraphError {
    let msg: String = user_msg.into();
    GraphError::new(100, msg.clone())
        .subcode(subcode)
        .with("is_transient", false)
        .with("error_user_title", user_title)
        .with("error_user_msg", msg)
}

/// Validates template components as Meta does on create/edit.
fn check_components(components: &Value, category: &str, named: bool) -> GraphResult<()> {
    let arr = components
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| GraphError::invalid_param("Param components must be a non-empty array."))?;
    let mut has_body = false;
    for c in arr {
        let c = c
            .as_object()
            .ok_or_else(|| GraphError::invalid_param("Each component must be an object."))?;
        let ctype = c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_uppercase();
        let text = c.get("text").and_then(Value::as_str);
        match ctype.as_str() {
            "HEADER" => {
                let format = c
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or("TEXT")
                    .to_uppercase();
                if !["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"].contains(&format.as_str()) {
                    return Err(GraphError::invalid_param(format!(
                        "Invalid header format {format}."
                    )));
                }
                if format == "TEXT" {
                    let text = text
                        .ok_or_else(|| GraphError::invalid_param("Text header requires `text`."))?;
                    if text.chars().count() > 60 {
                        return Err(template_error(
                            2388040,
                            "Header too long",
                            "Header text must be at most 60 characters.",
                        ));
                    }
                    if placeholders(text).len() > 1 {
                        return Err(template_error(
                            2388040,
                            "Too many header variables",
                            "A text header can have at most one variable.",
                        ));
                    }
                }
            }
            "BODY" => {
                has_body = true;
                let text =
                    text.ok_or_else(|| GraphError::invalid_param("BODY requires `text`."))?;
                if text.chars().count() > 1024 {
                    return Err(template_error(
                        2388040,
                        "Body too long",
                        "Body text must be at most 1024 characters.",
                    ));
                }
                let vars = placeholders(text);
                if !named {
                    for (i, v) in vars.iter().enumerate() {
                        if v != &(i + 1).to_string() {
                            return Err(template_error(2388043, "Invalid variable", format!("Variables must be sequential {{{{1}}}}..{{{{n}}}}; found {{{{{v}}}}}.")));
                        }
                    }
                }
                if !vars.is_empty() && c.get("example").is_none() {
                    return Err(template_error(
                        2388043,
                        "Missing sample values",
                        "Body variables require example values (example.body_text).",
                    ));
                }
            }
            "FOOTER" => {
                if text.is_some_and(|t| t.chars().count() > 60) {
                    return Err(template_error(
                        2388040,
                        "Footer too long",
                        "Footer text must be at most 60 characters.",
                    ));
                }
            }
            "BUTTONS" => {
                let buttons = c
                    .get("buttons")
                    .and_then(Value::as_array)
                    .filter(|b| !b.is_empty() && b.len() <= 10);
                if buttons.is_none() {
                    return Err(GraphError::invalid_param(
                        "BUTTONS requires 1 to 10 buttons.",
                    ));
                }
            }
            other => {
                return Err(GraphError::invalid_param(format!(
                    "Invalid component type {other}."
                )))
            }
        }
    }
    if !has_body && category != "AUTHENTICATION" {
        return Err(GraphError::invalid_param("A BODY component is required."));
    }
    Ok(())
}

fn parse_body(body: &Bytes) -> GraphResult<Map<String, Value>> {
    serde_json::from_slice(body)
        .map_err(|e| GraphError::invalid_param(format!("Request body is not valid JSON: {e}")))
}

/// `POST /{v}/{waba_id}/message_templates`.
pub async fn create(
    State(sim): State<Sim>,
    Path((version, waba_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = (|| -> GraphResult<Response> {
        check_version(&sim, &version)?;
        let token = authenticate(&sim, &headers, &uri)?;
        let waba = sim
            .waba(&waba_id)
            .map_err(|_| GraphError::no_object(&waba_id, "post"))?;
        authorize(&sim, &token, &waba.id, 200)?;
        Ok(management(&waba, || create_inner(&sim, &waba, &body)))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn create_inner(sim: &Sim, waba: &Waba, body: &Bytes) -> GraphResult<Response> {
    let b = parse_body(body)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid_param("The parameter name is required."))?;
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        return Err(template_error(
            2388042,
            "Invalid template name",
            "Template names may only contain lowercase letters, digits and underscores (max 512).",
        ));
    }
    let language = b
        .get("language")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid_param("The parameter language is required."))?;
    let lang_ok = {
        let (l, r) = language.split_once('_').unwrap_or((language, ""));
        (2..=3).contains(&l.len())
            && l.bytes().all(|c| c.is_ascii_lowercase())
            && (r.is_empty() || (r.len() == 2 && r.bytes().all(|c| c.is_ascii_uppercase())))
    };
    if !lang_ok {
        return Err(GraphError::invalid_param(format!(
            "Invalid language code {language}."
        )));
    }
    let category = b
        .get("category")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid_param("The parameter category is required."))?
        .to_uppercase();
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
        return Err(GraphError::invalid_param(
            "Param category must be one of {MARKETING, UTILITY, AUTHENTICATION}.",
        ));
    }
    let parameter_format = b
        .get("parameter_format")
        .and_then(Value::as_str)
        .unwrap_or("positional")
        .to_uppercase();
    if parameter_format != "POSITIONAL" && parameter_format != "NAMED" {
        return Err(GraphError::invalid_param(
            "Param parameter_format must be one of {NAMED, POSITIONAL}.",
        ));
    }
    let components = b.get("components").cloned().unwrap_or(Value::Null);
    check_components(&components, &category, parameter_format == "NAMED")?;
    let (auto, id) = {
        let mut s = waba.state.lock();
        if s.templates
            .iter()
            .any(|t| t.name == name && t.language == language)
        {
            return Err(template_error(
                2388024,
                "Content in This Language Already Exists",
                format!("There is already {language} content for this template ({name}). You can create a new template and try again."),
            ));
        }
        if s.templates.len() >= MAX_TEMPLATES {
            return Err(template_error(2388019, "Message Template Limit Exceeded", "You have reached the maximum of 250 message templates for this WhatsApp Business Account."));
        }
        let t = Template {
            id: ids::object_id(),
            name: name.to_string(),
            language: language.to_string(),
            category: category.clone(),
            status: "PENDING".into(),
            parameter_format,
            components,
            quality_score: "UNKNOWN".into(),
            rejected_reason: "NONE".into(),
        };
        let id = t.id.clone();
        s.templates.push(t);
        (s.auto_approve_templates, id)
    };
    sim.inner
        .template_owner
        .write()
        .insert(id.clone(), waba.id.clone());
    if auto {
        schedule_approval(sim, &id);
    }
    Ok(Json(json!({"id": id, "status": "PENDING", "category": category})).into_response())
}

fn schedule_approval(sim: &Sim, id: &str) {
    let sim = sim.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let _ = sim.set_template_status(&id, "APPROVED", None);
    });
}

/// `POST /{v}/{template_id}` (edit components / category).
pub fn edit(sim: &Sim, waba: &Waba, id: &str, body: &Bytes) -> GraphResult<Response> {
    let b = parse_body(body)?;
    let auto = {
        let mut s = waba.state.lock();
        let auto = s.auto_approve_templates;
        let t = s
            .templates
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| GraphError::no_object(id, "post"))?;
        if !["APPROVED", "REJECTED", "PAUSED"].contains(&t.status.as_str()) {
            return Err(template_error(
                2388068,
                "Template can't be edited",
                format!("Templates with status {} can't be edited.", t.status),
            ));
        }
        let category = match b.get("category").and_then(Value::as_str) {
            Some(c) => {
                let c = c.to_uppercase();
                if t.status == "APPROVED" && c != t.category {
                    return Err(template_error(
                        2388068,
                        "Category can't be changed",
                        "The category of an approved template can't be changed.",
                    ));
                }
                c
            }
            None => t.category.clone(),
        };
        if let Some(components) = b.get("components") {
            check_components(components, &category, t.parameter_format == "NAMED")?;
            t.components = components.clone();
        }
        t.category = category;
        t.status = "PENDING".into();
        auto
    };
    if auto {
        schedule_approval(sim, id);
    }
    Ok(Json(json!({"success": true})).into_response())
}

/// `DELETE /{v}/{waba_id}/message_templates?name=..[&hsm_id=..]`.
pub async fn delete(
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
            .map_err(|_| GraphError::no_object(&waba_id, "delete"))?;
        authorize(&sim, &token, &waba.id, 200)?;
        Ok(management(&waba, || {
            let name = query
                .get("name")
                .ok_or_else(|| GraphError::invalid_param("The parameter name is required."))?;
            let hsm_id = query.get("hsm_id");
            let mut s = waba.state.lock();
            let matches = |t: &Template| &t.name == name && hsm_id.is_none_or(|h| &t.id == h);
            let found: Vec<&Template> = s.templates.iter().filter(|t| matches(t)).collect();
            if found.is_empty() {
                return Err(template_error(
                    2593002,
                    "Message template not found",
                    format!("Message template \"{name}\" was not found."),
                ));
            }
            if found.iter().any(|t| t.status == "DISABLED") {
                return Err(template_error(
                    2388094,
                    "Template can't be deleted",
                    "Disabled templates can't be deleted.",
                ));
            }
            let removed: Vec<String> = found.iter().map(|t| t.id.clone()).collect();
            s.templates.retain(|t| !matches(t));
            drop(s);
            let mut owners = sim.inner.template_owner.write();
            for id in removed {
                owners.remove(&id);
            }
            Ok(Json(json!({"success": true})).into_response())
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /{v}/{template_id}`.
pub fn get_one(waba: &Waba, id: &str, query: &HashMap<String, String>) -> GraphResult<Response> {
    let s = waba.state.lock();
    let t = s
        .templates
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| GraphError::no_object(id, "get"))?;
    Ok(Json(t.to_json(fields_param(query).as_deref())).into_response())
}
