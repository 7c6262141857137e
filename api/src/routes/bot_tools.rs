//! `/bot-config` tools: the models a provider offers, a key check against the provider, a
//! test message through the active config (nothing goes to WhatsApp), and the month's usage
//! against the organization's limit.

use std::time::Instant;

use axum::{extract::State, Json};
use chrono::{Datelike, Months, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_shared::{
    bot::{self, config, usage},
    llm::{ChatMessage, ChatRequest, LlmError, Provider, RetryPolicy, Role as ChatRole, Target},
};

use super::{bot_config::PROVIDERS, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(validate_key))
        .routes(routes!(test_message))
        .routes(routes!(usage_now))
        .routes(routes!(usage_history))
        .routes(routes!(reprocess_pending))
}

/// Models offered for each provider: current ones the price table lists, so usage costs what
/// the provider charges (`validate-key` lists everything a key can see).
fn known_models(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::OpenAi => &[
            "gpt-5.4-mini",
            "gpt-5.5",
            "gpt-5-nano",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4o",
            "gpt-4o-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
        ],
        Provider::Anthropic => &["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"],
        Provider::Google => &[
            "gemini-2.5-flash",
            "gemini-2.5-flash-lite",
            "gemini-2.5-pro",
            "gemini-embedding-001",
        ],
        Provider::DeepSeek => &["deepseek-chat", "deepseek-reasoner", "deepseek-v4-pro"],
        Provider::Kimi => &["kimi-k2.6", "kimi-k3"],
        Provider::Local => &["llama3.1", "qwen2.5", "mistral", "nomic-embed-text"],
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    /// OPENAI, ANTHROPIC, GOOGLE, DEEPSEEK, KIMI or LOCAL.
    pub provider: String,
}

impl Validate for ModelsQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("provider", Some(&self.provider), &PROVIDERS);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsOut {
    pub provider: String,
    pub models: Vec<String>,
}

/// The models a provider offers.
#[utoipa::path(get, path = "/bot-config/models", tag = "bot-config", params(ModelsQuery),
    responses((status = 200, body = Data<ModelsOut>), (status = 422)))]
