//! An agent's presence (ONLINE, AWAY, OFFLINE): one operation for the agent who sets it, an
//! admin who sets it for them and idle-agent detection. Coming ONLINE hands the agent what
//! waits in their teams' queues.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{lifecycle::MoveError, routing};

/// Sets `user_id`'s presence (`status_changed_at` moves only when it changes). Returns the
/// waiting conversations assigned to them as they came ONLINE.
pub async fn set_presence(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, MoveError> {
    sqlx::query(
        "UPDATE users SET status = $3,
                status_changed_at = CASE WHEN status = $3 THEN status_changed_at ELSE now() END
          WHERE id = $1 AND org_id = $2",
    )
    .bind(user_id)
    .bind(org_id)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    if status == "ONLINE" {
        return routing::pick_up_waiting(conn, org_id, user_id, now).await;
    }
    Ok(Vec::new())
}
