//! Routing: an inbound conversation goes to the team of the first active rule that matches
//! (by priority), else to the organization's default team, and then to an available member of
//! that team. Available: ONLINE, active, under their `max_conversations`, within the team's
//! working hours; the least loaded first, and among equals the one assigned longest ago
//! (round-robin). Nobody available: the conversation waits unassigned in the team's queue and
//! is picked up when a member comes online ([`pick_up_waiting`]). Maintenance holds routing.
//!
//! Assignments within a team are serialised by a transaction-scoped advisory lock on the team,
//! so two messages at the same instant never push an agent over capacity or assign twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    hours::{parse_timezone, BusinessHours, Slot},
    lifecycle::{self, Move, MoveError},
    settings,
};

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `message`, `category` (the conversation's, set by an agent or the bot's classifier),
    /// `contactCategory`, `phone` or `whatsappAccountId`.
    pub field: String,
    /// `contains`, `equals`, `startsWith`, `regex` or `in`.
    pub operator: String,
    /// A string, or a list of strings for `in`.
    pub value: Value,
}

pub const FIELDS: [&str; 5] = [
    "message",
    "category",
    "contactCategory",
    "phone",
    "whatsappAccountId",
];
pub const OPERATORS: [&str; 5] = ["contains", "equals", "startsWith", "regex", "in"];

/// What is wrong with a condition: (the condition's field at fault, the message).
pub fn check_condition(c: &Condition) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if !FIELDS.contains(&c.field.as_str()) {
        problems.push(("field", format!("must be one of {}", FIELDS.join(", "))));
    }
    if !OPERATORS.contains(&c.operator.as_str()) {
        problems.push((
            "operator",
            format!("must be one of {}", OPERATORS.join(", ")),
        ));
        return problems;
    }
    match (&c.operator[..], &c.value) {
        ("in", Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {}
        ("in", _) => problems.push(("value", "must be a non-empty list of strings".into())),
        (_, Value::String(s)) if s.trim().is_empty() => {
            problems.push(("value", "must not be empty".into()))
        }
        ("regex", Value::String(s)) => {
            if let Err(e) = regex::RegexBuilder::new(s).size_limit(1 << 20).build() {
                problems.push(("value", format!("invalid regular expression: {e}")));
            }
        }
        (_, Value::String(_)) => {}
        _ => problems.push(("value", "must be a string".into())),
    }
    problems
}

/// What a rule is matched against.
#[derive(Debug, Clone)]
pub struct Facts {
    pub message: String,
    /// The conversation's category.
    pub category: Option<String>,
    pub contact_category: Option<String>,
    pub phone: String,
    pub account_id: Uuid,
}

impl Facts {
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "message" => Some(self.message.clone()),
            "category" => self.category.clone(),
            "contactCategory" => self.contact_category.clone(),
            "phone" => Some(self.phone.clone()),
            "whatsappAccountId" => Some(self.account_id.to_string()),
            _ => None,
        }
    }
}

/// Text comparisons ignore case; a phone's leading `+` is ignored.
fn condition_matches(c: &Condition, facts: &Facts) -> bool {
    let Some(actual) = facts.field(&c.field) else {
        return false;
    };
    let norm = |s: &str| {
        let s = s.trim().to_lowercase();
        if c.field == "phone" {
            s.trim_start_matches('+').to_string()
        } else {
            s
        }
    };
    let actual_n = norm(&actual);
    match (&c.operator[..], &c.value) {
        ("contains", Value::String(v)) => actual_n.contains(&norm(v)),
        ("equals", Value::String(v)) => actual_n == norm(v),
        ("startsWith", Value::String(v)) => actual_n.starts_with(&norm(v)),
        ("regex", Value::String(v)) => regex::RegexBuilder::new(v)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .is_ok_and(|re| re.is_match(&actual)),
        ("in", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|v| norm(v) == actual_n),
        _ => false,
    }
}

/// `ALL`: every condition; `ANY`: at least one.
pub fn rule_matches(match_type: &str, conditions: &[Condition], facts: &Facts) -> bool {
    if match_type == "ALL" {
        conditions.iter().all(|c| condition_matches(c, facts))
    } else {
        conditions.iter().any(|c| condition_matches(c, facts))
    }
}

/// How a conversation was routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub team_id: Uuid,
    /// The member it was assigned to; `None`: waiting in the team's queue.
    pub assigned_to: Option<Uuid>,
}

