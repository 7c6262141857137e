//! HTTP routes, one module per resource. Each module exposes `router()`, an `OpenApiRouter`
//! whose handlers carry `#[utoipa::path]`, so the OpenAPI document is generated from the code
//! that serves it.

pub mod admin_jobs;
pub mod admin_orgs;
pub mod api_keys;
pub mod auth;
pub mod bot_config;
pub mod bot_documents;
pub mod bot_feedback;
pub mod bot_intents;
pub mod bot_media;
pub mod bot_metrics;
pub mod bot_portability;
pub mod bot_presets;
pub mod bot_settings;
pub mod bot_tools;
pub mod campaigns;
pub mod consent_settings;
pub mod contacts;
pub mod conversation_actions;
pub mod conversation_ai;
pub mod conversations;
pub mod cx_settings;
pub mod docs;
pub mod events;
pub mod failed_messages;
pub mod health;
pub mod hydracore;
pub mod messages;
pub mod metrics;
pub mod outbound;
pub mod profile;
pub mod quick_replies;
pub mod routing_rules;
pub mod routing_runs;
pub mod tags;
pub mod teams;
pub mod templates;
pub mod users;
pub mod wa;
pub mod webhooks;
pub mod whatsapp_accounts;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::{state::AppState, validate::Violations};

/// Every `/api/v1` response body: `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

impl<T> Data<T> {
    pub fn new(data: T) -> axum::Json<Self> {
        axum::Json(Self { data })
    }
}

/// A page of a list: `{"data": [...], "pagination": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub total_pages: i64,
}

impl<T> Page<T> {
    pub fn new(data: Vec<T>, params: &PageParams, total: i64) -> axum::Json<Self> {
        let limit = params.limit();
        axum::Json(Self {
            data,
            pagination: Pagination {
                page: params.page(),
                limit,
                total,
                total_pages: (total + limit - 1) / limit,
            },
        })
    }
}

/// A cursor-paginated list: `{"data": [...], "nextCursor": "..."}` (`null` on the last page).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CursorPage<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> CursorPage<T> {
    /// `rows` were fetched with `limit + 1`; the extra row only says that a next page exists,
    /// whose cursor is built from the last row kept.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: i64,
        cursor: impl Fn(&R) -> String,
        map: impl Fn(R) -> T,
    ) -> axum::Json<Self> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next_cursor = if more { rows.last().map(&cursor) } else { None };
        axum::Json(Self {
            data: rows.into_iter().map(map).collect(),
            next_cursor,
        })
    }
}

/// Default page size of cursor lists (the seeds' `limit` default).
pub const DEFAULT_CURSOR_LIMIT: i64 = 50;

/// Opaque cursors: base64url of `<unix micros>:<tie-breaker>` (the sort key of the last row
/// and its id or sequence number).
pub mod cursor {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use chrono::{DateTime, Utc};

    pub fn encode(at: DateTime<Utc>, tie: impl std::fmt::Display) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{tie}", at.timestamp_micros()))
    }

    pub fn decode<T: std::str::FromStr>(raw: &str) -> Option<(DateTime<Utc>, T)> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, tie) = text.split_once(':')?;
        Some((
            DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            tie.parse().ok()?,
        ))
    }
}

/// Checks `limit` (1..=100) and that `cursor` decodes, for cursor lists.
pub fn check_cursor_params<T: std::str::FromStr>(
    v: &mut Violations,
    cursor: Option<&str>,
    limit: Option<i64>,
) {
    if limit.is_some_and(|l| !(1..=MAX_PAGE_SIZE).contains(&l)) {
        v.add("limit", format!("must be between 1 and {MAX_PAGE_SIZE}"));
    }
    if cursor.is_some_and(|c| cursor::decode::<T>(c).is_none()) {
        v.add(
            "cursor",
            "invalid cursor; pass the nextCursor of a previous page",
        );
    }
}

/// Highest page number of page-numbered lists: the row offset always fits (and no list is
/// that long; cursor lists serve deep reads).
pub const MAX_PAGE: i64 = 1_000_000;

/// Hard upper bound of any page, whatever the client asks for.
pub const MAX_PAGE_SIZE: i64 = 100;

/// `?page=&limit=` with the seed's defaults (1 and 20).
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number.
    pub page: Option<i64>,
    /// Page size, at most 100.
    pub limit: Option<i64>,
}

impl PageParams {
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).clamp(1, MAX_PAGE)
    }

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, MAX_PAGE_SIZE)
    }

    pub fn offset(&self) -> i64 {
        (self.page() - 1) * self.limit()
    }

    pub fn check(&self, v: &mut Violations) {
        if self.page.is_some_and(|p| !(1..=MAX_PAGE).contains(&p)) {
            v.add("page", format!("must be between 1 and {MAX_PAGE}"));
        }
        if self
            .limit
            .is_some_and(|l| !(1..=MAX_PAGE_SIZE).contains(&l))
        {
            v.add("limit", format!("must be between 1 and {MAX_PAGE_SIZE}"));
        }
    }
}

/// The `/api/v1` routes.
pub fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(profile::router())
        .merge(users::router())
        .merge(api_keys::router())
        .merge(admin_orgs::router())
        .merge(admin_jobs::router())
        .merge(conversations::router())
        .merge(conversation_actions::router())
        .merge(contacts::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(whatsapp_accounts::router())
        .merge(outbound::router())
        .merge(failed_messages::router())
        .merge(templates::router())
        .merge(campaigns::router())
        .merge(cx_settings::router())
        .merge(consent_settings::router())
        .merge(teams::router())
        .merge(routing_rules::router())
        .merge(routing_runs::router())
        .merge(conversation_ai::router())
        .merge(bot_config::router())
        .merge(wa::router())
        .merge(bot_documents::router())
        .merge(bot_intents::router())
        .merge(bot_tools::router())
        .merge(bot_settings::router())
        .merge(bot_presets::router())
        .merge(bot_portability::router())
        .merge(bot_metrics::router())
        .merge(bot_feedback::router())
        .merge(bot_media::router())
        .merge(tags::router())
        .merge(quick_replies::router())
}
