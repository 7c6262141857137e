//! A connected number's own bot settings (migration 0023): the bot config its conversations
//! start with (`whatsapp_accounts.bot_config_id`) and whether the AI may answer on it at all
//! (`ai_autoreply`). The one way to change them, for every dialect (WhatsApp API
//! `phone_numbers/{phone_id}/link-bot` and `.../autoreply`).

use sqlx::PgConnection;
use uuid::Uuid;

/// Why a number's bot settings could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum NumberError {
    /// No connected number of the organization has this Meta phone number id.
    #[error("no connected number of this organization has this phone number id")]
    NumberNotFound,
    /// The bot config is not one of the organization's.
    #[error("no bot config of this organization has this id")]
    BotNotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A number's bot settings after a change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NumberBot {
    /// `whatsapp_accounts.id`.
    pub account_id: Uuid,
    pub phone_number_id: String,
    pub bot_config_id: Option<Uuid>,
    pub ai_autoreply: bool,
}

/// Links the bot config `bot_id` (one of `org_id`'s) to the connected number
/// `phone_number_id` of `org_id`, or unlinks it (`None`): the number's new conversations then
/// start with that bot.
pub async fn link_bot(
    conn: &mut PgConnection,
    org_id: Uuid,
    phone_number_id: &str,
    bot_id: Option<Uuid>,
) -> Result<NumberBot, NumberError> {
    let account_id = connected_number(conn, org_id, phone_number_id).await?;
    if let Some(bot_id) = bot_id {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bot_configs WHERE id = $1 AND org_id = $2)",
        )
        .bind(bot_id)
        .bind(org_id)
        .fetch_one(&mut *conn)
        .await?;
        if !exists {
            return Err(NumberError::BotNotFound);
        }
    }
    Ok(sqlx::query_as(
        "UPDATE whatsapp_accounts SET bot_config_id = $2, updated_at = now() WHERE id = $1
         RETURNING id AS account_id, phone_number_id, bot_config_id, ai_autoreply",
    )
    .bind(account_id)
    .bind(bot_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// Turns the AI reply on or off for the connected number `phone_number_id` of `org_id`.
pub async fn set_autoreply(
    conn: &mut PgConnection,
    org_id: Uuid,
    phone_number_id: &str,
    enabled: bool,
) -> Result<NumberBot, NumberError> {
    let account_id = connected_number(conn, org_id, phone_number_id).await?;
    Ok(sqlx::query_as(
        "UPDATE whatsapp_accounts SET ai_autoreply = $2, updated_at = now() WHERE id = $1
         RETURNING id AS account_id, phone_number_id, bot_config_id, ai_autoreply",
    )
    .bind(account_id)
    .bind(enabled)
    .fetch_one(&mut *conn)
    .await?)
}

async fn connected_number(
    conn: &mut PgConnection,
    org_id: Uuid,
    phone_number_id: &str,
) -> Result<Uuid, NumberError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM whatsapp_accounts
          WHERE org_id = $1 AND phone_number_id = $2 AND status <> 'DISCONNECTED'",
    )
    .bind(org_id)
    .bind(phone_number_id)
    .fetch_optional(&mut *conn)
    .await?;
    id.ok_or(NumberError::NumberNotFound)
}
