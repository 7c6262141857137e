//! `/bot-config/metrics/*`: how the bot is doing — quality over a window, its sessions, the
//! reply pipeline's traces — and `/bot-config/test-sandbox`, where an admin talks to the active
//! config without WhatsApp. Figures are computed live from what the platform records
//! (`wharf_shared::bot::metrics`); the sandbox runs the reply pipeline's own steps
//! (`wharf_shared::bot::sandbox`). Reading needs any role; the sandbox needs an admin.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::{
    metrics::{self, CLOSURE_TYPES},
    sandbox::{self, SandboxDeps, SandboxError},
};

use super::{Data, Page, PageParams};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(quality))
        .routes(routes!(sessions))
        .routes(routes!(traces))
        .routes(routes!(trace))
        .routes(routes!(test_sandbox))
}

fn check_days(v: &mut Violations, days: Option<i64>, max: i64) {
    if days.is_some_and(|d| !(1..=max).contains(&d)) {
        v.add("days", format!("must be between 1 and {max}"));
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    /// The window, in days back from now: 1..=365 (default 30).
    pub days: Option<i64>,
}

impl Validate for QualityQuery {
    fn validate(&self, v: &mut Violations) {
        check_days(v, self.days, 365);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCounts {
    /// Bot sessions started in the window.
    pub total: i64,
    pub running: i64,
    pub escalated: i64,
    pub resolved_confirmed: i64,
    pub abandoned: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

/// The bot's quality over the last `days` days.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityOut {
    pub days: i64,
    pub since: DateTime<Utc>,
    /// Reply runs that queued an answer (from the model or an ANSWER intent).
    pub replies_answered: i64,
    /// Reply runs that handed the conversation over.
    pub handoffs: i64,
    /// The handoffs by the reason the bot recorded, most frequent first.
    pub handoffs_by_reason: Vec<ReasonCount>,
    /// Bot sessions started in the window (a conversation's stint with the bot; see
    /// `/bot-config/metrics/sessions`).
    pub sessions: SessionCounts,
    /// Escalated sessions / sessions that ended (escalated, resolved or abandoned); `null`
    /// when none ended.
    pub handoff_rate: Option<f64>,
    /// Sessions resolved while the bot had them, with no person involved / sessions that
    /// ended; `null` when none ended.
    pub resolution_rate: Option<f64>,
    /// Ratings of the bot's answers given in the window (`POST /bot-feedback`), 1 to 5.
    pub feedback_count: i64,
    pub average_rating: Option<f64>,
    /// Whole reply time of answered runs (from the job's start to the answer queued), in ms.
    pub latency_p50_ms: Option<i32>,
    pub latency_p95_ms: Option<i32>,
    /// Model calls made for replies (key checks, tests and the sandbox excluded).
    pub usage: TokenUsage,
}

/// The bot's quality over a window (default 30 days): answers and handoffs from the reply
/// traces, sessions from the conversations' moves (handoff rate: escalated / ended sessions;
/// resolution rate: resolved by the bot / ended sessions), people's ratings, reply latency
/// (p50, p95) and the replies' tokens and cost. Always computed live.
#[utoipa::path(get, path = "/bot-config/metrics/quality", tag = "bot-config", params(QualityQuery),
    responses((status = 200, body = Data<QualityOut>), (status = 422)))]
async fn quality(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<QualityQuery>,
) -> ApiResult<Json<Data<QualityOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let days = q.days.unwrap_or(30);
    let since = metrics::since(days);
    let mut conn = state.db.acquire().await?;
    let m = metrics::quality(&mut conn, org_id, since).await?;
    Ok(Data::new(QualityOut {
        days,
        since,
        replies_answered: m.replies_answered,
        handoffs: m.handoffs,
        handoffs_by_reason: m
            .handoffs_by_reason
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect(),
        sessions: SessionCounts {
            total: m.sessions,
            running: m.sessions_running,
            escalated: m.sessions_escalated,
            resolved_confirmed: m.sessions_resolved,
            abandoned: m.sessions_abandoned,
        },
        handoff_rate: m.handoff_rate,
        resolution_rate: m.resolution_rate,
        feedback_count: m.feedback_count,
        average_rating: m.average_rating,
        latency_p50_ms: m.latency_p50_ms,
        latency_p95_ms: m.latency_p95_ms,
        usage: TokenUsage {
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            cost_usd: m.cost_usd,
        },
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// ESCALATED, RESOLVED_CONFIRMED or ABANDONED; without it running sessions are listed too.
    pub closure_type: Option<String>,
    /// Sessions started in the last `days` days: 1..=365 (default 30).
    pub days: Option<i64>,
    /// 1-based page number.
    pub page: Option<i64>,
    /// Page size, at most 100 (default 20).
    pub limit: Option<i64>,
}

impl SessionsQuery {
    fn paging(&self) -> PageParams {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
    }
}

impl Validate for SessionsQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("closureType", self.closure_type.as_deref(), &CLOSURE_TYPES);
        check_days(v, self.days, 365);
        self.paging().check(v);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionContact {
    pub wa_id: String,
    /// The name an agent gave, else the WhatsApp profile name.
    pub name: Option<String>,
}

/// A conversation's stint with the bot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOut {
    pub conversation_id: Uuid,
    pub contact: SessionContact,
    /// When the conversation entered BOT_HANDLING (created so, or returned to the bot).
    pub started_at: DateTime<Utc>,
    /// When it left the bot; for ABANDONED, the bot's last answer; `null` while running.
    pub ended_at: Option<DateTime<Utc>>,
    /// ESCALATED, RESOLVED_CONFIRMED, ABANDONED; `null` while running.
    pub closure_type: Option<String>,
    /// The move that ended it: HANDED_OFF, TAKEOVER, ASSIGNED, RESOLVED...
    pub end_event: Option<String>,
    /// The bot's answers during the session.
    pub bot_turns: i64,
    /// ESCALATED: the reason recorded with the move (the bot's handoff reason, as in its trace).
    pub handoff_reason: Option<String>,
}

/// The bot sessions started in the window, newest first (page-numbered). A session starts when
/// a conversation enters BOT_HANDLING (created so, or RETURNED_TO_BOT) and ends when it leaves:
/// ESCALATED (a person or the queue took it: HANDED_OFF, TAKEOVER, an assignment),
/// RESOLVED_CONFIRMED (resolved while the bot had it), ABANDONED (still the bot's, the customer
/// silent for more than 24 h after the bot's last answer); running sessions have no closure and
/// are listed only without `closureType`.
#[utoipa::path(get, path = "/bot-config/metrics/sessions", tag = "bot-config", params(SessionsQuery),
    responses((status = 200, body = Page<SessionOut>), (status = 422)))]
