//! The knowledge base under `/bot-config`: documents (upload, list, status, chunks, delete,
//! re-process), `test-rag`, `embedding-info`, and the organization's search language
//! (`/config/knowledge-language`). Uploads are stored as they arrive and answered 202: the
//! `kb.ingest_document` job extracts, chunks and embeds them (`wharf_shared::kb`). Reading
//! needs any role; changing needs an admin.

use axum::{
    extract::{Multipart, Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wharf_shared::kb::{
    documents::{self, ChunkOut, Document, NewDocument},
    embedding,
    extract::Format,
    search::{self, Mode, Searcher},
};

use super::{Data, Page, PageParams};
use crate::{
    auth::{scopes, Auth, Role},
    error::{ApiError, ApiResult},
    extract::{parse_id, ValidJson, ValidQuery},
    state::AppState,
    upload::{self, multipart_error},
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_documents, upload_document))
        .routes(routes!(delete_document))
        .routes(routes!(document_status))
        .routes(routes!(document_chunks))
        .routes(routes!(reprocess_document))
        .routes(routes!(test_rag))
        .routes(routes!(embedding_info))
        .routes(routes!(get_language, put_language))
}

fn user_id(auth: &Auth) -> Option<Uuid> {
    crate::routes::outbound::user_id(auth)
}

/// List the knowledge base's documents, newest first (status, chunk count, size, errors).
#[utoipa::path(get, path = "/bot-config/documents", tag = "bot-config",
    responses((status = 200, body = Data<Vec<Object>>)))]
async fn list_documents(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<Vec<Document>>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(Data::new(documents::list(&mut conn, org_id).await?))
}

/// Upload a document (multipart `file`, optional `title`): PDF, DOCX, HTML, Markdown, plain
/// text or CSV up to `KB_MAX_DOCUMENT_BYTES` (25 MB). Answers 202 with the document PENDING;
/// its ingestion runs as a job.
#[utoipa::path(post, path = "/bot-config/documents", tag = "bot-config",
    request_body(content_type = "multipart/form-data", description = "file, title"),
    responses((status = 202, body = Data<Object>), (status = 413), (status = 422)))]
async fn upload_document(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, Json<Data<Document>>)> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = Uuid::new_v4();
    let dir = state.config.blob_dir.join(format!("kb/{org_id}"));
    let mut file = None;
    let mut title: Option<String> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => file = Some(upload::receive(field, "document", &dir).await?),
            Some("title") => title = Some(field.text().await.map_err(multipart_error)?),
            _ => {}
        }
    }
    let mut v = Violations::body();
    let title = title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &title {
        if t.chars().count() > MAX_NAME_LEN {
            v.add(
                "title",
                format!("must be at most {MAX_NAME_LEN} characters"),
            );
        }
    }
    let Some(file) = file else {
        v.add_kind("file", "is required", "required");
        v.into_result()?;
        return Err(upload::file_required());
    };
    let max = documents::max_document_bytes();
    if file.size > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "documents are limited to {max} bytes"
        )));
    }
    let format = if file.size == 0 {
        v.add("file", "the file is empty");
        None
    } else {
        match Format::detect(&file.filename, &file.mime, file.head()) {
            Ok(f) => Some(f),
            Err(why) => {
                v.add("file", why);
                None
            }
        }
    };
    v.into_result()?;
    let format = format.expect("checked above");
    let (filename, size) = (file.filename.clone(), file.size as i64);
    file.keep_as(&state.config.blob_dir.join(documents::blob_path(org_id, id)))
        .await?;
    let name = title.unwrap_or_else(|| filename.clone());
    let mut tx = state.db.begin().await?;
    let doc = documents::create(
        &mut tx,
        org_id,
        &NewDocument {
            id,
            name: &name,
            filename: &filename,
            format,
            size,
            created_by: user_id(&auth),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Data::new(doc)))
}

/// Delete a document, its chunks and its file; an ingestion of it that is running stops.
#[utoipa::path(delete, path = "/bot-config/documents/{id}", tag = "bot-config",
    responses((status = 204), (status = 403), (status = 404)))]
