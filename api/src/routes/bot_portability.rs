//! A bot config taken elsewhere and back: snapshots (`/bot-config/snapshots`: capture a config
//! with its prompt and intents, restore it onto that config), export (`/bot-config/export`: a
//! JSON file of the active config, by tier; `/bot-config/export-zip`: the same in a ZIP) and
//! import (`/bot-config/import`: a JSON or ZIP file becomes a new draft config). Keys never
//! travel: exports and snapshots hold none, a restore keeps the config's key. Reading and
//! exporting need any role; changing needs an admin. The domain logic is
//! `wharf_shared::bot::portable`.

use axum::{
    extract::{Multipart, Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::bot::portable::{
    self, archive,
    check::Problem,
    snapshots::{self, Snapshot},
    ImportError, Tier,
};

use super::{bot_config::BotConfigOut, outbound::user_id, Data};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult, FieldError},
    extract::{parse_id, parse_optional_json, ValidQuery},
    state::AppState,
    upload::{file_required, multipart_error},
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(restore_snapshot))
        .routes(routes!(delete_snapshot))
        .routes(routes!(export))
        .routes(routes!(export_zip))
        .routes(routes!(import))
}

/// A snapshot as listed: what it is of and how big, without its content.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOut {
    pub id: Uuid,
    pub name: String,
    pub bot_config_id: Uuid,
    pub bot_config_name: String,
    pub intent_count: i32,
    /// Characters of the system prompt kept.
    pub prompt_chars: i32,
    /// Bytes of the snapshot as stored.
    pub size_bytes: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<Snapshot> for SnapshotOut {
    fn from(s: Snapshot) -> Self {
        Self {
            id: s.id,
            name: s.name,
            bot_config_id: s.bot_config_id,
            bot_config_name: s.bot_config_name,
            intent_count: s.intent_count,
            prompt_chars: s.prompt_chars,
            size_bytes: s.size_bytes,
            created_by: s.created_by,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotQuery {
    /// Only this config's snapshots.
    pub bot_config_id: Option<Uuid>,
}

impl Validate for SnapshotQuery {
    fn validate(&self, _: &mut Violations) {}
}

/// The organization's snapshots, newest first (the newest 200).
#[utoipa::path(get, path = "/bot-config/snapshots", tag = "bot-config", params(SnapshotQuery),
    responses((status = 200, body = Data<Vec<SnapshotOut>>),
              (status = 401, description = "Missing, invalid or expired credentials"), (status = 422)))]
async fn list_snapshots(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<SnapshotQuery>,
) -> ApiResult<Json<Data<Vec<SnapshotOut>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let rows = snapshots::list(&mut conn, org_id, q.bot_config_id).await?;
    Ok(Data::new(rows.into_iter().map(SnapshotOut::from).collect()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotRequest {
    /// Default: the config's name and the time.
    pub name: Option<String>,
    /// Default: the active config.
    pub bot_config_id: Option<Uuid>,
}

impl Validate for SnapshotRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text("name", self.name.as_deref(), MAX_NAME_LEN);
    }
}

/// Snapshot a config with its prompt and intents (admin); the body may be left out.
#[utoipa::path(post, path = "/bot-config/snapshots", tag = "bot-config", request_body = SnapshotRequest,
    responses((status = 201, body = Data<SnapshotOut>),
              (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"),
              (status = 404, description = "No such config, or no active config"), (status = 422)))]
async fn create_snapshot(
    State(state): State<AppState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let body: SnapshotRequest = parse_optional_json(&body)?;
    let mut tx = state.db.begin().await?;
    let name = body.name.as_deref().map(str::trim);
    let snap = snapshots::capture(
        &mut tx,
        org_id,
        body.bot_config_id,
        name,
        user_id(&auth),
        Utc::now(),
    )
    .await?
    .ok_or_else(|| match body.bot_config_id {
        Some(_) => ApiError::not_found("Bot config"),
        None => ApiError::not_found("Active bot config"),
    })?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(SnapshotOut::from(snap))))
}