/// Routes a conversation that has no team and no agent yet, on the customer's `message`.
pub async fn route_new_conversation(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    message: &str,
    now: DateTime<Utc>,
) -> Result<Option<Routed>, MoveError> {
    #[derive(sqlx::FromRow)]
    struct Unrouted {
        org_id: Uuid,
        status: String,
        team_id: Option<Uuid>,
        assigned_to: Option<Uuid>,
        wa_id: String,
        category: Option<String>,
        contact_category: Option<String>,
        account_id: Uuid,
    }
    let row: Option<Unrouted> = sqlx::query_as(
        // By id alone (tenant and status are checked below): with them in the condition a
        // planner without statistics yet (a new organization's first minute) may take the
        // (org_id, status) index and read every open conversation of the organization.
        "SELECT c.org_id, c.status, c.team_id, c.assigned_to, k.wa_id, c.category,
                k.category AS contact_category, c.account_id
           FROM conversations c JOIN contacts k ON k.id = c.contact_id
          WHERE c.id = $1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Unrouted {
        org_id: owner,
        status,
        team_id: None,
        assigned_to: None,
        wa_id: phone,
        category,
        contact_category,
        account_id,
    }) = row
    else {
        return Ok(None);
    };
    if owner != org_id || status != "OPEN" {
        return Ok(None);
    }
    let s = settings::load(conn, org_id).await?;
    if s.maintenance_period(now).is_some() {
        return Ok(None);
    }
    let facts = Facts {
        message: message.to_string(),
        category,
        contact_category,
        phone,
        account_id,
    };
    let Some((team_id, reason)) = choose_team(conn, org_id, &facts).await? else {
        return Ok(None);
    };
    sqlx::query("UPDATE conversations SET team_id = $2 WHERE id = $1")
        .bind(conversation_id)
        .bind(team_id)
        .execute(&mut *conn)
        .await?;
    let assigned_to = assign_in_team(conn, org_id, conversation_id, team_id, now, &reason).await?;
    Ok(Some(Routed {
        team_id,
        assigned_to,
    }))
}

/// The team a conversation with these facts goes to, and why: the first active rule that
/// matches, by priority, else the organization's default team.
pub async fn choose_team(
    conn: &mut PgConnection,
    org_id: Uuid,
    facts: &Facts,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    let rules: Vec<(String, Uuid, String, sqlx::types::Json<Vec<Condition>>)> = sqlx::query_as(
        "SELECT r.name, r.team_id, r.match_type, r.conditions
           FROM routing_rules r JOIN teams t ON t.id = r.team_id AND t.is_active
          WHERE r.org_id = $1 AND r.is_active ORDER BY r.priority, r.created_at, r.id",
    )
    .bind(org_id)
    .fetch_all(&mut *conn)
    .await?;
    let chosen = rules
        .iter()
        .find(|(_, _, match_type, conditions)| rule_matches(match_type, &conditions.0, facts))
        .map(|(name, team, _, _)| (*team, format!("routing rule \"{name}\"")));
    Ok(match chosen {
        Some(c) => Some(c),
        None => default_team(conn, org_id)
            .await?
            .map(|t| (t, "default team".to_string())),
    })
}

/// The organization's active default team.
pub async fn default_team(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.default_team_id FROM org_cx_settings s JOIN teams t ON t.id = s.default_team_id AND t.is_active
          WHERE s.org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// A team's working hours as stored (`team_schedules`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamSchedule {
    pub timezone: String,
    pub is_enabled: bool,
    pub slots: sqlx::types::Json<Vec<Slot>>,
    pub holidays: sqlx::types::Json<Vec<chrono::NaiveDate>>,
}

/// The working hours of `team_id`, if it has any.
pub async fn team_schedule(
    conn: &mut PgConnection,
    team_id: Uuid,
) -> Result<Option<TeamSchedule>, sqlx::Error> {
    sqlx::query_as(
        "SELECT timezone, is_enabled, slots, holidays FROM team_schedules WHERE team_id = $1",
    )
    .bind(team_id)
    .fetch_optional(conn)
    .await
}

/// Whether `team_id`'s working hours (if it has enabled ones) include `now`.
pub async fn team_open(
    conn: &mut PgConnection,
    team_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(match team_schedule(conn, team_id).await? {
        Some(s) if s.is_enabled => parse_timezone(&s.timezone).is_none_or(|timezone| {
            BusinessHours {
                timezone,
                slots: s.slots.0,
                holidays: s.holidays.0,
            }
            .is_open(now)
        }),
        _ => true,
    })
}

