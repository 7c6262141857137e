//! Provider presets (`bot_presets`): an organization's saved provider connections — provider,
//! model, key, base URL, temperature — under a name unique in any case. The key is stored
//! encrypted by the caller (`SecretBox`) and never leaves in an export.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The constraint behind "a preset of that name exists" (a 409).
pub const NAME_KEY: &str = "bot_presets_org_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Preset {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub model: String,
    /// Encrypted (`v1:...`).
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub temperature: Option<f32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, name, provider, model, api_key, base_url, temperature, created_at, updated_at";

/// A preset's fields as written; `None` leaves a field as it is (on update).
#[derive(Debug, Clone, Default)]
pub struct PresetFields {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Already encrypted.
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub temperature: Option<f32>,
}

pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<Preset>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_presets WHERE org_id = $1 ORDER BY lower(name), id"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// The organization's preset `id`; `None` when it has none of that id.
pub async fn fetch(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Preset>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_presets WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Inserts a preset; `name`, `provider` and `model` must be given. A duplicate name is a
/// unique violation on [`NAME_KEY`].
pub async fn create(
    conn: &mut PgConnection,
    org_id: Uuid,
    f: &PresetFields,
) -> Result<Preset, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO bot_presets (org_id, name, provider, model, api_key, base_url, temperature)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(&f.name)
    .bind(&f.provider)
    .bind(&f.model)
    .bind(&f.api_key)
    .bind(&f.base_url)
    .bind(f.temperature)
    .fetch_one(conn)
    .await
}

/// Writes the fields given over preset `id`; `None` when the organization has no such preset.
pub async fn update(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    f: &PresetFields,
) -> Result<Option<Preset>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE bot_presets SET name = COALESCE($3, name), provider = COALESCE($4, provider),
                model = COALESCE($5, model), api_key = COALESCE($6, api_key),
                base_url = COALESCE($7, base_url), temperature = COALESCE($8, temperature)
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&f.name)
    .bind(&f.provider)
    .bind(&f.model)
    .bind(&f.api_key)
    .bind(&f.base_url)
    .bind(f.temperature)
    .fetch_optional(conn)
    .await
}

/// Deletes preset `id`; false when the organization has no such preset.
pub async fn delete(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM bot_presets WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(conn)
            .await?
            .rows_affected()
            > 0,
    )
}
