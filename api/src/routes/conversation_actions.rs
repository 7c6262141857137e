//! Moving a conversation: assign, unassign, take over, return to the bot, resolve, follow-up,
//! and the PATCH that does the same by fields. Each is one call of the shared domain operation
//! (`wharf_shared::cx::lifecycle`), which checks the state, applies the move and records it;
//! the conversation's detail shows those records as `events`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{
    bot,
    cx::lifecycle::{self, Move, MoveError},
    events::Event,
};

use super::{
    conversations::{fetch_conversation, ConversationOut},
    Data,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, parse_optional_json, ValidJson},
    state::AppState,
    validate::{Validate, Violations},
};

const MAX_NOTE_LEN: usize = 2000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_conversation, patch_conversation))
        .routes(routes!(assign))
        .routes(routes!(unassign))
        .routes(routes!(takeover))
        .routes(routes!(return_to_bot))
        .routes(routes!(resolve))
        .routes(routes!(set_follow_up, clear_follow_up))
        .routes(routes!(contact_history))
        .routes(routes!(categories))
}

/// A follow-up mark.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct FollowUpOut {
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
}

/// One recorded move of a conversation.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEventOut {
    /// ASSIGNED, UNASSIGNED, TAKEOVER, RETURNED_TO_BOT, RESOLVED, FOLLOW_UP_SET, FOLLOW_UP_CLEARED.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// Who made the move (null: an API key or the platform).
    pub actor_id: Option<Uuid>,
    pub from_user_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A conversation with its follow-up and its moves, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationOut,
    pub follow_up: Option<FollowUpOut>,
    pub events: Vec<ConversationEventOut>,
}