async fn delete_document(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Document")?;
    let mut tx = state.db.begin().await?;
    let path = documents::delete(&mut tx, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Document"))?;
    tx.commit().await?;
    if let Err(e) = tokio::fs::remove_file(state.config.blob_dir.join(&path)).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(document_id = %id, error = %e, "document file not removed");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub chunks_embedded: i32,
    pub chunks_total: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusOut {
    /// PENDING, PROCESSING, READY or FAILED.
    pub status: String,
    pub progress: Progress,
    pub error: Option<String>,
}

async fn fetch(state: &AppState, org_id: Uuid, raw: &str) -> ApiResult<Document> {
    let id = parse_id(raw, "Document")?;
    let mut conn = state.db.acquire().await?;
    documents::get(&mut conn, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Document"))
}

/// A document's ingestion: status, progress and error.
#[utoipa::path(get, path = "/bot-config/documents/{id}/status", tag = "bot-config",
    responses((status = 200, body = Data<StatusOut>), (status = 404)))]
async fn document_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Data<StatusOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let d = fetch(&state, org_id, &id).await?;
    Ok(Data::new(StatusOut {
        status: d.status,
        progress: Progress {
            chunks_embedded: d.chunks_embedded,
            chunks_total: d.chunk_count,
        },
        error: d.error,
    }))
}

/// A document's chunks in order, with their positions (`?page=&limit=`).
#[utoipa::path(get, path = "/bot-config/documents/{id}/chunks", tag = "bot-config", params(PageParams),
    responses((status = 200, body = Page<Object>), (status = 404), (status = 422)))]
async fn document_chunks(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<ChunksQuery>,
) -> ApiResult<Json<Page<ChunkOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let d = fetch(&state, org_id, &id).await?;
    let paging = q.paging();
    let mut conn = state.db.acquire().await?;
    let (rows, total) =
        documents::chunks(&mut conn, org_id, d.id, paging.offset(), paging.limit()).await?;
    Ok(Page::new(rows, &paging, total))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChunksQuery {
    pub page: Option<i64>,
    pub limit: Option<i64>,
}

impl ChunksQuery {
    fn paging(&self) -> PageParams {
        PageParams {
            page: self.page,
            limit: self.limit,
        }
    }
}

impl Validate for ChunksQuery {
    fn validate(&self, v: &mut Violations) {
        self.paging().check(v);
    }
}

/// Ingest a document again (its chunks are replaced when the run finishes; a FAILED one
/// starts over as PENDING).
#[utoipa::path(post, path = "/bot-config/documents/{id}/reprocess", tag = "bot-config",
    responses((status = 202, body = Data<Object>), (status = 404)))]
async fn reprocess_document(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Data<Document>>)> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let id = parse_id(&id, "Document")?;
    Ok((
        StatusCode::ACCEPTED,
        Data::new(reprocess(&state, org_id, id).await?),
    ))
}

