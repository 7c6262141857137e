//! A bot config as a portable document: exported as a JSON file (or a ZIP holding it),
//! imported into any organization as a new draft, and kept as snapshots to roll a config back.
//!
//! The document never holds an API key, not even masked: a file travels by mail and chat, and
//! a key belongs to one organization's provider account. Intents name their team and tag by
//! name (`teamName`, `tagName`), because ids mean nothing in another organization; snapshots,
//! which stay in their organization, keep the ids ([`snapshots`]).
//!
//! Tiers: `config` is the active config's settings; `standard` adds its intents and the
//! organization's presets (without keys); `full` adds the prompt's versions and the knowledge
//! base's documents (an empty `documents` list until the knowledge base exists; ARCHITECTURE.md,
//! "Planned").
//!
//! An import is checked whole before anything is written ([`check`]); then the config, its
//! prompt history and its intents are inserted in the caller's transaction, so a bad file
//! changes nothing.

pub mod archive;
pub mod check;
pub mod presets;
pub mod snapshots;
#[cfg(test)]
mod tests;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use self::check::Problem;
use super::config::{self, record_prompt_version, BotConfig, COLUMNS};

/// The document format this server writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// How much an export holds (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Config,
    Standard,
    Full,
}

impl Tier {
    pub const NAMES: [&'static str; 3] = ["config", "standard", "full"];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Config => "config",
            Tier::Standard => "standard",
            Tier::Full => "full",
        }
    }
}

impl FromStr for Tier {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "config" => Ok(Tier::Config),
            "standard" => Ok(Tier::Standard),
            "full" => Ok(Tier::Full),
            _ => Err(()),
        }
    }
}

/// An export file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDoc {
    pub version: i64,
    pub tier: Tier,
    pub exported_at: DateTime<Utc>,
    pub config: ConfigDoc,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intents: Option<Vec<IntentDoc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presets: Option<Vec<PresetDoc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_versions: Option<Vec<PromptVersionDoc>>,
    /// The knowledge base's documents: always empty until the knowledge base exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<serde_json::Value>>,
}

/// A config's settings, without its key, id, state or times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDoc {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub system_prompt: String,
    pub greeting: Option<String>,
    pub handoff_message: Option<String>,
    pub temperature: f32,
    pub debounce_seconds: i32,
    pub max_turns: i32,
    pub handoff_keywords: Vec<String>,
    pub embedding_provider: Option<String>,
    pub embedding_model: Option<String>,
}

impl ConfigDoc {
    pub fn of(c: &BotConfig) -> Self {
        Self {
            name: c.name.clone(),
            provider: c.provider.clone(),
            model: c.model.clone(),
            base_url: c.base_url.clone(),
            system_prompt: c.system_prompt.clone(),
            greeting: c.greeting.clone(),
            handoff_message: c.handoff_message.clone(),
            temperature: c.temperature,
            debounce_seconds: c.debounce_seconds,
            max_turns: c.max_turns,
            handoff_keywords: c.handoff_keywords.0.clone(),
            embedding_provider: c.embedding_provider.clone(),
            embedding_model: c.embedding_model.clone(),
        }
    }
}

/// An intent; its place in the list is its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct IntentDoc {
    pub name: String,
    pub keywords: sqlx::types::Json<Vec<String>>,
    pub examples: sqlx::types::Json<Vec<String>>,
    /// ANSWER, HANDOFF or TAG.
    pub action: String,
    pub response: Option<String>,
    /// HANDOFF: the team, by name (none: the routing rules choose).
    pub team_name: Option<String>,
    /// TAG: the tag, by name.
    pub tag_name: Option<String>,
    pub is_active: bool,
}

/// A preset without its key.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PresetDoc {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PromptVersionDoc {
    pub version: i32,
    pub system_prompt: String,
    pub created_at: DateTime<Utc>,
}

