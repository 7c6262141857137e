//! Campaigns (ARCHITECTURE.md, "Campaigns"): job payloads, phone normalisation, the template
//! variables a recipient must carry, and the Cloud API body each recipient's message sends.
//!
//! Dispatch in short: `campaigns.dispatch` (lane `bulk`, one per running campaign) claims
//! `pending` recipients with `FOR UPDATE SKIP LOCKED` in slices sized to its sends in flight,
//! creates their `queued` messages in one transaction (in the recipient's open conversation
//! when there is one, else in none until the customer writes: [`attach_to_conversation`]) and
//! sends them itself within the number's limits; whatever does not go through at once (an
//! error, a wait, a paused campaign) becomes that message's `outbound.send_message` job.
//! `campaigns.launch_due` (scheduler, every few seconds) starts scheduled campaigns.

pub mod analytics;
pub mod audience;
pub mod control;
pub mod create;
pub mod meta_costs;
pub mod pricing;

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    jobs::{self, backoff, JobKind, Lane, NewJob},
    outbound::SendMessage,
    templates::rules,
};

/// Puts the campaign messages that `account_id` sent to `wa_id` without a conversation (the
/// customer had none open then) into `conversation_id`, the conversation just opened with
/// that customer: the thread then shows what the customer answers. Returns how many moved.
/// Called wherever a conversation is opened (a customer's message, a send to a phone number).
pub async fn attach_to_conversation(
    conn: &mut PgConnection,
    org_id: Uuid,
    account_id: Uuid,
    wa_id: &str,
    conversation_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE messages m SET conversation_id = $4
           FROM campaign_recipients r
          WHERE r.org_id = $1 AND r.phone = $3 AND r.message_id IS NOT NULL AND m.id = r.message_id
            AND m.account_id = $2 AND m.conversation_id IS NULL",
    )
    .bind(org_id)
    .bind(account_id)
    .bind(wa_id)
    .bind(conversation_id)
    .execute(conn)
    .await?;
    Ok(moved.rows_affected())
}

/// Priority of campaign sends in the `outbound` lane: interactive sends (0) run first.
pub const SEND_PRIORITY: i16 = 10;

/// Runs a campaign's dispatch loop while it is RUNNING (one unfinished job per campaign).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchCampaign {
    pub campaign_id: Uuid,
}

impl JobKind for DispatchCampaign {
    const KIND: &'static str = "campaigns.dispatch";
    const LANE: Lane = Lane::Bulk;
    const MAX_ATTEMPTS: i32 = 50;

