//! Idle-agent detection. A conversation is stuck when its assigned agent has left the
//! customer's oldest unanswered message waiting longer than the threshold and has done nothing
//! (sent a message, moved a conversation, changed presence) for the inactivity period. Each
//! stuck conversation is moved on — REASSIGN: to another available member of its team, or the
//! team's queue when nobody is; UNASSIGN: to the queue — and the idle agent is set AWAY so
//! nothing else is assigned to them. Every move is recorded on the conversation.
//!
//! The scheduler's `idle_agents` entry enqueues `cx.idle_agents_sweep` every minute, which
//! enqueues one `cx.idle_agents` job per organization that enabled detection (unique per
//! organization and sweep); `POST /routing-rules/idle-agent/run` runs [`run`] at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    lifecycle::{self, Move, MoveError},
    presence, routing,
};
use crate::jobs::{self, JobKind, Lane, NewJob};

/// The settings of one organization.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct IdleSettings {
    pub idle_enabled: bool,
    pub idle_threshold_minutes: i32,
    pub idle_inactivity_minutes: i32,
    /// REASSIGN or UNASSIGN.
    pub idle_action: String,
}

impl Default for IdleSettings {
    fn default() -> Self {
        Self {
            idle_enabled: false,
            idle_threshold_minutes: 10,
            idle_inactivity_minutes: 30,
            idle_action: "REASSIGN".into(),
        }
    }
}

pub async fn load_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<IdleSettings, sqlx::Error> {
    Ok(sqlx::query_as(
        "SELECT idle_enabled, idle_threshold_minutes, idle_inactivity_minutes, idle_action
           FROM org_cx_settings WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(conn)
    .await?
    .unwrap_or_default())
}

pub async fn save_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
    s: &IdleSettings,
) -> Result<IdleSettings, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO org_cx_settings (org_id, idle_enabled, idle_threshold_minutes, idle_inactivity_minutes, idle_action)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE SET idle_enabled = EXCLUDED.idle_enabled,
                idle_threshold_minutes = EXCLUDED.idle_threshold_minutes,
                idle_inactivity_minutes = EXCLUDED.idle_inactivity_minutes,
                idle_action = EXCLUDED.idle_action, updated_at = now()
         RETURNING idle_enabled, idle_threshold_minutes, idle_inactivity_minutes, idle_action",
    )
    .bind(org_id)
    .bind(s.idle_enabled)
    .bind(s.idle_threshold_minutes)
    .bind(s.idle_inactivity_minutes)
    .bind(&s.idle_action)
    .fetch_one(conn)
    .await
}

/// One conversation moved on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleMove {
    pub conversation_id: Uuid,
    pub from_user_id: Uuid,
    /// The member it went to; `None`: the team's queue.
    pub to_user_id: Option<Uuid>,
    pub reason: String,
}

impl IdleMove {
    /// What live screens hear of this move.
    pub fn event(&self, org_id: Uuid) -> crate::events::Event {
        crate::events::Event::conversation_assigned(
            org_id,
            self.conversation_id,
            None,
            self.to_user_id,
        )
    }
}

/// What one pass found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleReport {
    /// Assigned open conversations looked at.
    pub checked: i64,
    pub moved: Vec<IdleMove>,
}

