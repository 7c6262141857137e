//! `GET /events`: the organization's live events as server-sent events (`message.created`,
//! `message.status`, `conversation.updated`, `conversation.assigned`), each with a JSON `data`
//! carrying at least `conversationId`. The access token goes in the `Authorization` header, or
//! in `?token=` for a browser's EventSource, which cannot set headers. Every role sees its
//! organization's events (agents see every conversation of their organization).

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{credential, scopes, Auth, Role},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// How long opening a stream waits for this replica's Redis subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The access token, for clients that cannot send an `Authorization` header.
    pub token: Option<String>,
}

/// Stream the organization's live events (server-sent events).
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = 401), (status = 503)))]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let token = credential(&headers).or(q.token);
    let auth = Auth::from_token(&state, token.as_deref()).await?;
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rx = state.live.subscribe(SUBSCRIBE_WAIT).await.ok_or_else(|| {
        ApiError::UpstreamUnavailable {
            message: "Live events need Redis, which is not reachable; try again shortly".into(),
            retry_after_secs: 5,
        }
    })?;
    let opened = stream::once(async { Ok(SseEvent::default().comment("connected")) });
    let live = stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.org_id == org_id => {
                    let event = SseEvent::default()
                        .event(e.name.as_str())
                        .data(e.data.to_string());
                    return Some((Ok(event), rx));
                }
                Ok(_) => continue,
                // Too slow a reader: say how many were missed, so the screen reloads.
                Err(RecvError::Lagged(missed)) => {
                    let event = SseEvent::default()
                        .event("events.missed")
                        .data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(event), rx));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(opened.chain(live)).keep_alive(KeepAlive::default()))
}