async fn detail(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<ConversationDetail> {
    let conversation = fetch_conversation(state, org_id, id).await?;
    let follow_up: Option<FollowUpOut> = sqlx::query_as(
        "SELECT follow_up_note AS note, follow_up_at AS created_at, follow_up_by AS created_by
           FROM conversations WHERE id = $1 AND org_id = $2 AND follow_up_at IS NOT NULL",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&state.db)
    .await?;
    let events: Vec<ConversationEventOut> = sqlx::query_as(
        "SELECT type, actor_id, from_user_id, to_user_id, from_status, to_status, reason, at
           FROM conversation_events WHERE conversation_id = $1 AND org_id = $2 ORDER BY id",
    )
    .bind(id)
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(ConversationDetail {
        conversation,
        follow_up,
        events,
    })
}

pub(crate) fn move_error(err: MoveError) -> ApiError {
    match err {
        MoveError::NotFound => ApiError::not_found("Conversation"),
        MoveError::UnknownUser => ApiError::not_found("User"),
        MoveError::UnknownTeam => ApiError::not_found("Team"),
        e @ MoveError::NotAllowed { .. } => ApiError::Conflict(capitalize(&e.to_string())),
        MoveError::Database(e) => e.into(),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn actor(auth: &Auth) -> Option<Uuid> {
    match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    }
}

/// Applies `m` in one transaction and answers with the conversation's detail.
async fn apply(
    state: &AppState,
    auth: &Auth,
    raw_id: &str,
    role: Role,
    m: Move,
    reason: Option<&str>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let org_id = auth.authorize(role, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(raw_id, "Conversation")?;
    let mut tx = state.db.begin().await?;
    let assigns = matches!(m, Move::Assign { .. } | Move::Takeover { .. });
    lifecycle::apply(&mut tx, org_id, id, m, actor(auth), reason)
        .await
        .map_err(move_error)?;
    if assigns {
        bot::cancel_pending_replies(&mut tx, id).await?;
    }
    tx.commit().await?;
    let d = detail(state, org_id, id).await?;
    publish_change(state, org_id, &d.conversation, assigns).await;
    Ok(Data::new(d))
}

/// Tells live screens about a conversation that changed (`assigned`: it changed hands).
async fn publish_change(state: &AppState, org_id: Uuid, c: &ConversationOut, assigned: bool) {
    let event = if assigned {
        Event::conversation_assigned(org_id, c.id, c.team_id, c.assigned_to)
    } else {
        Event::conversation_updated(org_id, c.id, serde_json::json!({"status": c.status}))
    };
    state.events.publish_one(event).await;
}

/// Get a conversation with its contact, window, follow-up and recorded moves.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    responses((status = 200, body = Data<ConversationDetail>)))]
async fn get_conversation(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Conversation")?;
    Ok(Data::new(detail(&state, org_id, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignRequest {
    pub user_id: Uuid,
    /// Also moves the conversation to this team of the organization.
    pub team_id: Option<Uuid>,
}

impl Validate for AssignRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// Assign a conversation to an agent of the organization (supervisors and admins).
#[utoipa::path(post, path = "/conversations/{id}/assign", tag = "conversations", request_body = AssignRequest,
    responses((status = 200, body = Data<ConversationDetail>), (status = 409, description = "Not allowed from the current state")))]
async fn assign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<AssignRequest>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let m = Move::Assign {
        user_id: body.user_id,
        team_id: body.team_id,
    };
    apply(&state, &auth, &id, Role::Supervisor, m, None).await
}

/// Release a conversation back to the queue.
#[utoipa::path(post, path = "/conversations/{id}/unassign", tag = "conversations",
    responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn unassign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    apply(&state, &auth, &id, Role::Agent, Move::Unassign, None).await
}

/// The calling agent takes the conversation over (from the bot or another agent).
#[utoipa::path(post, path = "/conversations/{id}/takeover", tag = "conversations",
    responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn takeover(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let user_id = auth.user()?.id;
    apply(
        &state,
        &auth,
        &id,
        Role::Agent,
        Move::Takeover { user_id },
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReturnToBotRequest {
    /// What the agent leaves for the bot.
    pub handoff_summary: Option<String>,
}

impl Validate for ReturnToBotRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text(
            "handoffSummary",
            self.handoff_summary.as_deref(),
            MAX_NOTE_LEN,
        );
    }
}

/// Return the conversation to the bot (it stops being assigned).
#[utoipa::path(post, path = "/conversations/{id}/return-to-bot", tag = "conversations",
    request_body = ReturnToBotRequest, responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn return_to_bot(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let summary = parse_optional_json::<ReturnToBotRequest>(&body)?.handoff_summary;
    apply(
        &state,
        &auth,
        &id,
        Role::Agent,
        Move::ReturnToBot,
        summary.as_deref(),
    )
    .await
}

/// Resolve (close) the conversation. The customer's next message opens a new one.
#[utoipa::path(post, path = "/conversations/{id}/resolve", tag = "conversations",
    responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn resolve(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    apply(&state, &auth, &id, Role::Agent, Move::Resolve, None).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowUpRequest {
    pub note: Option<String>,
}

impl Validate for FollowUpRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("note", self.note.as_deref(), MAX_NOTE_LEN);
    }
}

/// Mark the conversation for follow-up, with an optional note.
#[utoipa::path(post, path = "/conversations/{id}/follow-up", tag = "conversations",
    request_body = FollowUpRequest, responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn set_follow_up(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let note = parse_optional_json::<FollowUpRequest>(&body)?
        .note
        .map(|n| n.trim().to_string());
    apply(
        &state,
        &auth,
        &id,
        Role::Agent,
        Move::FollowUp { note },
        None,
    )
    .await
}

/// Remove the conversation's follow-up mark.
#[utoipa::path(delete, path = "/conversations/{id}/follow-up", tag = "conversations",
    responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn clear_follow_up(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    apply(&state, &auth, &id, Role::Agent, Move::ClearFollowUp, None).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchConversationRequest {
    /// CLOSED resolves, BOT_HANDLING returns it to the bot, OPEN releases it to the queue.
    pub status: Option<String>,
    /// An agent to assign.
    pub assigned_to: Option<Uuid>,
    pub category: Option<String>,
}

const PATCH_STATUSES: [&str; 3] = ["CLOSED", "BOT_HANDLING", "OPEN"];

impl Validate for PatchConversationRequest {
    fn validate(&self, v: &mut Violations) {
        v.one_of("status", self.status.as_deref(), &PATCH_STATUSES);
        v.optional_text("category", self.category.as_deref(), 100);
        if self.status.is_some() && self.assigned_to.is_some() {
            v.add("assignedTo", "give either status or assignedTo, not both");
        }
    }
}

/// Update a conversation: its category, its assignee or its status (the same moves as the
/// action routes, with the same checks).
#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations",
    request_body = PatchConversationRequest, responses((status = 200, body = Data<ConversationDetail>), (status = 409)))]
async fn patch_conversation(
    State(state): State<AppState>,
    auth: Auth,
    Path(raw_id): Path<String>,
    ValidJson(body): ValidJson<PatchConversationRequest>,
) -> ApiResult<Json<Data<ConversationDetail>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&raw_id, "Conversation")?;
    let m = match (body.status.as_deref(), body.assigned_to) {
        (Some("CLOSED"), _) => Some(Move::Resolve),
        (Some("BOT_HANDLING"), _) => Some(Move::ReturnToBot),
        (Some(_), _) => Some(Move::Unassign),
        (None, Some(user_id)) => {
            auth.authorize(Role::Supervisor, scopes::WHATSAPP_WRITE)?;
            Some(Move::Assign {
                user_id,
                team_id: None,
            })
        }
        (None, None) => None,
    };
    let mut tx = state.db.begin().await?;
    if let Some(category) = &body.category {
        let done = sqlx::query(
            "UPDATE conversations SET category = NULLIF($3, ''), updated_at = now() WHERE id = $1 AND org_id = $2",
        )
        .bind(id)
        .bind(org_id)
        .bind(category.trim())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("Conversation"));
        }
    }
    let assigns = matches!(m, Some(Move::Assign { .. }));
    if let Some(m) = m {
        lifecycle::apply(&mut tx, org_id, id, m, actor(&auth), None)
            .await
            .map_err(move_error)?;
    }
    tx.commit().await?;
    let d = detail(&state, org_id, id).await?;
    publish_change(&state, org_id, &d.conversation, assigns).await;
    Ok(Data::new(d))
}

/// Other conversations with the same contact, newest first.
#[utoipa::path(get, path = "/conversations/{id}/contact-history", tag = "conversations",
    responses((status = 200, body = Data<Vec<ConversationOut>>)))]
async fn contact_history(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<Vec<ConversationOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Conversation")?;
    let contact: Option<Uuid> =
        sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .fetch_optional(&state.db)
            .await?;
    let contact = contact.ok_or_else(|| ApiError::not_found("Conversation"))?;
    let others: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE org_id = $1 AND contact_id = $2 AND id <> $3
          ORDER BY created_at DESC LIMIT 100",
    )
    .bind(org_id)
    .bind(contact)
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    let mut out = Vec::with_capacity(others.len());
    for other in others {
        out.push(fetch_conversation(&state, org_id, other).await?);
    }
    Ok(Data::new(out))
}

/// The distinct categories of the organization's conversations.
#[utoipa::path(get, path = "/conversations/categories", tag = "conversations",
    responses((status = 200, body = Data<Vec<String>>)))]
async fn categories(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<String>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT category FROM conversations WHERE org_id = $1 AND category IS NOT NULL ORDER BY category",
    )
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(rows))
}
