//! The failed-messages dashboard (admin): outbound messages that need a human, with Meta's
//! code, title and details; statistics; retry (a real new send, the old attempt kept in the
//! history) and discard, one by one or in bulk by ids or by the list's filters.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::{inbox::SERVICE_WINDOW, outbound};

use super::{
    admin_orgs::{Selection, SelectionMode},
    messages::MessageOut,
    outbound::fetch_message,
    Data, Page, PageParams, MAX_PAGE_SIZE,
};
use crate::{
    auth::{scopes, Auth, Principal, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_failed))
        .routes(routes!(failed_stats))
        .routes(routes!(retry_send))
        .routes(routes!(discard))
        .routes(routes!(bulk_retry))
        .routes(routes!(bulk_discard))
}

/// Filters of the list, also usable as a bulk selection.
#[derive(Debug, Default, Clone, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct FailedFilter {
    /// FAILED (default): failed messages. PENDING: queued messages held back (token, unknown outcome).
    pub status: Option<String>,
    /// true: only failures a retry cannot fix; false: only retryable ones.
    pub permanent: Option<bool>,
    pub error_code: Option<i32>,
    pub account_id: Option<Uuid>,
    /// Meta's phone number id of the sending account.
    pub phone_number_id: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub template_name: Option<String>,
    /// Matches the contact's phone or name.
    pub search: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// List only (ignored in bulk selections).
    pub page: Option<i64>,
    /// List only: default 25, at most 100.
    pub page_size: Option<i64>,
}

impl FailedFilter {
    pub(crate) fn check(&self, v: &mut Violations) {
        if let Some(s) = &self.status {
            if s != "FAILED" && s != "PENDING" {
                v.add_kind("status", "must be FAILED or PENDING", "enum");
            }
        }
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f > t {
                v.add("from", "must not be after `to`");
            }
        }
    }

    /// Appends ` AND ...` conditions on `m` (messages), `a` (account) and `ct` (contact).
    fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>, org_id: Uuid) {
        q.push(" WHERE m.org_id = ")
            .push_bind(org_id)
            .push(" AND m.direction = 'OUTBOUND' AND m.discarded_at IS NULL");
        if self.status.as_deref() == Some("PENDING") {
            q.push(" AND m.status = 'queued' AND m.hold_reason IS NOT NULL");
        } else {
            // `failed_at IS NOT NULL` (implied by the status) lets the planner use the failed index.
            q.push(" AND m.status = 'failed' AND m.failed_at IS NOT NULL");
        }
        if let Some(p) = self.permanent {
            q.push(" AND coalesce(m.retryable, false) = ").push_bind(!p);
        }
        if let Some(c) = self.error_code {
            q.push(" AND m.error_code = ").push_bind(c);
        }
        if let Some(a) = self.account_id {
            q.push(" AND m.account_id = ").push_bind(a);
        }
        if let Some(p) = &self.phone_number_id {
            q.push(" AND a.phone_number_id = ").push_bind(p.clone());
        }
        if let Some(c) = self.campaign_id {
            q.push(" AND m.campaign_id = ").push_bind(c);
        }
        if let Some(t) = &self.template_name {
            q.push(" AND m.template_name = ").push_bind(t.clone());
        }
        if let Some(s) = &self.search {
            let like = format!(
                "%{}%",
                s.trim()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            q.push(" AND (coalesce(ct.wa_id, r.phone, '') ILIKE ")
                .push_bind(like.clone())
                .push(" OR coalesce(ct.name, ct.profile_name, r.name, '') ILIKE ")
                .push_bind(like)
                .push(")");
        }
        if let Some(f) = self.from {
            q.push(" AND coalesce(m.failed_at, m.created_at) >= ")
                .push_bind(f);
        }
        if let Some(t) = self.to {
            q.push(" AND coalesce(m.failed_at, m.created_at) <= ")
                .push_bind(t);
        }
    }
}

/// A campaign message to a customer without a conversation has no contact row: its campaign
/// recipient names the customer.
const FROM: &str = " FROM messages m JOIN whatsapp_accounts a ON a.id = m.account_id
    LEFT JOIN conversations c ON c.id = m.conversation_id LEFT JOIN contacts ct ON ct.id = c.contact_id
    LEFT JOIN campaign_recipients r ON r.message_id = m.id";

impl Validate for FailedFilter {
    fn validate(&self, v: &mut Violations) {
        self.check(v);
        PageParams {
            page: self.page,
            limit: self.page_size,
        }
        .check(v);
    }
}

