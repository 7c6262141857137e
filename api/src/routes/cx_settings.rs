//! An organization's business hours, off-hours reply and maintenance mode
//! (`/routing-rules/business-hours`, `/off-hours`, `/maintenance`). Reading needs any role;
//! changing needs an admin. PUT bodies are partial: a field left out keeps its value. The
//! replies themselves are sent by the inbound job (`wharf_shared::cx::auto_reply`).

use axum::{extract::State, Json};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_shared::cx::{
    hours::{self, check_slots, hhmm, ScheduleProblem, Slot},
    idle::{self, IdleSettings},
    maintenance, reroute,
    settings::{self, CxSettings},
};

use super::Data;
use crate::{
    auth::{scopes, Auth, Role},
    error::ApiResult,
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

/// Longest automatic message (Meta's text body limit).
const MAX_MESSAGE_LEN: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_business_hours, put_business_hours))
        .routes(routes!(get_off_hours, put_off_hours))
        .routes(routes!(get_maintenance, put_maintenance))
        .routes(routes!(get_idle_agent, put_idle_agent))
        .routes(routes!(run_idle_agent))
}

async fn load(state: &AppState, auth: &Auth) -> ApiResult<(uuid::Uuid, CxSettings)> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok((org_id, settings::load(&mut conn, org_id).await?))
}

/// Applies `change` to the admin's organization's settings and saves them.
async fn update(
    state: &AppState,
    auth: &Auth,
    change: impl FnOnce(&mut CxSettings),
) -> ApiResult<CxSettings> {
    let (mut tx, org_id, mut s) = begin_update(state, auth).await?;
    change(&mut s);
    let saved = settings::save(&mut tx, org_id, &s).await?;
    tx.commit().await?;
    Ok(saved)
}

/// The admin's organization's settings, locked for a change in the returned transaction (every
/// writer of `org_cx_settings` takes this lock first).
pub(crate) async fn begin_update(
    state: &AppState,
    auth: &Auth,
) -> ApiResult<(
    sqlx::Transaction<'static, sqlx::Postgres>,
    uuid::Uuid,
    CxSettings,
)> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    // Serialises concurrent updates of one organization's settings.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cx_settings:' || $1::text))")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let s = settings::load(&mut tx, org_id).await?;
    Ok((tx, org_id, s))
}

// ---- business hours ----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessHoursOut {
    /// IANA timezone, e.g. `Europe/Madrid`.
    pub timezone: String,
    pub is_enabled: bool,
    #[schema(value_type = Vec<Object>)]
    pub slots: Vec<Slot>,
    #[schema(value_type = Vec<String>)]
    pub holidays: Vec<NaiveDate>,
    /// Whether the business is open right now.
    pub open_now: bool,
}

fn business_hours_out(s: &CxSettings) -> BusinessHoursOut {
    BusinessHoursOut {
        timezone: s.timezone.clone(),
        is_enabled: s.business_hours_enabled,
        slots: s.business_slots.0.clone(),
        holidays: s.holidays.0.clone(),
        open_now: s.business_hours().is_none_or(|h| h.is_open(Utc::now())),
    }
}

