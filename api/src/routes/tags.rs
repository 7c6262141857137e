//! `/tags`: the organization's labels for conversations (a name and a colour), and
//! `/conversations/{conversationId}/tags`, putting them on and taking them off a conversation.
//!
//! Every role reads tags and tags the conversations it can see; creating, renaming and deleting
//! a tag changes every conversation that carries it, so that takes a supervisor.

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
use wharf_shared::events::Event;

use super::{outbound::user_id, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, OnConflict},
    extract::{parse_id, ValidJson},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(tag_colors))
        .routes(routes!(update_tag, delete_tag))
        .routes(routes!(tag_conversation))
        .routes(routes!(untag_conversation))
}

/// The colours the inbox offers (Tailwind's 500 shades: readable on light and dark
/// backgrounds). Any `#RRGGBB` is accepted; these are the suggestions.
pub const PALETTE: [&str; 12] = [
    "#EF4444", "#F97316", "#F59E0B", "#84CC16", "#22C55E", "#14B8A6", "#06B6D4", "#3B82F6",
    "#6366F1", "#8B5CF6", "#EC4899", "#6B7280",
];

const MAX_TAG_NAME_LEN: usize = 50;
const DUPLICATE: &str = "A tag with this name already exists";

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TagOut {
    pub id: Uuid,
    pub name: String,
    /// `#RRGGBB`, upper-case.
    pub color: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tag as a conversation shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TagRef {
    pub id: Uuid,
    pub name: String,
    pub color: String,
}

/// SQL for the JSON array of the tags on a conversation (`conversation`: an SQL expression of
/// its id), by name. A subquery of the conversation's own query, so a page of conversations
/// carries its tags without a query per row.
pub fn tags_of(conversation: &str) -> String {
    format!(
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', t.id, 'name', t.name, 'color', t.color)
                                    ORDER BY lower(t.name), t.id)
                     FROM conversation_tags ct JOIN tags t ON t.id = ct.tag_id
                    WHERE ct.conversation_id = {conversation}), '[]'::jsonb)"
    )
}

const TAG_COLUMNS: &str = "id, name, color, created_at, updated_at";

/// List the organization's tags, by name.
#[utoipa::path(get, path = "/tags", tag = "tags", responses((status = 200, body = Data<Vec<TagOut>>)))]
async fn list_tags(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<TagOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let tags = sqlx::query_as(&format!(
        "SELECT {TAG_COLUMNS} FROM tags WHERE org_id = $1 ORDER BY lower(name), id"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Data::new(tags))
}

/// The suggested tag colours.
#[utoipa::path(get, path = "/tags/colors", tag = "tags", responses((status = 200, body = Data<Vec<String>>)))]
async fn tag_colors(auth: Auth) -> ApiResult<Json<Data<Vec<String>>>> {
    auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(PALETTE.iter().map(|c| c.to_string()).collect()))
}

/// A tag, whole: creating one and replacing one (PUT) take the same body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TagRequest {
    /// 1 to 50 characters, unique in the organization whatever the case.
    pub name: String,
    /// `#RRGGBB`, e.g. one of `/tags/colors`.
    pub color: String,
}

impl Validate for TagRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("name", &self.name, MAX_TAG_NAME_LEN);
        let hex = self.color.strip_prefix('#').unwrap_or_default();
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            v.add("color", "must be a colour as #RRGGBB, e.g. #EF4444");
        }
    }
}

/// Create a tag (supervisors and admins).
#[utoipa::path(post, path = "/tags", tag = "tags", request_body = TagRequest,
    responses((status = 201, body = Data<TagOut>), (status = 409)))]
async fn create_tag(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TagRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Supervisor, scopes::WHATSAPP_WRITE)?;
    let tag: TagOut = sqlx::query_as(&format!(
        "INSERT INTO tags (org_id, name, color) VALUES ($1, $2, $3) RETURNING {TAG_COLUMNS}"
    ))
    .bind(org_id)
    .bind(body.name.trim())
    .bind(body.color.to_ascii_uppercase())
    .fetch_one(&state.db)
    .await
    .on_conflict("tags_org_name_key", DUPLICATE)?;
    Ok((StatusCode::CREATED, Data::new(tag)))
}

/// Rename or recolour a tag (supervisors and admins); conversations show the change at once.
#[utoipa::path(put, path = "/tags/{id}", tag = "tags", request_body = TagRequest,
    responses((status = 200, body = Data<TagOut>), (status = 409)))]
