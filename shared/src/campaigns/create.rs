//! Creating and launching a campaign, and the campaign list: the flows behind `POST
//! /api/v1/campaigns`, `POST /api/v1/campaigns/{id}/launch` and their WhatsApp API dialect
//! twins (`/api/v1/whatsapp/campaigns`). Each dialect reads its own body, finds the template
//! ([`template_by_id`] or [`template_by_name`]) and calls [`create`]; errors name the
//! offending input as a [`Field`] so each dialect words the location its own way.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    audience::{screen, InputRow, Rejected},
    pricing, schedule_launch, TemplateVars,
};
use crate::jobs::JobsError;

/// The input a [`CreateError::Invalid`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Template,
    Account,
    HeaderMediaLink,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{msg}")]
    Invalid { field: Field, msg: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

fn invalid(field: Field, msg: impl Into<String>) -> CreateError {
    CreateError::Invalid {
        field,
        msg: msg.into(),
    }
}

/// The template a campaign sends (a snapshot of it is stored with the campaign).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignTemplate {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
}

const TEMPLATE_COLS: &str =
    "id, account_id, name, language, category, status, parameter_format, components";

/// A live template of the organization by id.
pub async fn template_by_id(
    db: &PgPool,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<CampaignTemplate>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TEMPLATE_COLS} FROM message_templates WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await
}

