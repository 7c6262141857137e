//! The bot hands a conversation to people: the customer asked for a person (a handoff keyword
//! or the model's `handoff_to_human` tool), the bot reached its turn limit, the provider kept
//! failing, or the month's token limit is reached. The conversation leaves BOT_HANDLING with a
//! recorded move and a summary, the customer is told, and routing picks a team and an agent:
//! the customer is never left without an answer or a person.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    cx::{
        lifecycle::{self, Move, MoveError},
        routing::{self, Routed},
    },
    outbound::{self, NewOutbound, QueueError},
};

#[derive(Debug, thiserror::Error)]
pub enum HandOffError {
    #[error(transparent)]
    Move(#[from] MoveError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<sqlx::Error> for HandOffError {
    fn from(e: sqlx::Error) -> Self {
        Self::Move(MoveError::Database(e))
    }
}

/// What a handoff did: `None` when the conversation was no longer the bot's (an agent took it
/// over meanwhile), else the routing result (`None` inside: no team to route to).
pub type HandedOff = Option<Option<Routed>>;

/// Why and how a conversation is handed over.
pub struct Handover<'a> {
    pub reason: &'a str,
    /// Stored on the conversation for the agent who takes it.
    pub summary: &'a str,
    /// What the customer is told.
    pub message: &'a str,
    /// This team (an intent's); `None`: the routing rules choose.
    pub team: Option<Uuid>,
}

/// Hands `conversation_id` over (in the caller's transaction).
pub async fn hand_off(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    h: &Handover<'_>,
    now: DateTime<Utc>,
) -> Result<HandedOff, HandOffError> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM conversations WHERE id = $1 AND org_id = $2 FOR UPDATE",
    )
    .bind(conversation_id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    if status.as_deref() != Some("BOT_HANDLING") {
        return Ok(None);
    }
    lifecycle::apply(
        conn,
        org_id,
        conversation_id,
        Move::HandOff,
        None,
        Some(h.reason),
    )
    .await?;
    sqlx::query("UPDATE conversations SET handoff_summary = $2 WHERE id = $1")
        .bind(conversation_id)
        .bind(h.summary)
        .execute(&mut *conn)
        .await?;
    if let Some(target) = outbound::load_target(conn, org_id, conversation_id).await? {
        if target.sendable() && target.window_open() {
            outbound::queue_outbound(conn, NewOutbound::text(org_id, target, h.message)).await?;
        }
    }
    if let Some(team_id) = h.team {
        sqlx::query("UPDATE conversations SET team_id = $2 WHERE id = $1")
            .bind(conversation_id)
            .bind(team_id)
            .execute(&mut *conn)
            .await?;
        let assigned_to =
            routing::assign_in_team(conn, org_id, conversation_id, team_id, now, h.reason).await?;
        return Ok(Some(Some(Routed {
            team_id,
            assigned_to,
        })));
    }
    // A conversation returned to the bot after a human had it keeps its old team; the new
    // question may belong elsewhere, so the rules decide again (routing only places
    // conversations without a team).
    sqlx::query("UPDATE conversations SET team_id = NULL WHERE id = $1")
        .bind(conversation_id)
        .execute(&mut *conn)
        .await?;
    let last_text: String = sqlx::query_scalar(
        "SELECT COALESCE((SELECT content->>'body' FROM messages WHERE conversation_id = $1 AND direction = 'INBOUND'
                           ORDER BY seq DESC LIMIT 1), '')",
    )
    .bind(conversation_id)
    .fetch_one(&mut *conn)
    .await?;
    let routed =
        routing::route_new_conversation(conn, org_id, conversation_id, &last_text, now).await?;
    Ok(Some(routed))
}
