//! Queue gauges for Prometheus, computed from the database at scrape time.
//!
//! Worker processes record what they see (latencies, run times, failures) with the `metrics`
//! crate; what the queue *holds* is a fact of the database, so the API's `/metrics` renders it
//! from one query per scrape instead of every worker guessing.

use std::fmt::Write;

use super::{admin, JobsError};

/// Prometheus text (exposition format 0.0.4) for `wharf_jobs{lane,state}`,
/// `wharf_jobs_oldest_pending_seconds{lane}`, `wharf_jobs_finished_last_minute{lane}` and
/// `wharf_job_lane_paused{lane}`. Append it to the process's own metrics.
pub async fn render_queue_gauges(pool: &sqlx::PgPool) -> Result<String, JobsError> {
    let stats = admin::queue_stats(pool, None).await?;
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP wharf_jobs Jobs in the queue by lane and state."
    );
    let _ = writeln!(out, "# TYPE wharf_jobs gauge");
    for s in &stats {
        for (state, n) in &s.counts {
            let _ = writeln!(
                out,
                "wharf_jobs{{lane=\"{}\",state=\"{state}\"}} {n}",
                s.lane
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP wharf_jobs_oldest_pending_seconds Age of the oldest due job not yet started."
    );
    let _ = writeln!(out, "# TYPE wharf_jobs_oldest_pending_seconds gauge");
    for s in &stats {
        let age = s.oldest_pending_age_secs.unwrap_or(0.0);
        let _ = writeln!(
            out,
            "wharf_jobs_oldest_pending_seconds{{lane=\"{}\"}} {age}",
            s.lane
        );
    }
    let _ = writeln!(
        out,
        "# HELP wharf_jobs_finished_last_minute Jobs finished in the last minute."
    );
    let _ = writeln!(out, "# TYPE wharf_jobs_finished_last_minute gauge");
    for s in &stats {
        let _ = writeln!(
            out,
            "wharf_jobs_finished_last_minute{{lane=\"{}\"}} {}",
            s.lane, s.finished_last_minute
        );
    }
    let _ = writeln!(
        out,
        "# HELP wharf_job_lane_paused 1 when the lane is paused cluster-wide."
    );
    let _ = writeln!(out, "# TYPE wharf_job_lane_paused gauge");
    for s in &stats {
        let _ = writeln!(
            out,
            "wharf_job_lane_paused{{lane=\"{}\"}} {}",
            s.lane,
            u8::from(s.paused)
        );
    }
    Ok(out)
}
