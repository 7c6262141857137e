//! How the bot is doing, computed live from what the platform records: the reply pipeline's
//! `bot_traces`, the model calls in `llm_usage`, the conversations' moves in
//! `conversation_events`, and people's ratings in `bot_feedback`. Nothing is pre-aggregated:
//! every figure is one query over the window asked for, so it is never stale.
//!
//! A **bot session** is a conversation's stint with the bot. It starts when the conversation
//! enters BOT_HANDLING: created so (its first recorded move leaves BOT_HANDLING, or it has none
//! and is still BOT_HANDLING) or a `RETURNED_TO_BOT` move. It ends at the first later move that
//! leaves BOT_HANDLING. Its closure:
//! - `RESOLVED_CONFIRMED`: that move closed it (resolved while the bot had it);
//! - `ESCALATED`: any other move out: the bot's `HANDED_OFF`, an agent's `TAKEOVER`, an
//!   assignment — a person (or the queue) took it;
//! - `ABANDONED`: no move out yet, the bot answered, and the customer has not written for more
//!   than 24 hours since its last answer (the session "ends" at that answer);
//! - none (`NULL`): still running.
//!
//! A session belongs to the window when it started in it.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A message is one of the bot's answers: the reply flow queues them with the request hash
/// `bot` (and the idempotency key `bot:<customer message id>`); API sends carry a real hash.
pub const BOT_ANSWER: &str = "m.direction = 'OUTBOUND' AND m.request_hash = 'bot'";

/// How long a customer may stay silent after the bot's answer before the session counts as
/// abandoned.
pub const ABANDONED_AFTER_HOURS: i64 = 24;

pub const CLOSURE_TYPES: [&str; 3] = ["ESCALATED", "RESOLVED_CONFIRMED", "ABANDONED"];

/// The start of a window of `days` days ending now.
pub fn since(days: i64) -> DateTime<Utc> {
    Utc::now() - Duration::days(days)
}

/// Every bot session of organization `$1` started at or after `$2`, as the CTE `sessions`
/// (conversation_id, started_at, start_event, end_event, ended_at, exit_reason, bot_turns,
/// closure_type). See the module documentation for the rules.
fn sessions_cte() -> String {
    format!(
        "WITH starts AS (
             SELECT c.id AS conversation_id, c.created_at AS started_at, 0::bigint AS start_event
               FROM conversations c
              WHERE c.org_id = $1 AND c.created_at >= $2
                AND COALESCE((SELECT e.from_status FROM conversation_events e
                               WHERE e.conversation_id = c.id ORDER BY e.id LIMIT 1), c.status) = 'BOT_HANDLING'
             UNION ALL
             SELECT e.conversation_id, e.at, e.id
               FROM conversation_events e
              WHERE e.org_id = $1 AND e.at >= $2 AND e.to_status = 'BOT_HANDLING'
                AND e.from_status IS DISTINCT FROM 'BOT_HANDLING'
         ),
         spans AS (
             SELECT s.*, x.type AS end_event, x.at AS exit_at, x.reason AS exit_reason, x.to_status AS exit_status
               FROM starts s
               LEFT JOIN LATERAL (
                   SELECT e.type, e.at, e.reason, e.to_status FROM conversation_events e
                    WHERE e.conversation_id = s.conversation_id AND e.id > s.start_event
                      AND e.from_status = 'BOT_HANDLING' AND e.to_status IS DISTINCT FROM 'BOT_HANDLING'
                    ORDER BY e.id LIMIT 1) x ON true
         ),
         answered AS (
             SELECT p.*, a.bot_turns, a.last_answer_at,
                    p.exit_at IS NULL AND a.last_answer_at < now() - interval '{ABANDONED_AFTER_HOURS} hours'
                      AND NOT EXISTS (SELECT 1 FROM messages i WHERE i.conversation_id = p.conversation_id
                                         AND i.direction = 'INBOUND' AND i.seq > a.last_answer_seq) AS silent
               FROM spans p
               CROSS JOIN LATERAL (
                   SELECT count(*) AS bot_turns, max(m.created_at) AS last_answer_at, max(m.seq) AS last_answer_seq
                     FROM messages m
                    WHERE m.conversation_id = p.conversation_id AND {BOT_ANSWER}
                      AND m.created_at >= p.started_at AND (p.exit_at IS NULL OR m.created_at <= p.exit_at)) a
         ),
         sessions AS (
             SELECT conversation_id, started_at, start_event, end_event, exit_reason, bot_turns,
                    CASE WHEN exit_at IS NOT NULL THEN exit_at WHEN silent THEN last_answer_at END AS ended_at,
                    CASE WHEN exit_status = 'CLOSED' THEN 'RESOLVED_CONFIRMED'
                         WHEN exit_at IS NOT NULL THEN 'ESCALATED'
                         WHEN silent THEN 'ABANDONED' END AS closure_type
               FROM answered
         )"
    )
}

