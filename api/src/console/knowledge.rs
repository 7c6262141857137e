//! `/console/knowledge`: the organization's knowledge-base documents and their ingestion.
//! At the top, the index state (`embedding-info`: model, retrieval mode, documents and chunks
//! indexed, documents being re-indexed); below, every document (the API's list) with its
//! type, size, status, chunks embedded, error and last change, and a Retry button that
//! queues a fresh ingestion (the API's re-process). While a document is queued or being
//! ingested, the table refreshes itself (`/console/knowledge/live`).
//!
//! Org-scoped like the accounts page: a super admin picks an organization first.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use uuid::Uuid;
use wharf_shared::kb::documents::{self, Document};

use super::{
    accounts::{scoped_org_named, OrgQuery},
    page::{self, Chrome, PageError, PageResult},
    session::{Console, CsrfForm},
};
use crate::{
    routes::bot_documents::{embedding_info_of, reprocess, EmbeddingInfo},
    state::AppState,
};

const TITLE: &str = "Knowledge base";
const PATH: &str = "/console/knowledge";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(knowledge_page))
        .route("/console/knowledge/live", get(live))
        .route("/console/knowledge/documents/{id}/retry", post(retry))
}

/// Bytes as a person reads them: "512 B", "14.2 KB", "3.1 MB".
fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    }
}

pub struct DocRow {
    pub id: String,
    pub name: String,
    pub filename: String,
    pub format: String,
    pub size: String,
    pub status: String,
    pub status_class: &'static str,
    pub chunks: String,
    pub error: String,
    pub updated: String,
}

impl From<&Document> for DocRow {
    fn from(d: &Document) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            filename: if d.filename == d.name {
                String::new()
            } else {
                d.filename.clone()
            },
            format: d.format.to_uppercase(),
            size: size(d.size),
            status_class: match d.status.as_str() {
                "READY" => "ok",
                "FAILED" => "bad",
                _ => "warn",
            },
            status: d.status.clone(),
            chunks: if d.chunks_embedded > 0 || d.index_model.is_some() {
                format!("{} ({} embedded)", d.chunk_count, d.chunks_embedded)
            } else {
                d.chunk_count.to_string()
            },
            error: d.error.clone().unwrap_or_default(),
            updated: d.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// The index state shown at the top, in words.
pub struct IndexState {
    pub retrieval: String,
    pub model: String,
    pub dimensions: String,
    pub documents: String,
    pub chunks: i64,
    pub reindexing: i64,
    pub language: String,
    pub error: String,
}

impl From<EmbeddingInfo> for IndexState {
    fn from(i: EmbeddingInfo) -> Self {
        Self {
            retrieval: match i.retrieval.as_str() {
                "HYBRID" => "Hybrid (full text and vectors)".into(),
                _ => "Full text only".into(),
            },
            model: match (i.provider, i.model) {
                (Some(p), Some(m)) => format!("{p} / {m}"),
                _ => "None".into(),
            },
            dimensions: i.dimensions.map_or_else(|| "—".into(), |d| d.to_string()),
            documents: format!("{} of {} ready", i.documents_ready, i.documents),
            chunks: i.chunks,
            reindexing: i.documents_reindexing,
            language: i.language,
            error: i.error.unwrap_or_default(),
        }
    }
}

/// The documents table (also the self-refreshing fragment).
pub struct Docs {
    pub rows: Vec<DocRow>,
    pub csrf: String,
    pub org: Option<String>,
    pub updated_at: String,
}

impl Docs {
    /// Something is queued or running: worth refreshing by itself.
    pub fn busy(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.status != "READY" && r.status != "FAILED")
    }

    pub fn live_url(&self) -> String {
        match &self.org {
            Some(o) => format!("/console/knowledge/live?org={o}"),
            None => "/console/knowledge/live".into(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/knowledge.html")]
struct KnowledgePage {
    chrome: Chrome,
    /// The organization's name, for a super admin.
    viewing: Option<String>,
    index: IndexState,
    docs: Docs,
}

#[derive(Template)]
#[template(path = "console/knowledge_fragment.html")]
struct DocsFragment {
    docs: Docs,
}

async fn docs(state: &AppState, console: &Console, org_id: Uuid) -> Result<Docs, PageError> {
    let mut conn = state.db.acquire().await?;
    let list = documents::list(&mut conn, org_id).await?;
    Ok(Docs {
        rows: list.iter().map(DocRow::from).collect(),
        csrf: console.csrf.clone(),
        org: console.org_field(org_id),
        updated_at: chrono::Utc::now().format("%H:%M:%S UTC").to_string(),
    })
}

/// `GET /console/knowledge`.
async fn knowledge_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<OrgQuery>,
) -> PageResult {
    let Some((org_id, viewing)) = scoped_org_named(&state.db, &console, q.org()).await? else {
        return page::pick_org(&state.db, &console, "knowledge", TITLE, PATH).await;
    };
    let index = embedding_info_of(&state, org_id).await?.into();
    let docs = docs(&state, &console, org_id).await?;
    Ok(page::render(
        &console,
        &KnowledgePage {
            chrome: Chrome::new(&console, "knowledge", TITLE),
            viewing,
            index,
            docs,
        },
    ))
}

/// `GET /console/knowledge/live`: the documents table alone.
async fn live(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<OrgQuery>,
) -> PageResult {
    let org_id = console.action_org(q.org())?;
    let docs = docs(&state, &console, org_id).await?;
    Ok(page::html(StatusCode::OK, &DocsFragment { docs }))
}

/// `POST /console/knowledge/documents/{id}/retry`: ingest the document again.
async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> PageResult {
    let id = Uuid::parse_str(&id).map_err(|_| PageError::not_found("Document"))?;
    let org_id = form.console.action_org(form.get("org"))?;
    let doc = reprocess(&state, org_id, id).await?;
    Ok(page::redirect_with_notice(
        &form.console.back_to(PATH, org_id),
        &format!("{} is queued for ingestion again.", doc.name),
    ))
}