/// One pass over `org_id`'s assigned open conversations at `now` with settings `s` (whether
/// or not detection is enabled: the caller decides).
pub async fn run(
    conn: &mut PgConnection,
    org_id: Uuid,
    s: &IdleSettings,
    now: DateTime<Utc>,
) -> Result<IdleReport, MoveError> {
    let checked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversations WHERE org_id = $1 AND assigned_to IS NOT NULL AND status <> 'CLOSED'",
    )
    .bind(org_id)
    .fetch_one(&mut *conn)
    .await?;
    // First the agents with open conversations who did nothing (presence change, message,
    // move) for the inactivity period — one indexed look-up each; then, only for their
    // conversations, the oldest customer message after the last outbound one.
    let stuck: Vec<(Uuid, Uuid, Option<Uuid>)> = sqlx::query_as(
        "WITH agents AS (
             SELECT u.id FROM users u
              WHERE u.org_id = $1
                AND u.id IN (SELECT assigned_to FROM conversations
                              WHERE org_id = $1 AND assigned_to IS NOT NULL AND status <> 'CLOSED')
                AND GREATEST(u.status_changed_at,
                             (SELECT max(created_at) FROM messages WHERE sent_by = u.id),
                             (SELECT max(at) FROM conversation_events WHERE actor_id = u.id))
                    < $2 - make_interval(mins => $4)
         ), waiting AS (
             SELECT c.id, c.assigned_to, c.team_id,
                    (SELECT min(m.created_at) FROM messages m
                      WHERE m.conversation_id = c.id AND m.direction = 'INBOUND'
                        AND m.created_at > COALESCE((SELECT max(o.created_at) FROM messages o
                                                      WHERE o.conversation_id = c.id AND o.direction = 'OUTBOUND'),
                                                    '-infinity')) AS waiting_since
               FROM conversations c JOIN agents a ON a.id = c.assigned_to
              WHERE c.org_id = $1 AND c.status <> 'CLOSED'
         )
         SELECT id, assigned_to, team_id FROM waiting
          WHERE waiting_since < $2 - make_interval(mins => $3)
          ORDER BY waiting_since
          LIMIT 1000",
    )
    .bind(org_id)
    .bind(now)
    .bind(s.idle_threshold_minutes)
    .bind(s.idle_inactivity_minutes)
    .fetch_all(&mut *conn)
    .await?;
    let mut report = IdleReport {
        checked,
        moved: Vec::new(),
    };
    for (conversation_id, agent, team_id) in stuck {
        // Idle: nothing more is assigned to them.
        presence::set_presence(conn, org_id, agent, "AWAY", now).await?;
        let reason = format!(
            "idle agent: customer unanswered for over {} min, agent inactive for over {} min",
            s.idle_threshold_minutes, s.idle_inactivity_minutes
        );
        lifecycle::apply(
            conn,
            org_id,
            conversation_id,
            Move::Unassign,
            None,
            Some(&reason),
        )
        .await?;
        let to_user_id = match (s.idle_action.as_str(), team_id) {
            ("REASSIGN", Some(team)) => {
                routing::assign_in_team(conn, org_id, conversation_id, team, now, &reason).await?
            }
            _ => None,
        };
        report.moved.push(IdleMove {
            conversation_id,
            from_user_id: agent,
            to_user_id,
            reason,
        });
    }
    Ok(report)
}

/// Every minute (scheduler): enqueues [`IdleAgents`] for each organization that enabled it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleAgentsSweep {}

impl JobKind for IdleAgentsSweep {
    const KIND: &'static str = "cx.idle_agents_sweep";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 3;
}

/// One organization's pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleAgents {
    pub org_id: Uuid,
}

impl JobKind for IdleAgents {
    const KIND: &'static str = "cx.idle_agents";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 3;
}

/// Enqueues one [`IdleAgents`] per enabled organization for the sweep job `sweep_id` (one
/// sweep per scheduler tick, however many schedulers run), unique per organization and sweep,
/// so a retried sweep never doubles a pass.
pub async fn enqueue_sweep(
    conn: &mut PgConnection,
    sweep_id: i64,
) -> Result<usize, jobs::JobsError> {
    let orgs: Vec<Uuid> =
        sqlx::query_scalar("SELECT org_id FROM org_cx_settings WHERE idle_enabled")
            .fetch_all(&mut *conn)
            .await?;
    let batch: Vec<NewJob<IdleAgents>> = orgs
        .iter()
        .map(|org_id| {
            NewJob::new(IdleAgents { org_id: *org_id })
                .org(*org_id)
                .unique_key(format!("cx.idle_agents:{org_id}:{sweep_id}"))
        })
        .collect();
    Ok(jobs::enqueue_many(&mut *conn, batch).await?.len())
}
