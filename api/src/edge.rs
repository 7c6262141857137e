//! What every request passes before it reaches a handler, and every error response after.
//!
//! - [`guard`] refuses, in the API's JSON error shapes, what no handler can use: a URI longer
//!   than [`MAX_URI_BYTES`] (414), a path or query holding U+0000 or bytes that are not UTF-8
//!   (422 naming the parameter: PostgreSQL cannot store U+0000, so it is refused once, here),
//!   and a body larger than its route allows (413 at once when `Content-Length` says so, and
//!   while reading otherwise; [`body_limit`] is the one table of limits).
//! - [`json_errors`] turns every error answer that is not JSON yet (axum's 404 and 405, the
//!   time-out's 408, plain-text rejections of malformed multipart bodies) into `{"detail": ...}`,
//!   keeping its status and headers (`Allow` on a 405).
//!
//! See ARCHITECTURE.md, "API conventions".

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::{
    error::{ApiError, FieldError},
    extract::NUL_MESSAGE,
};

/// Longest URI we read. Longer ones are a client error, not something to parse.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Body limit of JSON routes.
pub const MAX_JSON_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Meta's webhook payload limit.
pub const MAX_WEBHOOK_BYTES: usize = 3 * 1024 * 1024;
/// The largest file Meta accepts (a document: 100 MB), plus room for the multipart framing.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024 + 64 * 1024;
/// A campaign's audience as JSON or CSV (100,000 recipients with variables fit easily).
pub const MAX_CAMPAIGN_BODY_BYTES: usize = 50 * 1024 * 1024;
/// A bot config import: a 10 MB file (`wharf_shared::bot::portable::archive::MAX_IMPORT_BYTES`)
/// plus room for the multipart framing and the `activate` field.
pub const MAX_BOT_IMPORT_BODY_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;

/// The most a request body to `path` may hold.
pub fn body_limit(path: &str) -> usize {
    if path.starts_with("/webhooks/") {
        MAX_WEBHOOK_BYTES
    } else if path == "/api/v1/templates/upload-media"
        || (path.starts_with("/api/v1/conversations/") && path.ends_with("/messages/media"))
        || (path.starts_with("/api/v1/quick-replies/") && path.ends_with("/media"))
        || path == "/api/v1/bot-config/media"
        || path == "/api/v1/whatsapp/media"
    {
        MAX_UPLOAD_BYTES
    } else if path == "/api/v1/bot-config/documents" {
        // The document limit plus room for the multipart framing; a larger body is a 413
        // before any of it is stored.
        usize::try_from(wharf_shared::kb::documents::max_document_bytes())
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024)
    } else if path == "/api/v1/campaigns" || path == "/api/v1/whatsapp/campaigns" {
        MAX_CAMPAIGN_BODY_BYTES
    } else if path == "/api/v1/bot-config/import" {
        MAX_BOT_IMPORT_BODY_BYTES
    } else {
        MAX_JSON_BODY_BYTES
    }
}

/// The request checks described in the module documentation.
pub async fn guard(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let uri_len = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if uri_len > MAX_URI_BYTES {
        return detail(
            StatusCode::URI_TOO_LONG,
            format!("The URI is longer than {MAX_URI_BYTES} bytes"),
        );
    }
    let mut errors = Vec::new();
    let path_bytes: Vec<u8> = percent_decode_str(uri.path()).collect();
    if let Some(msg) = text_problem(&path_bytes) {
        errors.push(FieldError::new(&["path"], msg, "value_error"));
    }
    for pair in uri.query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key_bytes = decode_form(key);
        let name = String::from_utf8_lossy(&key_bytes).replace('\0', "\u{fffd}");
        if let Some(msg) = text_problem(&key_bytes).or_else(|| text_problem(&decode_form(value))) {
            errors.push(FieldError::new(&["query", &name], msg, "value_error"));
        }
    }
    if !errors.is_empty() {
        return ApiError::Validation(errors).into_response();
    }
    let limit = body_limit(uri.path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

fn decode_form(raw: &str) -> Vec<u8> {
    percent_decode_str(&raw.replace('+', " ")).collect()
}

fn text_problem(bytes: &[u8]) -> Option<&'static str> {
    if std::str::from_utf8(bytes).is_err() {
        Some("must be valid UTF-8")
    } else if bytes.contains(&0) {
        Some(NUL_MESSAGE)
    } else {
        None
    }
}

fn too_large(limit: usize) -> Response {
    ApiError::PayloadTooLarge(format!(
        "The request body is larger than this route accepts ({limit} bytes)"
    ))
    .into_response()
}

fn detail(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "detail": message }))).into_response()
}

/// Gives every error answer the `{"detail": "..."}` shape (see the module documentation).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let already_shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.contains("text/html"));
    // JSON errors pass as they are, and so do the console's error pages.
    if already_shaped {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => format!("No such route: {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // axum adds `Allow` itself after this layer when it is not there yet.
            if allowed.is_empty() {
                format!("{method} is not allowed on {path}; the Allow header lists the methods that are")
            } else {
                format!("{method} is not allowed on {path}; allowed: {allowed}")
            }
        }
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was abandoned".into(),
        StatusCode::PAYLOAD_TOO_LARGE if text.is_empty() => format!(
            "The request body is larger than this route accepts ({} bytes)",
            body_limit(&path)
        ),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("Error").to_string(),
        _ => text,
    };
    let body = serde_json::to_vec(&json!({ "detail": message })).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// `GET /`: people who open the server in a browser land on the interactive docs.
pub async fn root() -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/docs"))],
    )
        .into_response()
}