/// A checked import file: what an import writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDoc {
    pub config: ConfigDoc,
    pub intents: Vec<IntentDoc>,
    /// Earlier prompts, oldest first.
    pub prompt_history: Vec<String>,
}

/// Intents of `bot_config_id` in the order they are checked, teams and tags by name.
async fn intent_docs(
    conn: &mut PgConnection,
    bot_config_id: Uuid,
) -> Result<Vec<IntentDoc>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.name, i.keywords, i.examples, i.action, i.response, t.name AS team_name,
                g.name AS tag_name, i.is_active
           FROM bot_intents i LEFT JOIN teams t ON t.id = i.team_id LEFT JOIN tags g ON g.id = i.tag_id
          WHERE i.bot_config_id = $1 ORDER BY i.position, i.created_at, i.id",
    )
    .bind(bot_config_id)
    .fetch_all(conn)
    .await
}

/// The organization's active config as an export of `tier`; `None` without an active config.
pub async fn export(
    conn: &mut PgConnection,
    org_id: Uuid,
    tier: Tier,
    now: DateTime<Utc>,
) -> Result<Option<ExportDoc>, sqlx::Error> {
    let Some(c) = config::active(conn, org_id).await? else {
        return Ok(None);
    };
    let mut doc = ExportDoc {
        version: FORMAT_VERSION,
        tier,
        exported_at: now,
        config: ConfigDoc::of(&c),
        intents: None,
        presets: None,
        prompt_versions: None,
        documents: None,
    };
    if tier != Tier::Config {
        doc.intents = Some(intent_docs(conn, c.id).await?);
        doc.presets = Some(
            sqlx::query_as(
                "SELECT name, provider, model, base_url, temperature FROM bot_presets
                  WHERE org_id = $1 ORDER BY lower(name)",
            )
            .bind(org_id)
            .fetch_all(&mut *conn)
            .await?,
        );
    }
    if tier == Tier::Full {
        doc.prompt_versions = Some(
            sqlx::query_as(
                "SELECT version, system_prompt, created_at FROM bot_prompt_versions
                  WHERE bot_config_id = $1 ORDER BY version",
            )
            .bind(c.id)
            .fetch_all(&mut *conn)
            .await?,
        );
        doc.documents = Some(Vec::new());
    }
    Ok(Some(doc))
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Every problem of the file, each at its JSON path.
    #[error("the file cannot be imported")]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Imports an uploaded file (a JSON export, or a ZIP holding `bot-config.json`; told apart by
/// content) as a new config of `org_id`: a draft unless `activate`. Named as in the file, or
/// "<name> (imported)" when the organization has a config of that name. Runs in the caller's
/// transaction and writes nothing unless the whole file is valid.
pub async fn import(
    conn: &mut PgConnection,
    org_id: Uuid,
    by: Option<Uuid>,
    file: &[u8],
    activate: bool,
) -> Result<BotConfig, ImportError> {
    let json = archive::document_bytes(file).map_err(|p| ImportError::Invalid(vec![p]))?;
    let doc = check::parse(&json).map_err(ImportError::Invalid)?;
    let refs = resolve_refs(conn, org_id, &doc.intents).await?;
    let name = free_name(conn, org_id, &doc.config.name).await?;
    if activate {
        // Serialises activations with `PUT /bot-config` (one active config).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bot_config:' || $1::text))")
            .bind(org_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE bot_configs SET is_active = false, updated_at = now() WHERE org_id = $1 AND is_active",
        )
        .bind(org_id)
        .execute(&mut *conn)
        .await?;
    }
    let c = &doc.config;
    let created: BotConfig = sqlx::query_as(&format!(
        "INSERT INTO bot_configs (org_id, name, is_active, provider, model, base_url, system_prompt, greeting,
                handoff_message, temperature, debounce_seconds, max_turns, handoff_keywords, embedding_provider,
                embedding_model)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(&name)
    .bind(activate)
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
    // The history first, then the current prompt, so the newest version is the one in use.
    let mut prompts: Vec<&str> = doc.prompt_history.iter().map(String::as_str).collect();
    if prompts.last() != Some(&c.system_prompt.as_str()) {
        prompts.push(&c.system_prompt);
    }
    for prompt in prompts {
        record_prompt_version(conn, org_id, created.id, prompt, by).await?;
    }
    let rows: Vec<snapshots::SnapshotIntent> = doc
        .intents
        .iter()
        .zip(refs)
        .map(|(i, (team_id, tag_id))| snapshots::SnapshotIntent {
            intent: i.clone(),
            team_id,
            tag_id,
        })
        .collect();
    insert_intents(conn, org_id, created.id, &rows).await?;
    Ok(created)
}

/// The team and tag ids the intents name, in the importing organization; a name it does not
/// have is a problem at that intent (nothing is created behind the user's back).
async fn resolve_refs(
    conn: &mut PgConnection,
    org_id: Uuid,
    intents: &[IntentDoc],
) -> Result<Vec<(Option<Uuid>, Option<Uuid>)>, ImportError> {
    let mut problems = Vec::new();
    let mut ids = Vec::with_capacity(intents.len());
    for (n, i) in intents.iter().enumerate() {
        let team = match &i.team_name {
            Some(name) => {
                let id: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM teams WHERE org_id = $1 AND lower(name) = lower($2) AND is_active",
                )
                .bind(org_id)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
                if id.is_none() {
                    problems.push(Problem::at(
                        &["intents", &n.to_string(), "teamName"],
                        format!("this organization has no team named \"{name}\"; create it, or remove teamName to let routing choose"),
                    ));
                }
                id
            }
            None => None,
        };
        let tag = match &i.tag_name {
            Some(name) => {
                let id: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM tags WHERE org_id = $1 AND lower(name) = lower($2)",
                )
                .bind(org_id)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
                if id.is_none() {
                    problems.push(Problem::at(
                        &["intents", &n.to_string(), "tagName"],
                        format!("this organization has no tag named \"{name}\"; create it first"),
                    ));
                }
                id
            }
            None => None,
        };
        ids.push((team, tag));
    }
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(ImportError::Invalid(problems))
    }
}

