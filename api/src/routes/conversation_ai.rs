//! The bot's help on conversations: `POST /conversations/{id}/generate-handoff-summary` (a
//! summary for the agent to review), `POST /conversations/{id}/re-classify` (the model picks
//! a category now) and `POST /conversations/re-classify` (every open conversation, as a job
//! that also routes them again; followed at `GET /routing-rules/runs/{id}`). The work is
//! `wharf_shared::bot::assist` and `::reclassify`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    bot::{
        assist::{self, AssistDeps, AssistError},
        reclassify,
    },
    llm::LlmError,
};

use super::{
    outbound::user_id,
    routing_runs::{fetch_run, RunOut},
    Data,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, parse_optional_json},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate_handoff_summary))
        .routes(routes!(re_classify))
        .routes(routes!(re_classify_all))
}

fn deps(state: &AppState) -> AssistDeps<'_> {
    AssistDeps {
        pool: &state.db,
        llm: &state.llm,
        secrets: &state.secrets,
    }
}

/// What the caller hears when the bot cannot help: our own statuses, never the provider's.
fn assist_error(e: AssistError) -> ApiError {
    match e {
        AssistError::NoActiveConfig => {
            ApiError::Conflict("The organization has no active bot config".into())
        }
        AssistError::ConversationNotFound => ApiError::not_found("Conversation"),
        AssistError::Config(m) => ApiError::Conflict(m),
        AssistError::Provider(e @ (LlmError::InvalidKey(_) | LlmError::BadRequest(_))) => {
            ApiError::Conflict(format!("The AI provider refused the request: {e}"))
        }
        AssistError::Provider(e @ LlmError::RateLimited { retry_after, .. }) => {
            ApiError::UpstreamUnavailable {
                message: format!("The AI provider is rate limiting this organization: {e}"),
                retry_after_secs: retry_after.map_or(10, |d| d.as_secs().max(1)),
            }
        }
        AssistError::Provider(e) => ApiError::UpstreamUnavailable {
            message: format!("The AI provider did not answer: {e}"),
            retry_after_secs: 10,
        },
        AssistError::Db(e) => e.into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandoffSummaryOut {
    pub conversation_id: Uuid,
    pub summary: String,
}

/// A summary of the conversation written by the active bot config's model, for the agent to
/// review (not stored; pass it to `return-to-bot` as `handoffSummary` or keep it as a note).
#[utoipa::path(post, path = "/conversations/{id}/generate-handoff-summary", tag = "conversations",
    responses((status = 200, body = Data<HandoffSummaryOut>), (status = 401), (status = 403), (status = 404),
              (status = 409, description = "no active bot config, or the provider refused its key"),
              (status = 503, description = "the provider is unavailable or rate limiting; see Retry-After")))]
async fn generate_handoff_summary(
    State(state): State<AppState>,
    auth: Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Data<HandoffSummaryOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&raw_id, "Conversation")?;
    let summary = assist::handoff_summary(&deps(&state), org_id, id)
        .await
        .map_err(assist_error)?;
    Ok(Data::new(HandoffSummaryOut {
        conversation_id: id,
        summary,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclassifyOut {
    pub conversation_id: Uuid,
    /// The conversation's category now.
    pub category: Option<String>,
    pub previous_category: Option<String>,
    pub changed: bool,
    /// Whether the model named one of the organization's categories (when not, the category
    /// stays as it was).
    pub recognised: bool,
}

/// Let the active bot config's model pick the conversation's category from the
/// organization's categories (those its routing rules test and its conversations carry).
#[utoipa::path(post, path = "/conversations/{id}/re-classify", tag = "conversations",
    responses((status = 200, body = Data<ReclassifyOut>), (status = 401), (status = 403), (status = 404),
              (status = 409), (status = 503)))]
async fn re_classify(
    State(state): State<AppState>,
    auth: Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Data<ReclassifyOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&raw_id, "Conversation")?;
    let c = assist::classify(&deps(&state), org_id, id)
        .await
        .map_err(assist_error)?;
    Ok(Data::new(ReclassifyOut {
        conversation_id: id,
        changed: c.changed(),
        recognised: c.recognised,
        category: c.category,
        previous_category: c.previous,
    }))
}

/// No options yet: the body may be empty or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReclassifyAllRequest {}

impl Validate for ReclassifyAllRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// Re-classify every conversation that is not closed and not in an agent's hands, and route
/// each whose category changed again (admin). Answers 202 with the run (kind RECLASSIFY);
/// follow it at `GET /routing-rules/runs/{id}`.
#[utoipa::path(post, path = "/conversations/re-classify", tag = "conversations",
    request_body(content = Option<ReclassifyAllRequest>),
    responses((status = 202, body = Data<RunOut>), (status = 401), (status = 403),
              (status = 409, description = "no active bot config"), (status = 422)))]
async fn re_classify_all(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Data<RunOut>>)> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    parse_optional_json::<ReclassifyAllRequest>(&body)?;
    let mut tx = state.db.begin().await?;
    if wharf_shared::bot::config::active(&mut tx, org_id)
        .await?
        .is_none()
    {
        return Err(assist_error(AssistError::NoActiveConfig));
    }
    let run_id = reclassify::start_run(&mut tx, org_id, user_id(&auth)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Data::new(fetch_run(&state, org_id, run_id).await?),
    ))
}