/// A failed (or held) message with what a human needs to decide.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct FailedMessageOut {
    pub id: Uuid,
    /// `null` for a campaign message to a customer who has no conversation yet.
    pub conversation_id: Option<Uuid>,
    pub account_id: Uuid,
    pub phone_number_id: String,
    pub contact_wa_id: String,
    pub contact_name: Option<String>,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub template_name: Option<String>,
    pub content: Value,
    pub status: String,
    pub hold_reason: Option<String>,
    pub error_code: Option<i32>,
    pub error: Option<Value>,
    /// Whether a retry can help (throttling, outages) or not (bad number, policy).
    pub retryable: Option<bool>,
    pub send_attempts: i32,
    pub wamid: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// List failed outbound messages (admin).
#[utoipa::path(get, path = "/messages/failed", tag = "failed-messages", params(FailedFilter),
    responses((status = 200, body = Page<FailedMessageOut>), (status = 403), (status = 422)))]
async fn list_failed(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<FailedFilter>,
) -> ApiResult<Json<Page<FailedMessageOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_READ)?;
    let (rows, paging, total) = list_page(&state, org_id, &q).await?;
    Ok(Page::new(rows, &paging, total))
}

/// One page of `org_id`'s failed (or held) messages matching `q`, newest failure first, with
/// the paging used and the total. Shared by the JSON list and the console page.
pub(crate) async fn list_page(
    state: &AppState,
    org_id: Uuid,
    q: &FailedFilter,
) -> ApiResult<(Vec<FailedMessageOut>, PageParams, i64)> {
    let paging = PageParams {
        page: q.page,
        limit: Some(q.page_size.unwrap_or(25).clamp(1, MAX_PAGE_SIZE)),
    };
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT m.id, m.conversation_id, m.account_id, a.phone_number_id,
                coalesce(ct.wa_id, r.phone, m.request->>'to', '') AS contact_wa_id,
                coalesce(ct.name, ct.profile_name, r.name) AS contact_name, m.type, m.template_name, m.content, m.status,
                m.hold_reason, m.error_code, m.error, m.retryable, m.send_attempts, m.wamid, m.failed_at, m.created_at",
    );
    sql.push(FROM);
    q.push_where(&mut sql, org_id);
    sql.push(" ORDER BY coalesce(m.failed_at, m.created_at) DESC, m.id LIMIT ")
        .push_bind(paging.limit())
        .push(" OFFSET ")
        .push_bind(paging.offset());
    let rows: Vec<FailedMessageOut> = sql.build_query_as().fetch_all(&state.db).await?;
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*)");
    count.push(FROM);
    q.push_where(&mut count, org_id);
    let total: i64 = count.build_query_scalar().fetch_one(&state.db).await?;
    Ok((rows, paging, total))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedStats {
    pub total: i64,
    pub retryable: i64,
    pub permanent: i64,
    /// Queued messages held back (token to renew, unknown outcome being settled).
    pub held: i64,
    pub by_code: Vec<CodeCount>,
    pub by_day: Vec<DayCount>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct CodeCount {
    pub code: Option<i32>,
    pub title: Option<String>,
    pub retryable: bool,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct DayCount {
    /// UTC day, YYYY-MM-DD.
    pub day: String,
    pub count: i64,
}

/// Failed-message statistics: counts by code and title, by day, retryable vs not (admin).
#[utoipa::path(get, path = "/messages/failed/stats", tag = "failed-messages",
    responses((status = 200, body = Data<FailedStats>), (status = 403)))]
async fn failed_stats(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<FailedStats>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_READ)?;
    Ok(Data::new(stats(&state, org_id).await?))
}

/// `org_id`'s failed-message statistics (shared by the JSON route and the console page).
pub(crate) async fn stats(state: &AppState, org_id: Uuid) -> ApiResult<FailedStats> {
    let base = "FROM messages m WHERE m.org_id = $1 AND m.direction = 'OUTBOUND' AND m.discarded_at IS NULL";
    let (total, retryable, held): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE m.status = 'failed'),
                count(*) FILTER (WHERE m.status = 'failed' AND coalesce(m.retryable, false)),
                count(*) FILTER (WHERE m.status = 'queued' AND m.hold_reason IS NOT NULL) {base}"
    ))
    .bind(org_id)
    .fetch_one(&state.db)
    .await?;
    let by_code: Vec<CodeCount> = sqlx::query_as(&format!(
        "SELECT m.error_code AS code, max(m.error->>'title') AS title, bool_or(coalesce(m.retryable, false)) AS retryable,
                count(*) AS count {base} AND m.status = 'failed' AND m.failed_at IS NOT NULL GROUP BY m.error_code ORDER BY count(*) DESC"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    let by_day: Vec<DayCount> = sqlx::query_as(&format!(
        "SELECT to_char(date_trunc('day', m.failed_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, count(*) AS count
           {base} AND m.status = 'failed' AND m.failed_at > now() - interval '90 days'
          GROUP BY 1 ORDER BY 1"
    ))
    .bind(org_id)
    .fetch_all(&state.db)
    .await?;
    Ok(FailedStats {
        total,
        retryable,
        permanent: total - retryable,
        held,
        by_code,
        by_day,
    })
}

