//! Template management flows shared by every API dialect (`/api/v1/templates`,
//! `/api/v1/whatsapp/templates`): the content check, which account a new template goes to,
//! create (and submit), the sync request and the soft delete.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    enqueue_submit, request_sync,
    rules::{self, Issue, Issues, TemplateSpec},
};
use crate::jobs::JobsError;

fn issue(issues: &mut Issues, field: &str, msg: impl Into<String>, kind: &'static str) {
    issues.0.push(Issue {
        loc: vec![field.to_string()],
        msg: msg.into(),
        kind,
    });
}

/// A template's content, as a create/draft request or a stored row gives it.
pub struct Content<'a> {
    pub name: &'a str,
    pub language: &'a str,
    /// Upper case.
    pub category: &'a str,
    /// POSITIONAL or NAMED.
    pub parameter_format: &'a str,
    pub components: &'a Value,
}

/// Every rule Meta would check on create, with the location of each problem (top-level
/// fields `name`, `language`, `category`, `parameterFormat`, `components`...).
pub fn check_content(c: &Content<'_>) -> Issues {
    let mut issues = Issues::default();
    if !rules::valid_name(c.name) {
        issue(
            &mut issues,
            "name",
            format!(
                "must be 1 to {} lowercase letters, digits or underscores (^[a-z0-9_]+$)",
                rules::MAX_NAME
            ),
            "value_error",
        );
    }
    if !rules::valid_language(c.language) {
        issue(
            &mut issues,
            "language",
            "must be a language code such as en_US or pt_BR",
            "value_error",
        );
    }
    if !rules::CATEGORIES.contains(&c.category) {
        issue(
            &mut issues,
            "category",
            "must be MARKETING, UTILITY or AUTHENTICATION",
            "enum",
        );
    }
    if !["POSITIONAL", "NAMED"].contains(&c.parameter_format) {
        issue(
            &mut issues,
            "parameterFormat",
            "must be POSITIONAL or NAMED",
            "enum",
        );
    }
    rules::check_components(
        &TemplateSpec {
            category: c.category,
            named: c.parameter_format == "NAMED",
            components: c.components,
        },
        &mut issues,
    );
    issues
}

/// How the caller names the account (number) whose WABA gets a new template.
#[derive(Debug, Clone, Copy)]
pub enum AccountChoice<'a> {
    /// A `whatsapp_accounts.id`.
    Id(Uuid),
    /// A WABA id of the organization.
    Waba(&'a str),
    /// The organization's only connected WABA.
    Only,
}

/// Why no account was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountProblem {
    /// The id or WABA named is not the organization's (or is disconnected).
    NoSuch,
    /// The organization has no number.
    NoneConnected,
    /// Nothing named and several to choose from.
    Several,
}

/// The (account id, WABA id) a new template goes to; [`AccountChoice::Only`] with several
/// numbers is [`AccountProblem::Several`].
pub async fn resolve_account(
    db: &PgPool,
    org_id: Uuid,
    choice: AccountChoice<'_>,
) -> Result<Result<(Uuid, String), AccountProblem>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = match choice {
        AccountChoice::Id(id) => {
            sqlx::query_as("SELECT id, waba_id FROM whatsapp_accounts WHERE id = $1 AND org_id = $2 AND status <> 'DISCONNECTED'")
                .bind(id)
                .bind(org_id)
                .fetch_all(db)
                .await?
        }
        AccountChoice::Waba(waba) => {
            sqlx::query_as(
                "SELECT id, waba_id FROM whatsapp_accounts WHERE waba_id = $1 AND org_id = $2 AND status <> 'DISCONNECTED'
                  ORDER BY (status = 'CONNECTED') DESC, created_at LIMIT 1",
            )
            .bind(waba)
            .bind(org_id)
            .fetch_all(db)
            .await?
        }
        AccountChoice::Only => {
            sqlx::query_as(
                "SELECT id, waba_id FROM whatsapp_accounts WHERE org_id = $1 AND status <> 'DISCONNECTED' ORDER BY created_at",
            )
            .bind(org_id)
            .fetch_all(db)
            .await?
        }
    };
    Ok(match (choice, rows.len()) {
        (AccountChoice::Only, 0) => Err(AccountProblem::NoneConnected),
        (_, 0) => Err(AccountProblem::NoSuch),
        (AccountChoice::Only, n) if n > 1 => Err(AccountProblem::Several),
        _ => Ok(rows.into_iter().next().expect("one row")),
    })
}