async fn sessions(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<SessionsQuery>,
) -> ApiResult<Json<Page<SessionOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let paging = q.paging();
    let since = metrics::since(q.days.unwrap_or(30));
    let mut conn = state.db.acquire().await?;
    let (rows, total) = metrics::sessions(
        &mut conn,
        org_id,
        since,
        q.closure_type.as_deref(),
        paging.limit(),
        paging.offset(),
    )
    .await?;
    let items = rows
        .into_iter()
        .map(|s| SessionOut {
            conversation_id: s.conversation_id,
            contact: SessionContact {
                wa_id: s.wa_id,
                name: s.contact_name,
            },
            started_at: s.started_at,
            ended_at: s.ended_at,
            closure_type: s.closure_type,
            end_event: s.end_event,
            bot_turns: s.bot_turns,
            handoff_reason: s.handoff_reason,
        })
        .collect();
    Ok(Page::new(items, &paging, total))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TracesQuery {
    /// The window, in days back from now: 1..=30 (default 7).
    pub days: Option<i64>,
    /// Accepted for clients that ask for fresh figures; they always are (nothing is cached).
    pub force: Option<bool>,
}

impl Validate for TracesQuery {
    fn validate(&self, v: &mut Violations) {
        check_days(v, self.days, 30);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyOut {
    pub p50_ms: Option<i32>,
    pub p95_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummaryOut {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    /// answered, handoff, skipped or failed.
    pub outcome: String,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracesOut {
    pub days: i64,
    pub since: DateTime<Utc>,
    /// Reply runs in the window.
    pub traces: i64,
    /// Runs per outcome (answered, handoff, skipped, failed).
    pub by_outcome: BTreeMap<String, i64>,
    /// Whole reply time of every run (p50, p95, p99).
    pub latency: LatencyOut,
    /// Runs that asked the model, and the provider's time for the successful attempt.
    pub model_calls: i64,
    pub provider_latency: LatencyOut,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The 50 newest traces of the window.
    pub newest: Vec<TraceSummaryOut>,
}

/// The reply pipeline over a window (default 7 days), from the traces the platform records:
/// runs by outcome, latency (p50, p95, p99), the provider's latency and tokens, and the 50
/// newest traces. Always live; `force` changes nothing.
#[utoipa::path(get, path = "/bot-config/metrics/traces", tag = "bot-config", params(TracesQuery),
    responses((status = 200, body = Data<TracesOut>), (status = 422)))]
async fn traces(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<TracesQuery>,
) -> ApiResult<Json<Data<TracesOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let days = q.days.unwrap_or(7);
    let since = metrics::since(days);
    let mut conn = state.db.acquire().await?;
    let (s, by_outcome, newest) = metrics::trace_stats(&mut conn, org_id, since).await?;
    Ok(Data::new(TracesOut {
        days,
        since,
        traces: s.traces,
        by_outcome: by_outcome.into_iter().collect(),
        latency: LatencyOut {
            p50_ms: s.latency_p50_ms,
            p95_ms: s.latency_p95_ms,
            p99_ms: s.latency_p99_ms,
        },
        model_calls: s.model_calls,
        provider_latency: LatencyOut {
            p50_ms: s.provider_latency_p50_ms,
            p95_ms: s.provider_latency_p95_ms,
            p99_ms: None,
        },
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        newest: newest
            .into_iter()
            .map(|t| TraceSummaryOut {
                id: t.id,
                conversation_id: t.conversation_id,
                outcome: t.outcome,
                latency_ms: t.latency_ms,
                created_at: t.created_at,
            })
            .collect(),
    }))
}

/// One trace with everything the reply recorded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceOut {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub bot_config_id: Option<Uuid>,
    /// answered, handoff, skipped or failed.
    pub outcome: String,
    /// Whole reply time, in ms.
    pub latency_ms: Option<i32>,
    /// Why it handed over or skipped.
    pub reason: Option<String>,
    /// The intent that answered without the model.
    pub intent: Option<String>,
    /// The provider call, when the model was asked: `provider`, `model`, `inputTokens`,
    /// `outputTokens`, `providerLatencyMs`, `contextMessages` (the context size), `retrieval`
    /// (knowledge-base documents; empty until it exists), `toolCalls`.
    pub call: Option<Value>,
    /// The whole record as stored (also `messageId`: the customer message answered).
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// One trace of the reply pipeline, in full. Another organization's, or an id that is not one,
/// is a 404.
#[utoipa::path(get, path = "/bot-config/metrics/traces/{traceId}", tag = "bot-config",
    params(("traceId" = String, Path, description = "The trace id")),
    responses((status = 200, body = Data<TraceOut>), (status = 404)))]