/// Outcome of resetting one message for a new send.
pub(crate) enum Requeue {
    Queued,
    /// Free-form message whose customer-service window has closed: a retry cannot work.
    WindowClosed,
    NotFailed,
}

/// Resets a failed message for a new send and enqueues it: the old wamid and error stay in the
/// attempt history; the message itself starts over.
pub(crate) async fn requeue(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    trigger: &str,
) -> ApiResult<Requeue> {
    let mut tx = state.db.begin().await?;
    let row: Option<(Uuid, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT m.account_id, m.type, c.last_inbound_at FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
          WHERE m.id = $1 AND m.org_id = $2 AND m.direction = 'OUTBOUND' AND m.status = 'failed' AND m.discarded_at IS NULL
          FOR UPDATE OF m",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((account_id, kind, last_inbound)) = row else {
        return Ok(Requeue::NotFailed);
    };
    let window_open = last_inbound.is_some_and(|t| t + SERVICE_WINDOW > Utc::now());
    if kind != "template" && !window_open {
        return Ok(Requeue::WindowClosed);
    }
    sqlx::query(
        "UPDATE messages SET status = 'queued', wamid = NULL, error = NULL, error_code = NULL, retryable = NULL,
                failed_at = NULL, sent_at = NULL, delivered_at = NULL, read_at = NULL, hold_reason = NULL,
                request = jsonb_set(request, '{biz_opaque_callback_data}',
                                    to_jsonb(id::text || ':' || (SELECT count(*) FROM message_attempts a
                                                                  WHERE a.message_id = messages.id)))
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    outbound::enqueue_send(&mut tx, org_id, id, account_id, trigger)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    Ok(Requeue::Queued)
}

/// 404 unless message `id` is `org_id`'s (any status).
pub(crate) async fn ensure_exists(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND org_id = $2)")
            .bind(id)
            .bind(org_id)
            .fetch_one(&state.db)
            .await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::not_found("Message"))
    }
}

/// Retry sending a failed message (admin): a real new send; the old attempt stays in history.
#[utoipa::path(post, path = "/messages/{id}/retry-send", tag = "failed-messages",
    responses((status = 202, body = Data<MessageOut>), (status = 404), (status = 409), (status = 422)))]
async fn retry_send(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let id = parse_id(&id, "Message")?;
    ensure_exists(&state, org_id, id).await?;
    match requeue(&state, org_id, id, "retry").await? {
        Requeue::Queued => Ok((StatusCode::ACCEPTED, Data::new(fetch_message(&state, org_id, id).await?))),
        Requeue::WindowClosed => Err(ApiError::Validation(vec![crate::error::FieldError::new(
            &["path", "id"],
            "The 24-hour customer service window is closed; only a template can reach this customer now",
            "template_required",
        )])),
        Requeue::NotFailed => Err(ApiError::Conflict("Only failed, not discarded, outbound messages can be retried".into())),
    }
}

fn actor(auth: &Auth) -> Option<Uuid> {
    match &auth.0 {
        Principal::User(u) => Some(u.id),
        Principal::ApiKey(_) => None,
    }
}

/// Discard a failed message for good (admin): it leaves the dashboard and is never retried.
#[utoipa::path(post, path = "/messages/{id}/discard", tag = "failed-messages",
    responses((status = 200, body = Data<MessageOut>), (status = 404), (status = 409)))]
async fn discard(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<MessageOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let id = parse_id(&id, "Message")?;
    ensure_exists(&state, org_id, id).await?;
    let done = discard_where(&state, org_id, &[id], actor(&auth)).await?;
    if done == 0 {
        return Err(ApiError::Conflict(
            "Only failed or held outbound messages can be discarded".into(),
        ));
    }
    Ok(Data::new(fetch_message(&state, org_id, id).await?))
}

/// Discards failed or held messages; a held (queued) one fails for good so its job stops.
pub(crate) async fn discard_where(
    state: &AppState,
    org_id: Uuid,
    ids: &[Uuid],
    by: Option<Uuid>,
) -> ApiResult<u64> {
    let done = sqlx::query(
        "UPDATE messages SET discarded_at = now(), discarded_by = $3,
                status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END,
                failed_at = COALESCE(failed_at, now()), hold_reason = NULL
          WHERE org_id = $1 AND id = ANY($2) AND direction = 'OUTBOUND' AND discarded_at IS NULL
            AND (status = 'failed' OR (status = 'queued' AND hold_reason IS NOT NULL))",
    )
    .bind(org_id)
    .bind(ids)
    .bind(by)
    .execute(&state.db)
    .await?;
    Ok(done.rows_affected())
}