/// Assigns the conversation to the team's available member, if any (see the module
/// documentation). Returns who got it.
pub async fn assign_in_team(
    conn: &mut PgConnection,
    org_id: Uuid,
    conversation_id: Uuid,
    team_id: Uuid,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<Option<Uuid>, MoveError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('assign:' || $1::text))")
        .bind(team_id)
        .execute(&mut *conn)
        .await?;
    if !team_open(conn, team_id, now).await? {
        return Ok(None);
    }
    // Driven by the team's members (a team holds only its organization's users, so no
    // `org_id` test: with one, a planner without statistics yet walks every user of the
    // organization and probes the team for each).
    let agent: Option<Uuid> = sqlx::query_scalar(
        "SELECT u.id FROM team_members m JOIN users u ON u.id = m.user_id
           CROSS JOIN LATERAL (SELECT count(*) AS open FROM conversations c
                                WHERE c.assigned_to = u.id AND c.status <> 'CLOSED') load
          WHERE m.team_id = $1 AND u.status = 'ONLINE' AND u.is_active AND u.deleted_at IS NULL
            AND (u.max_conversations IS NULL OR load.open < u.max_conversations)
          ORDER BY load.open, u.last_assigned_at NULLS FIRST, u.id
          LIMIT 1",
    )
    .bind(team_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(agent) = agent else {
        return Ok(None);
    };
    lifecycle::apply(
        conn,
        org_id,
        conversation_id,
        Move::Assign {
            user_id: agent,
            team_id: None,
        },
        None,
        Some(reason),
    )
    .await?;
    sqlx::query("UPDATE users SET last_assigned_at = now() WHERE id = $1")
        .bind(agent)
        .execute(&mut *conn)
        .await?;
    Ok(Some(agent))
}

/// Hands the conversations waiting in `user_id`'s teams to available members (the user just
/// came online, or got capacity back), oldest first. Returns the conversations assigned.
pub async fn pick_up_waiting(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, MoveError> {
    let waiting: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT c.id, c.team_id FROM conversations c
          WHERE c.org_id = $1 AND c.assigned_to IS NULL AND c.status = 'OPEN'
            AND c.team_id IN (SELECT team_id FROM team_members WHERE user_id = $2)
          ORDER BY c.created_at LIMIT 200",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut assigned = Vec::new();
    for (conversation_id, team_id) in waiting {
        if assign_in_team(
            conn,
            org_id,
            conversation_id,
            team_id,
            now,
            "an agent became available",
        )
        .await?
        .is_some()
        {
            assigned.push(conversation_id);
        }
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cond(field: &str, operator: &str, value: Value) -> Condition {
        Condition {
            field: field.into(),
            operator: operator.into(),
            value,
        }
    }

    #[test]
    fn each_condition_kind_matches_as_documented() {
        let account = Uuid::new_v4();
        let facts = Facts {
            message: "My ORDER #42 has not arrived".into(),
            category: Some("billing".into()),
            contact_category: Some("vip".into()),
            phone: "34600111222".into(),
            account_id: account,
        };
        let yes = [
            cond("message", "contains", json!("order #42")),
            cond("message", "regex", json!(r"#\d+")),
            cond("contactCategory", "equals", json!("VIP")),
            cond("category", "in", json!(["Billing", "sales"])),
            cond("phone", "startsWith", json!("+34")),
            cond("phone", "in", json!(["+34600111222", "1"])),
            cond("whatsappAccountId", "equals", json!(account.to_string())),
        ];
        for c in &yes {
            assert!(
                rule_matches("ALL", std::slice::from_ref(c), &facts),
                "{c:?}"
            );
        }
        let no = cond("phone", "startsWith", json!("44"));
        assert!(rule_matches("ALL", &yes, &facts));
        assert!(!rule_matches("ALL", &[yes[0].clone(), no.clone()], &facts));
        assert!(rule_matches("ANY", &[no.clone(), yes[1].clone()], &facts));
        assert!(!rule_matches("ANY", &[no], &facts));
    }

    #[test]
    fn conditions_are_checked() {
        assert!(check_condition(&cond("message", "contains", json!("x"))).is_empty());
        let bad = check_condition(&cond("mood", "regex", json!("(")));
        assert_eq!(
            bad.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            ["field", "value"]
        );
        assert_eq!(
            check_condition(&cond("phone", "in", json!([])))[0].0,
            "value"
        );
        assert_eq!(
            check_condition(&cond("phone", "near", json!("1")))[0].0,
            "operator"
        );
    }
}