async fn trace(
    State(state): State<AppState>,
    auth: Auth,
    Path(trace_id): Path<String>,
) -> ApiResult<Json<Data<TraceOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&trace_id, "Trace")?;
    let mut conn = state.db.acquire().await?;
    let t = metrics::trace(&mut conn, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Trace"))?;
    let detail = t.detail.0;
    let text = |v: &Value| v.as_str().map(str::to_string);
    // An answer from an intent records `{"intent": ...}` where a model call records the call;
    // a run taken over after the model answered keeps the call too.
    let call = detail
        .get("call")
        .filter(|c| c.get("provider").is_some())
        .cloned();
    let reason = text(&detail["reason"]);
    let intent = text(&detail["call"]["intent"]);
    Ok(Data::new(TraceOut {
        id: t.id,
        conversation_id: t.conversation_id,
        bot_config_id: t.bot_config_id,
        outcome: t.outcome,
        latency_ms: t.latency_ms,
        reason,
        intent,
        call,
        detail,
        created_at: t.created_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxRequest {
    /// What the admin, playing the customer, writes (1..=4096 characters).
    pub message: String,
    /// Forget the earlier turns first: this message starts a new conversation.
    #[serde(default)]
    pub reset: bool,
}

impl Validate for SandboxRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("message", &self.message, 4096);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxTurnOut {
    /// user or assistant.
    pub role: String,
    pub content: String,
    pub handed_off: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxOut {
    /// The bot's answer; when it hands over, the handoff message the customer would hear.
    pub reply: String,
    pub handed_off: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_reason: Option<String>,
    /// The intent that matched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// This message's model call; zeros when the model was not asked.
    pub usage: SandboxUsage,
    pub latency_ms: u64,
    /// The context now: the last 20 turns, oldest first.
    pub history: Vec<SandboxTurnOut>,
}

/// Talk to the active bot config without WhatsApp (admin, signed in as a user): the same
/// pipeline as a real reply (system prompt, handoff words and tool, intents, turn limit,
/// monthly limit, limiter and retries) with the last 20 turns as context. Nothing is sent and
/// no conversation is touched; the model call counts in usage (purpose `sandbox`). Each admin
/// has their own history; `reset: true` clears it first. No active config: 404, as for
/// `POST /bot-config/test`.
#[utoipa::path(post, path = "/bot-config/test-sandbox", tag = "bot-config", request_body = SandboxRequest,
    responses((status = 200, body = Data<SandboxOut>), (status = 403), (status = 404), (status = 422)))]
async fn test_sandbox(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<SandboxRequest>,
) -> ApiResult<Json<Data<SandboxOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    // The history is the user's own.
    let user_id = auth.user()?.id;
    let deps = SandboxDeps {
        pool: &state.db,
        llm: &state.llm,
        secrets: &state.secrets,
    };
    let x = sandbox::converse(&deps, org_id, user_id, body.message.trim(), body.reset)
        .await
        .map_err(|e| match e {
            SandboxError::NoActiveConfig => ApiError::not_found("Active bot config"),
            SandboxError::Database(e) => e.into(),
        })?;
    Ok(Data::new(SandboxOut {
        reply: x.reply,
        handed_off: x.handed_off,
        handoff_reason: x.handoff_reason,
        intent: x.intent,
        usage: SandboxUsage {
            input_tokens: x.usage.input_tokens,
            output_tokens: x.usage.output_tokens,
            cost_usd: x.cost_usd,
        },
        latency_ms: x.latency_ms,
        history: x
            .history
            .into_iter()
            .map(|t| SandboxTurnOut {
                role: t.role,
                content: t.content,
                handed_off: t.handed_off,
                handoff_reason: t.handoff_reason,
                intent: t.intent,
                created_at: t.created_at,
            })
            .collect(),
    }))
}