/// `{"messageIds": [...]}` or a seed-style `{"selection": {"mode": "ids"|"filter", ...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedMessagesBulkRequest {
    pub message_ids: Option<Vec<String>>,
    pub selection: Option<Selection<FailedFilter>>,
}

/// Bulk requests never act on more than this many messages at once.
const MAX_BULK: i64 = 5000;

impl Validate for FailedMessagesBulkRequest {
    fn validate(&self, v: &mut Violations) {
        match (&self.message_ids, &self.selection) {
            (None, None) => v.add_kind("messageIds", "give messageIds or a selection", "missing"),
            (Some(ids), _) if ids.is_empty() => v.add("messageIds", "at least one id is required"),
            (Some(ids), _) if ids.len() > 1000 => {
                v.add("messageIds", "at most 1000 ids per request")
            }
            _ => {}
        }
        if let Some(s) = &self.selection {
            s.check(v);
            if let Some(f) = &s.filter {
                f.check(v);
            }
        }
    }
}

async fn select_ids(
    state: &AppState,
    org_id: Uuid,
    body: &FailedMessagesBulkRequest,
) -> ApiResult<Vec<Uuid>> {
    if let Some(ids) = &body.message_ids {
        return Ok(ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect());
    }
    let selection = body
        .selection
        .as_ref()
        .expect("validated: ids or selection");
    match selection.mode {
        SelectionMode::Ids => Ok(selection.uuids()),
        SelectionMode::Filter => {
            let filter = selection.filter.clone().unwrap_or_default();
            ids_matching(state, org_id, &filter).await
        }
    }
}

/// The ids a bulk action by `filter` acts on (at most [`MAX_BULK`]); shared by the JSON bulk
/// routes and the console page.
pub(crate) async fn ids_matching(
    state: &AppState,
    org_id: Uuid,
    filter: &FailedFilter,
) -> ApiResult<Vec<Uuid>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT m.id");
    q.push(FROM);
    filter.push_where(&mut q, org_id);
    q.push(" ORDER BY m.id LIMIT ").push_bind(MAX_BULK);
    Ok(q.build_query_scalar().fetch_all(&state.db).await?)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkRetryOut {
    pub queued: u64,
    /// Not failed (any more), discarded, another tenant's, or a free-form message outside the window.
    pub skipped: u64,
}

/// Retry many failed messages (admin), by ids or by the list's filters.
#[utoipa::path(post, path = "/messages/failed/bulk-retry", tag = "failed-messages", request_body = FailedMessagesBulkRequest,
    responses((status = 200, body = Data<BulkRetryOut>), (status = 403), (status = 422)))]
async fn bulk_retry(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<FailedMessagesBulkRequest>,
) -> ApiResult<Json<Data<BulkRetryOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_SEND)?;
    let ids = select_ids(&state, org_id, &body).await?;
    Ok(Data::new(retry_many(&state, org_id, &ids).await?))
}

/// Requeues each of `ids` for a new send; counts the queued and the skipped ones. Shared by
/// the JSON bulk route and the console page.
pub(crate) async fn retry_many(
    state: &AppState,
    org_id: Uuid,
    ids: &[Uuid],
) -> ApiResult<BulkRetryOut> {
    let (mut queued, mut skipped) = (0, 0);
    for id in ids {
        match requeue(state, org_id, *id, "bulk_retry").await? {
            Requeue::Queued => queued += 1,
            _ => skipped += 1,
        }
    }
    Ok(BulkRetryOut { queued, skipped })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDiscardOut {
    pub discarded: u64,
}

/// Discard many failed messages (admin), by ids or by the list's filters.
#[utoipa::path(post, path = "/messages/failed/bulk-discard", tag = "failed-messages", request_body = FailedMessagesBulkRequest,
    responses((status = 200, body = Data<BulkDiscardOut>), (status = 403), (status = 422)))]
async fn bulk_discard(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<FailedMessagesBulkRequest>,
) -> ApiResult<Json<Data<BulkDiscardOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::WHATSAPP_WRITE)?;
    let ids = select_ids(&state, org_id, &body).await?;
    let discarded = discard_where(&state, org_id, &ids, actor(&auth)).await?;
    Ok(Data::new(BulkDiscardOut { discarded }))
}
