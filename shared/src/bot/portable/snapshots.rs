//! Snapshots (`bot_snapshots`): a copy of one config's settings, prompt and intents, taken on
//! request and written back onto that same config by a restore. A snapshot stays in its
//! organization, so its intents keep their team and tag ids. It never holds the API key: a
//! restore leaves the config's key as it is now.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{insert_intents, ConfigDoc, IntentDoc};
use crate::bot::config::{self, record_prompt_version, BotConfig, COLUMNS};

/// What a snapshot holds (`bot_snapshots.content`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContent {
    pub config: ConfigDoc,
    pub intents: Vec<SnapshotIntent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotIntent {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub intent: IntentDoc,
    pub team_id: Option<Uuid>,
    pub tag_id: Option<Uuid>,
}

/// A snapshot as listed: what it is of, and how big, without its content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Snapshot {
    pub id: Uuid,
    pub name: String,
    pub bot_config_id: Uuid,
    pub bot_config_name: String,
    pub intent_count: i32,
    /// Characters of the system prompt kept.
    pub prompt_chars: i32,
    /// Bytes of the content as stored (JSON).
    pub size_bytes: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const META: &str =
    "SELECT s.id, s.name, s.bot_config_id, c.name AS bot_config_name, s.intent_count,
        COALESCE(length(s.content->'config'->>'systemPrompt'), 0) AS prompt_chars, s.size_bytes,
        s.created_by, s.created_at
   FROM bot_snapshots s JOIN bot_configs c ON c.id = s.bot_config_id";

/// Most snapshots a list answers (the newest).
pub const LIST_LIMIT: i64 = 200;

/// The organization's newest snapshots, of one config or of all.
pub async fn list(
    conn: &mut PgConnection,
    org_id: Uuid,
    bot_config_id: Option<Uuid>,
) -> Result<Vec<Snapshot>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{META} WHERE s.org_id = $1 AND ($2::uuid IS NULL OR s.bot_config_id = $2)
          ORDER BY s.created_at DESC, s.id LIMIT $3"
    ))
    .bind(org_id)
    .bind(bot_config_id)
    .bind(LIST_LIMIT)
    .fetch_all(conn)
    .await
}

/// Takes a snapshot of config `bot_config_id` (default: the active one), named `name`
/// (default: the config's name and the time). `None` when there is no such config.
pub async fn capture(
    conn: &mut PgConnection,
    org_id: Uuid,
    bot_config_id: Option<Uuid>,
    name: Option<&str>,
    by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<Snapshot>, sqlx::Error> {
    let c = match bot_config_id {
        Some(id) => fetch_config(conn, org_id, id, false).await?,
        None => config::active(conn, org_id).await?,
    };
    let Some(c) = c else { return Ok(None) };
    let intents: Vec<SnapshotIntent> = sqlx::query_as(
        "SELECT i.name, i.keywords, i.examples, i.action, i.response, t.name AS team_name,
                g.name AS tag_name, i.is_active, i.team_id, i.tag_id
           FROM bot_intents i LEFT JOIN teams t ON t.id = i.team_id LEFT JOIN tags g ON g.id = i.tag_id
          WHERE i.bot_config_id = $1 ORDER BY i.position, i.created_at, i.id",
    )
    .bind(c.id)
    .fetch_all(&mut *conn)
    .await?;
    let content = SnapshotContent {
        config: ConfigDoc::of(&c),
        intents,
    };
    let size = serde_json::to_vec(&content).map_or(0, |b| b.len());
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} ({} UTC)", c.name, now.format("%Y-%m-%d %H:%M:%S")));
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO bot_snapshots (org_id, bot_config_id, name, content, intent_count, size_bytes, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(org_id)
    .bind(c.id)
    .bind(&name)
    .bind(sqlx::types::Json(&content))
    .bind(content.intents.len() as i32)
    .bind(i32::try_from(size).unwrap_or(i32::MAX))
    .bind(by)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query_as(&format!("{META} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

async fn fetch_config(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<BotConfig>, sqlx::Error> {
    let lock = if lock { "FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_configs WHERE id = $1 AND org_id = $2 {lock}"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Writes snapshot `id` back onto its config: settings and prompt (a new prompt version when
/// the prompt differs), intents replaced, the key kept. Runs in the caller's transaction;
/// `None` when the organization has no such snapshot.
pub async fn restore(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    by: Option<Uuid>,
) -> Result<Option<BotConfig>, sqlx::Error> {
    let row: Option<(Uuid, sqlx::types::Json<SnapshotContent>)> = sqlx::query_as(
        "SELECT bot_config_id, content FROM bot_snapshots WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((config_id, sqlx::types::Json(content))) = row else {
        return Ok(None);
    };
    // Locked, so a concurrent change of the config waits for the restore to finish.
    let Some(before) = fetch_config(conn, org_id, config_id, true).await? else {
        return Ok(None);
    };
    let c = &content.config;
    let restored: BotConfig = sqlx::query_as(&format!(
        "UPDATE bot_configs SET name = $2, provider = $3, model = $4, base_url = $5, system_prompt = $6,
                greeting = $7, handoff_message = $8, temperature = $9, debounce_seconds = $10, max_turns = $11,
                handoff_keywords = $12, embedding_provider = $13, embedding_model = $14, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(config_id)
    .bind(&c.name)
    .bind(&c.provider)
    .bind(&c.model)
    .bind(&c.base_url)
    .bind(&c.system_prompt)
    .bind(&c.greeting)
    .bind(&c.handoff_message)
    .bind(c.temperature)
    .bind(c.debounce_seconds)
    .bind(c.max_turns)
    .bind(sqlx::types::Json(&c.handoff_keywords))
    .bind(&c.embedding_provider)
    .bind(&c.embedding_model)
    .fetch_one(&mut *conn)
    .await?;
    if before.system_prompt != c.system_prompt {
        record_prompt_version(conn, org_id, config_id, &c.system_prompt, by).await?;
    }
    sqlx::query("DELETE FROM bot_intents WHERE bot_config_id = $1")
        .bind(config_id)
        .execute(&mut *conn)
        .await?;
    insert_intents(conn, org_id, config_id, &content.intents).await?;
    Ok(Some(restored))
}

/// Deletes snapshot `id`; false when the organization has no such snapshot.
pub async fn delete(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM bot_snapshots WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(conn)
            .await?
            .rows_affected()
            > 0,
    )
}
