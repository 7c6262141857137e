//! `/conversations`: the inbox. One open conversation per (number, customer), fed by inbound
//! webhooks; lists are cursor-paginated (`{"data": [...], "nextCursor": ...}`).

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::inbox::{self, SERVICE_WINDOW};

use super::{
    check_cursor_params, cursor,
    messages::MessageOut,
    tags::{tags_of, TagRef},
    CursorPage, Data, DEFAULT_CURSOR_LIMIT,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidQuery},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(conversation_counts))
        .routes(routes!(list_messages))
        .routes(routes!(mark_read))
}

pub const STATUSES: [&str; 5] = [
    "BOT_HANDLING",
    "HUMAN_HANDLING",
    "OPEN",
    "WAITING_FOR_CUSTOMER",
    "CLOSED",
];
const SUB_FILTERS: [&str; 2] = ["unread", "needs_action"];
const SORTS: [&str; 5] = [
    "newest",
    "oldest",
    "waiting_longest",
    "created_newest",
    "created_oldest",
];

/// The contact a conversation is with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationContact {
    pub id: Uuid,
    pub wa_id: String,
    /// The agent-given name, else the WhatsApp profile name.
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationOut {
    pub id: Uuid,
    pub account_id: Uuid,
    /// BOT_HANDLING, HUMAN_HANDLING, OPEN, WAITING_FOR_CUSTOMER or CLOSED.
    pub status: String,
    pub assigned_to: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub category: Option<String>,
    pub unread_count: i32,
    pub last_message_at: DateTime<Utc>,
    pub last_message_preview: Option<String>,
    /// INBOUND or OUTBOUND.
    pub last_message_direction: Option<String>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Whether free-form messages may be sent: the customer wrote within the last 24 hours.
    pub window_open: bool,
    /// When the customer-service window closes (`lastInboundAt` + 24 h).
    pub window_expires_at: Option<DateTime<Utc>>,
    pub contact: ConversationContact,
    /// The tags on the conversation, by name.
    pub tags: Vec<TagRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct ConversationRow {
    id: Uuid,
    account_id: Uuid,
    status: String,
    assigned_to: Option<Uuid>,
    team_id: Option<Uuid>,
    category: Option<String>,
    unread_count: i32,
    last_message_at: DateTime<Utc>,
    last_message_preview: Option<String>,
    last_message_direction: Option<String>,
    last_inbound_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    contact_id: Uuid,
    wa_id: String,
    contact_name: Option<String>,
    profile_name: Option<String>,
    contact_category: Option<String>,
    tags: sqlx::types::Json<Vec<TagRef>>,
    sort_key: DateTime<Utc>,
}

impl From<ConversationRow> for ConversationOut {
    fn from(r: ConversationRow) -> Self {
        let window_expires_at = r.last_inbound_at.map(|t| t + SERVICE_WINDOW);
        Self {
            id: r.id,
            account_id: r.account_id,
            status: r.status,
            assigned_to: r.assigned_to,
            team_id: r.team_id,
            category: r.category,
            unread_count: r.unread_count,
            last_message_at: r.last_message_at,
            last_message_preview: r.last_message_preview,
            last_message_direction: r.last_message_direction,
            last_inbound_at: r.last_inbound_at,
            window_open: window_expires_at.is_some_and(|t| t > Utc::now()),
            window_expires_at,
            contact: ConversationContact {
                id: r.contact_id,
                wa_id: r.wa_id,
                name: r.contact_name.or_else(|| r.profile_name.clone()),
                profile_name: r.profile_name,
                category: r.contact_category,
            },
            tags: r.tags.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `waiting_longest`: conversations whose last message is the customer's, longest wait first;
/// the others after them.
const WAITING_KEY: &str =
    "COALESCE(CASE WHEN c.last_message_direction = 'INBOUND' AND c.status <> 'CLOSED'
                                     THEN c.last_inbound_at END, '9999-12-31'::timestamptz)";

/// (sort key expression, descending).
fn sort_spec(sort: Option<&str>) -> (&'static str, bool) {
    match sort.unwrap_or("newest") {
        "oldest" => ("c.last_message_at", false),
        "waiting_longest" => (WAITING_KEY, false),
        "created_newest" => ("c.created_at", true),
        "created_oldest" => ("c.created_at", false),
        _ => ("c.last_message_at", true),
    }
}

fn select_conversations(sort_expr: &str) -> QueryBuilder<'static, Postgres> {
    QueryBuilder::new(format!(
        "SELECT c.id, c.account_id, c.status, c.assigned_to, c.team_id, c.category, c.unread_count,
                c.last_message_at, c.last_message_preview, c.last_message_direction, c.last_inbound_at,
                c.created_at, c.updated_at, k.id AS contact_id, k.wa_id, k.name AS contact_name,
                k.profile_name, k.category AS contact_category, {} AS tags, {sort_expr} AS sort_key
           FROM conversations c JOIN contacts k ON k.id = c.contact_id
          WHERE c.org_id = ",
        tags_of("c.id")
    ))
}

/// `assignedTo`: a user id, `me`, or `unassigned`.
#[derive(Debug, Clone, Copy)]
enum Assigned {
    User(Uuid),
    Me,
    Unassigned,
}

fn parse_assigned(raw: &str) -> Option<Assigned> {
    match raw.trim() {
        "me" => Some(Assigned::Me),
        "unassigned" | "none" => Some(Assigned::Unassigned),
        other => Uuid::parse_str(other).ok().map(Assigned::User),
    }
}

/// Filters shared by the list and the counts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListConversationsQuery {
    /// BOT_HANDLING | HUMAN_HANDLING | OPEN | WAITING_FOR_CUSTOMER | CLOSED.
    pub status: Option<String>,
    /// A user id, `me` or `unassigned`.
    pub assigned_to: Option<String>,
    /// Matches the contact's name, profile name or phone (wa_id).
    pub search: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    pub limit: Option<i64>,
    /// `unread` (unreadCount > 0) or `needs_action` (the last message is the customer's).
    pub sub_filter: Option<String>,
    /// newest (default, by last message) | oldest | waiting_longest | created_newest | created_oldest.
    pub sort: Option<String>,
    pub team_id: Option<Uuid>,
    /// Only conversations carrying this tag.
    pub tag_id: Option<Uuid>,
    pub category: Option<String>,
}

impl Validate for ListConversationsQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("status", self.status.as_deref(), &STATUSES);
        v.one_of("subFilter", self.sub_filter.as_deref(), &SUB_FILTERS);
        v.one_of("sort", self.sort.as_deref(), &SORTS);
        if self
            .assigned_to
            .as_deref()
            .is_some_and(|a| parse_assigned(a).is_none())
        {
            v.add("assignedTo", "must be a user id, `me` or `unassigned`");
        }
        if self
            .search
            .as_deref()
            .is_some_and(|s| s.chars().count() > MAX_NAME_LEN)
        {
            v.add(
                "search",
                format!("must be at most {MAX_NAME_LEN} characters"),
            );
        }
        check_cursor_params::<Uuid>(v, self.cursor.as_deref(), self.limit);
    }
}

