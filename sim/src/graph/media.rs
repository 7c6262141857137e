//! Media: upload, URL retrieval, download, deletion.
//!
//! Mirrors Meta's three-step flow so the platform's download job is exercised for real:
//! `GET /{media_id}` hands out a URL that lives `media_url_ttl_ms` (5 minutes by default),
//! and fetching that URL needs the Bearer token; an expired URL is a 404 and the client must
//! ask for a fresh one. Uploads are checked against Meta's MIME/size table (→ 131053).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;

use super::{authenticate, authorize, check_version, faults_for};
use crate::errors::{GraphError, GraphResult};
use crate::faults::{Endpoint, FaultAction};
use crate::state::MediaUrl;
use crate::{ids, Sim};

const MB: usize = 1024 * 1024;

/// Maximum size per MIME type (Meta's table), or `None` if the type is not supported.
pub fn max_size(mime: &str) -> Option<(&'static str, usize)> {
    Some(match mime {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", 100 * MB)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        _ => return None,
    })
}

/// Whether stored media of `mime` may be sent as a message of type `kind`.
pub fn mime_fits(kind: &str, mime: &str) -> bool {
    match max_size(mime) {
        Some((k, _)) => k == kind || kind == "document",
        None => false,
    }
}

fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `POST /{v}/{number}/media` (multipart: `messaging_product`, `file`, `type`).
pub async fn upload(
    State(sim): State<Sim>,
    Path((version, number_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let result: GraphResult<Response> = async {
        check_version(&sim, &version)?;
        if let Err(r) = faults_for(&sim, &number_id, None, Endpoint::MediaUpload).await {
            return Ok(r);
        }
        let token = authenticate(&sim, &headers, &uri)?;
        let number = sim
            .number(&number_id)
            .map_err(|_| GraphError::no_object(&number_id, "post"))?;
        authorize(&sim, &token, &number.waba_id, 10)?;
        let mut multipart = multipart
            .map_err(|e| GraphError::invalid_param(format!("Expected multipart/form-data: {e}")))?;
        let mut product = None;
        let mut declared = None;
        let mut file: Option<(Option<String>, Option<String>, Bytes)> = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| GraphError::invalid_param(format!("Malformed multipart body: {e}")))?
        {
            match field.name().unwrap_or("") {
                "messaging_product" => product = Some(field.text().await.unwrap_or_default()),
                "type" => declared = Some(field.text().await.unwrap_or_default()),
                "file" => {
                    let ct = field.content_type().map(String::from);
                    let name = field.file_name().map(String::from);
                    let bytes = field.bytes().await.map_err(|e| {
                        GraphError::new(131053, format!("Unable to read uploaded file: {e}"))
                    })?;
                    file = Some((ct, name, bytes));
                }
                _ => {}
            }
        }
        match product.as_deref() {
            Some("whatsapp") => {}
            Some(_) => {
                return Err(GraphError::invalid_param(
                    "Param messaging_product must be one of {WHATSAPP}.",
                ))
            }
            None => {
                return Err(GraphError::invalid_param(
                    "The parameter messaging_product is required.",
                ))
            }
        }
        let (file_ct, filename, bytes) = file.ok_or_else(|| GraphError::missing("file"))?;
        let mime = match (
            declared.as_deref().map(essence),
            file_ct.as_deref().map(essence),
        ) {
            (Some(d), Some(f)) if d != f && f != "application/octet-stream" => {
                return Err(GraphError::new(
                    131053,
                    format!("Param file content type {f} does not match type {d}."),
                ))
            }
            (Some(d), _) => d,
            (None, Some(f)) => f,
            (None, None) => return Err(GraphError::missing("type")),
        };
        let (kind, max) = max_size(&mime)
            .ok_or_else(|| GraphError::new(131053, format!("Unsupported media type: {mime}")))?;
        if bytes.is_empty() {
            return Err(GraphError::new(131053, "The uploaded file is empty."));
        }
        if bytes.len() > max {
            return Err(GraphError::new(
                131053,
                format!(
                    "File size {} exceeds the {kind} limit of {max} bytes.",
                    bytes.len()
                ),
            ));
        }
        let media = sim.store_media(&number.id, mime, bytes, filename);
        Ok(Json(json!({"id": media.id})).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn check_owner(query: &HashMap<String, String>, owner: &str, id: &str) -> GraphResult<()> {
    match query.get("phone_number_id") {
        Some(p) if p != owner => Err(GraphError::no_object(id, "get")),
        _ => Ok(()),
    }
}

/// `GET /{v}/{media_id}` → a short-lived download URL.
pub async fn get_url(
    sim: &Sim,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Response {
    let result: GraphResult<Response> = async {
        let media = sim
            .inner
            .media
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| GraphError::no_object(id, "get"))?;
        if let Err(r) = faults_for(sim, &media.number_id, None, Endpoint::MediaGet).await {
            return Ok(r);
        }
        let token = authenticate(sim, headers, uri)?;
        let waba = sim
            .number(&media.number_id)
            .map(|n| n.waba_id.clone())
            .unwrap_or_default();
        authorize(sim, &token, &waba, 10)?;
        check_owner(query, &media.number_id, id)?;
        let ttl = Duration::from_millis(sim.inner.settings.read().media_url_ttl_ms);
        let url_token = ids::token("");
        {
            let mut urls = sim.inner.media_urls.lock();
            if urls.len() > 10_000 {
                let now = Instant::now();
                urls.retain(|_, u| u.expires > now);
            }
            urls.insert(
                url_token.clone(),
                MediaUrl {
                    media_id: media.id.clone(),
                    expires: Instant::now() + ttl,
                },
            );
        }
        Ok(Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/media-download/{url_token}?mid={}", sim.base_url(), media.id),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": media.bytes.len().to_string(),
            "id": media.id,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn serve_bytes(
    sim: &Sim,
    media_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    corrupt: bool,
) -> Response {
    if let Err(e) = authenticate(sim, headers, uri) {
        return e.status(StatusCode::UNAUTHORIZED).into_response();
    }
    let Some(media) = sim.inner.media.read().get(media_id).cloned() else {
        return not_found();
    };
    let bytes = if corrupt {
        let mut v = media.bytes.to_vec();
        match v.first_mut() {
            Some(b) => *b ^= 0xFF,
            None => v.push(0),
        }
        Bytes::from(v)
    } else {
        media.bytes.clone()
    };
    let mut resp = bytes.into_response();
    if let Ok(v) = media.mime_type.parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// `GET /media-download/{token}` (the URL returned by `GET /{media_id}`).
pub async fn download(
    State(sim): State<Sim>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(url) = sim.inner.media_urls.lock().get(&token).cloned() else {
        return not_found();
    };
    let owner = sim
        .inner
        .media
        .read()
        .get(&url.media_id)
        .map(|m| m.number_id.clone());
    let Some(owner) = owner else {
        return not_found();
    };
    let action = match faults_for(&sim, &owner, None, Endpoint::MediaDownload).await {
        Err(r) => return r,
        Ok(a) => a,
    };
    if matches!(action, Some(FaultAction::MediaExpiredUrl)) || url.expires <= Instant::now() {
        return not_found();
    }
    serve_bytes(
        &sim,
        &url.media_id,
        &headers,
        &uri,
        matches!(action, Some(FaultAction::MediaCorrupt)),
    )
}

/// `GET /media-lookaside/{id}` (the `url` inside inbound media webhooks).
pub async fn lookaside(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    serve_bytes(&sim, &id, &headers, &uri, false)
}

/// `DELETE /{v}/{media_id}`.
pub fn delete(
    sim: &Sim,
    id: &str,
    token: &str,
    query: &HashMap<String, String>,
    method: &str,
) -> GraphResult<Response> {
    let media = sim
        .inner
        .media
        .read()
        .get(id)
        .cloned()
        .ok_or_else(|| GraphError::no_object(id, &method.to_ascii_lowercase()))?;
    let waba = sim
        .number(&media.number_id)
        .map(|n| n.waba_id.clone())
        .unwrap_or_default();
    authorize(sim, token, &waba, 10)?;
    check_owner(query, &media.number_id, id)?;
    sim.inner.media.write().remove(id);
    Ok(Json(json!({"success": true})).into_response())
}