/// One weekly slot as sent: checked field by field before it becomes a [`Slot`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotIn {
    /// ISO weekday: Monday = 1 .. Sunday = 7.
    pub day_of_week: i64,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`; at or before `start` means the slot runs past midnight.
    pub end: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessHoursRequest {
    pub timezone: Option<String>,
    pub is_enabled: Option<bool>,
    pub slots: Option<Vec<SlotIn>>,
    /// Dates (`YYYY-MM-DD`, local) closed all day.
    pub holidays: Option<Vec<String>>,
}

/// Valid slots as [`Slot`]s (invalid ones, already refused by validation, are left out).
pub(crate) fn slots_of(slots: &[SlotIn]) -> Vec<Slot> {
    slots
        .iter()
        .filter_map(|s| {
            Some(Slot {
                day_of_week: u8::try_from(s.day_of_week).ok()?,
                start: hhmm::parse(&s.start)?,
                end: hhmm::parse(&s.end)?,
            })
        })
        .collect()
}

/// Valid holiday dates (invalid ones, already refused by validation, are left out).
pub(crate) fn holidays_of(days: &[String]) -> Vec<NaiveDate> {
    days.iter()
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect()
}

/// The checks of a weekly schedule, shared by business hours and team working hours: an
/// IANA timezone, slots with a weekday, `HH:MM` times, no empty or overlapping slot, and
/// `YYYY-MM-DD` holidays. Every problem is named.
pub(crate) fn validate_schedule(
    v: &mut Violations,
    timezone: Option<&str>,
    slots: Option<&[SlotIn]>,
    holidays: Option<&[String]>,
) {
    if let Some(tz) = timezone {
        if hours::parse_timezone(tz).is_none() {
            v.add(
                "timezone",
                "unknown timezone: use an IANA name such as Europe/Madrid",
            );
        }
    }
    let slots = slots.unwrap_or_default();
    let mut well_formed = true;
    for (i, s) in slots.iter().enumerate() {
        let i = i.to_string();
        if !(1..=7).contains(&s.day_of_week) {
            v.add_at(
                &["slots", &i, "dayOfWeek"],
                "must be 1 (Monday) to 7 (Sunday)",
            );
            well_formed = false;
        }
        for (field, value) in [("start", &s.start), ("end", &s.end)] {
            if hhmm::parse(value).is_none() {
                v.add_at(
                    &["slots", &i, field],
                    "must be a time as HH:MM (00:00 to 23:59)",
                );
                well_formed = false;
            }
        }
    }
    if well_formed {
        for problem in check_slots(&slots_of(slots)) {
            match problem {
                ScheduleProblem::EmptySlot(i) => v.add_at(
                    &["slots", &i.to_string(), "end"],
                    "must differ from start (an end before start runs past midnight)",
                ),
                ScheduleProblem::Overlap(i, j) => {
                    v.add_at(&["slots", &j.to_string()], format!("overlaps slot {i}"))
                }
                ScheduleProblem::DayOutOfRange(i) => v.add_at(
                    &["slots", &i.to_string(), "dayOfWeek"],
                    "must be 1 (Monday) to 7 (Sunday)",
                ),
                ScheduleProblem::UnknownTimezone => v.add("timezone", "unknown timezone"),
            }
        }
    }
    for (i, d) in holidays.unwrap_or_default().iter().enumerate() {
        if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
            v.add_at(
                &["holidays", &i.to_string()],
                "must be a date as YYYY-MM-DD",
            );
        }
    }
}

impl Validate for BusinessHoursRequest {
    fn validate(&self, v: &mut Violations) {
        validate_schedule(
            v,
            self.timezone.as_deref(),
            self.slots.as_deref(),
            self.holidays.as_deref(),
        );
    }
}

/// Get the organization's business hours.
#[utoipa::path(get, path = "/routing-rules/business-hours", tag = "routing-rules",
    responses((status = 200, body = Data<BusinessHoursOut>)))]
async fn get_business_hours(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<BusinessHoursOut>>> {
    let (_, s) = load(&state, &auth).await?;
    Ok(Data::new(business_hours_out(&s)))
}

/// Update the organization's business hours (admin). Partial: fields left out keep their value.
#[utoipa::path(put, path = "/routing-rules/business-hours", tag = "routing-rules",
    request_body = BusinessHoursRequest, responses((status = 200, body = Data<BusinessHoursOut>)))]
async fn put_business_hours(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<BusinessHoursRequest>,
) -> ApiResult<Json<Data<BusinessHoursOut>>> {
    let s = update(&state, &auth, |s| {
        if let Some(tz) = &body.timezone {
            s.timezone = tz.clone();
        }
        if let Some(on) = body.is_enabled {
            s.business_hours_enabled = on;
        }
        if let Some(slots) = &body.slots {
            s.business_slots = sqlx::types::Json(slots_of(slots));
        }
        if let Some(days) = &body.holidays {
            s.holidays = sqlx::types::Json(holidays_of(days));
        }
    })
    .await?;
    Ok(Data::new(business_hours_out(&s)))
}

// ---- off-hours reply ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffHoursOut {
    pub off_hours_auto_reply: bool,
    pub off_hours_message: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffHoursRequest {
    pub off_hours_auto_reply: Option<bool>,
    pub off_hours_message: Option<String>,
}

impl Validate for OffHoursRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text(
            "offHoursMessage",
            self.off_hours_message.as_deref(),
            MAX_MESSAGE_LEN,
        );
    }
}

fn off_hours_out(s: &CxSettings) -> OffHoursOut {
    OffHoursOut {
        off_hours_auto_reply: s.off_hours_auto_reply,
        off_hours_message: s.off_hours_message.clone(),
    }
}

/// Get the off-hours auto-reply settings.
#[utoipa::path(get, path = "/routing-rules/off-hours", tag = "routing-rules",
    responses((status = 200, body = Data<OffHoursOut>)))]
async fn get_off_hours(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<OffHoursOut>>> {
    let (_, s) = load(&state, &auth).await?;
    Ok(Data::new(off_hours_out(&s)))
}

/// Update the off-hours auto-reply (admin): sent once per conversation per closed period.
#[utoipa::path(put, path = "/routing-rules/off-hours", tag = "routing-rules",
    request_body = OffHoursRequest, responses((status = 200, body = Data<OffHoursOut>)))]
async fn put_off_hours(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<OffHoursRequest>,
) -> ApiResult<Json<Data<OffHoursOut>>> {
    let s = update(&state, &auth, |s| {
        if let Some(on) = body.off_hours_auto_reply {
            s.off_hours_auto_reply = on;
        }
        if let Some(m) = &body.off_hours_message {
            s.off_hours_message = Some(m.trim().to_string());
        }
    })
    .await?;
    Ok(Data::new(off_hours_out(&s)))
}

// ---- maintenance -------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceOut {
    pub maintenance_mode: bool,
    pub maintenance_message: Option<String>,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    /// Whether maintenance is in force now (switched on, or inside the scheduled window).
    pub active: bool,
}

/// `null` clears a field; leaving it out keeps it.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRequest {
    pub maintenance_mode: Option<bool>,
    pub maintenance_message: Option<String>,
    /// A window in which maintenance is on by itself; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub scheduled_start: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub scheduled_end: Option<Option<DateTime<Utc>>>,
}

impl Validate for MaintenanceRequest {
    fn validate(&self, v: &mut Violations) {
        v.optional_text(
            "maintenanceMessage",
            self.maintenance_message.as_deref(),
            MAX_MESSAGE_LEN,
        );
        match (self.scheduled_start, self.scheduled_end) {
            (Some(Some(start)), Some(Some(end))) if end <= start => {
                v.add("scheduledEnd", "must be after scheduledStart")
            }
            (Some(Some(_)), None | Some(None)) => {
                v.add("scheduledEnd", "give the window's end with its start")
            }
            (None | Some(None), Some(Some(_))) => {
                v.add("scheduledStart", "give the window's start with its end")
            }
            _ => {}
        }
    }
}

fn maintenance_out(s: &CxSettings) -> MaintenanceOut {
    MaintenanceOut {
        maintenance_mode: s.maintenance_mode,
        maintenance_message: s.maintenance_message.clone(),
        scheduled_start: s.maintenance_start,
        scheduled_end: s.maintenance_end,
        active: s.maintenance_period(Utc::now()).is_some(),
    }
}

/// Get the maintenance mode settings.
#[utoipa::path(get, path = "/routing-rules/maintenance", tag = "routing-rules",
    responses((status = 200, body = Data<MaintenanceOut>)))]
async fn get_maintenance(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<MaintenanceOut>>> {
    let (_, s) = load(&state, &auth).await?;
    Ok(Data::new(maintenance_out(&s)))
}

/// Update maintenance mode (admin): on or off now, and/or a scheduled window. While it is in
/// force, customers get the maintenance message once per conversation per period.
#[utoipa::path(put, path = "/routing-rules/maintenance", tag = "routing-rules",
    request_body = MaintenanceRequest, responses((status = 200, body = Data<MaintenanceOut>)))]
async fn put_maintenance(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<MaintenanceRequest>,
) -> ApiResult<Json<Data<MaintenanceOut>>> {
    let now = Utc::now();
    let (mut tx, org_id, mut s) = begin_update(&state, &auth).await?;
    let was_on = s.maintenance_period(now).is_some();
    if let Some(on) = body.maintenance_mode {
        // Switched off by hand inside a window: the rest of the window stays off.
        if !on && was_on {
            s.maintenance_by_window = true;
        }
        s.maintenance_mode = on;
    }
    if let Some(m) = &body.maintenance_message {
        s.maintenance_message = Some(m.trim().to_string());
    }
    let window = (s.maintenance_start, s.maintenance_end);
    if let Some(start) = body.scheduled_start {
        s.maintenance_start = start;
    }
    if let Some(end) = body.scheduled_end {
        s.maintenance_end = end;
    }
    // A window that switched maintenance on takes it away when it is moved or removed.
    let window_moved = window != (s.maintenance_start, s.maintenance_end);
    if window_moved && s.maintenance_by_window && body.maintenance_mode.is_none() {
        s.maintenance_mode = false;
    }
    let s = settings::save(&mut tx, org_id, &s).await?;
    if let (true, Some(start), Some(end)) = (window_moved, s.maintenance_start, s.maintenance_end) {
        maintenance::schedule_window(&mut tx, org_id, start, end).await?;
    }
    // Maintenance over: the conversations it held reach their teams now.
    if was_on && s.maintenance_period(now).is_none() {
        reroute::start_run(&mut tx, org_id, None).await?;
    }
    tx.commit().await?;
    Ok(Data::new(maintenance_out(&s)))
}

// ---- idle agents -------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleAgentOut {
    pub enabled: bool,
    /// Minutes a customer's message may wait unanswered.
    pub threshold_minutes: i32,
    /// Minutes without any action of the agent.
    pub inactivity_minutes: i32,
    /// REASSIGN (to another available member of the team) or UNASSIGN (to the team's queue).
    pub action: String,
}

impl From<IdleSettings> for IdleAgentOut {
    fn from(s: IdleSettings) -> Self {
        Self {
            enabled: s.idle_enabled,
            threshold_minutes: s.idle_threshold_minutes,
            inactivity_minutes: s.idle_inactivity_minutes,
            action: s.idle_action,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleAgentRequest {
    pub enabled: Option<bool>,
    pub threshold_minutes: Option<i32>,
    pub inactivity_minutes: Option<i32>,
    pub action: Option<String>,
}

impl Validate for IdleAgentRequest {
    fn validate(&self, v: &mut Violations) {
        for (field, value) in [
            ("thresholdMinutes", self.threshold_minutes),
            ("inactivityMinutes", self.inactivity_minutes),
        ] {
            if value.is_some_and(|m| !(1..=10_080).contains(&m)) {
                v.add(field, "must be between 1 and 10080 minutes (a week)");
            }
        }
        v.one_of("action", self.action.as_deref(), &["REASSIGN", "UNASSIGN"]);
    }
}

/// Get the idle-agent detection settings.
#[utoipa::path(get, path = "/routing-rules/idle-agent", tag = "routing-rules",
    responses((status = 200, body = Data<IdleAgentOut>)))]
async fn get_idle_agent(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<IdleAgentOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    let mut conn = state.db.acquire().await?;
    Ok(Data::new(
        idle::load_settings(&mut conn, org_id).await?.into(),
    ))
}

/// Update idle-agent detection (admin). The scheduler runs it every minute while enabled.
#[utoipa::path(put, path = "/routing-rules/idle-agent", tag = "routing-rules",
    request_body = IdleAgentRequest, responses((status = 200, body = Data<IdleAgentOut>)))]
async fn put_idle_agent(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<IdleAgentRequest>,
) -> ApiResult<Json<Data<IdleAgentOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let mut s = idle::load_settings(&mut tx, org_id).await?;
    if let Some(on) = body.enabled {
        s.idle_enabled = on;
    }
    if let Some(m) = body.threshold_minutes {
        s.idle_threshold_minutes = m;
    }
    if let Some(m) = body.inactivity_minutes {
        s.idle_inactivity_minutes = m;
    }
    if let Some(a) = &body.action {
        s.idle_action = a.clone();
    }
    let saved = idle::save_settings(&mut tx, org_id, &s).await?;
    tx.commit().await?;
    Ok(Data::new(saved.into()))
}

/// The answer of a manual pass.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleRunOut {
    pub checked: i64,
    /// `[{"conversationId", "fromUserId", "toUserId" (null: the team's queue), "reason"}]`
    #[schema(value_type = Vec<Object>)]
    pub moved: Vec<idle::IdleMove>,
}

/// Run idle-agent detection for the organization now (admin), with its current settings
/// (enabled or not), and answer what it moved.
#[utoipa::path(post, path = "/routing-rules/idle-agent/run", tag = "routing-rules",
    responses((status = 200, body = Data<IdleRunOut>)))]
async fn run_idle_agent(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<IdleRunOut>>> {
    let org_id = auth.authorize(Role::Admin, scopes::ADMIN)?;
    let mut tx = state.db.begin().await?;
    let s = idle::load_settings(&mut tx, org_id).await?;
    let report = idle::run(&mut tx, org_id, &s, Utc::now())
        .await
        .map_err(super::conversation_actions::move_error)?;
    tx.commit().await?;
    let events: Vec<_> = report.moved.iter().map(|m| m.event(org_id)).collect();
    state.events.publish(&events).await;
    Ok(Data::new(IdleRunOut {
        checked: report.checked,
        moved: report.moved,
    }))
}