/// One bot session (see the module documentation).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub conversation_id: Uuid,
    pub wa_id: String,
    pub contact_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `ESCALATED`, `RESOLVED_CONFIRMED`, `ABANDONED`; `None`: still running.
    pub closure_type: Option<String>,
    /// The move that ended it (`HANDED_OFF`, `TAKEOVER`, `ASSIGNED`, `RESOLVED`...).
    pub end_event: Option<String>,
    /// The bot's answers during the session.
    pub bot_turns: i64,
    /// Escalated sessions: the reason recorded with the move (the bot's handoff reason, the
    /// same as its trace's).
    pub handoff_reason: Option<String>,
}

/// A page of the sessions started since `since`, newest first, with the total; `closure`
/// keeps only that closure type (running sessions are listed only without it).
pub async fn sessions(
    conn: &mut PgConnection,
    org_id: Uuid,
    since: DateTime<Utc>,
    closure: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Session>, i64), sqlx::Error> {
    let filter = "($3::text IS NULL OR s.closure_type = $3)";
    let total: i64 = sqlx::query_scalar(&format!(
        "{} SELECT count(*) FROM sessions s WHERE {filter}",
        sessions_cte()
    ))
    .bind(org_id)
    .bind(since)
    .bind(closure)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as(&format!(
        "{} SELECT s.conversation_id, k.wa_id, COALESCE(k.name, k.profile_name) AS contact_name,
                   s.started_at, s.ended_at, s.closure_type, s.end_event, s.bot_turns,
                   CASE WHEN s.closure_type = 'ESCALATED' THEN s.exit_reason END AS handoff_reason
              FROM sessions s
              JOIN conversations c ON c.id = s.conversation_id
              JOIN contacts k ON k.id = c.contact_id
             WHERE {filter}
             ORDER BY s.started_at DESC, s.conversation_id, s.start_event
             LIMIT $4 OFFSET $5",
        sessions_cte()
    ))
    .bind(org_id)
    .bind(since)
    .bind(closure)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, total))
}

