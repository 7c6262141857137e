//! `inbox.process_webhook`: applies one stored webhook event (ARCHITECTURE.md, "Inbound webhooks").
//!
//! Every entry, change, message and status of the event is applied in ONE transaction, which
//! also marks the event processed, so a crash half-way leaves nothing half-done and the retry
//! starts clean. Re-running a processed event is a no-op, and each step is idempotent on its
//! own as well (wamid dedupe, monotonic statuses, upserts), so an event delivered twice by Meta
//! under a different body has the effect of once.
//!
//! - `messages` → contact upsert (profile name), open conversation upsert, the message (type
//!   payload in `content`), conversation counters and the 24 h window; media messages enqueue
//!   `download_media` in the same transaction.
//! - `statuses` → outbound messages move forward only (sent < delivered < read; failed is
//!   terminal and keeps Meta's error); statuses for unknown wamids are ignored.
//! - account and template fields → recorded, with alerts for what a human must act on.
//!
//! A malformed event (not Meta's envelope) is discarded with the reason; the raw event stays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;
use wharf_shared::{
    accounts::{raise_alert, Alert},
    bot, cx,
    events::Event,
    inbox::jobs::{DownloadMedia, ProcessWebhook},
    jobs::{self, JobOutcome, NewJob},
};

use crate::{deps::WorkerDeps, registry::JobContext};

const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];
const PREVIEW_CHARS: usize = 120;

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    pub(super) source: String,
    pub(super) account_id: Option<Uuid>,
    pub(super) org_id: Option<Uuid>,
    pub(super) payload: Value,
    pub(super) processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Account {
    pub(super) id: Uuid,
    pub(super) org_id: Uuid,
    display_phone: Option<String>,
}

pub async fn run(
    ctx: JobContext,
    deps: WorkerDeps,
    job: ProcessWebhook,
) -> anyhow::Result<JobOutcome> {
    let event: Option<EventRow> = sqlx::query_as(
        "SELECT source, account_id, org_id, payload, processed_at FROM webhook_events WHERE id = $1",
    )
    .bind(job.event_id)
    .fetch_optional(&ctx.pool)
    .await?;
    let Some(event) = event else {
        tracing::warn!(event_id = %job.event_id, "webhook event no longer exists");
        return Ok(JobOutcome::Complete);
    };
    if event.processed_at.is_some() {
        return Ok(JobOutcome::Complete);
    }
    if let Err(reason) = check_envelope(&event.payload) {
        tracing::warn!(event_id = %job.event_id, %reason, "malformed webhook event");
        sqlx::query("UPDATE webhook_events SET error = $2 WHERE id = $1")
            .bind(job.event_id)
            .bind(&reason)
            .execute(&ctx.pool)
            .await?;
        return Ok(JobOutcome::Discard(reason));
    }

    let tx = ctx.pool.begin().await?;
    let mut p = Processor::new(tx, job.event_id, &event);
    for entry in event.payload["entry"].as_array().into_iter().flatten() {
        let waba_id = entry["id"].as_str().unwrap_or_default();
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default();
            let value = &change["value"];
            match field {
                "messages" => p.messages_change(value).await?,
                "message_template_status_update" => p.template_status(waba_id, value).await?,
                "phone_number_quality_update" => p.quality_update(waba_id, value).await?,
                "account_update" => p.account_update(waba_id, value).await?,
                "account_alerts" => p.account_alert(waba_id, value).await?,
                other => tracing::debug!(
                    field = other,
                    "webhook field not handled; kept in the raw event"
                ),
            }
        }
    }
    let Processor {
        mut tx,
        notes,
        events,
        ..
    } = p;
    let error = (!notes.is_empty()).then(|| notes.join("; "));
    sqlx::query("UPDATE webhook_events SET processed_at = now(), error = $2 WHERE id = $1")
        .bind(job.event_id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    deps.events.publish(&events).await;
    Ok(JobOutcome::Complete)
}