async fn models(
    auth: Auth,
    ValidQuery(q): ValidQuery<ModelsQuery>,
) -> ApiResult<Json<Data<ModelsOut>>> {
    auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let provider: Provider = q
        .provider
        .parse()
        .map_err(|_| ApiError::invalid_field("provider", "unknown provider"))?;
    Ok(Data::new(ModelsOut {
        provider: q.provider,
        models: known_models(provider)
            .iter()
            .map(|m| m.to_string())
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateKeyRequest {
    pub provider: String,
    pub api_key: String,
    pub model: Option<String>,
    /// LOCAL: the server's OpenAI-compatible base URL.
    pub base_url: Option<String>,
}

impl Validate for ValidateKeyRequest {
    fn validate(&self, v: &mut Violations) {
        v.one_of("provider", Some(&self.provider), &PROVIDERS);
        if self.api_key.chars().count() > 500 {
            v.add("apiKey", "must be at most 500 characters");
        }
        if self.provider == "LOCAL" && self.base_url.is_none() {
            v.add("baseUrl", "a LOCAL provider needs the server's base URL");
        }
        if self.provider != "LOCAL" && self.api_key.trim().is_empty() {
            v.add("apiKey", "must not be empty");
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateKeyOut {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// Check an API key with a real call to the provider (it lists the models the key sees). A
/// refused key is `valid: false`, not an error; a provider that cannot be reached is a 503.
#[utoipa::path(post, path = "/bot-config/validate-key", tag = "bot-config", request_body = ValidateKeyRequest,
    responses((status = 200, body = Data<ValidateKeyOut>), (status = 422), (status = 503)))]
async fn validate_key(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ValidateKeyRequest>,
) -> ApiResult<Json<Data<ValidateKeyOut>>> {
    auth.authorize(Role::Admin, scopes::ADMIN)?;
    let target = Target {
        provider: body
            .provider
            .parse()
            .map_err(|_| ApiError::invalid_field("provider", "unknown provider"))?,
        api_key: body.api_key.trim().to_string(),
        base_url: body.base_url.clone(),
        model: body.model.clone().unwrap_or_default(),
    };
    let out = match state.llm.list_models(&target).await {
        Ok(models) => ValidateKeyOut {
            valid: true,
            error: None,
            models: Some(models),
        },
        Err(e @ (LlmError::InvalidKey(_) | LlmError::BadRequest(_))) => ValidateKeyOut {
            valid: false,
            error: Some(e.to_string()),
            models: None,
        },
        Err(e) => return Err(provider_unavailable(e)),
    };
    Ok(Data::new(out))
}

fn provider_unavailable(e: LlmError) -> ApiError {
    ApiError::UpstreamUnavailable {
        message: format!("The AI provider did not answer: {e}"),
        retry_after_secs: 10,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub message: String,
}

impl Validate for TestRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("message", &self.message, 4096);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestOut {
    pub reply: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub latency_ms: u64,
}

/// Send one message to the active config's model with its system prompt (admin). Nothing goes
/// to WhatsApp; the call counts in usage.
#[utoipa::path(post, path = "/bot-config/test", tag = "bot-config", request_body = TestRequest,
    responses((status = 200, body = Data<TestOut>), (status = 404), (status = 409), (status = 503)))]
async fn test_message(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TestRequest>,
) -> ApiResult<Json<Data<TestOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut conn = state.db.acquire().await?;
    let cfg = config::active(&mut conn, org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Active bot config"))?;
    let target = cfg.target(&state.secrets).map_err(ApiError::Conflict)?;
    let request = ChatRequest {
        system: Some(cfg.system_prompt.clone()).filter(|s| !s.trim().is_empty()),
        messages: vec![ChatMessage {
            role: ChatRole::User,
            content: body.message.trim().to_string(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }],
        temperature: Some(cfg.temperature),
        max_tokens: 512,
        tools: Vec::new(),
    };
    let started = Instant::now();
    let answer = state
        .llm
        .chat(org_id, &target, &request, &RetryPolicy::default())
        .await
        .map_err(|e| match e {
            LlmError::InvalidKey(_) | LlmError::BadRequest(_) => {
                ApiError::Conflict(format!("The AI provider refused the request: {e}"))
            }
            other => provider_unavailable(other),
        })?;
    usage::record(
        &mut conn,
        usage::Call {
            org_id,
            bot_config_id: Some(cfg.id),
            conversation_id: None,
            purpose: "test",
            provider: target.provider,
            model: &answer.model,
            usage: &answer.usage,
            latency: answer.latency,
        },
    )
    .await?;
    Ok(Data::new(TestOut {
        reply: answer.text,
        provider: cfg.provider,
        model: answer.model,
        input_tokens: answer.usage.input_tokens,
        output_tokens: answer.usage.output_tokens,
        latency_ms: started.elapsed().as_millis() as u64,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageOut {
    /// `YYYY-MM`.
    pub month: String,
    pub tokens: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub replies: i64,
    pub calls: i64,
    pub cost_usd: f64,
    /// Tokens per month; `null`: no limit.
    pub monthly_token_limit: Option<i64>,
    pub remaining_tokens: Option<i64>,
    pub limit_reached: bool,
}

fn usage_out(month: String, t: usage::Totals, limit: Option<i64>) -> UsageOut {
    UsageOut {
        month,
        tokens: t.tokens,
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        replies: t.replies,
        calls: t.calls,
        cost_usd: t.cost_usd,
        monthly_token_limit: limit,
        remaining_tokens: limit.map(|l| (l - t.tokens).max(0)),
        limit_reached: limit.is_some_and(|l| t.tokens >= l),
    }
}

/// This month's usage against the organization's limit.
#[utoipa::path(get, path = "/bot-config/usage", tag = "bot-config",
    responses((status = 200, body = Data<UsageOut>)))]
async fn usage_now(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<UsageOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let now = Utc::now();
    let limit = bot::load_settings(&mut conn, org_id)
        .await?
        .monthly_token_limit;
    let totals = usage::totals_since(&mut conn, org_id, usage::month_start(now)).await?;
    Ok(Data::new(usage_out(
        now.format("%Y-%m").to_string(),
        totals,
        limit,
    )))
}

/// The last 12 months of usage, newest first.
#[utoipa::path(get, path = "/bot-config/usage/history", tag = "bot-config",
    responses((status = 200, body = Data<Vec<UsageOut>>)))]
async fn usage_history(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<UsageOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let limit = bot::load_settings(&mut conn, org_id)
        .await?
        .monthly_token_limit;
    let this_month = usage::month_start(Utc::now());
    let mut months = Vec::with_capacity(12);
    for back in 0..12u32 {
        let Some(start) = this_month.checked_sub_months(Months::new(back)) else {
            break;
        };
        let end = start.checked_add_months(Months::new(1)).unwrap_or(start);
        let t = usage::totals_between(&mut conn, org_id, start, Some(end)).await?;
        let month = format!("{:04}-{:02}", start.year(), start.month());
        months.push(usage_out(month, t, limit));
    }
    Ok(Data::new(months))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReprocessOut {
    /// BOT_HANDLING conversations whose last message was the customer's: a reply is queued.
    pub requeued: usize,
}

/// Queue a bot reply for every BOT_HANDLING conversation whose customer is still waiting for
/// one (admin): after an outage, a key change or a limit raised.
#[utoipa::path(post, path = "/bot-config/reprocess-pending", tag = "bot-config",
    responses((status = 200, body = Data<ReprocessOut>)))]
async fn reprocess_pending(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<ReprocessOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let waiting: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT c.id, last.id FROM conversations c
           CROSS JOIN LATERAL (SELECT id, direction FROM messages m WHERE m.conversation_id = c.id
                                ORDER BY m.seq DESC LIMIT 1) last
          WHERE c.org_id = $1 AND c.status = 'BOT_HANDLING' AND last.direction = 'INBOUND'",
    )
    .bind(org_id)
    .fetch_all(&mut *tx)
    .await?;
    for (conversation_id, message_id) in &waiting {
        bot::enqueue_reply(&mut tx, org_id, *conversation_id, *message_id, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(Data::new(ReprocessOut {
        requeued: waiting.len(),
    }))
}