    fn backoff(attempt: i32) -> Duration {
        backoff::exponential_jitter(attempt, Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// Launches one SCHEDULED campaign at its time: enqueued with `run_at` = `scheduled_at` when
/// the campaign is created, cancelled with the campaign ([`unschedule_launch`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchScheduled {
    pub campaign_id: Uuid,
}

impl JobKind for LaunchScheduled {
    const KIND: &'static str = "campaigns.launch_scheduled";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 10;
}

fn launch_key(campaign_id: Uuid) -> String {
    format!("campaigns.launch:{campaign_id}")
}

/// Enqueues the launch of a campaign scheduled for `at` (in the caller's transaction).
pub async fn schedule_launch(
    conn: &mut PgConnection,
    org_id: Uuid,
    campaign_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<i64>, jobs::JobsError> {
    let job = NewJob::new(LaunchScheduled { campaign_id })
        .org(org_id)
        .run_at(at)
        .unique_key(launch_key(campaign_id));
    jobs::enqueue(&mut *conn, job).await
}

/// Cancels the waiting launch jobs of `campaign_ids` (cancelled or launched by hand).
pub async fn unschedule_launch(
    conn: &mut PgConnection,
    campaign_ids: &[Uuid],
) -> Result<u64, jobs::JobsError> {
    let keys: Vec<String> = campaign_ids.iter().map(|id| launch_key(*id)).collect();
    let done = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now()
          WHERE unique_key = ANY($1) AND state IN ('available', 'scheduled', 'retryable')",
    )
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// What [`launch_scheduled`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ScheduledLaunch {
    Launched,
    /// Still SCHEDULED, for a later time.
    NotYet(DateTime<Utc>),
    /// Launched, cancelled or deleted meanwhile: nothing to do.
    Gone,
}

/// Starts one SCHEDULED campaign whose time has come: a conditional UPDATE, so two workers
/// (or the catch-up sweep, [`launch_due`]) never start it twice.
pub async fn launch_scheduled(
    conn: &mut PgConnection,
    campaign_id: Uuid,
) -> Result<ScheduledLaunch, jobs::JobsError> {
    let started: Option<Uuid> = sqlx::query_scalar(
        "UPDATE campaigns SET status = 'RUNNING', launched_at = now(), paused_reason = NULL
          WHERE id = $1 AND status = 'SCHEDULED' AND scheduled_at <= now() AND deleted_at IS NULL
          RETURNING org_id",
    )
    .bind(campaign_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(org_id) = started {
        enqueue_dispatch(conn, org_id, campaign_id).await?;
        return Ok(ScheduledLaunch::Launched);
    }
    let later: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT scheduled_at FROM campaigns WHERE id = $1 AND status = 'SCHEDULED' AND deleted_at IS NULL",
    )
    .bind(campaign_id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    Ok(later.map_or(ScheduledLaunch::Gone, ScheduledLaunch::NotYet))
}

/// Launches every SCHEDULED campaign whose time has come: the scheduler's catch-up sweep
/// behind the per-campaign launch jobs (a launch job removed by hand, or a campaign scheduled
/// before those jobs existed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LaunchDue {}

impl JobKind for LaunchDue {
    const KIND: &'static str = "campaigns.launch_due";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 3;
}

/// The send job of a campaign message: below interactive sends in the lane, and at most one
/// unfinished per message (the same key as every other send of it).
pub fn send_job(message_id: Uuid, org_id: Uuid, account_id: Uuid) -> NewJob<SendMessage> {
    NewJob::new(SendMessage {
        message_id,
        account_id,
        trigger: "campaign".into(),
    })
    .org(org_id)
    .priority(SEND_PRIORITY)
    .unique_key(format!("send:{message_id}"))
}

pub fn dispatch_key(campaign_id: Uuid) -> String {
    format!("campaigns.dispatch:{campaign_id}")
}

/// Enqueues the campaign's dispatcher unless one is already waiting or running.
pub async fn enqueue_dispatch(
    conn: &mut PgConnection,
    org_id: Uuid,
    campaign_id: Uuid,
) -> Result<Option<i64>, jobs::JobsError> {
    let job = NewJob::new(DispatchCampaign { campaign_id })
        .org(org_id)
        .unique_key(dispatch_key(campaign_id));
    jobs::enqueue(&mut *conn, job).await
}

/// Starts every SCHEDULED campaign that is due: one conditional UPDATE, so two schedulers (or
/// a restart) never start one twice. Returns the started (org, campaign) ids.
pub async fn launch_due(conn: &mut PgConnection) -> Result<Vec<(Uuid, Uuid)>, jobs::JobsError> {
    let started: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE campaigns SET status = 'RUNNING', launched_at = now(), paused_reason = NULL
          WHERE status = 'SCHEDULED' AND scheduled_at <= now() AND deleted_at IS NULL
          RETURNING org_id, id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (org_id, id) in &started {
        enqueue_dispatch(conn, *org_id, *id).await?;
    }
    Ok(started)
}

/// Normalises a phone number to E.164 digits (no '+'): strips spaces, dashes, dots,
/// parentheses and a leading `+` or `00`; 8–15 digits.
pub fn normalize_phone(raw: &str) -> Result<String, &'static str> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("phone is empty");
    }
    let mut s: String = t
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{a0}' | '\t'))
        .collect();
    if let Some(rest) = s.strip_prefix('+') {
        s = rest.to_string();
    } else if let Some(rest) = s.strip_prefix("00") {
        s = rest.to_string();
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "phone must contain only digits, spaces, dashes, parentheses and a leading + or 00",
        );
    }
    if s.starts_with('0') {
        return Err("phone must start with a country calling code (E.164)");
    }
    if !(8..=15).contains(&s.len()) {
        return Err("phone must have 8 to 15 digits (E.164)");
    }
    Ok(s)
}

/// What a template needs from each recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVars {
    pub named: bool,
    /// Body placeholders ("1".."n", or names), distinct, in order.
    pub body: Vec<String>,
    /// Text header placeholders.
    pub header: Vec<String>,
    /// IMAGE | VIDEO | DOCUMENT header: needs a media link per campaign.
    pub header_media: Option<String>,
    /// A button needs per-recipient parameters (not supported by campaigns yet).
    pub dynamic_buttons: bool,
}