/// Meta's envelope: `{"object": "whatsapp_business_account", "entry": [{"changes": [...]}]}`.
pub(super) fn check_envelope(payload: &Value) -> Result<(), String> {
    if payload.get("_raw").is_some() {
        return Err("body is not JSON".into());
    }
    let Some(obj) = payload.as_object() else {
        return Err("body is not a JSON object".into());
    };
    match obj.get("object").and_then(Value::as_str) {
        Some("whatsapp_business_account") => {}
        Some(other) => return Err(format!("unsupported object {other:?}")),
        None => return Err("missing `object`".into()),
    }
    let Some(entries) = obj.get("entry").and_then(Value::as_array) else {
        return Err("missing `entry` array".into());
    };
    for e in entries {
        if !e["changes"].is_array() {
            return Err("an entry has no `changes` array".into());
        }
    }
    Ok(())
}

/// Meta timestamps are strings of unix seconds (sometimes numbers).
pub(super) fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= PREVIEW_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(PREVIEW_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// Meta's error object (`errors[0]`) as stored: `{code, title, message, details, href}`.
pub fn meta_error(e: &Value) -> Value {
    json!({
        "code": e["code"],
        "title": e["title"],
        "message": e["message"],
        "details": e["error_data"]["details"],
        "href": e["href"],
    })
}

/// Inserts only the keys whose values are present.
fn compact(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Value::Object(map)
}

/// What an inbound message becomes: its `content`, media fields and conversation preview.
#[derive(Debug, Default)]
pub struct Parsed {
    pub content: Value,
    pub preview: String,
    pub media: Option<Media>,
    pub error: Option<Value>,
    /// Counts as the customer writing (unread + window); system notices do not.
    pub from_customer: bool,
}

#[derive(Debug, Default)]
pub struct Media {
    pub id: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
}

/// Builds the stored form of one inbound message of any type.
pub fn parse_message(kind: &str, msg: &Value) -> Parsed {
    let obj = &msg[kind];
    let mut parsed = Parsed {
        from_customer: true,
        ..Default::default()
    };
    let (content, preview) = match kind {
        "text" => {
            let body = obj["body"].as_str().unwrap_or_default();
            (json!({"body": body}), truncate(body))
        }
        k if MEDIA_TYPES.contains(&k) => {
            parsed.media = Some(Media {
                id: text(&obj["id"]),
                mime_type: text(&obj["mime_type"]),
                sha256: text(&obj["sha256"]),
                filename: text(&obj["filename"]),
            });
            let caption = obj["caption"].as_str();
            let label = match k {
                "image" => "📷 Photo".to_string(),
                "video" => "🎥 Video".to_string(),
                "audio" if obj["voice"].as_bool() == Some(true) => "🎤 Voice message".to_string(),
                "audio" => "🎵 Audio".to_string(),
                "document" => format!("📄 {}", obj["filename"].as_str().unwrap_or("Document")),
                _ => "Sticker".to_string(),
            };
            let preview = match caption {
                Some(c) if !c.trim().is_empty() => truncate(&format!("{label}: {c}")),
                _ => label,
            };
            let content = compact(vec![
                ("caption", obj["caption"].clone()),
                ("filename", obj["filename"].clone()),
                ("voice", obj["voice"].clone()),
                ("animated", obj["animated"].clone()),
            ]);
            (content, preview)
        }
        "location" => {
            let content = compact(vec![
                ("latitude", obj["latitude"].clone()),
                ("longitude", obj["longitude"].clone()),
                ("name", obj["name"].clone()),
                ("address", obj["address"].clone()),
                ("url", obj["url"].clone()),
            ]);
            let label = obj["name"]
                .as_str()
                .or(obj["address"].as_str())
                .unwrap_or("Location");
            (content, truncate(&format!("📍 {label}")))
        }
        "contacts" => {
            let cards = msg["contacts"].clone();
            let first = cards[0]["name"]["formatted_name"]
                .as_str()
                .unwrap_or("Contact")
                .to_string();
            let n = cards.as_array().map_or(0, Vec::len);
            let preview = if n > 1 {
                format!("👤 {first} and {} more", n - 1)
            } else {
                format!("👤 {first}")
            };
            (json!({"contacts": cards}), truncate(&preview))
        }
        "reaction" => {
            let emoji = obj["emoji"].as_str().unwrap_or_default();
            let preview = if emoji.is_empty() {
                "Removed a reaction".to_string()
            } else {
                format!("Reacted {emoji}")
            };
            (
                json!({"messageId": obj["message_id"], "emoji": emoji}),
                preview,
            )
        }
        "button" => {
            let t = obj["text"].as_str().unwrap_or_default();
            (json!({"payload": obj["payload"], "text": t}), truncate(t))
        }
        "interactive" => {
            let itype = obj["type"].as_str().unwrap_or_default();
            let reply = &obj[itype];
            let content = compact(vec![
                ("type", json!(itype)),
                ("id", reply["id"].clone()),
                ("title", reply["title"].clone()),
                ("description", reply["description"].clone()),
                ("name", reply["name"].clone()),
                ("body", reply["body"].clone()),
                ("responseJson", reply["response_json"].clone()),
            ]);
            let title = reply["title"]
                .as_str()
                .or(reply["body"].as_str())
                .unwrap_or("Interactive reply");
            (content, truncate(title))
        }
        "order" => {
            let content = compact(vec![
                ("catalogId", obj["catalog_id"].clone()),
                ("text", obj["text"].clone()),
                ("productItems", obj["product_items"].clone()),
            ]);
            let n = obj["product_items"].as_array().map_or(0, Vec::len);
            (content, format!("🛒 Order ({n} items)"))
        }
        "system" => {
            parsed.from_customer = false;
            let body = obj["body"].as_str().unwrap_or_default();
            let content = compact(vec![
                ("body", json!(body)),
                ("type", obj["type"].clone()),
                ("waId", obj["wa_id"].clone()),
                ("newWaId", obj["new_wa_id"].clone()),
                ("identity", obj["identity"].clone()),
            ]);
            (content, truncate(body))
        }
        "unsupported" => {
            let error = msg["errors"].get(0).map(meta_error);
            parsed.error = error.clone();
            (
                compact(vec![
                    ("error", error.unwrap_or(Value::Null)),
                    ("unsupported", msg["unsupported"].clone()),
                ]),
                "Unsupported message".to_string(),
            )
        }
        other => (json!({"raw": msg[other]}), format!("[{other}]")),
    };
    parsed.content = content;
    parsed.preview = preview;
    if let Some(ctx) = msg.get("context").filter(|c| c.is_object()) {
        parsed.content["context"] = compact(vec![
            ("from", ctx["from"].clone()),
            ("messageId", ctx["id"].clone()),
            ("forwarded", ctx["forwarded"].clone()),
            ("frequentlyForwarded", ctx["frequently_forwarded"].clone()),
            ("referredProduct", ctx["referred_product"].clone()),
        ]);
    }
    if let Some(r) = msg.get("referral").filter(|r| r.is_object()) {
        parsed.content["referral"] = r.clone();
    }
    parsed
}

pub(super) struct Processor<'a> {
    pub(super) tx: Transaction<'static, Postgres>,
    event_id: Uuid,
    pub(super) event: &'a EventRow,
    /// Problems that did not stop the event (unknown numbers, malformed messages).
    pub(super) notes: Vec<String>,
    /// (phone_number_id, channel org) → account, for the transaction's events.
    numbers: HashMap<(String, Option<Uuid>), Option<Account>>,
    /// Live events, published once the transaction commits.
    pub(super) events: Vec<Event>,
}

