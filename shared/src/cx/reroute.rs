//! Routing again: one conversation on request (`POST /conversations/{id}/re-route`), or every
//! open unassigned conversation of an organization as a job (`POST /routing-rules/run-now`),
//! after rules changed or a maintenance window held routing. The rules see the customer's
//! latest message. A conversation whose agent is not in the team it now belongs to goes back
//! to that team's queue and to one of its available members; every move is recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    lifecycle::{self, Move, MoveError},
    routing::{assign_in_team, choose_team, Facts, Routed},
};
use crate::{
    events::{Event, EventPublisher},
    jobs::{self, JobKind, JobsError, Lane, NewJob},
};

/// What re-routing one conversation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerouted {
    pub routed: Routed,
    pub previous_team_id: Option<Uuid>,
    /// Why this team (the rule's name, or the default team).
    pub reason: String,
}

impl Rerouted {
    pub fn team_changed(&self) -> bool {
        self.previous_team_id != Some(self.routed.team_id)
    }
}

#[derive(sqlx::FromRow)]
struct Current {
    status: String,
    team_id: Option<Uuid>,
    assigned_to: Option<Uuid>,
    wa_id: String,
    category: Option<String>,
    contact_category: Option<String>,
    account_id: Uuid,
    last_text: Option<String>,
}

/// Routes conversation `id` of `org_id` again. `Ok(None)`: no rule matched and there is no
/// default team, so nothing changed. A CLOSED conversation cannot be re-routed.
pub async fn reroute(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<Rerouted>, MoveError> {
    let current: Option<Current> = sqlx::query_as(
        "SELECT c.status, c.team_id, c.assigned_to, k.wa_id, c.category,
                k.category AS contact_category, c.account_id,
                (SELECT m.content->>'body' FROM messages m
                  WHERE m.conversation_id = c.id AND m.direction = 'INBOUND'
                  ORDER BY m.seq DESC LIMIT 1) AS last_text
           FROM conversations c JOIN contacts k ON k.id = c.contact_id
          WHERE c.id = $1 AND c.org_id = $2 FOR UPDATE OF c",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    let c = current.ok_or(MoveError::NotFound)?;
    if c.status == "CLOSED" {
        return Err(MoveError::NotAllowed {
            status: c.status,
            verb: "re-routed",
        });
    }
    let facts = Facts {
        message: c.last_text.unwrap_or_default(),
        category: c.category,
        contact_category: c.contact_category,
        phone: c.wa_id,
        account_id: c.account_id,
    };
    let Some((team_id, reason)) = choose_team(conn, org_id, &facts).await? else {
        return Ok(None);
    };
    if c.team_id != Some(team_id) {
        sqlx::query("UPDATE conversations SET team_id = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(team_id)
            .execute(&mut *conn)
            .await?;
    }
    let mut assigned_to = c.assigned_to;
    if let Some(agent) = c.assigned_to {
        let in_team: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2)",
        )
        .bind(team_id)
        .bind(agent)
        .fetch_one(&mut *conn)
        .await?;
        if !in_team {
            let why = format!("re-routed by {reason}");
            lifecycle::apply(conn, org_id, id, Move::Unassign, actor, Some(&why)).await?;
            assigned_to = None;
        }
    }
    // Only an OPEN conversation waits for an agent; the bot keeps its own.
    if assigned_to.is_none() && matches!(c.status.as_str(), "OPEN" | "HUMAN_HANDLING") {
        assigned_to = assign_in_team(conn, org_id, id, team_id, now, &reason).await?;
    }
    Ok(Some(Rerouted {
        routed: Routed {
            team_id,
            assigned_to,
        },
        previous_team_id: c.team_id,
        reason,
    }))
}

/// `routing.run_now`: one retroactive run ([`run`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutingRun {
    pub run_id: Uuid,
    pub org_id: Uuid,
}

impl JobKind for RoutingRun {
    const KIND: &'static str = "routing.run_now";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 3;
}

/// Records a run for `org_id` and enqueues its job (in the caller's transaction); returns
/// the run's id.
pub async fn start_run(
    conn: &mut PgConnection,
    org_id: Uuid,
    requested_by: Option<Uuid>,
) -> Result<Uuid, JobsError> {
    let run_id = record_run(conn, org_id, requested_by, "ROUTING").await?;
    jobs::enqueue(
        &mut *conn,
        NewJob::new(RoutingRun { run_id, org_id }).org(org_id),
    )
    .await?;
    Ok(run_id)
}

/// A new `routing_runs` row of `kind` (ROUTING, RECLASSIFY), PENDING until its job starts.
pub async fn record_run(
    conn: &mut PgConnection,
    org_id: Uuid,
    requested_by: Option<Uuid>,
    kind: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO routing_runs (org_id, requested_by, kind) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(org_id)
    .bind(requested_by)
    .bind(kind)
    .fetch_one(conn)
    .await
}

/// Conversations re-routed per transaction: progress shows, and locks stay short.
const BATCH: i64 = 100;

/// Re-routes every open, unassigned conversation of the run's organization, oldest first,
/// in batches, recording progress and the result on the `routing_runs` row. A retried run
/// starts over; re-routing a conversation twice gives the same result.
pub async fn run(
    pool: &PgPool,
    job: &RoutingRun,
    events: &EventPublisher,
) -> Result<(), MoveError> {
    sqlx::query(
        "UPDATE routing_runs SET status = 'RUNNING', started_at = now(), checked = 0, rerouted = 0,
                assigned = 0, error = NULL
          WHERE id = $1",
    )
    .bind(job.run_id)
    .execute(pool)
    .await?;
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let batch: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(
            "SELECT created_at, id FROM conversations
              WHERE org_id = $1 AND status = 'OPEN' AND assigned_to IS NULL
                AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
              ORDER BY created_at, id LIMIT $4",
        )
        .bind(job.org_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = batch.last().copied() else {
            break;
        };
        after = Some(last);
        let mut tx = pool.begin().await?;
        let (mut rerouted, mut assigned, mut moved) = (0, 0, Vec::new());
        for (_, id) in &batch {
            if let Some(r) = reroute(&mut tx, job.org_id, *id, None, Utc::now()).await? {
                rerouted += i32::from(r.team_changed());
                assigned += i32::from(r.routed.assigned_to.is_some());
                if r.team_changed() || r.routed.assigned_to.is_some() {
                    moved.push(Event::conversation_assigned(
                        job.org_id,
                        *id,
                        Some(r.routed.team_id),
                        r.routed.assigned_to,
                    ));
                }
            }
        }
        sqlx::query(
            "UPDATE routing_runs SET checked = checked + $2, rerouted = rerouted + $3,
                    assigned = assigned + $4 WHERE id = $1",
        )
        .bind(job.run_id)
        .bind(batch.len() as i32)
        .bind(rerouted)
        .bind(assigned)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        events.publish(&moved).await;
    }
    sqlx::query("UPDATE routing_runs SET status = 'COMPLETED', finished_at = now() WHERE id = $1")
        .bind(job.run_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks a run failed for good (its job ran out of attempts).
pub async fn fail(pool: &PgPool, run_id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE routing_runs SET status = 'FAILED', error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(run_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