fn distinct(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

impl TemplateVars {
    pub fn of(components: &Value, parameter_format: &str) -> Self {
        let named = parameter_format.eq_ignore_ascii_case("NAMED");
        let text = |kind: &str| {
            rules::component(components, kind)
                .and_then(|c| c["text"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        let body = distinct(rules::placeholders(&text("BODY")));
        let (header, header_media) = match rules::header_format(components).as_deref() {
            None => (Vec::new(), None),
            Some("TEXT") => (distinct(rules::placeholders(&text("HEADER"))), None),
            Some(other) => (Vec::new(), Some(other.to_string())),
        };
        let dynamic_buttons = rules::component(components, "BUTTONS")
            .and_then(|b| b["buttons"].as_array())
            .is_some_and(|bs| {
                bs.iter().any(|b| {
                    match b["type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_uppercase()
                        .as_str()
                    {
                        "URL" => {
                            !rules::placeholders(b["url"].as_str().unwrap_or_default()).is_empty()
                        }
                        "OTP" | "COPY_CODE" => true,
                        _ => false,
                    }
                })
            });
        Self {
            named,
            body,
            header,
            header_media,
            dynamic_buttons,
        }
    }

    /// The key a header variable is given in a recipient's variables: positional header
    /// placeholders are `header_1`, named ones keep their name.
    pub fn header_key(&self, var: &str) -> String {
        if self.named {
            var.to_string()
        } else {
            format!("header_{var}")
        }
    }

    /// Every key a recipient must give, in order.
    pub fn required_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.header.iter().map(|v| self.header_key(v)).collect();
        for b in &self.body {
            if !keys.contains(b) {
                keys.push(b.clone());
            }
        }
        keys
    }

    /// Picks and checks a recipient's variables: `given` maps keys to values (positional
    /// body variables "1".."n"). Returns the variables kept, or why the row is rejected.
    pub fn check(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        for key in self.required_keys() {
            match given.get(&key).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => {
                    if v.len() > 1024 {
                        return Err(format!("variable {key} is longer than 1024 characters"));
                    }
                    if v.contains('\n') && self.header.iter().any(|h| self.header_key(h) == key) {
                        return Err(format!("header variable {key} must not contain new lines"));
                    }
                    out.insert(key, v.to_string());
                }
                _ => missing.push(key),
            }
        }
        if !missing.is_empty() {
            let expected = self.required_keys().join(", ");
            return Err(format!(
                "missing template variable(s) {} (the template expects: {expected})",
                missing.join(", ")
            ));
        }
        Ok(out)
    }
}

/// The template part of a recipient's Cloud API body.
pub fn template_object(
    name: &str,
    language: &str,
    vars: &TemplateVars,
    header_media_link: Option<&str>,
    values: &Map<String, Value>,
) -> Value {
    let param = |key: &str, placeholder: &str| {
        let mut p = json!({"type": "text", "text": values.get(key).and_then(Value::as_str).unwrap_or_default()});
        if vars.named {
            p["parameter_name"] = json!(placeholder);
        }
        p
    };
    let mut components = Vec::new();
    if !vars.header.is_empty() {
        let params: Vec<Value> = vars
            .header
            .iter()
            .map(|h| param(&vars.header_key(h), h))
            .collect();
        components.push(json!({"type": "header", "parameters": params}));
    } else if let (Some(format), Some(link)) = (&vars.header_media, header_media_link) {
        let kind = format.to_lowercase();
        components.push(
            json!({"type": "header", "parameters": [{"type": kind, kind.clone(): {"link": link}}]}),
        );
    }
    if !vars.body.is_empty() {
        let params: Vec<Value> = vars.body.iter().map(|b| param(b, b)).collect();
        components.push(json!({"type": "body", "parameters": params}));
    }
    let mut o = json!({"name": name, "language": {"code": language}});
    if !components.is_empty() {
        o["components"] = Value::Array(components);
    }
    o
}

/// The full Cloud API body of a campaign message.
pub fn request_body(message_id: Uuid, to: &str, template: &Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "biz_opaque_callback_data": format!("{message_id}:0"),
        "template": template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(normalize_phone("+1 (415) 555-0100").unwrap(), "14155550100");
        assert_eq!(
            normalize_phone("0044 20 7946 0958").unwrap(),
            "442079460958"
        );
        assert!(normalize_phone("12345").is_err());
        assert!(normalize_phone("abc").is_err());
        assert!(normalize_phone("+1234567890123456").is_err());
    }

    #[test]
    fn variables() {
        let c = json!([{"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"}, {"type": "BODY", "text": "{{1}} and {{2}}"}]);
        let v = TemplateVars::of(&c, "POSITIONAL");
        assert_eq!(v.required_keys(), vec!["header_1", "1", "2"]);
        let mut given = BTreeMap::new();
        given.insert("header_1".to_string(), "Ana".to_string());
        given.insert("1".to_string(), "a".to_string());
        assert!(v.check(&given).unwrap_err().contains('2'));
        given.insert("2".to_string(), "b".to_string());
        let kept = v.check(&given).unwrap();
        let map: Map<String, Value> = kept.into_iter().map(|(k, v)| (k, json!(v))).collect();
        let t = template_object("t", "en_US", &v, None, &map);
        assert_eq!(t["components"][1]["parameters"][1]["text"], "b");
        assert_eq!(t["components"][0]["parameters"][0]["text"], "Ana");
    }
}
