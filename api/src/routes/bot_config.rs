//! `/bot-config`: the organization's AI agents. One config is active (the bot answers with
//! it); others are drafts. The API key is stored encrypted and answered masked; admins may
//! `reveal-key`. Every system-prompt change is a version that can be activated again. Reading
//! needs any role; changing needs an admin. The reply flow itself is `wharf_shared::bot`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    bot::{
        config::{record_prompt_version, BotConfig, COLUMNS},
        portable::presets,
    },
    llm::Provider,
    secret::mask,
};

use super::{outbound::user_id, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, parse_optional_json, ValidJson},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_active, create_draft, upsert_active))
        .routes(routes!(list_configs))
        .routes(routes!(duplicate))
        .routes(routes!(activate))
        .routes(routes!(delete_config))
        .routes(routes!(reveal_key))
        .routes(routes!(prompt_versions))
        .routes(routes!(activate_prompt_version))
}

pub const PROVIDERS: [&str; 6] = ["OPENAI", "ANTHROPIC", "GOOGLE", "DEEPSEEK", "KIMI", "LOCAL"];
const MAX_PROMPT_LEN: usize = 20_000;
const MAX_MESSAGE_LEN: usize = 4096;
const MAX_KEYWORDS: usize = 50;

/// A config as answered: the key masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BotConfigOut {
    pub id: Uuid,
    pub name: String,
    pub is_active: bool,
    /// OPENAI, ANTHROPIC, GOOGLE, DEEPSEEK, KIMI or LOCAL.
    pub provider: String,
    pub model: String,
    /// Masked (first and last 4 characters); `null` when none is set.
    pub api_key: Option<String>,
    pub has_api_key: bool,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BotConfigOut {
    pub(crate) fn of(c: BotConfig, state: &AppState) -> Self {
        let api_key = c
            .api_key
            .as_deref()
            .and_then(|k| state.secrets.decrypt(k).ok())
            .map(|k| mask(&k));
        Self {
            id: c.id,
            name: c.name,
            is_active: c.is_active,
            provider: c.provider,
            model: c.model,
            has_api_key: api_key.is_some(),
            api_key,
            base_url: c.base_url,
            system_prompt: c.system_prompt,
            greeting: c.greeting,
            handoff_message: c.handoff_message,
            temperature: c.temperature,
            debounce_seconds: c.debounce_seconds,
            max_turns: c.max_turns,
            handoff_keywords: c.handoff_keywords.0,
            embedding_provider: c.embedding_provider,
            embedding_model: c.embedding_model,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A config's fields as sent; every one optional (POST needs `name`).
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BotConfigRequest {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Stored encrypted; answered masked.
    pub api_key: Option<String>,
    /// LOCAL: the OpenAI-compatible base, e.g. `http://localhost:11434/v1`.
    pub base_url: Option<String>,
    pub system_prompt: Option<String>,
    pub greeting: Option<String>,
    pub handoff_message: Option<String>,
    /// 0 to 2.
    pub temperature: Option<f32>,
    /// 0 to 60: how long the bot waits for more messages before answering.
    pub debounce_seconds: Option<i32>,
    /// Bot answers before it hands over (0: no limit).
    pub max_turns: Option<i32>,
    pub handoff_keywords: Option<Vec<String>>,
    pub embedding_provider: Option<String>,
    pub embedding_model: Option<String>,
    /// A saved preset (`/bot-config/presets`) whose provider, model, key, base URL and
    /// temperature fill the fields this request leaves out.
    pub preset_id: Option<Uuid>,
}

pub(crate) fn check_url(v: &mut Violations, field: &str, url: &str) {
    let ok = url
        .trim()
        .parse::<axum::http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok {
        v.add(
            field,
            "must be an http(s) URL, e.g. http://localhost:11434/v1",
        );
    }
}

impl Validate for BotConfigRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
        v.one_of("provider", self.provider.as_deref(), &PROVIDERS);
        v.optional_text("model", self.model.as_deref(), 100);
        if let Some(k) = &self.api_key {
            if k.chars().count() > 500 || k.chars().any(char::is_whitespace) {
                v.add("apiKey", "must be at most 500 characters, without spaces");
            }
        }
        if let Some(u) = &self.base_url {
            check_url(v, "baseUrl", u);
        }
        if self
            .system_prompt
            .as_deref()
            .is_some_and(|p| p.chars().count() > MAX_PROMPT_LEN)
        {
            v.add(
                "systemPrompt",
                format!("must be at most {MAX_PROMPT_LEN} characters"),
            );
        }
        for (field, text) in [
            ("greeting", &self.greeting),
            ("handoffMessage", &self.handoff_message),
        ] {
            if text
                .as_deref()
                .is_some_and(|t| t.chars().count() > MAX_MESSAGE_LEN)
            {
                v.add(
                    field,
                    format!("must be at most {MAX_MESSAGE_LEN} characters"),
                );
            }
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            v.add("temperature", "must be between 0 and 2");
        }
        if self
            .debounce_seconds
            .is_some_and(|d| !(0..=60).contains(&d))
        {
            v.add("debounceSeconds", "must be between 0 and 60");
        }
        if self.max_turns.is_some_and(|t| !(0..=1000).contains(&t)) {
            v.add("maxTurns", "must be between 0 (no limit) and 1000");
        }
        if let Some(words) = &self.handoff_keywords {
            if words.len() > MAX_KEYWORDS {
                v.add(
                    "handoffKeywords",
                    format!("at most {MAX_KEYWORDS} keywords"),
                );
            }
            for (i, w) in words.iter().enumerate() {
                if w.trim().is_empty() || w.chars().count() > 50 {
                    v.add_at(
                        &["handoffKeywords", &i.to_string()],
                        "must be 1 to 50 characters",
                    );
                }
            }
        }
        v.one_of(
            "embeddingProvider",
            self.embedding_provider.as_deref(),
            &PROVIDERS,
        );
        v.optional_text("embeddingModel", self.embedding_model.as_deref(), 100);
    }
}

async fn fetch(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> ApiResult<BotConfig> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_configs WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("Bot config"))
}

