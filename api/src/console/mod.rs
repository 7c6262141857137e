//! The operations console at `/console`: server-rendered pages for admins and ops (jobs,
//! failed messages, campaigns, WhatsApp accounts, the knowledge base) over the same domain
//! functions as the JSON API. No business logic lives here: a page reads through the
//! functions the API's routes use and acts through them. ARCHITECTURE.md, "Operations
//! console", describes the choices (askama templates, a small script, server-side sessions).
//!
//! One module per page group; `session` signs people in and guards every form with a CSRF
//! token; `page` is the frame every page shares; `chart` draws bar charts as SVG.

mod accounts;
mod assets;
mod campaigns;
pub mod chart;
mod failed;
mod jobs;
mod knowledge;
mod overview;
pub mod page;
pub mod session;

use axum::{
    routing::{get, post},
    Router,
};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(overview::page))
        .route("/console/overview/live", get(overview::live))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/assets/{file}", get(assets::serve))
        .merge(jobs::router())
        .merge(failed::router())
        .merge(campaigns::router())
        .merge(accounts::router())
        .merge(knowledge::router())
}
