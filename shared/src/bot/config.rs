//! A bot config as stored (`bot_configs`): the one the reply flow uses is the organization's
//! active one. The API key is stored encrypted; [`BotConfig::target`] decrypts it only to call
//! the provider.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    crypto::SecretBox,
    llm::{Provider, Target},
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BotConfig {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub is_active: bool,
    pub provider: String,
    pub model: String,
    /// Encrypted (`v1:...`).
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub system_prompt: String,
    pub greeting: Option<String>,
    pub handoff_message: Option<String>,
    pub temperature: f32,
    pub debounce_seconds: i32,
    pub max_turns: i32,
    pub handoff_keywords: sqlx::types::Json<Vec<String>>,
    pub embedding_provider: Option<String>,
    pub embedding_model: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, org_id, name, is_active, provider, model, api_key, base_url, system_prompt,
    greeting, handoff_message, temperature, debounce_seconds, max_turns, handoff_keywords, embedding_provider,
    embedding_model, created_at, updated_at";

/// The organization's active config.
pub async fn active(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<Option<BotConfig>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_configs WHERE org_id = $1 AND is_active"
    ))
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// The id of the config that answers conversation `$2` of organization `$1`: its number's own
/// bot when it has one, else the organization's active config.
pub const CONFIG_OF_CONVERSATION: &str =
    "SELECT COALESCE(a.bot_config_id, (SELECT c.id FROM bot_configs c WHERE c.org_id = $1 AND c.is_active))
       FROM conversations v JOIN whatsapp_accounts a ON a.id = v.account_id
      WHERE v.id = $2 AND v.org_id = $1";

/// The config that answers a conversation (see [`CONFIG_OF_CONVERSATION`]).
pub async fn for_conversation(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
) -> Result<Option<BotConfig>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_configs WHERE org_id = $1 AND id = ({CONFIG_OF_CONVERSATION})"
    ))
    .bind(org_id)
    .bind(conversation_id)
    .fetch_optional(conn)
    .await
}

/// What the message the customer hears when the bot hands over, unless the config says.
pub const DEFAULT_HANDOFF_MESSAGE: &str =
    "Thanks for your patience. A member of our team will continue this conversation shortly.";

impl BotConfig {
    /// Where and how to call the model (the key decrypted for this call only).
    pub fn target(&self, secrets: &SecretBox) -> Result<Target, String> {
        let provider: Provider = self
            .provider
            .parse()
            .map_err(|_| format!("unknown provider {}", self.provider))?;
        let api_key = match &self.api_key {
            Some(stored) => secrets
                .decrypt(stored)
                .map_err(|_| "the stored API key cannot be decrypted".to_string())?,
            None => String::new(),
        };
        Ok(Target {
            provider,
            api_key,
            base_url: self.base_url.clone(),
            model: self.model.clone(),
        })
    }

    pub fn handoff_message(&self) -> &str {
        self.handoff_message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(DEFAULT_HANDOFF_MESSAGE)
    }
}

/// Records `prompt` as the next version of config `bot_config_id`'s prompt.
pub async fn record_prompt_version(
    conn: &mut PgConnection,
    org_id: Uuid,
    bot_config_id: Uuid,
    prompt: &str,
    by: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bot_prompt_versions (org_id, bot_config_id, version, system_prompt, created_by)
         SELECT $1, $2, COALESCE(max(version), 0) + 1, $3, $4 FROM bot_prompt_versions WHERE bot_config_id = $2",
    )
    .bind(org_id)
    .bind(bot_config_id)
    .bind(prompt)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}