async fn active(conn: &mut PgConnection, org_id: Uuid) -> ApiResult<Option<BotConfig>> {
    Ok(wharf_shared::bot::config::active(conn, org_id).await?)
}

/// Writes `req` over config `id` (only the fields sent), records a prompt version when the
/// prompt changes, and checks what only the whole config can tell (LOCAL needs a base URL).
async fn apply(
    conn: &mut PgConnection,
    state: &AppState,
    auth: &Auth,
    org_id: Uuid,
    id: Uuid,
    req: &BotConfigRequest,
) -> ApiResult<BotConfig> {
    let before = fetch(conn, org_id, id).await?;
    let with_preset;
    let (req, preset_key) = match req.preset_id {
        Some(preset_id) => {
            let p = presets::fetch(conn, org_id, preset_id)
                .await?
                .ok_or_else(|| ApiError::not_found("Preset"))?;
            with_preset = BotConfigRequest {
                provider: req.provider.clone().or(Some(p.provider)),
                model: req.model.clone().or(Some(p.model)),
                base_url: req.base_url.clone().or(p.base_url),
                temperature: req.temperature.or(p.temperature),
                ..req.clone()
            };
            // Stored encrypted with the same key: copied as it is.
            (&with_preset, p.api_key)
        }
        None => (req, None),
    };
    let key = req
        .api_key
        .as_deref()
        .map(|k| state.secrets.encrypt(k.trim()))
        .or(preset_key);
    let trim = |s: &Option<String>| s.as_deref().map(|t| t.trim().to_string());
    let updated: BotConfig = sqlx::query_as(&format!(
        "UPDATE bot_configs SET
            name = COALESCE($3, name), provider = COALESCE($4, provider), model = COALESCE($5, model),
            api_key = COALESCE($6, api_key), base_url = COALESCE($7, base_url),
            system_prompt = COALESCE($8, system_prompt), greeting = COALESCE($9, greeting),
            handoff_message = COALESCE($10, handoff_message), temperature = COALESCE($11, temperature),
            debounce_seconds = COALESCE($12, debounce_seconds), max_turns = COALESCE($13, max_turns),
            handoff_keywords = COALESCE($14, handoff_keywords),
            embedding_provider = COALESCE($15, embedding_provider), embedding_model = COALESCE($16, embedding_model),
            updated_at = now()
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(trim(&req.name))
    .bind(&req.provider)
    .bind(trim(&req.model))
    .bind(key)
    .bind(trim(&req.base_url))
    .bind(&req.system_prompt)
    .bind(&req.greeting)
    .bind(&req.handoff_message)
    .bind(req.temperature)
    .bind(req.debounce_seconds)
    .bind(req.max_turns)
    .bind(req.handoff_keywords.as_ref().map(sqlx::types::Json))
    .bind(&req.embedding_provider)
    .bind(trim(&req.embedding_model))
    .fetch_one(&mut *conn)
    .await?;
    if updated.provider == Provider::Local.as_str() && updated.base_url.is_none() {
        return Err(ApiError::invalid_field(
            "baseUrl",
            "a LOCAL provider needs the server's OpenAI-compatible base URL",
        ));
    }
    if let Some(p) = updated.embedding_provider.as_deref() {
        let embeds = p
            .parse::<Provider>()
            .ok()
            .and_then(wharf_shared::kb::embedding::default_model)
            .is_some();
        if !embeds {
            return Err(ApiError::invalid_field(
                "embeddingProvider",
                format!("{p} has no embeddings API: use OPENAI, GOOGLE or LOCAL"),
            ));
        }
        if p != updated.provider {
            return Err(ApiError::invalid_field(
                "embeddingProvider",
                "embeddings are made with this config's API key, so they must come from its provider",
            ));
        }
    }
    if updated.system_prompt != before.system_prompt || !has_versions(conn, id).await? {
        record_prompt_version(conn, org_id, id, &updated.system_prompt, user_id(auth)).await?;
    }
    // A new embedding model re-indexes the knowledge base (old vectors serve meanwhile).
    wharf_shared::kb::ingest::reindex_stale(conn, &state.secrets, org_id).await?;
    Ok(updated)
}

async fn has_versions(conn: &mut PgConnection, id: Uuid) -> ApiResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bot_prompt_versions WHERE bot_config_id = $1)",
    )
    .bind(id)
    .fetch_one(conn)
    .await?)
}