/// `%term%` for ILIKE with the wildcards of the term escaped.
pub fn like_pattern(term: &str) -> String {
    let escaped = term
        .trim()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn push_filters(
    qb: &mut QueryBuilder<'static, Postgres>,
    auth: &Auth,
    q: &ListConversationsQuery,
) -> ApiResult<()> {
    if let Some(status) = &q.status {
        qb.push(" AND c.status = ").push_bind(status.clone());
    }
    match q.assigned_to.as_deref().and_then(parse_assigned) {
        Some(Assigned::User(id)) => {
            qb.push(" AND c.assigned_to = ").push_bind(id);
        }
        Some(Assigned::Me) => {
            let Principal::User(u) = &auth.0 else {
                return Err(ApiError::Validation(vec![crate::error::FieldError::new(
                    &["query", "assignedTo"],
                    "`me` needs a user session; pass a user id",
                    "value_error",
                )]));
            };
            qb.push(" AND c.assigned_to = ").push_bind(u.id);
        }
        Some(Assigned::Unassigned) => {
            qb.push(" AND c.assigned_to IS NULL");
        }
        None => {}
    }
    if let Some(team) = q.team_id {
        qb.push(" AND c.team_id = ").push_bind(team);
    }
    if let Some(tag) = q.tag_id {
        qb.push(" AND EXISTS (SELECT 1 FROM conversation_tags ct WHERE ct.conversation_id = c.id AND ct.tag_id = ")
            .push_bind(tag)
            .push(")");
    }
    if let Some(category) = &q.category {
        qb.push(" AND c.category = ").push_bind(category.clone());
    }
    if let Some(search) = q.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let pattern = like_pattern(search);
        qb.push(" AND (k.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR k.profile_name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR k.wa_id ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    Ok(())
}

/// List conversations with filters, newest activity first by default (cursor pagination).
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListConversationsQuery),
    responses((status = 200, body = CursorPage<ConversationOut>), (status = 401), (status = 403), (status = 422)))]