async fn update_tag(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<TagRequest>,
) -> ApiResult<Json<Data<TagOut>>> {
    let org_id = auth.authorize(Role::Supervisor, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Tag")?;
    let tag: Option<TagOut> = sqlx::query_as(&format!(
        "UPDATE tags SET name = $3, color = $4 WHERE id = $1 AND org_id = $2 RETURNING {TAG_COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(body.name.trim())
    .bind(body.color.to_ascii_uppercase())
    .fetch_optional(&state.db)
    .await
    .on_conflict("tags_org_name_key", DUPLICATE)?;
    Ok(Data::new(tag.ok_or_else(|| ApiError::not_found("Tag"))?))
}

/// Delete a tag (supervisors and admins); it comes off every conversation.
#[utoipa::path(delete, path = "/tags/{id}", tag = "tags", responses((status = 204)))]
async fn delete_tag(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Supervisor, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Tag")?;
    let done = sqlx::query("DELETE FROM tags WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&state.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("Tag"));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- a conversation's tags ------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationTagRequest {
    pub tag_id: Uuid,
}

impl Validate for ConversationTagRequest {
    fn validate(&self, _: &mut Violations) {}
}

/// A 404 naming whichever of the conversation and the tag the organization does not have.
async fn ensure_known(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    tag_id: Uuid,
) -> ApiResult<()> {
    let (conversation, tag): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND org_id = $3),
                EXISTS (SELECT 1 FROM tags WHERE id = $2 AND org_id = $3)",
    )
    .bind(conversation_id)
    .bind(tag_id)
    .bind(org_id)
    .fetch_one(conn)
    .await?;
    match (conversation, tag) {
        (false, _) => Err(ApiError::not_found("Conversation")),
        (_, false) => Err(ApiError::not_found("Tag")),
        _ => Ok(()),
    }
}

async fn conversation_tags(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> ApiResult<Vec<TagRef>> {
    let tags: sqlx::types::Json<Vec<TagRef>> =
        sqlx::query_scalar(&format!("SELECT {}", tags_of("$1")))
            .bind(conversation_id)
            .fetch_one(conn)
            .await?;
    Ok(tags.0)
}

/// Put a tag on a conversation; the answer is the conversation's tags. Idempotent: 201 when
/// the tag was added, 200 when the conversation already had it.
#[utoipa::path(post, path = "/conversations/{conversationId}/tags", tag = "tags",
    params(("conversationId" = String, Path)),
    request_body = ConversationTagRequest,
    responses((status = 201, body = Data<Vec<TagRef>>), (status = 200, body = Data<Vec<TagRef>>)))]
async fn tag_conversation(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<ConversationTagRequest>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Conversation")?;
    let mut tx = state.db.begin().await?;
    // Both must be the organization's: the join inserts nothing otherwise.
    let added = sqlx::query(
        "INSERT INTO conversation_tags (conversation_id, tag_id, created_by)
         SELECT c.id, t.id, $4 FROM conversations c, tags t
          WHERE c.id = $1 AND c.org_id = $3 AND t.id = $2 AND t.org_id = $3
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(body.tag_id)
    .bind(org_id)
    .bind(user_id(&auth))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !added {
        ensure_known(&mut tx, org_id, id, body.tag_id).await?;
    }
    let tags = conversation_tags(&mut tx, id).await?;
    tx.commit().await?;
    if added {
        publish_tags(&state, org_id, id, &tags).await;
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Data::new(tags)))
}

/// Take a tag off a conversation; the answer is the conversation's remaining tags.
#[utoipa::path(delete, path = "/conversations/{conversationId}/tags/{tagId}", tag = "tags",
    params(("conversationId" = String, Path), ("tagId" = String, Path)),
    responses((status = 200, body = Data<Vec<TagRef>>)))]
async fn untag_conversation(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, tag_id)): Path<(String, String)>,
) -> ApiResult<Json<Data<Vec<TagRef>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Conversation")?;
    let tag_id = parse_id(&tag_id, "Tag")?;
    let mut tx = state.db.begin().await?;
    ensure_known(&mut tx, org_id, id, tag_id).await?;
    sqlx::query("DELETE FROM conversation_tags WHERE conversation_id = $1 AND tag_id = $2")
        .bind(id)
        .bind(tag_id)
        .execute(&mut *tx)
        .await?;
    let tags = conversation_tags(&mut tx, id).await?;
    tx.commit().await?;
    publish_tags(&state, org_id, id, &tags).await;
    Ok(Data::new(tags))
}

/// Tells live screens a conversation's tags changed.
async fn publish_tags(state: &AppState, org_id: Uuid, conversation_id: Uuid, tags: &[TagRef]) {
    let detail = serde_json::json!({ "tags": tags });
    let event = Event::conversation_updated(org_id, conversation_id, detail);
    state.events.publish_one(event).await;
}
