//! `/contacts`: the customers who wrote to the organization's numbers, by WhatsApp id, with
//! their marketing consent and blocklist entry (`wharf_shared::cx::consent`).

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::cx::consent::{self, Change, ConsentEvent, Source};

use super::{
    check_cursor_params, conversations::like_pattern, cursor, outbound::user_id, CursorPage, Data,
    DEFAULT_CURSOR_LIMIT,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{ValidJson, ValidQuery},
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact, update_contact))
}

const MAX_CATEGORY_LEN: usize = 100;

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ContactOut {
    pub id: Uuid,
    /// The customer's WhatsApp id (phone digits).
    pub wa_id: String,
    /// The name an agent gave the contact.
    pub name: Option<String>,
    /// The customer's WhatsApp profile name.
    pub profile_name: Option<String>,
    pub category: Option<String>,
    pub custom_fields: Value,
    /// Opted out of marketing: campaigns skip this contact.
    pub marketing_opt_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    /// On the blocklist: inbound is dropped and nothing is sent.
    pub blocked: bool,
    pub blocked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contact with its consent history (latest 50 changes, newest first).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactDetail {
    #[serde(flatten)]
    pub contact: ContactOut,
    /// `[{"change": "OPT_OUT" | "OPT_IN" | "BLOCK" | "UNBLOCK", "source": "KEYWORD" | "API",
    /// "keyword", "userId", "at"}]`.
    #[schema(value_type = Vec<Object>)]
    pub consent_history: Vec<ConsentEvent>,
}

const CONSENT_HISTORY_LEN: i64 = 50;

const CONTACT_COLUMNS: &str =
    "id, wa_id, name, profile_name, category, custom_fields, marketing_opt_out,
    opted_out_at, blocked, blocked_at, created_at, updated_at";

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListContactsQuery {
    /// Matches name, profile name or wa_id.
    pub search: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    pub limit: Option<i64>,
}

impl Validate for ListContactsQuery {
    fn validate(&self, v: &mut Violations) {
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

/// List or search contacts, newest first (cursor pagination).
#[utoipa::path(get, path = "/contacts", tag = "contacts", params(ListContactsQuery),
    responses((status = 200, body = CursorPage<ContactOut>), (status = 422)))]
async fn list_contacts(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListContactsQuery>,
) -> ApiResult<Json<CursorPage<ContactOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let limit = q.limit.unwrap_or(DEFAULT_CURSOR_LIMIT);
    let mut qb: QueryBuilder<'static, Postgres> = QueryBuilder::new(format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = "
    ));
    qb.push_bind(org_id);
    if let Some(search) = q.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let pattern = like_pattern(search);
        qb.push(" AND (name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR profile_name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR wa_id ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some((at, id)) = q.cursor.as_deref().and_then(cursor::decode::<Uuid>) {
        qb.push(" AND (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<ContactOut> = qb.build_query_as().fetch_all(&state.db).await?;
    Ok(CursorPage::from_rows(
        rows,
        limit,
        |c| cursor::encode(c.created_at, c.id),
        |c| c,
    ))
}

async fn fetch_contact(
    conn: &mut PgConnection,
    org_id: Uuid,
    wa_id: &str,
) -> ApiResult<ContactDetail> {
    let contact: ContactOut = sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = $1 AND wa_id = $2"
    ))
    .bind(org_id)
    .bind(wa_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("Contact"))?;
    let consent_history = consent::history(conn, contact.id, CONSENT_HISTORY_LEN).await?;
    Ok(ContactDetail {
        contact,
        consent_history,
    })
}

/// Get a contact by WhatsApp id.
#[utoipa::path(get, path = "/contacts/{waId}", tag = "contacts",
    params(("waId" = String, Path, description = "The contact's WhatsApp id")),
    responses((status = 200, body = Data<ContactDetail>), (status = 404)))]
async fn get_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(wa_id): Path<String>,
) -> ApiResult<Json<Data<ContactDetail>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(Data::new(fetch_contact(&mut conn, org_id, &wa_id).await?))
}

/// `absent` → leave as is, `null` → clear, a value → set.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateContactRequest {
    /// The agent-given name; `null` clears it (the profile name shows again).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// `true` opts the contact out of marketing (campaigns skip it); `false` opts it back in.
    pub marketing_opt_out: Option<bool>,
    /// `true` puts the number on the blocklist; `false` takes it off.
    pub blocked: Option<bool>,
}

impl Validate for UpdateContactRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(Some(name)) = &self.name {
            v.text("name", name, MAX_NAME_LEN);
        }
        if let Some(Some(category)) = &self.category {
            v.text("category", category, MAX_CATEGORY_LEN);
        }
    }
}

/// Update a contact's name, category, marketing consent or blocklist entry. Consent and
/// blocklist changes are recorded with the user who made them.
#[utoipa::path(patch, path = "/contacts/{waId}", tag = "contacts", request_body = UpdateContactRequest,
    params(("waId" = String, Path, description = "The contact's WhatsApp id")),
    responses((status = 200, body = Data<ContactDetail>), (status = 404), (status = 422)))]
async fn update_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(wa_id): Path<String>,
    ValidJson(body): ValidJson<UpdateContactRequest>,
) -> ApiResult<Json<Data<ContactDetail>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let trimmed = |v: &Option<Option<String>>| {
        v.as_ref()
            .map(|o| o.as_deref().map(|s| s.trim().to_string()))
    };
    let (name, category) = (trimmed(&body.name), trimmed(&body.category));
    let mut tx = state.db.begin().await?;
    let contact_id: Uuid = sqlx::query_scalar(
        "UPDATE contacts SET
            name = CASE WHEN $3 THEN $4 ELSE name END,
            category = CASE WHEN $5 THEN $6 ELSE category END
          WHERE org_id = $1 AND wa_id = $2 RETURNING id",
    )
    .bind(org_id)
    .bind(&wa_id)
    .bind(name.is_some())
    .bind(name.flatten())
    .bind(category.is_some())
    .bind(category.flatten())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("Contact"))?;
    let source = Source::Api(user_id(&auth));
    let changes = [
        body.marketing_opt_out
            .map(|out| if out { Change::OptOut } else { Change::OptIn }),
        body.blocked
            .map(|b| if b { Change::Block } else { Change::Unblock }),
    ];
    for change in changes.into_iter().flatten() {
        consent::apply(&mut tx, org_id, contact_id, change, source).await?;
    }
    let detail = fetch_contact(&mut tx, org_id, &wa_id).await?;
    tx.commit().await?;
    Ok(Data::new(detail))
}
