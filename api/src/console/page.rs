//! What every console page shares: the frame around it ([`Chrome`]), rendering, notices
//! after an action, and error pages.

use askama::Template;
use axum::{
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};

use super::session::{clear_flash_cookie, flash_cookie, Console};
use crate::error::ApiError;

/// The navigation, in order: (key, label, path).
pub const NAV: [(&str, &str, &str); 6] = [
    ("overview", "Overview", "/console"),
    ("jobs", "Jobs", "/console/jobs"),
    ("failed", "Failed messages", "/console/failed-messages"),
    ("campaigns", "Campaigns", "/console/campaigns"),
    ("accounts", "WhatsApp accounts", "/console/accounts"),
    ("knowledge", "Knowledge base", "/console/knowledge"),
];

/// The frame of a signed-in page: title, navigation, who is signed in, the CSRF token every
/// form carries, and a notice left by the previous action.
pub struct Chrome {
    pub title: String,
    pub active: &'static str,
    pub email: String,
    pub role: String,
    pub org_name: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub nav: &'static [(&'static str, &'static str, &'static str)],
}

impl Chrome {
    pub fn new(console: &Console, active: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            active,
            email: console.email.clone(),
            role: console.user.role.as_str().to_string(),
            org_name: console
                .org_name
                .clone()
                .unwrap_or_else(|| "All organizations".into()),
            csrf: console.csrf.clone(),
            notice: console.flash.clone(),
            nav: &NAV,
        }
    }
}

/// Renders a signed-in page; clears the notice cookie once the notice has been shown.
pub fn render<T: Template>(console: &Console, template: &T) -> Response {
    let mut res = html(StatusCode::OK, template);
    if console.flash.is_some() {
        res.headers_mut()
            .append(header::SET_COOKIE, clear_flash_cookie());
    }
    res
}

/// Renders a template (a page or a fragment) with `status`.
pub fn html<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => {
            let mut res = (status, Html(body)).into_response();
            // Pages show live operational data: never from a cache.
            res.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered",
            )
                .into_response()
        }
    }
}

/// After an action: back to `location` (303, so a reload does not repeat the POST) with a
/// one-time notice shown there.
pub fn redirect_with_notice(location: &str, notice: &str) -> Response {
    let mut res = Redirect::to(location).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, flash_cookie(notice));
    res
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

pub fn login(status: StatusCode, next: &str, email: &str, error: Option<&str>) -> Response {
    html(status, &LoginPage { next, email, error })
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

/// An error shown as a page, with the status a client would expect.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found."))
    }

    pub fn forbidden(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let message = match &e {
            ApiError::Internal(inner) => {
                tracing::error!(error = ?inner, "console request failed");
                "Something went wrong on our side; it has been logged.".to_string()
            }
            ApiError::Validation(fields) => fields
                .iter()
                .map(|f| format!("{}: {}", f.loc.last().map_or("", String::as_str), f.msg))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        Self { status, message }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        html(
            self.status,
            &ErrorPage {
                status: self.status.as_u16(),
                reason: self.status.canonical_reason().unwrap_or("Error"),
                message: &self.message,
            },
        )
    }
}

/// What console handlers return.
pub type PageResult = Result<Response, PageError>;

/// An organization a super admin can pick for an org-scoped page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgChoice {
    pub id: uuid::Uuid,
    pub name: String,
}

/// Every organization, by name: what a super admin picks from on org-scoped pages.
pub async fn org_choices(db: &sqlx::PgPool) -> Result<Vec<OrgChoice>, PageError> {
    Ok(
        sqlx::query_as("SELECT id, name FROM organizations ORDER BY lower(name), id LIMIT 1000")
            .fetch_all(db)
            .await?,
    )
}

#[derive(Template)]
#[template(path = "console/pick_org.html")]
struct PickOrgPage<'a> {
    chrome: Chrome,
    action: &'a str,
    orgs: Vec<OrgChoice>,
}

/// For a super admin on an org-scoped page without `?org=`: a page to choose one, which
/// comes back to `action` with `?org=<id>`.
pub async fn pick_org(
    db: &sqlx::PgPool,
    console: &Console,
    active: &'static str,
    title: &str,
    action: &str,
) -> PageResult {
    let orgs = org_choices(db).await?;
    Ok(render(
        console,
        &PickOrgPage {
            chrome: Chrome::new(console, active, title),
            action,
            orgs,
        },
    ))
}
