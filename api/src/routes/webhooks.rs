//! Meta webhooks (ARCHITECTURE.md, "Inbound webhooks" and "Meta facts").
//!
//! - `GET  /webhooks/whatsapp` and `/webhooks/whatsapp/{channel_id}`: the subscription
//!   challenge (`hub.mode=subscribe`, `hub.verify_token`) → 200 with the raw `hub.challenge`.
//! - `POST /webhooks/whatsapp`: the platform app's events, signed with `META_APP_SECRET`;
//!   `POST /webhooks/whatsapp/{channel_id}`: a channel's events, signed with its own app secret.
//!
//! A POST verifies `X-Hub-Signature-256` over the raw body in constant time (nothing is stored
//! for a bad or missing signature), then stores the event and enqueues `process_webhook`
//! atomically and answers 200 once both are committed. Concurrent webhooks share that
//! transaction (group commit, [`crate::webhook_ingest`]): one commit per batch instead of one per
//! request. No Meta calls and no parsing beyond routing: a few milliseconds, whether or not a
//! worker is running. A database outage is a 503, which Meta retries.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
    webhook_ingest::{Ingested, WebhookEvent},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/whatsapp",
            get(platform_challenge).post(platform_event),
        )
        .route(
            "/webhooks/whatsapp/{channel_id}",
            get(channel_challenge).post(channel_event),
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct Challenge {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"detail": "Verification failed"})),
    )
        .into_response()
}

/// A query string that does not parse is simply a failed verification (403).
fn parse_challenge(query: Option<String>) -> Challenge {
    query
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

fn answer_challenge(q: &Challenge, expected: &str) -> Response {
    let token_ok = q
        .verify_token
        .as_deref()
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
    match (q.mode.as_deref(), &q.challenge) {
        (Some("subscribe"), Some(challenge)) if token_ok => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge.clone(),
        )
            .into_response(),
        _ => forbidden(),
    }
}

/// `GET /webhooks/whatsapp`: Meta's subscription challenge for the platform app.
async fn platform_challenge(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    answer_challenge(
        &parse_challenge(query),
        state.config.meta_verify_token.expose(),
    )
}

/// A channel's webhook settings: its account, org and decrypted secrets.
struct Channel {
    id: Uuid,
    org_id: Uuid,
    app_secret: Option<String>,
    verify_token: Option<String>,
}

async fn load_channel(state: &AppState, raw_id: &str) -> ApiResult<Channel> {
    let id = Uuid::parse_str(raw_id).map_err(|_| ApiError::not_found("Channel"))?;
    // No connection, whatever the reason, is an outage Meta should retry through: a 503.
    let mut conn = state.db.acquire().await.map_err(|e| {
        tracing::warn!(error = %e, "webhook: no database connection");
        ApiError::Unavailable("Database temporarily unavailable, please retry".into())
    })?;
    let row: Option<(Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT org_id, app_secret_enc, verify_token_enc FROM whatsapp_accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    drop(conn);
    let (org_id, app_secret_enc, verify_token_enc) =
        row.ok_or_else(|| ApiError::not_found("Channel"))?;
    let decrypt = |v: Option<String>| -> ApiResult<Option<String>> {
        v.map(|enc| {
            state
                .secrets
                .decrypt(&enc)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("channel secret: {e}")))
        })
        .transpose()
    };
    Ok(Channel {
        id,
        org_id,
        app_secret: decrypt(app_secret_enc)?,
        verify_token: decrypt(verify_token_enc)?,
    })
}

/// `GET /webhooks/whatsapp/{channel_id}`: the challenge with the channel's own verify token.
async fn channel_challenge(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_challenge(query);
    match load_channel(&state, &channel_id).await {
        Ok(Channel {
            verify_token: Some(token),
            ..
        }) => answer_challenge(&q, &token),
        Ok(_) => forbidden(),
        Err(e) => e.into_response(),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex hmac>` over the raw body, in constant time.
pub fn signature_valid(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("Invalid or missing X-Hub-Signature-256".into())
}

/// `POST /webhooks/whatsapp`: the platform app's events.
async fn platform_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    if !signature_valid(state.config.meta_app_secret.expose(), &headers, &body) {
        tracing::warn!("platform webhook rejected: bad signature");
        return Err(unauthorized());
    }
    ingest(&state, WebhookEvent::platform(&body)).await
}

/// `POST /webhooks/whatsapp/{channel_id}`: a channel's events, signed with its own app secret
/// (the platform's when the channel has none of its own).
async fn channel_event(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let channel = load_channel(&state, &channel_id).await?;
    let secret = channel
        .app_secret
        .as_deref()
        .unwrap_or(state.config.meta_app_secret.expose());
    if !signature_valid(secret, &headers, &body) {
        tracing::warn!(channel_id = %channel.id, "channel webhook rejected: bad signature");
        return Err(unauthorized());
    }
    ingest(
        &state,
        WebhookEvent::channel(channel.id, channel.org_id, &body),
    )
    .await
}

/// Hands the verified event to the ingestion batcher ([`crate::webhook_ingest`]) and answers
/// 200 once its row and its `process_webhook` job are committed.
async fn ingest(state: &AppState, event: WebhookEvent) -> ApiResult<StatusCode> {
    let source = event.source().as_str();
    match state.webhook_ingest.ingest(event).await? {
        Ingested::Stored { event_id } => tracing::debug!(%event_id, source, "webhook stored"),
        Ingested::Duplicate => tracing::debug!(source, "duplicate webhook delivery ignored"),
    }
    Ok(StatusCode::OK)
}
