//! The moves of a conversation (assign, unassign, take over, return to the bot, resolve,
//! follow-up), each one domain operation: checked against the conversation's state under a
//! row lock, applied, and recorded as a `conversation_events` row (who, from, to, why). The API
//! and the automation (routing, idle agents) call these; none writes the columns itself.
//!
//! Allowed moves: anything but a CLOSED conversation may be assigned, unassigned, taken over,
//! returned to the bot, followed up or resolved. A CLOSED conversation only comes back through
//! a new customer message, which opens a new conversation.

use sqlx::PgConnection;
use uuid::Uuid;

/// A requested move.
#[derive(Debug, Clone)]
pub enum Move {
    /// To an agent of the organization.
    Assign {
        user_id: Uuid,
        /// Also moves the conversation to this team (`None`: it stays in its team).
        team_id: Option<Uuid>,
    },
    Unassign,
    /// The acting agent takes it (from the bot or another agent).
    Takeover {
        user_id: Uuid,
    },
    ReturnToBot,
    /// The bot hands the conversation to people: it waits for routing (OPEN, nobody).
    HandOff,
    Resolve,
    FollowUp {
        note: Option<String>,
    },
    ClearFollowUp,
}

impl Move {
    fn verb(&self) -> &'static str {
        match self {
            Move::Assign { .. } => "assigned",
            Move::Unassign => "unassigned",
            Move::Takeover { .. } => "taken over",
            Move::ReturnToBot => "returned to the bot",
            Move::HandOff => "handed off by the bot",
            Move::Resolve => "resolved",
            Move::FollowUp { .. } => "marked for follow-up",
            Move::ClearFollowUp => "cleared of its follow-up",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("conversation not found")]
    NotFound,
    /// The user to assign is not an active member of the organization.
    #[error("user not found")]
    UnknownUser,
    #[error("team not found")]
    UnknownTeam,
    /// Not allowed from the conversation's current state.
    #[error("the conversation is {status}: it cannot be {verb}")]
    NotAllowed { status: String, verb: &'static str },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Applies `m` to conversation `id` of `org_id` on behalf of `actor` (None: an API key or the
/// platform), with `reason` recorded on the event.
pub async fn apply(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    m: Move,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<(), MoveError> {
    // Looked up by id alone and the tenant checked here: with `org_id` in the condition, a
    // planner without statistics yet (a new organization's first minute) may take the
    // (org_id, status) index and read every conversation of the organization.
    let current: Option<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT org_id, status, assigned_to FROM conversations WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let (_, status, assigned) = current
        .filter(|c| c.0 == org_id)
        .ok_or(MoveError::NotFound)?;
    if status == "CLOSED" {
        return Err(MoveError::NotAllowed {
            status,
            verb: m.verb(),
        });
    }
    if let Move::Assign { user_id, .. } | Move::Takeover { user_id } = &m {
        let member: bool = sqlx::query_scalar(
            "SELECT org_id = $2 AND is_active AND deleted_at IS NULL FROM users WHERE id = $1",
        )
        .bind(user_id)
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(false);
        if !member {
            return Err(MoveError::UnknownUser);
        }
    }
    if let Move::Assign {
        team_id: Some(team_id),
        ..
    } = &m
    {
        let moved = sqlx::query(
            "UPDATE conversations SET team_id = $3
              WHERE id = $1 AND org_id = $2
                AND EXISTS (SELECT 1 FROM teams WHERE id = $3 AND org_id = $2 AND is_active)",
        )
        .bind(id)
        .bind(org_id)
        .bind(team_id)
        .execute(&mut *conn)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(MoveError::UnknownTeam);
        }
    }
    let (event, to_status, to_user): (&str, String, Option<Uuid>) = match &m {
        Move::Assign { user_id, .. } => ("ASSIGNED", human_status(&status), Some(*user_id)),
        Move::Takeover { user_id } => ("TAKEOVER", "HUMAN_HANDLING".into(), Some(*user_id)),
        Move::Unassign => ("UNASSIGNED", unassigned_status(&status), None),
        Move::ReturnToBot => ("RETURNED_TO_BOT", "BOT_HANDLING".into(), None),
        Move::HandOff => ("HANDED_OFF", "OPEN".into(), None),
        Move::Resolve => ("RESOLVED", "CLOSED".into(), assigned),
        Move::FollowUp { .. } | Move::ClearFollowUp => {
            // The mark only: status and assignee stay.
            let (event, set, note) = match &m {
                Move::FollowUp { note } => ("FOLLOW_UP_SET", true, note.as_deref()),
                _ => ("FOLLOW_UP_CLEARED", false, None),
            };
            sqlx::query(
                // The row is locked and its tenant checked above.
                "UPDATE conversations SET follow_up_note = $2,
                        follow_up_at = CASE WHEN $3 THEN now() END,
                        follow_up_by = CASE WHEN $3 THEN $4 END, updated_at = now()
                  WHERE id = $1",
            )
            .bind(id)
            .bind(note)
            .bind(set)
            .bind(actor)
            .execute(&mut *conn)
            .await?;
            let reason = reason.or(note);
            record(
                conn, org_id, id, event, actor, assigned, assigned, &status, &status, reason,
            )
            .await?;
            return Ok(());
        }
    };
    sqlx::query(
        // The row is locked and its tenant checked above.
        "UPDATE conversations SET status = $2, assigned_to = $3, updated_at = now(),
                closed_at = CASE WHEN $2 = 'CLOSED' THEN now() ELSE closed_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(&to_status)
    .bind(to_user)
    .execute(&mut *conn)
    .await?;
    record(
        conn, org_id, id, event, actor, assigned, to_user, &status, &to_status, reason,
    )
    .await?;
    Ok(())
}

/// An agent now handles it; a conversation waiting for the customer keeps waiting.
fn human_status(status: &str) -> String {
    if status == "WAITING_FOR_CUSTOMER" {
        status.into()
    } else {
        "HUMAN_HANDLING".into()
    }
}

/// Back to the queue; the bot keeps its own conversations.
fn unassigned_status(status: &str) -> String {
    match status {
        "BOT_HANDLING" | "WAITING_FOR_CUSTOMER" => status.into(),
        _ => "OPEN".into(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    kind: &str,
    actor: Option<Uuid>,
    from_user: Option<Uuid>,
    to_user: Option<Uuid>,
    from_status: &str,
    to_status: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_events (org_id, conversation_id, type, actor_id, from_user_id, to_user_id,
                                          from_status, to_status, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(org_id)
    .bind(id)
    .bind(kind)
    .bind(actor)
    .bind(from_user)
    .bind(to_user)
    .bind(from_status)
    .bind(to_status)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}