/// Write a snapshot back onto its config (admin): settings, prompt (a new version when it
/// differs) and intents, in one transaction; the config keeps its API key.
#[utoipa::path(post, path = "/bot-config/snapshots/{id}/restore", tag = "bot-config",
    responses((status = 200, body = Data<BotConfigOut>),
              (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"), (status = 404)))]
async fn restore_snapshot(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<BotConfigOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Snapshot")?;
    let mut tx = state.db.begin().await?;
    let c = snapshots::restore(&mut tx, org_id, id, user_id(&auth))
        .await?
        .ok_or_else(|| ApiError::not_found("Snapshot"))?;
    // Restored embedding settings re-index the knowledge base when they differ.
    wharf_shared::kb::ingest::reindex_stale(&mut tx, &state.secrets, org_id).await?;
    tx.commit().await?;
    Ok(Data::new(BotConfigOut::of(c, &state)))
}

/// Delete a snapshot (admin).
#[utoipa::path(delete, path = "/bot-config/snapshots/{id}", tag = "bot-config",
    responses((status = 204), (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"), (status = 404)))]
async fn delete_snapshot(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Snapshot")?;
    let mut conn = state.db.acquire().await?;
    if !snapshots::delete(&mut conn, org_id, id).await? {
        return Err(ApiError::not_found("Snapshot"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `config`, `standard` (default) or `full`; the ZIP takes `standard` or `full`.
    pub tier: Option<String>,
}

impl Validate for ExportQuery {
    fn validate(&self, v: &mut Violations) {
        v.one_of("tier", self.tier.as_deref(), &Tier::NAMES);
    }
}

impl ExportQuery {
    fn tier(&self) -> Tier {
        self.tier
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(Tier::Standard)
    }
}

/// The active config as an export document, pretty-printed.
async fn export_json(state: &AppState, org_id: Uuid, tier: Tier) -> ApiResult<Vec<u8>> {
    let mut conn = state.db.acquire().await?;
    let doc = portable::export(&mut conn, org_id, tier, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found("Active bot config"))?;
    serde_json::to_vec_pretty(&doc).map_err(|e| ApiError::Internal(e.into()))
}

fn attachment(content_type: &str, filename: String, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

fn filename(tier: Tier, ext: &str) -> String {
    format!(
        "bot-config-{}-{}.{ext}",
        tier.as_str(),
        Utc::now().format("%Y%m%d")
    )
}

/// Download the active config as a JSON file: `config` (settings), `standard` (and intents and
/// presets) or `full` (and prompt versions, and the knowledge base's `documents`, empty for
/// now). Never holds the API key.
#[utoipa::path(get, path = "/bot-config/export", tag = "bot-config", params(ExportQuery),
    responses((status = 200, description = "The export file (attachment)", content_type = "application/json", body = Object),
              (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 404, description = "No active config"), (status = 422)))]
async fn export(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> ApiResult<Response> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let tier = q.tier();
    let json = export_json(&state, org_id, tier).await?;
    Ok(attachment("application/json", filename(tier, "json"), json))
}

/// Download the active config as a ZIP holding `bot-config.json` and a `README.txt`; tier
/// `standard` (default) or `full`.
#[utoipa::path(get, path = "/bot-config/export-zip", tag = "bot-config", params(ExportQuery),
    responses((status = 200, description = "The ZIP archive (attachment)", content_type = "application/zip", body = Vec<u8>),
              (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 404, description = "No active config"),
              (status = 422, description = "An unknown tier, or `config` (a JSON export needs no archive)")))]
async fn export_zip(
    State(state): State<AppState>,
    auth: Auth,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> ApiResult<Response> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let tier = q.tier();
    if tier == Tier::Config {
        let mut v = Violations::query();
        v.add_kind("tier", "must be one of standard, full", "enum");
        v.into_result()?;
    }
    let json = export_json(&state, org_id, tier).await?;
    let zip = archive::write(&json).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(attachment("application/zip", filename(tier, "zip"), zip))
}

/// Multipart body of an import (documentation only; the handler reads the fields itself).
#[derive(Debug, ToSchema)]
pub struct ImportForm {
    /// A JSON export, or a ZIP holding `bot-config.json` (told apart by content); 10 MB at most.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `true` makes the imported config the active one (default `false`: a draft).
    pub activate: Option<bool>,
}

/// Import an export file as a new config (admin): checked whole first (every problem named by
/// its JSON path in one 422), then the config, its prompt history and intents are created in
/// one transaction. A draft unless `activate`; named as in the file, or "<name> (imported)".
#[utoipa::path(post, path = "/bot-config/import", tag = "bot-config",
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Data<BotConfigOut>),
              (status = 401, description = "Missing, invalid or expired credentials"),
              (status = 403, description = "Changes need an admin"),
              (status = 413, description = "The file is larger than 10 MB"),
              (status = 422, description = "The file is not a valid export: every problem, each at its JSON path")))]
async fn import(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<impl IntoResponse> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let (file, activate) = read_form(&mut multipart).await?;
    let mut tx = state.db.begin().await?;
    let c = portable::import(&mut tx, org_id, user_id(&auth), &file, activate)
        .await
        .map_err(|e| match e {
            ImportError::Invalid(problems) => invalid_file(problems),
            ImportError::Database(e) => e.into(),
        })?;
    wharf_shared::kb::ingest::reindex_stale(&mut tx, &state.secrets, org_id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(BotConfigOut::of(c, &state))))
}

/// The `file` (at most 10 MB, read as it arrives) and `activate` fields of an import.
async fn read_form(multipart: &mut Multipart) -> ApiResult<(Vec<u8>, bool)> {
    let (mut file, mut activate) = (None, false);
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if bytes.len() + chunk.len() > archive::MAX_IMPORT_BYTES {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "The file is larger than {} MB",
                            archive::MAX_IMPORT_BYTES / (1024 * 1024)
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes);
            }
            Some("activate") => {
                let text = field.text().await.map_err(multipart_error)?;
                activate = match text.trim() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    _ => return Err(ApiError::invalid_field("activate", "must be true or false")),
                };
            }
            _ => {}
        }
    }
    let file = file.ok_or_else(file_required)?;
    if file.is_empty() {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    Ok((file, activate))
}

/// The 422 of a file that cannot be imported: each problem located under `["body", "file",
/// ...its JSON path]`, its message starting with that path (`intents[2].action: ...`).
fn invalid_file(problems: Vec<Problem>) -> ApiError {
    ApiError::Validation(
        problems
            .into_iter()
            .map(|p| {
                let mut loc = vec!["body", "file"];
                loc.extend(p.loc.iter().map(String::as_str));
                let msg = if p.loc.is_empty() {
                    p.msg.clone()
                } else {
                    format!("{}: {}", p.path(), p.msg)
                };
                FieldError::new(&loc, msg, p.kind)
            })
            .collect(),
    )
}
