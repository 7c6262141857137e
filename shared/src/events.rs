//! Live events for agents' screens: a new message, a status change, a conversation updated or
//! assigned. Whoever changes something publishes after its transaction commits, on one Redis
//! channel per organization; every api replica subscribes and streams the events of a
//! caller's organization as server-sent events (`GET /api/v1/events`). Publishing never fails
//! the caller: a screen that missed an event reloads the conversation when the next one comes.
//! Without Redis there are no live events (the API works as before).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::redis_conn::RedisHandle;

/// One event: `name` is the SSE event name, `data` carries at least `conversationId`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub org_id: Uuid,
    pub name: String,
    pub data: Value,
}

impl Event {
    pub fn message_created(
        org_id: Uuid,
        conversation_id: Uuid,
        message_id: Uuid,
        direction: &str,
    ) -> Self {
        Self {
            org_id,
            name: "message.created".into(),
            data: json!({"conversationId": conversation_id, "messageId": message_id, "direction": direction}),
        }
    }

    /// `conversation_id` is `None` for a campaign message sent to a customer without an open
    /// conversation (it joins one when the customer writes).
    pub fn message_status(
        org_id: Uuid,
        conversation_id: Option<Uuid>,
        message_id: Uuid,
        status: &str,
    ) -> Self {
        Self {
            org_id,
            name: "message.status".into(),
            data: json!({"conversationId": conversation_id, "messageId": message_id, "status": status}),
        }
    }

    /// `assigned_to` is the agent now holding the conversation (`None`: waiting in the
    /// team's queue).
    pub fn conversation_assigned(
        org_id: Uuid,
        conversation_id: Uuid,
        team_id: Option<Uuid>,
        assigned_to: Option<Uuid>,
    ) -> Self {
        Self {
            org_id,
            name: "conversation.assigned".into(),
            data: json!({"conversationId": conversation_id, "teamId": team_id, "assignedTo": assigned_to}),
        }
    }

    /// `detail`: the fields that changed (`{"status": ...}`, `{"tags": [...]}`).
    pub fn conversation_updated(org_id: Uuid, conversation_id: Uuid, detail: Value) -> Self {
        let mut data = json!({"conversationId": conversation_id});
        if let (Some(data), Value::Object(detail)) = (data.as_object_mut(), detail) {
            data.extend(detail);
        }
        Self {
            org_id,
            name: "conversation.updated".into(),
            data,
        }
    }
}

/// The Redis channel of an organization's events.
pub fn channel(prefix: &str, org_id: Uuid) -> String {
    format!("{prefix}:events:{org_id}")
}

/// The pattern every api replica subscribes to.
pub fn channel_pattern(prefix: &str) -> String {
    format!("{prefix}:events:*")
}

/// Publishes events on Redis. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    redis: RedisHandle,
    prefix: String,
}

impl EventPublisher {
    pub fn new(redis: RedisHandle, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_string(),
        }
    }

    /// Publishes `events` in one round trip; a failure is logged, never returned.
    pub async fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let Some(mut conn) = self.redis.get().await else {
            return;
        };
        let mut pipe = redis::pipe();
        for e in events {
            let Ok(payload) = serde_json::to_string(e) else {
                continue;
            };
            pipe.publish(channel(&self.prefix, e.org_id), payload)
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %e, "live events not published");
        }
    }

    /// One event.
    pub async fn publish_one(&self, event: Event) {
        self.publish(std::slice::from_ref(&event)).await;
    }

    /// Whether events can be published (Redis configured).
    pub fn is_enabled(&self) -> bool {
        self.redis.is_configured()
    }
}
