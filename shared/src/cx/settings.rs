//! An organization's CX settings (`org_cx_settings`): business hours, the off-hours reply and
//! maintenance mode. An organization without a row has everything off.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::hours::{parse_timezone, BusinessHours, Slot};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CxSettings {
    pub timezone: String,
    pub business_hours_enabled: bool,
    pub business_slots: sqlx::types::Json<Vec<Slot>>,
    pub holidays: sqlx::types::Json<Vec<NaiveDate>>,
    pub off_hours_auto_reply: bool,
    pub off_hours_message: Option<String>,
    pub maintenance_mode: bool,
    pub maintenance_since: Option<DateTime<Utc>>,
    pub maintenance_message: Option<String>,
    pub maintenance_start: Option<DateTime<Utc>>,
    pub maintenance_end: Option<DateTime<Utc>>,
    /// The current window was opened (by its job or the sweep): it no longer switches
    /// maintenance on by itself, so switching it off by hand holds.
    pub maintenance_by_window: bool,
}

impl Default for CxSettings {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            business_hours_enabled: false,
            business_slots: sqlx::types::Json(Vec::new()),
            holidays: sqlx::types::Json(Vec::new()),
            off_hours_auto_reply: false,
            off_hours_message: None,
            maintenance_mode: false,
            maintenance_since: None,
            maintenance_message: None,
            maintenance_start: None,
            maintenance_end: None,
            maintenance_by_window: false,
        }
    }
}

pub const COLUMNS: &str = "timezone, business_hours_enabled, business_slots, holidays, off_hours_auto_reply,
    off_hours_message, maintenance_mode, maintenance_since, maintenance_message, maintenance_start, maintenance_end,
    maintenance_by_window";

/// The settings of `org_id` (defaults when it never saved any).
pub async fn load(conn: &mut PgConnection, org_id: Uuid) -> Result<CxSettings, sqlx::Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM org_cx_settings WHERE org_id = $1"
    ))
    .bind(org_id)
    .fetch_optional(conn)
    .await?
    .unwrap_or_default())
}

/// Saves every field of `s` for `org_id` (`maintenance_since` moves when the mode is switched
/// on).
pub async fn save(
    conn: &mut PgConnection,
    org_id: Uuid,
    s: &CxSettings,
) -> Result<CxSettings, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO org_cx_settings (org_id, timezone, business_hours_enabled, business_slots, holidays,
                off_hours_auto_reply, off_hours_message, maintenance_mode, maintenance_since, maintenance_message,
                maintenance_start, maintenance_end, maintenance_by_window)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 THEN now() END, $9, $10, $11, $12)
         ON CONFLICT (org_id) DO UPDATE SET
            timezone = EXCLUDED.timezone, business_hours_enabled = EXCLUDED.business_hours_enabled,
            business_slots = EXCLUDED.business_slots, holidays = EXCLUDED.holidays,
            off_hours_auto_reply = EXCLUDED.off_hours_auto_reply, off_hours_message = EXCLUDED.off_hours_message,
            maintenance_since = CASE WHEN EXCLUDED.maintenance_mode AND NOT org_cx_settings.maintenance_mode
                                     THEN now() ELSE org_cx_settings.maintenance_since END,
            maintenance_mode = EXCLUDED.maintenance_mode, maintenance_message = EXCLUDED.maintenance_message,
            maintenance_start = EXCLUDED.maintenance_start, maintenance_end = EXCLUDED.maintenance_end,
            -- A new window has not been opened yet.
            maintenance_by_window = CASE
                WHEN EXCLUDED.maintenance_start IS DISTINCT FROM org_cx_settings.maintenance_start
                  OR EXCLUDED.maintenance_end IS DISTINCT FROM org_cx_settings.maintenance_end THEN false
                ELSE EXCLUDED.maintenance_by_window END,
            updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(&s.timezone)
    .bind(s.business_hours_enabled)
    .bind(&s.business_slots)
    .bind(&s.holidays)
    .bind(s.off_hours_auto_reply)
    .bind(&s.off_hours_message)
    .bind(s.maintenance_mode)
    .bind(&s.maintenance_message)
    .bind(s.maintenance_start)
    .bind(s.maintenance_end)
    .bind(s.maintenance_by_window)
    .fetch_one(conn)
    .await
}

impl CxSettings {
    /// The schedule when business hours are enabled (and valid).
    pub fn business_hours(&self) -> Option<BusinessHours> {
        if !self.business_hours_enabled {
            return None;
        }
        Some(BusinessHours {
            timezone: parse_timezone(&self.timezone)?,
            slots: self.business_slots.0.clone(),
            holidays: self.holidays.0.clone(),
        })
    }

    /// The maintenance period in force at `now`, named by when it began: switched on (by hand
    /// or by its window's job), or a window that contains `now` and that its job has not
    /// reached yet (a late job never lets a customer through unanswered).
    pub fn maintenance_period(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.maintenance_mode {
            return Some(self.maintenance_since.unwrap_or(now));
        }
        match (self.maintenance_start, self.maintenance_end) {
            (Some(start), Some(end))
                if start <= now && now < end && !self.maintenance_by_window =>
            {
                Some(start)
            }
            _ => None,
        }
    }
}
