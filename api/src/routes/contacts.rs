//! `/contacts`: the customers who wrote to the organization's numbers, by WhatsApp id.

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    check_cursor_params, conversations::like_pattern, cursor, CursorPage, Data,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CONTACT_COLUMNS: &str =
    "id, wa_id, name, profile_name, category, custom_fields, created_at, updated_at";

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

async fn fetch_contact(state: &AppState, org_id: Uuid, wa_id: &str) -> ApiResult<ContactOut> {
    sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = $1 AND wa_id = $2"
    ))
    .bind(org_id)
    .bind(wa_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Contact"))
}

/// Get a contact by WhatsApp id.
#[utoipa::path(get, path = "/contacts/{waId}", tag = "contacts",
    params(("waId" = String, Path, description = "The contact's WhatsApp id")),
    responses((status = 200, body = Data<ContactOut>), (status = 404)))]
async fn get_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(wa_id): Path<String>,
) -> ApiResult<Json<Data<ContactOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(fetch_contact(&state, org_id, &wa_id).await?))
}

/// `absent` → leave as is, `null` → clear, a value → set.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactRequest {
    /// The agent-given name; `null` clears it (the profile name shows again).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
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

/// Update a contact's name or category.
#[utoipa::path(patch, path = "/contacts/{waId}", tag = "contacts", request_body = UpdateContactRequest,
    params(("waId" = String, Path, description = "The contact's WhatsApp id")),
    responses((status = 200, body = Data<ContactOut>), (status = 404), (status = 422)))]
async fn update_contact(
    State(state): State<AppState>,
    auth: Auth,
    Path(wa_id): Path<String>,
    ValidJson(body): ValidJson<UpdateContactRequest>,
) -> ApiResult<Json<Data<ContactOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_WRITE)?;
    let trimmed = |v: &Option<Option<String>>| {
        v.as_ref()
            .map(|o| o.as_deref().map(|s| s.trim().to_string()))
    };
    let (name, category) = (trimmed(&body.name), trimmed(&body.category));
    let updated = sqlx::query(
        "UPDATE contacts SET
            name = CASE WHEN $3 THEN $4 ELSE name END,
            category = CASE WHEN $5 THEN $6 ELSE category END
          WHERE org_id = $1 AND wa_id = $2",
    )
    .bind(org_id)
    .bind(&wa_id)
    .bind(name.is_some())
    .bind(name.flatten())
    .bind(category.is_some())
    .bind(category.flatten())
    .execute(&state.db)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found("Contact"));
    }
    Ok(Data::new(fetch_contact(&state, org_id, &wa_id).await?))
}