/// `name`, or "<name> (imported)", "<name> (imported 2)", ... whichever the organization's
/// configs do not use yet.
async fn free_name(
    conn: &mut PgConnection,
    org_id: Uuid,
    name: &str,
) -> Result<String, sqlx::Error> {
    // An organization has a handful of configs.
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT lower(name) FROM bot_configs WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(conn)
            .await?;
    let free = |candidate: &str| !taken.contains(&candidate.to_lowercase());
    if free(name) {
        return Ok(name.to_string());
    }
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            format!("{name} (imported)")
        } else {
            format!("{name} (imported {n})")
        };
        if free(&candidate) {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Inserts `intents` as config `bot_config_id`'s, positioned in list order. A team or tag id
/// that is no longer the organization's becomes none, as deleting a tag does to its intents.
pub(crate) async fn insert_intents(
    conn: &mut PgConnection,
    org_id: Uuid,
    bot_config_id: Uuid,
    intents: &[snapshots::SnapshotIntent],
) -> Result<(), sqlx::Error> {
    for (position, s) in intents.iter().enumerate() {
        let i = &s.intent;
        sqlx::query(
            "INSERT INTO bot_intents (org_id, bot_config_id, name, keywords, examples, action, response, team_id,
                                      tag_id, position, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     (SELECT id FROM teams WHERE id = $8 AND org_id = $1),
                     (SELECT id FROM tags WHERE id = $9 AND org_id = $1), $10, $11)",
        )
        .bind(org_id)
        .bind(bot_config_id)
        .bind(&i.name)
        .bind(&i.keywords)
        .bind(&i.examples)
        .bind(&i.action)
        .bind(&i.response)
        .bind(s.team_id)
        .bind(s.tag_id)
        .bind(position as i32)
        .bind(i.is_active)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
