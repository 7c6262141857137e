//! `/bot-feedback`: people rate the bot's answers, 1 (bad) to 5 (good), with an optional
//! comment. Only an answer the bot sent can be rated (not a customer's message, an agent's or
//! the automatic handoff notice); each user has one rating per answer, and rating again
//! replaces it. The quality metrics average them. Any role may rate and read; rating needs a
//! user session, since the rating is the user's. An API-only resource: its SQL lives here.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::metrics::BOT_ANSWER;

use super::{check_cursor_params, cursor, CursorPage, Data, DEFAULT_CURSOR_LIMIT};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rate, list_feedback))
}

const MAX_COMMENT_LEN: usize = 2000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FeedbackRequest {
    /// The bot's answer being rated.
    pub message_id: Uuid,
    /// The conversation it belongs to.
    pub conversation_id: Uuid,
    /// 1 (bad) to 5 (good).
    pub rating: i64,
    /// Up to 2000 characters; empty means none.
    pub comment: Option<String>,
}

impl Validate for FeedbackRequest {
    fn validate(&self, v: &mut Violations) {
        if !(1..=5).contains(&self.rating) {
            v.add("rating", "must be a whole number from 1 to 5");
        }
        if self
            .comment
            .as_deref()
            .is_some_and(|c| c.trim().chars().count() > MAX_COMMENT_LEN)
        {
            v.add(
                "comment",
                format!("must be at most {MAX_COMMENT_LEN} characters"),
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackOut {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    /// Who rated.
    pub user_id: Uuid,
    pub rating: i16,
    pub comment: Option<String>,
    /// The rated answer's text.
    pub message_body: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const FEEDBACK_COLUMNS: &str =
    "f.id, f.message_id, f.conversation_id, f.user_id, f.rating, f.comment,
    m.content->>'body' AS message_body, f.created_at, f.updated_at";

/// Rate one of the bot's answers (any role, signed in as a user). 201 for a first rating, 200
/// when it replaces the user's earlier rating of that answer. A message of another
/// organization, or not in that conversation, is a 404; a message the bot did not answer with
/// is a 422.
#[utoipa::path(post, path = "/bot-feedback", tag = "bot-config", request_body = FeedbackRequest,
    responses((status = 201, body = Data<FeedbackOut>), (status = 200, body = Data<FeedbackOut>),
              (status = 403), (status = 404), (status = 422)))]
async fn rate(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<FeedbackRequest>,
) -> ApiResult<(StatusCode, Json<Data<FeedbackOut>>)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let user_id = auth.user()?.id;
    let mut tx = state.db.begin().await?;
    let is_bot: Option<bool> = sqlx::query_scalar(&format!(
        "SELECT COALESCE({BOT_ANSWER}, false) FROM messages m
          WHERE m.id = $1 AND m.org_id = $2 AND m.conversation_id = $3"
    ))
    .bind(body.message_id)
    .bind(org_id)
    .bind(body.conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    match is_bot {
        None => return Err(ApiError::not_found("Message")),
        Some(false) => {
            return Err(ApiError::invalid_field(
                "messageId",
                "only the bot's answers can be rated",
            ))
        }
        Some(true) => {}
    }
    let comment = body
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    // xmax = 0: the row was inserted, not updated.
    let (id, created): (Uuid, bool) = sqlx::query_as(
        "INSERT INTO bot_feedback (org_id, message_id, conversation_id, user_id, rating, comment)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (message_id, user_id) DO UPDATE
            SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, updated_at = now()
         RETURNING id, xmax = 0",
    )
    .bind(org_id)
    .bind(body.message_id)
    .bind(body.conversation_id)
    .bind(user_id)
    .bind(body.rating as i16)
    .bind(comment)
    .fetch_one(&mut *tx)
    .await?;
    let out: FeedbackOut = sqlx::query_as(&format!(
        "SELECT {FEEDBACK_COLUMNS} FROM bot_feedback f JOIN messages m ON m.id = f.message_id WHERE f.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Data::new(out)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListFeedbackQuery {
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    pub limit: Option<i64>,
}

impl Validate for ListFeedbackQuery {
    fn validate(&self, v: &mut Violations) {
        check_cursor_params::<Uuid>(v, self.cursor.as_deref(), self.limit);
    }
}

/// The organization's ratings of the bot's answers, newest first (cursor pagination).
#[utoipa::path(get, path = "/bot-feedback", tag = "bot-config", params(ListFeedbackQuery),
    responses((status = 200, body = CursorPage<FeedbackOut>), (status = 422)))]
async fn list_feedback(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListFeedbackQuery>,
) -> ApiResult<Json<CursorPage<FeedbackOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let limit = q.limit.unwrap_or(DEFAULT_CURSOR_LIMIT);
    let mut qb: QueryBuilder<'static, Postgres> = QueryBuilder::new(format!(
        "SELECT {FEEDBACK_COLUMNS} FROM bot_feedback f JOIN messages m ON m.id = f.message_id WHERE f.org_id = "
    ));
    qb.push_bind(org_id);
    if let Some((at, id)) = q.cursor.as_deref().and_then(cursor::decode::<Uuid>) {
        qb.push(" AND (f.created_at, f.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY f.created_at DESC, f.id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<FeedbackOut> = qb.build_query_as().fetch_all(&state.db).await?;
    Ok(CursorPage::from_rows(
        rows,
        limit,
        |r| cursor::encode(r.created_at, r.id),
        |r| r,
    ))
}