impl<'a> Processor<'a> {
    pub(super) fn new(
        tx: Transaction<'static, Postgres>,
        event_id: Uuid,
        event: &'a EventRow,
    ) -> Self {
        Self {
            tx,
            event_id,
            event,
            notes: Vec::new(),
            numbers: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// The account a `messages` change is about: by phone_number_id (within the channel's
    /// organization for channel events; the channel itself as a fallback).
    pub(super) async fn account_for_number(
        &mut self,
        phone_number_id: &str,
    ) -> anyhow::Result<Option<Account>> {
        let channel_org = (self.event.source == "channel")
            .then_some(self.event.org_id)
            .flatten();
        let key = (phone_number_id.to_string(), channel_org);
        if self.event.source != "channel" {
            if let Some(hit) = self.numbers.get(&key) {
                return Ok(hit.clone());
            }
        }
        let mut found: Option<Account> = sqlx::query_as(
            "SELECT id, org_id, display_phone FROM whatsapp_accounts
              WHERE phone_number_id = $1 AND status <> 'DISCONNECTED' AND ($2::uuid IS NULL OR org_id = $2)
              ORDER BY created_at DESC LIMIT 1",
        )
        .bind(phone_number_id)
        .bind(channel_org)
        .fetch_optional(&mut *self.tx)
        .await?;
        if found.is_none() && self.event.source == "channel" {
            if let Some(id) = self.event.account_id {
                found = sqlx::query_as(
                    "SELECT id, org_id, display_phone FROM whatsapp_accounts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
            }
        }
        self.numbers.insert(key, found.clone());
        Ok(found)
    }

    /// The accounts of a WABA (WABA-level fields), within the channel's org for channel events.
    async fn accounts_for_waba(&mut self, waba_id: &str) -> anyhow::Result<Vec<Account>> {
        let channel_org = (self.event.source == "channel")
            .then_some(self.event.org_id)
            .flatten();
        let mut rows: Vec<Account> = sqlx::query_as(
            "SELECT id, org_id, display_phone FROM whatsapp_accounts
              WHERE waba_id = $1 AND status <> 'DISCONNECTED' AND ($2::uuid IS NULL OR org_id = $2)
              ORDER BY created_at",
        )
        .bind(waba_id)
        .bind(channel_org)
        .fetch_all(&mut *self.tx)
        .await?;
        if rows.is_empty() && self.event.source == "channel" {
            if let Some(id) = self.event.account_id {
                rows = sqlx::query_as(
                    "SELECT id, org_id, display_phone FROM whatsapp_accounts WHERE id = $1",
                )
                .bind(id)
                .fetch_all(&mut *self.tx)
                .await?;
            }
        }
        if rows.is_empty() {
            self.notes
                .push(format!("no connected account for WABA {waba_id}"));
        }
        Ok(rows)
    }

    async fn messages_change(&mut self, value: &Value) -> anyhow::Result<()> {
        let Some(number) = value["metadata"]["phone_number_id"].as_str() else {
            self.notes
                .push("a messages change has no metadata.phone_number_id".into());
            return Ok(());
        };
        let Some(account) = self.account_for_number(number).await? else {
            tracing::warn!(
                phone_number_id = number,
                "webhook for a phone number no account has"
            );
            self.notes.push(format!("unknown phone_number_id {number}"));
            return Ok(());
        };
        let profiles: HashMap<&str, &str> = value["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["wa_id"].as_str()?, c["profile"]["name"].as_str()?)))
            .collect();
        for msg in value["messages"].as_array().into_iter().flatten() {
            self.inbound_message(&account, msg, &profiles).await?;
        }
        let statuses: Vec<(&Account, &Value)> = value["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|st| (&account, st))
            .collect();
        self.statuses(&statuses).await?;
        if let Some(errors) = value["errors"].as_array().filter(|e| !e.is_empty()) {
            let first = meta_error(&errors[0]);
            let message = format!(
                "Meta reported an error for this number: {} {}",
                first["code"],
                first["title"].as_str().unwrap_or_default()
            );
            self.notes.push(message.clone());
            raise_alert(
                &mut *self.tx,
                Alert {
                    org_id: account.org_id,
                    account_id: Some(account.id),
                    kind: "webhook_error",
                    severity: "WARNING",
                    title: "WhatsApp reported an error",
                    message: &message,
                    details: json!({"errors": errors}),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn inbound_message(
        &mut self,
        account: &Account,
        msg: &Value,
        profiles: &HashMap<&str, &str>,
    ) -> anyhow::Result<()> {
        let (Some(wamid), Some(from), Some(kind)) = (
            msg["id"].as_str(),
            msg["from"].as_str(),
            msg["type"].as_str(),
        ) else {
            self.notes
                .push("an inbound message lacks id, from or type".into());
            return Ok(());
        };
        let duplicate: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE account_id = $1 AND wamid = $2)",
        )
        .bind(account.id)
        .bind(wamid)
        .fetch_one(&mut *self.tx)
        .await?;
        if duplicate {
            tracing::debug!(wamid, "duplicate inbound message ignored");
            return Ok(());
        }
        // A blocked number's messages never reach the inbox (the raw event stays stored).
        if cx::consent::is_blocked(&mut self.tx, account.org_id, from).await? {
            self.notes
                .push(format!("message {wamid} from a blocked number dropped"));
            return Ok(());
        }
        let at = timestamp(&msg["timestamp"]).unwrap_or_else(Utc::now);
        let parsed = parse_message(kind, msg);

        let contact_id: Uuid = sqlx::query_scalar(
            "INSERT INTO contacts (org_id, wa_id, profile_name) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, wa_id) DO UPDATE
                SET profile_name = COALESCE(EXCLUDED.profile_name, contacts.profile_name)
             RETURNING id",
        )
        .bind(account.org_id)
        .bind(from)
        .bind(profiles.get(from).copied())
        .fetch_one(&mut *self.tx)
        .await?;
        let (conversation_id, created): (Uuid, bool) = sqlx::query_as(
            "INSERT INTO conversations (org_id, account_id, contact_id, last_message_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, contact_id) WHERE status <> 'CLOSED'
                DO UPDATE SET status = conversations.status
             RETURNING id, xmax = 0",
        )
        .bind(account.org_id)
        .bind(account.id)
        .bind(contact_id)
        .bind(at)
        .fetch_one(&mut *self.tx)
        .await?;
        // Campaign messages sent to this customer while no conversation was open join it.
        wharf_shared::campaigns::attach_to_conversation(
            &mut self.tx,
            account.org_id,
            account.id,
            from,
            conversation_id,
        )
        .await?;
        // A new conversation starts with the bot when the organization has one enabled.
        if created
            && bot::conversation_starts_with_bot(&mut self.tx, account.org_id, account.id).await?
        {
            sqlx::query("UPDATE conversations SET status = 'BOT_HANDLING' WHERE id = $1")
                .bind(conversation_id)
                .execute(&mut *self.tx)
                .await?;
        }
        // And gets a category from the bot when the organization asked for that.
        if created {
            bot::reclassify::categorize_new(&mut self.tx, account.org_id, conversation_id).await?;
        }

        // The reacted-to / replied-to message, when we have it.
        let mut content = parsed.content;
        if kind == "reaction" {
            if let Some(target) = content["messageId"].as_str().map(str::to_string) {
                content["reactedMessageId"] =
                    json!(self.message_by_wamid(account.id, &target).await?);
            }
        }
        if let Some(reply_to) = content["context"]["messageId"].as_str().map(str::to_string) {
            content["context"]["replyToId"] =
                json!(self.message_by_wamid(account.id, &reply_to).await?);
        }

        let media = parsed.media.unwrap_or_default();
        let has_media = media.id.is_some();
        let message_id: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO messages (org_id, conversation_id, account_id, direction, wamid, type, content, raw, status,
                                   error, media_id, mime_type, sha256, filename, media_status, created_at)
             VALUES ($1, $2, $3, 'INBOUND', $4, $5, $6, $7, 'received', $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (account_id, wamid) WHERE wamid IS NOT NULL DO NOTHING RETURNING id",
        )
        .bind(account.org_id)
        .bind(conversation_id)
        .bind(account.id)
        .bind(wamid)
        .bind(kind)
        .bind(&content)
        .bind(msg)
        .bind(&parsed.error)
        .bind(&media.id)
        .bind(&media.mime_type)
        .bind(&media.sha256)
        .bind(&media.filename)
        .bind(has_media.then_some("pending"))
        .bind(at)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(message_id) = message_id else {
            return Ok(());
        };

        sqlx::query(
            "UPDATE conversations SET
                unread_count = unread_count + CASE WHEN $3 THEN 1 ELSE 0 END,
                last_inbound_at = CASE WHEN $3 THEN GREATEST(last_inbound_at, $2) ELSE last_inbound_at END,
                last_message_preview = CASE WHEN $2 >= last_message_at THEN $4 ELSE last_message_preview END,
                last_message_direction = CASE WHEN $2 >= last_message_at THEN 'INBOUND' ELSE last_message_direction END,
                last_message_at = GREATEST(last_message_at, $2),
                status = CASE WHEN $3 AND status = 'WAITING_FOR_CUSTOMER'
                              THEN CASE WHEN assigned_to IS NULL THEN 'OPEN' ELSE 'HUMAN_HANDLING' END
                              ELSE status END
              WHERE id = $1",
        )
        .bind(conversation_id)
        .bind(at)
        .bind(parsed.from_customer)
        .bind(&parsed.preview)
        .execute(&mut *self.tx)
        .await?;

        if parsed.from_customer {
            let text = content["body"].as_str().unwrap_or_default();
            // An opt-out or opt-in keyword: its confirmation is the answer.
            let consent = cx::consent::after_customer_message(
                &mut self.tx,
                account.org_id,
                contact_id,
                conversation_id,
                text,
            )
            .await?;
            let bot_handles: bool = sqlx::query_scalar(
                "SELECT status = 'BOT_HANDLING' FROM conversations WHERE id = $1",
            )
            .bind(conversation_id)
            .fetch_one(&mut *self.tx)
            .await?;
            if let Some(change) = consent {
                tracing::info!(%contact_id, ?change, "consent changed by keyword");
            } else if bot_handles {
                // The bot answers at any hour: no off-hours or maintenance reply.
                bot::enqueue_reply(
                    &mut self.tx,
                    account.org_id,
                    conversation_id,
                    message_id,
                    Utc::now(),
                )
                .await?;
            } else {
                // Maintenance or off-hours: the customer hears so once per period.
                let replied = cx::auto_reply::after_customer_message(
                    &mut self.tx,
                    account.org_id,
                    conversation_id,
                    Utc::now(),
                )
                .await?;
                if let Some(kind) = replied {
                    tracing::info!(%conversation_id, ?kind, "automatic reply queued");
                }
            }
            // A new conversation goes to a team and, when one is free, an agent.
            let routed = cx::routing::route_new_conversation(
                &mut self.tx,
                account.org_id,
                conversation_id,
                text,
                Utc::now(),
            )
            .await?;
            if let Some(r) = &routed {
                self.events.push(Event::conversation_assigned(
                    account.org_id,
                    conversation_id,
                    Some(r.team_id),
                    r.assigned_to,
                ));
                tracing::debug!(%conversation_id, team_id = %r.team_id, assigned_to = ?r.assigned_to, "conversation routed");
            }
        }

        if has_media {
            let job = DownloadMedia { message_id };
            let key = job.unique_key();
            jobs::enqueue(
                &mut *self.tx,
                NewJob::new(job).org(account.org_id).unique_key(key),
            )
            .await?;
        }
        self.events.push(Event::message_created(
            account.org_id,
            conversation_id,
            message_id,
            "INBOUND",
        ));
        tracing::debug!(%message_id, wamid, kind, "inbound message stored");
        Ok(())
    }

    async fn message_by_wamid(
        &mut self,
        account_id: Uuid,
        wamid: &str,
    ) -> anyhow::Result<Option<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM messages WHERE account_id = $1 AND wamid = $2")
                .bind(account_id)
                .bind(wamid)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn template_status(&mut self, waba_id: &str, value: &Value) -> anyhow::Result<()> {
        let event = value["event"].as_str().unwrap_or("UNKNOWN").to_uppercase();
        let template_id = match &value["message_template_id"] {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let name = value["message_template_name"].as_str().unwrap_or_default();
        let language = value["message_template_language"]
            .as_str()
            .unwrap_or_default();
        let reason = value["reason"].as_str().filter(|r| *r != "NONE");
        let orgs: Vec<Uuid> = {
            let mut o: Vec<Uuid> = self
                .accounts_for_waba(waba_id)
                .await?
                .iter()
                .map(|a| a.org_id)
                .collect();
            o.sort();
            o.dedup();
            o
        };
        for org_id in orgs {
            sqlx::query(
                "INSERT INTO template_status_events (org_id, waba_id, template_id, template_name, template_language,
                                                     event, reason, payload, webhook_event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(org_id)
            .bind(waba_id)
            .bind(&template_id)
            .bind(name)
            .bind(language)
            .bind(&event)
            .bind(reason)
            .bind(value)
            .bind(self.event_id)
            .execute(&mut *self.tx)
            .await?;
            // The template itself takes the new status at once (shared::templates).
            wharf_shared::templates::apply_status_update(
                &mut self.tx,
                org_id,
                waba_id,
                template_id.as_deref(),
                name,
                language,
                &event,
                reason,
            )
            .await?;
            let severity = match event.as_str() {
                "DISABLED" | "LOCKED" => "CRITICAL",
                "REJECTED" | "PAUSED" | "FLAGGED" | "LIMIT_EXCEEDED" | "PENDING_DELETION" => {
                    "WARNING"
                }
                _ => continue,
            };
            let kind = format!("template_{}:{name}:{language}", event.to_lowercase());
            let title = format!("Template {name} ({language}) {}", event.to_lowercase());
            let message = match reason {
                Some(r) => format!("Meta set template {name} ({language}) to {event}: {r}"),
                None => format!("Meta set template {name} ({language}) to {event}"),
            };
            raise_alert(
                &mut *self.tx,
                Alert {
                    org_id,
                    account_id: None,
                    kind: &kind,
                    severity,
                    title: &title,
                    message: &message,
                    details: value.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn quality_update(&mut self, waba_id: &str, value: &Value) -> anyhow::Result<()> {
        let event = value["event"].as_str().unwrap_or_default().to_uppercase();
        let display = value["display_phone_number"].as_str().unwrap_or_default();
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let accounts = self.accounts_for_waba(waba_id).await?;
        let matching: Vec<Account> = {
            let exact: Vec<Account> = accounts
                .iter()
                .filter(|a| {
                    a.display_phone
                        .as_deref()
                        .is_some_and(|p| !display.is_empty() && digits(p) == digits(display))
                })
                .cloned()
                .collect();
            if exact.is_empty() && accounts.len() == 1 {
                accounts
            } else {
                exact
            }
        };
        if matching.is_empty() {
            self.notes
                .push(format!("quality update for unknown number {display}"));
        }
        let quality = value["new_quality_score"]
            .as_str()
            .or(value["quality_rating"].as_str());
        for a in matching {
            sqlx::query(
                "UPDATE whatsapp_accounts SET
                    messaging_limit = COALESCE($2, messaging_limit),
                    quality_rating = COALESCE($3, quality_rating),
                    throughput_level = CASE WHEN $4 = 'THROUGHPUT_UPGRADE' THEN 'HIGH' ELSE throughput_level END
                  WHERE id = $1",
            )
            .bind(a.id)
            .bind(value["current_limit"].as_str())
            .bind(quality)
            .bind(&event)
            .execute(&mut *self.tx)
            .await?;
            let alert = match event.as_str() {
                "FLAGGED" => Some(("quality_flagged", "WARNING", "Phone number quality flagged",
                    format!("Meta flagged {display} for low quality; its messaging limit will drop unless quality improves"))),
                "DOWNGRADE" => Some(("messaging_limit_downgraded", "WARNING", "Messaging limit downgraded",
                    format!("Meta lowered the messaging limit of {display} to {}", value["current_limit"].as_str().unwrap_or("?")))),
                _ => None,
            };
            if let Some((kind, severity, title, message)) = alert {
                raise_alert(
                    &mut *self.tx,
                    Alert {
                        org_id: a.org_id,
                        account_id: Some(a.id),
                        kind,
                        severity,
                        title,
                        message: &message,
                        details: value.clone(),
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn account_update(&mut self, waba_id: &str, value: &Value) -> anyhow::Result<()> {
        let event = value["event"].as_str().unwrap_or_default().to_uppercase();
        let severe = matches!(
            event.as_str(),
            "ACCOUNT_VIOLATION"
                | "ACCOUNT_RESTRICTION"
                | "DISABLED_UPDATE"
                | "PARTNER_REMOVED"
                | "ACCOUNT_DELETED"
                | "BANNED"
        );
        if !severe {
            tracing::info!(waba_id, event, "account update recorded");
            return Ok(());
        }
        let mut orgs: Vec<Uuid> = self
            .accounts_for_waba(waba_id)
            .await?
            .iter()
            .map(|a| a.org_id)
            .collect();
        orgs.sort();
        orgs.dedup();
        let kind = format!("account_{}", event.to_lowercase());
        let message = format!("Meta reported {event} for WhatsApp Business Account {waba_id}");
        for org_id in orgs {
            raise_alert(
                &mut *self.tx,
                Alert {
                    org_id,
                    account_id: None,
                    kind: &kind,
                    severity: "CRITICAL",
                    title: "WhatsApp Business Account needs attention",
                    message: &message,
                    details: value.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn account_alert(&mut self, waba_id: &str, value: &Value) -> anyhow::Result<()> {
        let severity = match value["alert_severity"]
            .as_str()
            .unwrap_or_default()
            .to_uppercase()
            .as_str()
        {
            "CRITICAL" | "HIGH" => "CRITICAL",
            "WARNING" | "MEDIUM" => "WARNING",
            _ => "INFO",
        };
        let alert_type = value["alert_type"].as_str().unwrap_or("UNKNOWN");
        let kind = format!("meta_alert:{}", alert_type.to_lowercase());
        let description = value["alert_description"]
            .as_str()
            .unwrap_or(alert_type)
            .to_string();
        let mut orgs: Vec<Uuid> = self
            .accounts_for_waba(waba_id)
            .await?
            .iter()
            .map(|a| a.org_id)
            .collect();
        orgs.sort();
        orgs.dedup();
        for org_id in orgs {
            raise_alert(
                &mut *self.tx,
                Alert {
                    org_id,
                    account_id: None,
                    kind: &kind,
                    severity,
                    title: "Alert from Meta",
                    message: &description,
                    details: value.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_checked() {
        assert!(
            check_envelope(&json!({"object": "whatsapp_business_account", "entry": []})).is_ok()
        );
        assert!(check_envelope(&json!({"_raw": "x"})).is_err());
        assert!(check_envelope(&json!([1])).is_err());
        assert!(check_envelope(&json!({"object": "page", "entry": []})).is_err());
        assert!(check_envelope(&json!({"object": "whatsapp_business_account"})).is_err());
        assert!(check_envelope(
            &json!({"object": "whatsapp_business_account", "entry": [{"changes": 1}]})
        )
        .is_err());
    }

    #[test]
    fn types_are_parsed() {
        let p = parse_message("text", &json!({"type": "text", "text": {"body": "hi"}}));
        assert_eq!(p.content, json!({"body": "hi"}));
        let p = parse_message(
            "document",
            &json!({"document": {"id": "9", "filename": "a.pdf", "mime_type": "application/pdf", "sha256": "ab"}}),
        );
        assert_eq!(p.media.unwrap().filename.as_deref(), Some("a.pdf"));
        assert_eq!(p.preview, "📄 a.pdf");
        let p = parse_message(
            "interactive",
            &json!({"interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "One", "description": "d"}}}),
        );
        assert_eq!(
            p.content,
            json!({"type": "list_reply", "id": "r1", "title": "One", "description": "d"})
        );
        let p = parse_message(
            "system",
            &json!({"system": {"body": "changed", "type": "user_changed_number"}}),
        );
        assert!(!p.from_customer);
        let p = parse_message(
            "text",
            &json!({"text": {"body": "re"}, "context": {"from": "1", "id": "wamid.X"}}),
        );
        assert_eq!(p.content["context"]["messageId"], "wamid.X");
    }
}
