//! The AI agent: an organization's active bot config, its switches, and the reply flow. A new
//! conversation starts with the bot when the organization enabled it and has an active config
//! ([`conversation_starts_with_bot`]); each customer message on a BOT_HANDLING conversation
//! enqueues a debounced `bot.reply` job ([`reply`]), which answers through the shared outbound
//! function or hands the conversation to a person ([`handoff`]).

pub mod assist;
pub mod config;
pub mod handoff;
pub mod intents;
pub mod media;
pub mod metrics;
pub mod numbers;
pub mod portable;
pub mod reclassify;
pub mod reply;
pub mod retrieval;
pub mod sandbox;
pub mod usage;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::jobs::{self, JobsError, NewJob};

/// The organization's bot switches (`/config/bot-enabled`, `/config/bot-mode`,
/// `/config/auto-categorize`) and monthly limit.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct BotSettings {
    pub bot_enabled: bool,
    pub auto_categorize: bool,
    pub bot_mode: sqlx::types::Json<serde_json::Value>,
    pub monthly_token_limit: Option<i64>,
}

pub async fn load_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<BotSettings, sqlx::Error> {
    Ok(sqlx::query_as(
        "SELECT bot_enabled, auto_categorize, bot_mode, monthly_token_limit
           FROM org_bot_settings WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(conn)
    .await?
    .unwrap_or_else(|| BotSettings {
        bot_mode: sqlx::types::Json(serde_json::json!({})),
        ..Default::default()
    }))
}

/// Whether a conversation that was just created on number `account_id` goes to the bot: the
/// number's AI auto-reply is on, and the number has its own bot (link-bot, a HydraCore
/// instance) or the organization enabled the bot and has an active config.
pub async fn conversation_starts_with_bot(
    conn: &mut PgConnection,
    org_id: Uuid,
    account_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT a.ai_autoreply AND (a.bot_config_id IS NOT NULL OR EXISTS (
                    SELECT 1 FROM org_bot_settings s JOIN bot_configs c ON c.org_id = s.org_id AND c.is_active
                     WHERE s.org_id = $1 AND s.bot_enabled))
           FROM whatsapp_accounts a WHERE a.id = $2 AND a.org_id = $1",
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_optional(conn)
    .await
    .map(|v| v.unwrap_or(false))
}

/// Enqueues the reply to customer message `message_id` of a BOT_HANDLING conversation, to run
/// after the config's debounce: a burst of messages gets one answer (each job of the burst
/// but the last finds a newer message and leaves it to that one's job).
pub async fn enqueue_reply(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), JobsError> {
    let debounce: i32 = sqlx::query_scalar(&format!(
        "SELECT c.debounce_seconds FROM bot_configs c WHERE c.id = ({})",
        config::CONFIG_OF_CONVERSATION
    ))
    .bind(org_id)
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(0);
    let job = reply::BotReply {
        conversation_id,
        message_id,
    };
    jobs::enqueue(
        &mut *conn,
        NewJob::new(job)
            .org(org_id)
            .run_at(now + chrono::Duration::seconds(i64::from(debounce.max(0))))
            .unique_key(format!("bot.reply:{message_id}")),
    )
    .await?;
    Ok(())
}

/// Cancels the bot replies still waiting for `conversation_id` (a person took it over); a reply
/// already running checks the conversation again before it queues anything.
pub async fn cancel_pending_replies(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now()
          WHERE kind = 'bot.reply' AND state IN ('available', 'scheduled', 'retryable')
            AND payload->>'conversation_id' = $1::text",
    )
    .bind(conversation_id)
    .execute(conn)
    .await?
    .rows_affected())
}
