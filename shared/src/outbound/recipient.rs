//! Sending to a phone number rather than to a conversation (the WhatsApp API dialect's
//! `to` + `phone_number_id`): the number's open conversation with that customer is the
//! [`Target`], so the message lands in the same inbox conversation an agent sees.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{load_target, Target};

/// A connected (not disconnected) number of `org_id` by Meta's phone number id: its
/// `whatsapp_accounts.id`, or `None` (unknown, another organization's, or disconnected).
pub async fn account_by_phone_number_id(
    conn: &mut PgConnection,
    org_id: Uuid,
    phone_number_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM whatsapp_accounts
          WHERE org_id = $1 AND phone_number_id = $2 AND status <> 'DISCONNECTED'",
    )
    .bind(org_id)
    .bind(phone_number_id)
    .fetch_optional(conn)
    .await
}

/// The open conversation of the number `account_id` with the customer `wa_id` (digits only),
/// without creating anything: `None` when there is none (so no customer-service window).
pub async fn existing_target(
    conn: &mut PgConnection,
    org_id: Uuid,
    account_id: Uuid,
    wa_id: &str,
) -> Result<Option<Target>, sqlx::Error> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
          WHERE c.org_id = $1 AND c.account_id = $2 AND ct.wa_id = $3 AND c.status <> 'CLOSED'",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(wa_id)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => load_target(conn, org_id, id).await,
        None => Ok(None),
    }
}

/// The open conversation of the number `account_id` with the customer `wa_id` (digits only),
/// created with its contact when missing (a business-initiated template message).
pub async fn open_target(
    conn: &mut PgConnection,
    org_id: Uuid,
    account_id: Uuid,
    wa_id: &str,
) -> Result<Target, sqlx::Error> {
    let contact_id: Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (org_id, wa_id) VALUES ($1, $2)
         ON CONFLICT (org_id, wa_id) DO UPDATE SET wa_id = EXCLUDED.wa_id
         RETURNING id",
    )
    .bind(org_id)
    .bind(wa_id)
    .fetch_one(&mut *conn)
    .await?;
    let conversation_id: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (org_id, account_id, contact_id, status) VALUES ($1, $2, $3, 'OPEN')
         ON CONFLICT (account_id, contact_id) WHERE status <> 'CLOSED' DO UPDATE SET updated_at = now()
         RETURNING id",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(contact_id)
    .fetch_one(&mut *conn)
    .await?;
    crate::campaigns::attach_to_conversation(conn, org_id, account_id, wa_id, conversation_id)
        .await?;
    load_target(conn, org_id, conversation_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}