/// A template to create.
pub struct NewTemplate<'a> {
    pub org_id: Uuid,
    pub account_id: Uuid,
    pub waba_id: &'a str,
    pub name: &'a str,
    pub language: &'a str,
    /// Upper case.
    pub category: &'a str,
    pub parameter_format: &'a str,
    pub components: &'a Value,
    /// DRAFT, or PENDING_SUBMISSION (a submit job is enqueued with the row).
    pub status: &'a str,
    pub created_by: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Another live template of the number has this name and language.
    #[error("A template named {name} in {language} already exists for this number")]
    Duplicate { name: String, language: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

fn duplicate(t: &NewTemplate<'_>) -> CreateError {
    CreateError::Duplicate {
        name: t.name.to_string(),
        language: t.language.to_string(),
    }
}

/// True when another live template (drafts included) of the number has this name and
/// language (`except`: the template being changed).
pub async fn name_taken(
    db: &PgPool,
    account_id: Uuid,
    name: &str,
    language: &str,
    except: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM message_templates WHERE account_id = $1 AND name = $2 AND language = $3
                          AND status <> 'REMOVED' AND id IS DISTINCT FROM $4)",
    )
    .bind(account_id)
    .bind(name)
    .bind(language)
    .bind(except)
    .fetch_one(db)
    .await
}

/// The uploaded header file a template's example handle names: (blob path, mime, handle).
pub async fn header_media(
    db: &PgPool,
    org_id: Uuid,
    components: &Value,
) -> Result<(Option<String>, Option<String>, Option<String>), sqlx::Error> {
    let Some(handle) = rules::header_handle(components) else {
        return Ok((None, None, None));
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT blob_path, mime_type FROM template_media WHERE org_id = $1 AND handle = $2",
    )
    .bind(org_id)
    .bind(&handle)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some((path, mime)) => (Some(path), Some(mime), Some(handle)),
        None => (None, None, Some(handle)),
    })
}

/// Creates a template whose content passed [`check_content`]: the row and, for
/// PENDING_SUBMISSION, its submit job in one transaction. Returns its id.
pub async fn create(db: &PgPool, t: &NewTemplate<'_>) -> Result<Uuid, CreateError> {
    if name_taken(db, t.account_id, t.name, t.language, None).await? {
        return Err(duplicate(t));
    }
    let components = rules::normalize_components(t.components);
    let (blob, mime, handle) = header_media(db, t.org_id, &components).await?;
    let mut tx = db.begin().await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO message_templates (org_id, account_id, waba_id, name, language, category, status, parameter_format,
                components, header_blob_path, header_mime_type, header_handle, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(t.org_id)
    .bind(t.account_id)
    .bind(t.waba_id)
    .bind(t.name)
    .bind(t.language)
    .bind(t.category)
    .bind(t.status)
    .bind(t.parameter_format)
    .bind(&components)
    .bind(blob)
    .bind(mime)
    .bind(handle)
    .bind(t.created_by)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e, "message_templates_name_key") {
            duplicate(t)
        } else {
            e.into()
        }
    })?;
    if t.status == "PENDING_SUBMISSION" {
        enqueue_submit(&mut tx, t.org_id, id).await?;
    }
    tx.commit().await?;
    tracing::info!(template_id = %id, org_id = %t.org_id, name = %t.name, status = t.status, "template created");
    Ok(id)
}

/// What [`request_org_sync`] did.
#[derive(Debug, Clone, Default)]
pub struct SyncRequested {
    /// Connected numbers whose templates will be synced.
    pub accounts: usize,
    /// Jobs enqueued now (the others were already waiting or running).
    pub job_ids: Vec<i64>,
}

/// Enqueues a template sync for every connected number of the organization (or only
/// `account_id`), one unfinished per number. `accounts` is 0 when there is none to sync.
pub async fn request_org_sync(
    db: &PgPool,
    org_id: Uuid,
    account_id: Option<Uuid>,
) -> Result<SyncRequested, JobsError> {
    let accounts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM whatsapp_accounts WHERE org_id = $1 AND status = 'CONNECTED' AND ($2::uuid IS NULL OR id = $2)
          ORDER BY created_at",
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_all(db)
    .await?;
    if accounts.is_empty() {
        return Ok(SyncRequested::default());
    }
    let mut tx = db.begin().await?;
    let mut job_ids = Vec::new();
    for a in &accounts {
        if let Some(id) = request_sync(&mut tx, org_id, *a).await? {
            job_ids.push(id);
        }
    }
    tx.commit().await?;
    Ok(SyncRequested {
        accounts: accounts.len(),
        job_ids,
    })
}

/// Soft-deletes a template: REMOVED here (Meta keeps it; a sync never revives it). Returns
/// false when the organization has no such template.
pub async fn soft_delete(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE message_templates SET status = 'REMOVED', deleted_at = COALESCE(deleted_at, now())
          WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A template as the template lists show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Summary {
    pub id: uuid::Uuid,
    pub account_id: Uuid,
    pub waba_id: String,
    pub meta_template_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The organization's templates (`id`: that one, whatever its status; else every one but
/// REMOVED ones), newest first.
pub async fn list(
    db: &PgPool,
    org_id: Uuid,
    id: Option<Uuid>,
) -> Result<Vec<Summary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, account_id, waba_id, meta_template_id, name, language, category, status, parameter_format,
                components, quality_score, rejected_reason, last_error, created_at, updated_at
           FROM message_templates
          WHERE org_id = $1 AND (($2::uuid IS NULL AND status <> 'REMOVED') OR id = $2)
          ORDER BY created_at DESC, id",
    )
    .bind(org_id)
    .bind(id)
    .fetch_all(db)
    .await
}