async fn insert(
    conn: &mut PgConnection,
    org_id: Uuid,
    name: &str,
    active: bool,
) -> ApiResult<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO bot_configs (org_id, name, is_active) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(active)
    .fetch_one(conn)
    .await?)
}

/// The active bot config (`null` when the organization has none yet).
#[utoipa::path(get, path = "/bot-config", tag = "bot-config",
    responses((status = 200, body = Data<Option<BotConfigOut>>)))]
async fn get_active(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Option<BotConfigOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let c = active(&mut conn, org_id).await?;
    Ok(Data::new(c.map(|c| BotConfigOut::of(c, &state))))
}

/// Create a draft config (admin).
#[utoipa::path(post, path = "/bot-config", tag = "bot-config", request_body = BotConfigRequest,
    responses((status = 201, body = Data<BotConfigOut>), (status = 404, description = "Unknown preset"), (status = 422)))]
async fn create_draft(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BotConfigRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let Some(name) = body.name.as_deref().map(str::trim) else {
        return Err(ApiError::missing_field("name"));
    };
    let mut tx = state.db.begin().await?;
    let id = insert(&mut tx, org_id, name, false).await?;
    let c = apply(&mut tx, &state, &auth, org_id, id, &body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(BotConfigOut::of(c, &state))))
}

/// Create or update the active config (admin): the first call creates it, active.
#[utoipa::path(put, path = "/bot-config", tag = "bot-config", request_body = BotConfigRequest,
    responses((status = 200, body = Data<BotConfigOut>), (status = 404, description = "Unknown preset"), (status = 422)))]
async fn upsert_active(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BotConfigRequest>,
) -> ApiResult<Json<Data<BotConfigOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    // Serialises the first upserts of an organization (one active config).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bot_config:' || $1::text))")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let id = match active(&mut tx, org_id).await? {
        Some(c) => c.id,
        None => {
            let name = body.name.as_deref().map(str::trim).unwrap_or("Bot");
            insert(&mut tx, org_id, name, true).await?
        }
    };
    let c = apply(&mut tx, &state, &auth, org_id, id, &body).await?;
    tx.commit().await?;
    Ok(Data::new(BotConfigOut::of(c, &state)))
}

/// Every config of the organization, the active one first.
#[utoipa::path(get, path = "/bot-config/list", tag = "bot-config",
    responses((status = 200, body = Data<Vec<BotConfigOut>>)))]
async fn list_configs(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<BotConfigOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rows: Vec<BotConfig> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_configs WHERE org_id = $1 ORDER BY is_active DESC, created_at, id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(
        rows.into_iter()
            .map(|c| BotConfigOut::of(c, &state))
            .collect(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    /// Default: "<name> (copy)".
    pub name: Option<String>,
}

impl Validate for DuplicateRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
    }
}

/// Copy a config, with its intents, as a new draft (admin).
#[utoipa::path(post, path = "/bot-config/{id}/duplicate", tag = "bot-config", request_body = DuplicateRequest,
    responses((status = 201, body = Data<BotConfigOut>), (status = 404)))]