async fn list_conversations(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListConversationsQuery>,
) -> ApiResult<Json<CursorPage<ConversationOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let limit = q.limit.unwrap_or(DEFAULT_CURSOR_LIMIT);
    let (sort_expr, desc) = sort_spec(q.sort.as_deref());
    let mut qb = select_conversations(sort_expr);
    qb.push_bind(org_id);
    push_filters(&mut qb, &auth, &q)?;
    match q.sub_filter.as_deref() {
        Some("unread") => {
            qb.push(" AND c.unread_count > 0");
        }
        Some("needs_action") => {
            qb.push(" AND c.last_message_direction = 'INBOUND'");
        }
        _ => {}
    }
    if let Some((at, id)) = q.cursor.as_deref().and_then(cursor::decode::<Uuid>) {
        qb.push(format!(
            " AND ({sort_expr}, c.id) {} (",
            if desc { "<" } else { ">" }
        ))
        .push_bind(at)
        .push(", ")
        .push_bind(id)
        .push(")");
    }
    let dir = if desc { "DESC" } else { "ASC" };
    qb.push(format!(" ORDER BY sort_key {dir}, c.id {dir} LIMIT "))
        .push_bind(limit + 1);
    let rows: Vec<ConversationRow> = qb.build_query_as().fetch_all(&state.db).await?;
    Ok(CursorPage::from_rows(
        rows,
        limit,
        |r| cursor::encode(r.sort_key, r.id),
        ConversationOut::from,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationCounts {
    pub all: i64,
    /// unreadCount > 0.
    pub unread: i64,
    /// The last message is the customer's.
    pub needs_action: i64,
}

/// Sub-filter counts (all, unread, needs_action) under the same filters as the list.
#[utoipa::path(get, path = "/conversations/counts", tag = "conversations", params(ListConversationsQuery),
    responses((status = 200, body = Data<ConversationCounts>), (status = 422)))]
async fn conversation_counts(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListConversationsQuery>,
) -> ApiResult<Json<Data<ConversationCounts>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut qb: QueryBuilder<'static, Postgres> = QueryBuilder::new(
        "SELECT count(*), count(*) FILTER (WHERE c.unread_count > 0),
                count(*) FILTER (WHERE c.last_message_direction = 'INBOUND')
           FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE c.org_id = ",
    );
    qb.push_bind(org_id);
    push_filters(&mut qb, &auth, &q)?;
    let (all, unread, needs_action): (i64, i64, i64) =
        qb.build_query_as().fetch_one(&state.db).await?;
    Ok(Data::new(ConversationCounts {
        all,
        unread,
        needs_action,
    }))
}

pub async fn fetch_conversation(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
) -> ApiResult<ConversationOut> {
    let mut qb = select_conversations("c.last_message_at");
    qb.push_bind(org_id).push(" AND c.id = ").push_bind(id);
    let row: Option<ConversationRow> = qb.build_query_as().fetch_optional(&state.db).await?;
    row.map(ConversationOut::from)
        .ok_or_else(|| ApiError::not_found("Conversation"))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// `nextCursor` of the previous page (older messages).
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    pub limit: Option<i64>,
}

impl Validate for ListMessagesQuery {
    fn validate(&self, v: &mut Violations) {
        check_cursor_params::<i64>(v, self.cursor.as_deref(), self.limit);
    }
}

/// A conversation's messages, NEWEST FIRST; `nextCursor` pages towards older messages (a chat
/// view loads the latest page and scrolls up). Ties within a second keep arrival order.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations", params(ListMessagesQuery),
    responses((status = 200, body = CursorPage<MessageOut>), (status = 404), (status = 422)))]
async fn list_messages(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<ListMessagesQuery>,
) -> ApiResult<Json<CursorPage<MessageOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let id = parse_id(&id, "Conversation")?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND org_id = $2)",
    )
    .bind(id)
    .bind(org_id)
    .fetch_one(&state.db)
    .await?;
    if !exists {
        return Err(ApiError::not_found("Conversation"));
    }
    let limit = q.limit.unwrap_or(DEFAULT_CURSOR_LIMIT);
    let mut qb: QueryBuilder<'static, Postgres> = QueryBuilder::new(format!(
        "SELECT {} FROM messages m WHERE m.org_id = ",
        super::messages::MESSAGE_COLUMNS
    ));
    qb.push_bind(org_id)
        .push(" AND m.conversation_id = ")
        .push_bind(id);
    if let Some((at, seq)) = q.cursor.as_deref().and_then(cursor::decode::<i64>) {
        qb.push(" AND (m.created_at, m.seq) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(seq)
            .push(")");
    }
    qb.push(" ORDER BY m.created_at DESC, m.seq DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<super::messages::MessageRow> = qb.build_query_as().fetch_all(&state.db).await?;
    Ok(CursorPage::from_rows(
        rows,
        limit,
        |r| cursor::encode(r.created_at, r.seq),
        MessageOut::from,
    ))
}

/// Mark a conversation as read (unreadCount = 0) and tell Meta the customer's latest message
/// was read (the customer sees the blue ticks; sent by a job, paced like any send).
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "conversations",
    responses((status = 200, body = Data<ConversationOut>), (status = 404)))]
async fn mark_read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<ConversationOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Conversation")?;
    let mut tx = state.db.begin().await?;
    if !inbox::mark_read(&mut tx, org_id, id).await? {
        return Err(ApiError::not_found("Conversation"));
    }
    tx.commit().await?;
    Ok(Data::new(fetch_conversation(&state, org_id, id).await?))
}