/// A live template of the account by name, in `language` if given (else the approved one,
/// then the newest, when the name exists in several languages).
pub async fn template_by_name(
    db: &PgPool,
    org_id: Uuid,
    account_id: Uuid,
    name: &str,
    language: Option<&str>,
) -> Result<Option<CampaignTemplate>, sqlx::Error> {
    let language = language.map(crate::templates::rules::normalize_language);
    sqlx::query_as(&format!(
        "SELECT {TEMPLATE_COLS} FROM message_templates
          WHERE org_id = $1 AND account_id = $2 AND name = $3 AND ($4::text IS NULL OR language = $4)
            AND deleted_at IS NULL AND status <> 'REMOVED'
          ORDER BY (status = 'APPROVED') DESC, created_at DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(account_id)
    .bind(name)
    .bind(language)
    .fetch_optional(db)
    .await
}

/// What [`create`] needs besides the template.
pub struct NewCampaign {
    pub org_id: Uuid,
    pub name: String,
    /// Defaults to the template's account.
    pub account_id: Option<Uuid>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub header_media_link: Option<String>,
    pub created_by: Option<Uuid>,
    pub rows: Vec<InputRow>,
}

/// A created campaign: its id, the accepted count and every rejected row.
pub struct Created {
    pub id: Uuid,
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

/// Phones among `phones` whose customer wrote to `account_id` in the last 24 h.
pub async fn open_windows(
    db: &PgPool,
    org_id: Uuid,
    account_id: Uuid,
    phones: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT ct.wa_id FROM contacts ct JOIN conversations c ON c.contact_id = ct.id
          WHERE ct.org_id = $1 AND c.account_id = $2 AND ct.wa_id = ANY($3)
            AND c.last_inbound_at > now() - interval '24 hours'",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(phones)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Creates a campaign (DRAFT, or SCHEDULED with its launch job) with its frozen audience:
/// checks the template (APPROVED, no dynamic buttons, a media link for a media header) and
/// the account, screens the rows, prices every accepted recipient and inserts the audience in
/// one statement.
pub async fn create(
    db: &PgPool,
    template: &CampaignTemplate,
    input: NewCampaign,
) -> Result<Created, CreateError> {
    let org_id = input.org_id;
    if template.status != "APPROVED" {
        return Err(invalid(
            Field::Template,
            format!(
                "template {} is {}; only APPROVED templates can be sent",
                template.name, template.status
            ),
        ));
    }
    let account_id = input.account_id.unwrap_or(template.account_id);
    if account_id != template.account_id {
        return Err(invalid(
            Field::Account,
            "the template belongs to another WhatsApp account (templates are per WABA)",
        ));
    }
    let account_status: Option<String> =
        sqlx::query_scalar("SELECT status FROM whatsapp_accounts WHERE id = $1 AND org_id = $2")
            .bind(account_id)
            .bind(org_id)
            .fetch_optional(db)
            .await?;
    match account_status.as_deref() {
        None => return Err(invalid(Field::Account, "no such WhatsApp account")),
        Some("DISCONNECTED") => {
            return Err(invalid(
                Field::Account,
                "this WhatsApp number is disconnected",
            ))
        }
        _ => {}
    }
    let vars = TemplateVars::of(&template.components, &template.parameter_format);
    if vars.dynamic_buttons {
        return Err(invalid(
            Field::Template,
            "templates with dynamic buttons (URL suffix, OTP, coupon code) cannot be used in campaigns yet",
        ));
    }
    if let (Some(format), None) = (&vars.header_media, &input.header_media_link) {
        return Err(invalid(
            Field::HeaderMediaLink,
            format!("this template has a {format} header: give a header media link"),
        ));
    }
    let (accepted, rejected) = screen(input.rows, Some(&vars));

    let phones: Vec<String> = accepted.iter().map(|a| a.phone.clone()).collect();
    let free = if template.category == "UTILITY" {
        open_windows(db, org_id, account_id, &phones).await?
    } else {
        HashSet::new()
    };
    let n = accepted.len();
    let (mut rows_n, mut names, mut var_json, mut countries, mut costs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut estimated = 0.0;
    for a in &accepted {
        let cost = pricing::unit_price(&template.category, &a.phone, free.contains(&a.phone));
        estimated += cost;
        rows_n.push(a.row);
        names.push(a.name.clone());
        var_json.push(serde_json::to_string(&a.vars).unwrap_or_else(|_| "{}".into()));
        countries.push(pricing::market(&a.phone).country);
        costs.push(cost);
    }
    let status = if input.scheduled_at.is_some() {
        "SCHEDULED"
    } else {
        "DRAFT"
    };
    let mut tx = db.begin().await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO campaigns (org_id, account_id, name, template_id, template_name, template_language, template_category,
                parameter_format, template_components, header_media_link, status, scheduled_at, created_by, recipient_count,
                rejected_count, estimated_cost, currency, rate_table_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(input.name.trim())
    .bind(template.id)
    .bind(&template.name)
    .bind(&template.language)
    .bind(&template.category)
    .bind(&template.parameter_format)
    .bind(&template.components)
    .bind(&input.header_media_link)
    .bind(status)
    .bind(input.scheduled_at)
    .bind(input.created_by)
    .bind(n as i32)
    .bind(rejected.len() as i32)
    .bind(estimated)
    .bind(pricing::CURRENCY)
    .bind(pricing::RATE_TABLE_VERSION)
    .fetch_one(&mut *tx)
    .await?;
    // The whole audience in one statement.
    sqlx::query(
        "INSERT INTO campaign_recipients (campaign_id, org_id, row_number, phone, name, variables, country, unit_cost)
         SELECT $1, $2, u.row_number, u.phone, u.name, u.variables::jsonb, u.country, u.unit_cost
           FROM UNNEST($3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[])
                AS u(row_number, phone, name, variables, country, unit_cost)",
    )
    .bind(id)
    .bind(org_id)
    .bind(&rows_n)
    .bind(&phones)
    .bind(&names)
    .bind(&var_json)
    .bind(&countries)
    .bind(&costs)
    .execute(&mut *tx)
    .await?;
    if let Some(at) = input.scheduled_at {
        schedule_launch(&mut tx, org_id, id, at).await?;
    }
    tx.commit().await?;
    Ok(Created {
        id,
        accepted: n,
        rejected,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("campaign not found")]
    NotFound,
    /// The campaign's current status, which cannot be launched.
    #[error("Only DRAFT or SCHEDULED campaigns can be launched (this one is {0})")]
    NotLaunchable(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

/// Launches a campaign now (DRAFT or SCHEDULED → RUNNING) and enqueues its dispatcher, in the
/// caller's transaction.
pub async fn launch(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> Result<(), LaunchError> {
    let status: String = sqlx::query_scalar(
        "SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(LaunchError::NotFound)?;
    let done = sqlx::query(
        "UPDATE campaigns SET status = 'RUNNING', launched_at = now(), paused_reason = NULL
          WHERE id = $1 AND org_id = $2 AND status IN ('DRAFT', 'SCHEDULED') AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(LaunchError::NotLaunchable(status));
    }
    super::enqueue_dispatch(conn, org_id, id).await?;
    super::unschedule_launch(conn, &[id]).await?;
    Ok(())
}

/// A campaign with its recipients' progress, as the campaign lists show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Summary {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub account_id: Uuid,
    pub phone_number_id: String,
    pub template_name: String,
    pub template_language: String,
    pub template_category: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub launched_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub recipient_count: i32,
    pub rejected_count: i32,
    pub estimated_cost: f64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub pending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// Campaigns of the organization (`id` = one of them), newest first, with their progress:
/// `sent` counts messages Meta accepted (sent, delivered or read), `delivered` delivered or read.
pub async fn summaries(
    db: &PgPool,
    org_id: Uuid,
    id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Summary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.name, c.status, c.account_id, a.phone_number_id, c.template_name, c.template_language,
                c.template_category, c.scheduled_at, c.launched_at, c.completed_at, c.recipient_count,
                c.rejected_count, c.estimated_cost, c.currency, c.created_at,
                coalesce(k.pending, 0) AS pending, coalesce(k.sent, 0) AS sent,
                coalesce(k.delivered, 0) AS delivered, coalesce(k.read, 0) AS read,
                coalesce(k.failed, 0) AS failed, coalesce(k.skipped, 0) AS skipped
           FROM campaigns c JOIN whatsapp_accounts a ON a.id = c.account_id
           LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE r.status = 'pending' OR m.status = 'queued') AS pending,
                       count(*) FILTER (WHERE m.status IN ('sent', 'delivered', 'read')) AS sent,
                       count(*) FILTER (WHERE m.status IN ('delivered', 'read')) AS delivered,
                       count(*) FILTER (WHERE m.status = 'read') AS read,
                       count(*) FILTER (WHERE m.status = 'failed') AS failed,
                       count(*) FILTER (WHERE r.status = 'skipped') AS skipped
                  FROM campaign_recipients r LEFT JOIN messages m ON m.id = r.message_id
                 WHERE r.campaign_id = c.id) k ON true
          WHERE c.org_id = $1 AND c.deleted_at IS NULL AND ($2::uuid IS NULL OR c.id = $2)
          ORDER BY c.created_at DESC, c.id LIMIT $3 OFFSET $4",
    )
    .bind(org_id)
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
}