async fn duplicate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Bot config")?;
    let body: DuplicateRequest = parse_optional_json(&body)?;
    let mut tx = state.db.begin().await?;
    let source = fetch(&mut tx, org_id, id).await?;
    let name = body
        .name
        .as_deref()
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| format!("{} (copy)", source.name));
    let copy: BotConfig = sqlx::query_as(&format!(
        "INSERT INTO bot_configs (org_id, name, is_active, provider, model, api_key, base_url, system_prompt, greeting,
                handoff_message, temperature, debounce_seconds, max_turns, handoff_keywords, embedding_provider, embedding_model)
         SELECT org_id, $3, false, provider, model, api_key, base_url, system_prompt, greeting, handoff_message,
                temperature, debounce_seconds, max_turns, handoff_keywords, embedding_provider, embedding_model
           FROM bot_configs WHERE id = $1 AND org_id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    record_prompt_version(
        &mut tx,
        org_id,
        copy.id,
        &copy.system_prompt,
        user_id(&auth),
    )
    .await?;
    // Deep: the intents come along.
    sqlx::query(
        "INSERT INTO bot_intents (org_id, bot_config_id, name, keywords, examples, action, response, team_id, tag_id,
                                  position, is_active)
         SELECT org_id, $2, name, keywords, examples, action, response, team_id, tag_id, position, is_active
           FROM bot_intents WHERE bot_config_id = $1",
    )
    .bind(id)
    .bind(copy.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Data::new(BotConfigOut::of(copy, &state)),
    ))
}

/// Make a config the active one; the previously active one becomes a draft (admin).
#[utoipa::path(put, path = "/bot-config/{id}/activate", tag = "bot-config",
    responses((status = 200, body = Data<BotConfigOut>), (status = 404)))]
async fn activate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<BotConfigOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Bot config")?;
    let mut tx = state.db.begin().await?;
    fetch(&mut tx, org_id, id).await?;
    sqlx::query("UPDATE bot_configs SET is_active = false, updated_at = now() WHERE org_id = $1 AND is_active AND id <> $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE bot_configs SET is_active = true, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let c = fetch(&mut tx, org_id, id).await?;
    wharf_shared::kb::ingest::reindex_stale(&mut tx, &state.secrets, org_id).await?;
    tx.commit().await?;
    Ok(Data::new(BotConfigOut::of(c, &state)))
}

/// Delete a draft config (admin); the active one cannot be deleted (409).
#[utoipa::path(delete, path = "/bot-config/{id}", tag = "bot-config",
    responses((status = 204), (status = 404), (status = 409)))]
async fn delete_config(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Bot config")?;
    let mut tx = state.db.begin().await?;
    let c = fetch(&mut tx, org_id, id).await?;
    if c.is_active {
        return Err(ApiError::Conflict(
            "This is the active bot config; activate another one before deleting it".into(),
        ));
    }
    sqlx::query("DELETE FROM bot_configs WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevealedKey {
    pub api_key: Option<String>,
}

/// The active config's API key, unmasked (admin).
#[utoipa::path(get, path = "/bot-config/reveal-key", tag = "bot-config",
    responses((status = 200, body = Data<RevealedKey>), (status = 404)))]
async fn reveal_key(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<RevealedKey>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut conn = state.db.acquire().await?;
    let c = active(&mut conn, org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Active bot config"))?;
    let api_key = match c.api_key.as_deref() {
        Some(k) => Some(
            state
                .secrets
                .decrypt(k)
                .map_err(|e| ApiError::Internal(e.into()))?,
        ),
        None => None,
    };
    Ok(Data::new(RevealedKey { api_key }))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PromptVersionOut {
    pub id: Uuid,
    pub version: i32,
    pub system_prompt: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The prompt the active config uses now.
    pub is_current: bool,
}

/// The active config's prompt versions, newest first.
#[utoipa::path(get, path = "/bot-config/prompt-versions", tag = "bot-config",
    responses((status = 200, body = Data<Vec<PromptVersionOut>>)))]
async fn prompt_versions(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<PromptVersionOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rows = sqlx::query_as(
        "SELECT v.id, v.version, v.system_prompt, v.created_by, v.created_at,
                v.version = (SELECT max(version) FROM bot_prompt_versions WHERE bot_config_id = c.id
                               AND system_prompt = c.system_prompt) AS is_current
           FROM bot_prompt_versions v JOIN bot_configs c ON c.id = v.bot_config_id AND c.is_active
          WHERE v.org_id = $1 ORDER BY v.version DESC",
    )
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(rows))
}

/// Roll the config's prompt back to a version (admin): recorded as a new version.
#[utoipa::path(post, path = "/bot-config/prompt-versions/{id}/activate", tag = "bot-config",
    responses((status = 200, body = Data<BotConfigOut>), (status = 404)))]
async fn activate_prompt_version(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<BotConfigOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Prompt version")?;
    let mut tx = state.db.begin().await?;
    let (config_id, prompt): (Uuid, String) = sqlx::query_as(
        "SELECT bot_config_id, system_prompt FROM bot_prompt_versions WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("Prompt version"))?;
    let req = BotConfigRequest {
        system_prompt: Some(prompt),
        ..Default::default()
    };
    let c = apply(&mut tx, &state, &auth, org_id, config_id, &req).await?;
    tx.commit().await?;
    Ok(Data::new(BotConfigOut::of(c, &state)))
}
