//! Firing a tick exactly once across replicas.
//!
//! A replica claims a tick by moving `cron_ticks.last_tick` forward to it, and enqueues the job
//! in the same transaction. The upsert's `WHERE last_tick < tick` serialises replicas on the
//! row: the first commits and enqueues, the others find the tick already taken and do nothing.
//! Because the guard holds the newest tick rather than a set of keys, it survives pruning of the
//! jobs, and a replica that wakes late can never fire an older tick after a newer one.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wharf_shared::jobs::{enqueue_raw, JobsError};

use crate::table::CronEntry;

/// The newest tick fired for `name`, if it ever fired.
pub async fn last_tick(pool: &PgPool, name: &str) -> Result<Option<DateTime<Utc>>, JobsError> {
    Ok(
        sqlx::query_scalar("SELECT last_tick FROM cron_ticks WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?,
    )
}

/// Claims `tick` for `entry` and enqueues its job. `Ok(None)` when another replica already
/// fired this tick (or a later one).
pub async fn fire(
    pool: &PgPool,
    entry: &CronEntry,
    tick: DateTime<Utc>,
) -> Result<Option<i64>, JobsError> {
    let mut tx = pool.begin().await?;
    let claimed: Option<String> = sqlx::query_scalar(
        r#"
        INSERT INTO cron_ticks (name, last_tick) VALUES ($1, $2)
        ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick, updated_at = now()
            WHERE cron_ticks.last_tick < EXCLUDED.last_tick
        RETURNING name
        "#,
    )
    .bind(entry.name)
    .bind(tick)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        tx.rollback().await?;
        return Ok(None);
    }
    let id = enqueue_raw(&mut *tx, entry.job_for(tick)?).await?;
    sqlx::query("UPDATE cron_ticks SET job_id = $2 WHERE name = $1")
        .bind(entry.name)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}