/// The bot's quality over a window.
#[derive(Debug, Clone, Default)]
pub struct Quality {
    /// Runs of the reply flow that queued an answer (model or intent).
    pub replies_answered: i64,
    /// Runs that handed the conversation over, by reason (most frequent first).
    pub handoffs: i64,
    pub handoffs_by_reason: Vec<(String, i64)>,
    /// Bot sessions started in the window, and how those that ended, ended.
    pub sessions: i64,
    pub sessions_running: i64,
    pub sessions_escalated: i64,
    pub sessions_resolved: i64,
    pub sessions_abandoned: i64,
    /// Escalated / ended sessions (`None`: none ended).
    pub handoff_rate: Option<f64>,
    /// Resolved while the bot had them (no person involved) / ended sessions.
    pub resolution_rate: Option<f64>,
    /// Ratings given in the window.
    pub feedback_count: i64,
    pub average_rating: Option<f64>,
    /// Whole reply-flow time of answered runs, in milliseconds.
    pub latency_p50_ms: Option<i32>,
    pub latency_p95_ms: Option<i32>,
    /// Model calls made for replies (tests and the sandbox excluded).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

pub async fn quality(
    conn: &mut PgConnection,
    org_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Quality, sqlx::Error> {
    let mut q = Quality::default();
    (q.replies_answered, q.handoffs, q.latency_p50_ms, q.latency_p95_ms) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'answered'), count(*) FILTER (WHERE outcome = 'handoff'),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'answered'),
                percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'answered')
           FROM bot_traces WHERE org_id = $1 AND created_at >= $2",
    )
    .bind(org_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    q.handoffs_by_reason = sqlx::query_as(
        "SELECT COALESCE(detail->>'reason', 'unknown') AS reason, count(*) FROM bot_traces
          WHERE org_id = $1 AND created_at >= $2 AND outcome = 'handoff'
          GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .bind(org_id)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    (
        q.sessions,
        q.sessions_running,
        q.sessions_escalated,
        q.sessions_resolved,
        q.sessions_abandoned,
    ) = sqlx::query_as(&format!(
        "{} SELECT count(*), count(*) FILTER (WHERE closure_type IS NULL),
                   count(*) FILTER (WHERE closure_type = 'ESCALATED'),
                   count(*) FILTER (WHERE closure_type = 'RESOLVED_CONFIRMED'),
                   count(*) FILTER (WHERE closure_type = 'ABANDONED')
              FROM sessions",
        sessions_cte()
    ))
    .bind(org_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let ended = q.sessions - q.sessions_running;
    let rate = |n: i64| (ended > 0).then(|| n as f64 / ended as f64);
    q.handoff_rate = rate(q.sessions_escalated);
    q.resolution_rate = rate(q.sessions_resolved);
    (q.feedback_count, q.average_rating) = sqlx::query_as(
        "SELECT count(*), avg(rating)::float8 FROM bot_feedback WHERE org_id = $1 AND created_at >= $2",
    )
    .bind(org_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    (q.input_tokens, q.output_tokens, q.cost_usd) = sqlx::query_as(
        "SELECT COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint,
                COALESCE(sum(cost_usd), 0)::float8
           FROM llm_usage WHERE org_id = $1 AND created_at >= $2 AND purpose = 'reply'",
    )
    .bind(org_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(q)
}

/// The reply pipeline over a window, from its traces.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct TraceStats {
    pub traces: i64,
    /// Whole reply-flow time of every run, in milliseconds.
    pub latency_p50_ms: Option<i32>,
    pub latency_p95_ms: Option<i32>,
    pub latency_p99_ms: Option<i32>,
    /// Runs that called the model, and the provider's time for the successful attempt.
    pub model_calls: i64,
    pub provider_latency_p50_ms: Option<i32>,
    pub provider_latency_p95_ms: Option<i32>,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// A trace as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TraceSummary {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub outcome: String,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// How many traces of the window to list.
pub const NEWEST_TRACES: i64 = 50;

/// Totals, the count of each outcome (most frequent first) and the newest traces.
pub async fn trace_stats(
    conn: &mut PgConnection,
    org_id: Uuid,
    since: DateTime<Utc>,
) -> Result<(TraceStats, Vec<(String, i64)>, Vec<TraceSummary>), sqlx::Error> {
    // `call` is the provider call of a trace that asked the model (see the reply flow).
    let stats: TraceStats = sqlx::query_as(
        "SELECT count(*) AS traces,
                percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
                percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms,
                count(provider_ms) AS model_calls,
                percentile_disc(0.5) WITHIN GROUP (ORDER BY provider_ms) AS provider_latency_p50_ms,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY provider_ms) AS provider_latency_p95_ms,
                COALESCE(sum((call->>'inputTokens')::bigint), 0)::bigint AS input_tokens,
                COALESCE(sum((call->>'outputTokens')::bigint), 0)::bigint AS output_tokens
           FROM (SELECT latency_ms, detail->'call' AS call,
                        (detail->'call'->>'providerLatencyMs')::int AS provider_ms
                   FROM bot_traces WHERE org_id = $1 AND created_at >= $2) t",
    )
    .bind(org_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let by_outcome = sqlx::query_as(
        "SELECT outcome, count(*) FROM bot_traces WHERE org_id = $1 AND created_at >= $2
          GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .bind(org_id)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let newest = sqlx::query_as(
        "SELECT id, conversation_id, outcome, latency_ms, created_at FROM bot_traces
          WHERE org_id = $1 AND created_at >= $2 ORDER BY created_at DESC, id LIMIT $3",
    )
    .bind(org_id)
    .bind(since)
    .bind(NEWEST_TRACES)
    .fetch_all(&mut *conn)
    .await?;
    Ok((stats, by_outcome, newest))
}

/// One trace with everything it recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Trace {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub bot_config_id: Option<Uuid>,
    pub outcome: String,
    pub latency_ms: Option<i32>,
    pub detail: sqlx::types::Json<Value>,
    pub created_at: DateTime<Utc>,
}

pub async fn trace(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Trace>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, conversation_id, bot_config_id, outcome, latency_ms, detail, created_at
           FROM bot_traces WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}
