//! Console sign-in: a server-side session per browser, its cookie, and CSRF protection.
//!
//! The cookie holds an opaque random token (HttpOnly, SameSite=Strict, Secure when the console
//! is served over https, scoped to `/console`); the database holds its hash, the user, a CSRF
//! token and a sliding expiry. Every request re-reads the user's role, activity and
//! organization status, as the API's bearer auth does, so a demotion or suspension applies at
//! once. Every state-changing request must carry the session's CSRF token: a form field
//! `_csrf` or an `X-CSRF-Token` header ([`CsrfForm`]).

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use wharf_shared::crypto;

use super::page::{self, PageError};
use crate::{
    auth::{ensure_org_active, Role, UserPrincipal},
    error::ApiError,
    routes::auth::password_login,
    state::AppState,
};

const SESSION_COOKIE: &str = "wharf_console";
const FLASH_COOKIE: &str = "wharf_console_flash";
/// A session not used for this long ends.
const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);
/// How stale `last_seen_at` may get before a request moves the expiry on (saves a write per
/// request while pages refresh themselves).
const TOUCH_EVERY_SECS: i64 = 60;
/// Form bodies of the console are small: ids, filters, a confirmation.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The signed-in console user. Extracting it redirects a browser without a session to the
/// sign-in page (GET) or answers 403 (any other method), and refuses roles below admin.
#[derive(Debug, Clone)]
pub struct Console {
    pub user: UserPrincipal,
    pub email: String,
    pub org_name: Option<String>,
    pub csrf: String,
    /// A one-time notice set by the previous action (see [`page::redirect_with_notice`]).
    pub flash: Option<String>,
}

impl Console {
    pub fn is_super_admin(&self) -> bool {
        self.user.role == Role::SuperAdmin
    }

    /// The organization a page acts on. An org admin always acts on their own (another org's
    /// id is a 404, as in the API); a super admin names one with `?org=` or, for pages that
    /// span tenants, none.
    pub fn org_scope(&self, requested: Option<Uuid>) -> Result<Option<Uuid>, PageError> {
        match self.user.org_id {
            Some(own) if requested.is_none_or(|r| r == own) => Ok(Some(own)),
            Some(_) => Err(PageError::not_found("Organization")),
            None => Ok(requested),
        }
    }

    /// [`Self::org_scope`] for an `org` value as a query or form carries it: absent or empty
    /// asks for none, a malformed id is a 400 page.
    pub fn requested_org(&self, raw: Option<&str>) -> Result<Option<Uuid>, PageError> {
        let requested = raw
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Uuid::parse_str(s).map_err(|_| {
                    PageError::bad_request("That organization id is not valid.".into())
                })
            })
            .transpose()?;
        self.org_scope(requested)
    }

    /// The organization an action (a POST) on an org-scoped page acts on: required.
    pub fn action_org(&self, raw: Option<&str>) -> Result<Uuid, PageError> {
        self.requested_org(raw)?
            .ok_or_else(|| PageError::bad_request("Choose an organization first.".into()))
    }

    /// The `org` a super admin's links and forms must carry (an org admin's need none).
    pub fn org_field(&self, org: Uuid) -> Option<String> {
        self.is_super_admin().then(|| org.to_string())
    }

    /// `{sep}org=<id>` to append to a link for a super admin; empty for an org admin.
    pub fn org_param(&self, org: Uuid, sep: char) -> String {
        self.org_field(org)
            .map(|o| format!("{sep}org={o}"))
            .unwrap_or_default()
    }

    /// Where an action on an org-scoped page goes back to.
    pub fn back_to(&self, path: &str, org: Uuid) -> String {
        format!("{path}{}", self.org_param(org, '?'))
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: Uuid,
    csrf_token: String,
    stale: bool,
    user_id: Uuid,
    org_id: Option<Uuid>,
    role: Role,
    is_active: bool,
    email: String,
    org_status: Option<String>,
    org_name: Option<String>,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Secure` when the browser reached us over https (directly or through a proxy that says so).
fn secure(headers: &HeaderMap, state: &AppState) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || state.config.public_url.starts_with("https://")
}

fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are url-safe tokens")
}

/// A cookie that sets a one-time notice for the next page.
pub(super) fn flash_cookie(text: &str) -> HeaderValue {
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    set_cookie(FLASH_COOKIE, &encoded, Some(60), false)
}

/// Clears the notice once a page has shown it.
pub(super) fn clear_flash_cookie() -> HeaderValue {
    set_cookie(FLASH_COOKIE, "", Some(0), false)
}

async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<Console>, PageError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.id AS session_id, s.csrf_token,
                s.last_seen_at < now() - make_interval(secs => $2) AS stale,
                u.id AS user_id, u.org_id, u.role, u.is_active, u.email,
                o.status AS org_status, o.name AS org_name
           FROM console_sessions s JOIN users u ON u.id = s.user_id
           LEFT JOIN organizations o ON o.id = u.org_id
          WHERE s.token_hash = $1 AND s.expires_at > now() AND u.deleted_at IS NULL",
    )
    .bind(crypto::hash_token(token))
    .bind(TOUCH_EVERY_SECS as f64)
    .fetch_optional(&state.db)
    .await
    .map_err(ApiError::from)?;
    let Some(row) = row else { return Ok(None) };
    if !row.is_active || ensure_org_active(row.org_status.as_deref()).is_err() {
        return Ok(None);
    }
    if row.stale {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
              WHERE id = $1",
        )
        .bind(row.session_id)
        .bind(IDLE_LIMIT.as_secs_f64())
        .execute(&state.db)
        .await
        .map_err(ApiError::from)?;
    }
    let flash = cookie(headers, FLASH_COOKIE)
        .filter(|v| !v.is_empty())
        .map(|v| {
            form_urlencoded::parse(format!("f={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
    Ok(Some(Console {
        user: UserPrincipal {
            id: row.user_id,
            org_id: row.org_id,
            role: row.role,
        },
        email: row.email,
        org_name: row.org_name,
        csrf: row.csrf_token,
        flash,
    }))
}

/// Admins and super admins only: agents and supervisors work in the inbox, not here.
fn allowed(role: Role) -> bool {
    role.at_least(Role::Admin)
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match load(state, &parts.headers).await {
            Ok(Some(c)) if allowed(c.user.role) => Ok(c),
            Ok(Some(c)) => Err(PageError::forbidden(format!(
                "The console is for administrators; your role is {}.",
                c.user.role
            ))
            .into_response()),
            Ok(None) if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/console", |p| p.as_str());
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Err(Redirect::to(&format!("/console/login?next={next}")).into_response())
            }
            Ok(None) => Err(PageError::forbidden(
                "Your console session has ended; sign in again.".into(),
            )
            .into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A console form post: the signed-in user and the form's fields, accepted only with the
/// session's CSRF token (field `_csrf` or header `X-CSRF-Token`). Fields may repeat
/// (checkbox lists), so they are kept as pairs; see [`CsrfForm::get`] and [`CsrfForm::all`].
pub struct CsrfForm {
    pub console: Console,
    pub fields: Vec<(String, String)>,
}

impl CsrfForm {
    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name` (a checkbox list).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl FromRequest<AppState> for CsrfForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| PageError::bad_request("The form is too large.".into()).into_response())?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                fields
                    .iter()
                    .find(|(k, _)| k == "_csrf")
                    .map(|(_, v)| v.as_str())
            })
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(console.csrf.as_bytes())) {
            tracing::warn!(user_id = %console.user.id, path = %parts.uri.path(), "console post without a valid CSRF token");
            return Err(PageError::forbidden(
                "This form has expired or did not come from the console; reload the page and try again."
                    .into(),
            )
            .into_response());
        }
        Ok(Self { console, fields })
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only our own console pages are valid targets after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/console".into(),
    }
}