/// Queues a fresh ingestion of one of the organization's documents (the API's re-process and
/// the console's Retry); 404 when it is not the organization's.
pub(crate) async fn reprocess(state: &AppState, org_id: Uuid, id: Uuid) -> ApiResult<Document> {
    let mut tx = state.db.begin().await?;
    let doc = documents::reingest(&mut tx, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Document"))?;
    tx.commit().await?;
    Ok(doc)
}

const MAX_QUERY_CHARS: usize = 2_000;
const MAX_TOP_K: i64 = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRagRequest {
    pub query: Option<String>,
    /// Results wanted, 1..=50 (default 5, what the bot uses).
    pub top_k: Option<i64>,
}

impl Validate for TestRagRequest {
    fn validate(&self, v: &mut Violations) {
        match self.query.as_deref().map(str::trim) {
            None => v.add_kind("query", "is required", "required"),
            Some("") => v.add("query", "must not be empty"),
            Some(q) if q.chars().count() > MAX_QUERY_CHARS => v.add(
                "query",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ),
            Some(_) => {}
        }
        if self.top_k.is_some_and(|k| !(1..=MAX_TOP_K).contains(&k)) {
            v.add("topK", format!("must be between 1 and {MAX_TOP_K}"));
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RagResult {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub document_name: String,
    /// Reciprocal-rank fusion of the rankings, scaled so 1 is "first in every ranking".
    pub score: f64,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestRagOut {
    pub results: Vec<RagResult>,
    /// HYBRID or FULL_TEXT: how this query was answered.
    pub mode: String,
}

fn mode_name(m: &Mode) -> &'static str {
    match m {
        Mode::Hybrid => "HYBRID",
        Mode::FullText => "FULL_TEXT",
    }
}

/// What retrieval finds for a question, best first: the passages the bot would be given.
#[utoipa::path(post, path = "/bot-config/test-rag", tag = "bot-config", request_body = TestRagRequest,
    responses((status = 200, body = Data<TestRagOut>), (status = 422)))]
async fn test_rag(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<TestRagRequest>,
) -> ApiResult<Json<Data<TestRagOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let searcher = Searcher {
        pool: &state.db,
        llm: &state.llm,
        secrets: &state.secrets,
    };
    let query = body.query.unwrap_or_default();
    let k = body.top_k.unwrap_or(5) as usize;
    let (passages, mode) = search::search(&searcher, org_id, &query, k).await?;
    Ok(Data::new(TestRagOut {
        results: passages
            .into_iter()
            .map(|p| RagResult {
                chunk_id: p.chunk_id,
                document_id: p.document_id,
                document_name: p.document_name,
                score: p.score,
                text: p.text,
            })
            .collect(),
        mode: mode_name(&mode).into(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingInfo {
    /// The embedding provider; `null` when the knowledge base works on full text alone.
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Vector size of the indexed chunks (`null` before any is embedded).
    pub dimensions: Option<i64>,
    pub documents: i64,
    pub documents_ready: i64,
    pub chunks: i64,
    /// Documents still indexed with another model or language (being re-indexed).
    pub documents_reindexing: i64,
    /// HYBRID (full text and vectors) or FULL_TEXT.
    pub retrieval: String,
    /// The full-text search language (a Postgres text search configuration).
    pub language: String,
    /// Why embeddings are unavailable, when the config names a provider that cannot embed.
    pub error: Option<String>,
}

/// The embedding model and what is indexed with it.
#[utoipa::path(get, path = "/bot-config/embedding-info", tag = "bot-config",
    responses((status = 200, body = Data<EmbeddingInfo>)))]
async fn embedding_info(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<EmbeddingInfo>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(embedding_info_of(&state, org_id).await?))
}

/// The organization's embedding model and index state (`embedding-info`, and the top of the
/// console's knowledge-base page).
pub(crate) async fn embedding_info_of(state: &AppState, org_id: Uuid) -> ApiResult<EmbeddingInfo> {
    let mut conn = state.db.acquire().await?;
    let embedder = embedding::current(&mut conn, &state.secrets, org_id).await?;
    let language = embedding::ts_config(&mut conn, org_id).await?;
    let (documents, documents_ready, chunks) = documents::counts(&mut conn, org_id).await?;
    let (index_model, error) = match embedder {
        None => (None, None),
        Some(Ok(e)) => (Some(e.index_model), None),
        Some(Err(why)) => (None, Some(why)),
    };
    let (dimensions, documents_reindexing) =
        embedding::index_state(&mut conn, org_id, index_model.as_deref(), language).await?;
    let (provider, model) = match index_model.as_deref().and_then(|m| m.split_once('/')) {
        Some((p, m)) => (Some(p.to_string()), Some(m.to_string())),
        None => (None, None),
    };
    Ok(EmbeddingInfo {
        retrieval: if provider.is_some() {
            "HYBRID"
        } else {
            "FULL_TEXT"
        }
        .into(),
        provider,
        model,
        dimensions,
        documents,
        documents_ready,
        chunks,
        documents_reindexing,
        language: language.into(),
        error,
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LanguageBody {
    /// A language name or ISO 639-1 code (`english`, `fr`, ...); `null` for no stemming.
    pub language: Option<String>,
}

impl Validate for LanguageBody {
    fn validate(&self, v: &mut Violations) {
        if let Some(l) = &self.language {
            if embedding::ts_config_for(l).is_none() {
                v.add_kind(
                    "language",
                    format!("must be one of {}", embedding::language_names().join(", ")),
                    "enum",
                );
            }
        }
    }
}

/// The knowledge base's full-text search language.
#[utoipa::path(get, path = "/config/knowledge-language", tag = "config",
    responses((status = 200, body = Data<LanguageBody>)))]
async fn get_language(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<LanguageBody>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    let language = embedding::ts_config(&mut conn, org_id).await?;
    Ok(Data::new(LanguageBody {
        language: Some(language.into()),
    }))
}

/// Set the full-text search language; every document is re-indexed with it (as jobs; the old
/// index serves meanwhile).
#[utoipa::path(put, path = "/config/knowledge-language", tag = "config", request_body = LanguageBody,
    responses((status = 200, body = Data<LanguageBody>), (status = 422)))]
async fn put_language(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<LanguageBody>,
) -> ApiResult<Json<Data<LanguageBody>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let ts =
        embedding::set_language(&mut tx, &state.secrets, org_id, body.language.as_deref()).await?;
    tx.commit().await?;
    Ok(Data::new(LanguageBody {
        language: Some(ts.into()),
    }))
}
