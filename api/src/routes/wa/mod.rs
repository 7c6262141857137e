//! The WhatsApp API dialect (`/api/v1/whatsapp/...`): the contract of clients that code
//! against Meta-style endpoints with `cm_` keys. Plain JSON objects with snake_case fields (no
//! `data` envelope), the seed's path parameters (`:phone_id` is Meta's phone number id,
//! `:message_id` the platform's id or the wamid). Every handler authenticates, parses, calls the
//! same `wharf_shared` domain function the `/api/v1` routes use and shapes the answer; none
//! re-implements a flow (ARCHITECTURE.md, "API dialects").
//!
//! Scopes: `whatsapp:read` for GETs; `whatsapp:write` for onboarding, templates, campaign
//! creation, link-bot and autoreply; `whatsapp:send` for messages, media, read and launch;
//! `admin` implies all.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod accounts;
pub mod analytics;
pub mod campaigns;
pub mod messages;
pub mod onboarding;
pub mod templates;

/// The OpenAPI tag of every operation of this dialect.
pub const TAG: &str = "whatsapp-api";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(onboarding::router())
        .merge(accounts::router())
        .merge(messages::router())
        .merge(templates::router())
        .merge(campaigns::router())
        .merge(analytics::router())
}