/// `GET /console/login`.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Ok(Some(c)) = load(&state, &headers).await {
        if allowed(c.user.role) {
            return Redirect::to(&safe_next(q.next.as_deref())).into_response();
        }
    }
    page::login(StatusCode::OK, &safe_next(q.next.as_deref()), "", None)
}

/// `POST /console/login`: the API's password login, then a console session.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (email, password, next) = (
        field("email"),
        field("password"),
        safe_next(Some(&field("next"))),
    );
    if email.trim().is_empty() || password.is_empty() {
        return page::login(
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            &email,
            Some("Enter your email and password."),
        );
    }
    let user_id = match password_login(&state, &email, password, peer.ip()).await {
        Ok((user_id, _tokens)) => user_id,
        Err(ApiError::TooManyRequests { retry_after_secs }) => {
            let msg = format!("Too many attempts; try again in {retry_after_secs} s.");
            return page::login(StatusCode::TOO_MANY_REQUESTS, &next, &email, Some(&msg));
        }
        Err(ApiError::Unauthorized(msg)) => {
            return page::login(StatusCode::UNAUTHORIZED, &next, &email, Some(&msg))
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    match start_session(&state, user_id).await {
        Ok(Some(token)) => {
            let mut res = Redirect::to(&next).into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, None, secure(&headers, &state)),
            );
            res
        }
        Ok(None) => page::login(
            StatusCode::FORBIDDEN,
            &next,
            &email,
            Some("The console is for administrators; ask an admin of your organization."),
        ),
        Err(e) => e.into_response(),
    }
}

/// Opens a console session for an admin; `None` for roles the console refuses.
async fn start_session(state: &AppState, user_id: Uuid) -> Result<Option<String>, PageError> {
    let role: Role = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&state.db)
        .await
        .map_err(ApiError::from)?;
    if !allowed(role) {
        tracing::info!(%user_id, %role, "console sign-in refused for role");
        return Ok(None);
    }
    let token = crypto::random_token(32);
    sqlx::query(
        "INSERT INTO console_sessions (user_id, token_hash, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(user_id)
    .bind(crypto::hash_token(&token))
    .bind(crypto::random_token(32))
    .bind(IDLE_LIMIT.as_secs_f64())
    .execute(&state.db)
    .await
    .map_err(ApiError::from)?;
    Ok(Some(token))
}

/// `POST /console/logout`: ends this browser's session only.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, form: CsrfForm) -> Response {
    let _ = form.console;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(crypto::hash_token(token))
            .execute(&state.db)
            .await
        {
            return PageError::from(ApiError::from(e)).into_response();
        }
    }
    let mut res = Redirect::to("/console/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), secure(&headers, &state)),
    );
    res
}
