//! Scheduled maintenance windows. Saving a window enqueues a `cx.maintenance_window` job at
//! its start and one at its end; the scheduler's `maintenance_windows` entry sweeps every
//! minute as a catch-up (a worker that was down, a job lost with a restored backup). Opening
//! switches maintenance on, named by the window's start, so customers get the maintenance
//! message once per conversation for the window. Closing switches it off (unless an admin
//! had switched it on by hand before the window), clears the window, and starts a routing run
//! so the conversations routing held during the window reach their teams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::reroute;
use crate::jobs::{self, JobKind, JobsError, Lane, NewJob};

/// Opens or closes the windows of one organization that are due.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub org_id: Uuid,
}

impl JobKind for MaintenanceWindow {
    const KIND: &'static str = "cx.maintenance_window";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 10;
}

/// Every minute (scheduler): opens and closes every organization's due windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MaintenanceWindowsSweep {}

impl JobKind for MaintenanceWindowsSweep {
    const KIND: &'static str = "cx.maintenance_windows_sweep";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 3;
}

/// Enqueues the jobs that open and close `org_id`'s window (in the caller's transaction).
pub async fn schedule_window(
    conn: &mut PgConnection,
    org_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), JobsError> {
    for at in [start, end] {
        let job = NewJob::new(MaintenanceWindow { org_id })
            .org(org_id)
            .run_at(at)
            .unique_key(format!(
                "cx.maintenance_window:{org_id}:{}",
                at.timestamp_micros()
            ));
        jobs::enqueue(&mut *conn, job).await?;
    }
    Ok(())
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WindowChanges {
    pub opened: Vec<Uuid>,
    pub closed: Vec<Uuid>,
}

/// Opens and closes the windows due at `now`, for `org_id` or (`None`) every organization.
pub async fn apply_windows(
    conn: &mut PgConnection,
    org_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<WindowChanges, JobsError> {
    let opened: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE org_cx_settings SET maintenance_mode = true, maintenance_since = maintenance_start,
                maintenance_by_window = true, updated_at = now()
          WHERE ($1::uuid IS NULL OR org_id = $1) AND NOT maintenance_by_window AND NOT maintenance_mode
            AND maintenance_start <= $2 AND $2 < maintenance_end
          RETURNING org_id",
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let closed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE org_cx_settings SET
                maintenance_mode = CASE WHEN maintenance_by_window THEN false ELSE maintenance_mode END,
                maintenance_start = NULL, maintenance_end = NULL, maintenance_by_window = false,
                updated_at = now()
          WHERE ($1::uuid IS NULL OR org_id = $1) AND maintenance_end <= $2
          RETURNING org_id",
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for org in &closed {
        reroute::start_run(conn, *org, None).await?;
    }
    Ok(WindowChanges { opened, closed })
}
