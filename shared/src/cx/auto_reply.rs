//! The automatic answers to a customer's message: the maintenance message while maintenance is
//! on, else the off-hours message outside business hours. Each is sent at most once per
//! conversation per period (a maintenance period, or a closed period named by the next
//! opening), claimed with a conditional UPDATE on the conversation row, so concurrent inbound
//! messages of one conversation never send two. Sent through the shared outbound function:
//! window, idempotency and rate limits as for any message.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::settings;
use crate::outbound::{self, NewOutbound, QueueError};

/// Which automatic reply was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoReply {
    Maintenance,
    OffHours,
}

/// Called in the transaction that stored a customer's message in `conversation_id`: queues
/// the reply that applies at `now`, if any and if not sent for this period yet.
pub async fn after_customer_message(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<AutoReply>, QueueError> {
    let s = settings::load(conn, org_id).await?;
    let (kind, column, period, message) = if let Some(since) = s.maintenance_period(now) {
        let Some(message) = s
            .maintenance_message
            .clone()
            .filter(|m| !m.trim().is_empty())
        else {
            return Ok(None);
        };
        (
            AutoReply::Maintenance,
            "maintenance_replied_for",
            since.to_rfc3339(),
            message,
        )
    } else {
        let Some(hours) = s.business_hours() else {
            return Ok(None);
        };
        if !s.off_hours_auto_reply || hours.is_open(now) {
            return Ok(None);
        }
        let Some(message) = s.off_hours_message.clone().filter(|m| !m.trim().is_empty()) else {
            return Ok(None);
        };
        let period = hours
            .next_opening(now)
            .map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
        (
            AutoReply::OffHours,
            "off_hours_replied_for",
            period,
            message,
        )
    };
    let claimed: Option<Uuid> = sqlx::query_scalar(&format!(
        "UPDATE conversations SET {column} = $2
          WHERE id = $1 AND status <> 'CLOSED' AND {column} IS DISTINCT FROM $2
          RETURNING id"
    ))
    .bind(conversation_id)
    .bind(&period)
    .fetch_optional(&mut *conn)
    .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let Some(target) = outbound::load_target(conn, org_id, conversation_id).await? else {
        return Ok(None);
    };
    if !target.sendable() || !target.window_open() {
        return Ok(None);
    }
    outbound::queue_outbound(conn, NewOutbound::text(org_id, target, &message)).await?;
    Ok(Some(kind))
}
