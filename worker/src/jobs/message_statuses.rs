//! Meta's message statuses (`sent`, `delivered`, `read`, `failed`), applied a set at a time:
//! one statement for the wamid adoptions and one per round of updates, however many statuses
//! a webhook event (`process_webhook`) or an ingestion batch (`process_statuses`) holds. One
//! statement per status was most of the status path's database time (ARCHITECTURE.md,
//! "Inbound webhooks").
//!
//! The rules are those of a single status, applied in arrival order per message: the status
//! only moves forward (a `failed` message stays failed), each step's timestamp is filled in
//! once and never shows a time before the step before it, and a send whose response we never
//! recorded is settled by the status (Meta echoes our `biz_opaque_callback_data`). A message
//! with several statuses in the set gets them in rounds (its first status in the first round,
//! its second in the next...), so each round's statement updates a message at most once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::events::Event;

use super::process_webhook::{meta_error, timestamp, Account, Processor};

/// One tracked status, parsed.
struct Status<'v> {
    account_id: Uuid,
    org_id: Uuid,
    wamid: &'v str,
    status: &'v str,
    at: DateTime<Utc>,
    error: Option<String>,
}

impl Processor<'_> {
    /// Applies `statuses` (each with the account its number belongs to) in the order given.
    pub(super) async fn statuses(&mut self, statuses: &[(&Account, &Value)]) -> anyhow::Result<()> {
        let mut parsed = Vec::with_capacity(statuses.len());
        // (message id, account, wamid, opaque) of the statuses that may settle an unrecorded send.
        let mut adoptions: (Vec<Uuid>, Vec<Uuid>, Vec<&str>, Vec<&str>) = Default::default();
        for (account, st) in statuses {
            let (Some(wamid), Some(status)) = (st["id"].as_str(), st["status"].as_str()) else {
                self.notes.push("a status lacks id or status".into());
                continue;
            };
            if !matches!(status, "sent" | "delivered" | "read" | "failed") {
                tracing::debug!(wamid, status, "status not tracked");
                continue;
            }
            // The opaque value names the message and its send generation: an old generation's
            // late status (before a dashboard retry) carries another value and is not adopted.
            if let Some(opaque) = st["biz_opaque_callback_data"].as_str() {
                if let Some(id) = opaque
                    .split(':')
                    .next()
                    .and_then(|id| Uuid::parse_str(id).ok())
                {
                    adoptions.0.push(id);
                    adoptions.1.push(account.id);
                    adoptions.2.push(wamid);
                    adoptions.3.push(opaque);
                }
            }
            parsed.push(Status {
                account_id: account.id,
                org_id: account.org_id,
                wamid,
                status,
                at: timestamp(&st["timestamp"]).unwrap_or_else(Utc::now),
                error: (status == "failed").then(|| {
                    st["errors"]
                        .get(0)
                        .map(meta_error)
                        .unwrap_or_else(|| json!({"title": "Failed"}))
                        .to_string()
                }),
            });
        }
        if !adoptions.0.is_empty() {
            sqlx::query(
                "UPDATE messages m SET wamid = u.wamid, hold_reason = NULL
                   FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(id, account_id, wamid, opaque)
                  WHERE m.id = u.id AND m.account_id = u.account_id AND m.wamid IS NULL AND m.direction = 'OUTBOUND'
                    AND m.status = 'queued' AND m.request->>'biz_opaque_callback_data' = u.opaque",
            )
            .bind(&adoptions.0)
            .bind(&adoptions.1)
            .bind(&adoptions.2)
            .bind(&adoptions.3)
            .execute(&mut *self.tx)
            .await?;
        }
        for round in rounds(parsed) {
            self.apply_round(&round).await?;
        }
        Ok(())
    }

    /// One status per message: forward only, each step's time filled in once.
    async fn apply_round(&mut self, round: &[Status<'_>]) -> anyhow::Result<()> {
        let updated: Vec<(Uuid, Option<Uuid>, String, Uuid)> = sqlx::query_as(
            "UPDATE messages m SET
                status = CASE WHEN m.status <> 'failed' AND message_status_rank(u.status) > message_status_rank(m.status)
                              THEN u.status ELSE m.status END,
                sent_at = CASE WHEN u.status IN ('sent', 'delivered', 'read') THEN COALESCE(m.sent_at, u.at) ELSE m.sent_at END,
                delivered_at = CASE WHEN u.status IN ('delivered', 'read')
                                    THEN COALESCE(m.delivered_at, GREATEST(u.at, m.sent_at)) ELSE m.delivered_at END,
                read_at = CASE WHEN u.status = 'read'
                               THEN COALESCE(m.read_at, GREATEST(u.at, m.sent_at, m.delivered_at)) ELSE m.read_at END,
                failed_at = CASE WHEN u.status = 'failed' AND m.status <> 'failed' THEN u.at ELSE m.failed_at END,
                error = CASE WHEN u.status = 'failed' AND m.status <> 'failed' THEN u.error::jsonb ELSE m.error END
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
                    AS u(account_id, org_id, wamid, status, at, error)
              WHERE m.account_id = u.account_id AND m.wamid = u.wamid AND m.direction = 'OUTBOUND'
              RETURNING m.id, m.conversation_id, m.status, u.org_id",
        )
        .bind(round.iter().map(|s| s.account_id).collect::<Vec<_>>())
        .bind(round.iter().map(|s| s.org_id).collect::<Vec<_>>())
        .bind(round.iter().map(|s| s.wamid).collect::<Vec<_>>())
        .bind(round.iter().map(|s| s.status).collect::<Vec<_>>())
        .bind(round.iter().map(|s| s.at).collect::<Vec<_>>())
        .bind(round.iter().map(|s| s.error.as_deref()).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        if updated.len() < round.len() {
            tracing::debug!(
                unknown = round.len() - updated.len(),
                "statuses for messages we do not know; ignored"
            );
        }
        for (message_id, conversation_id, status, org_id) in updated {
            self.events.push(Event::message_status(
                org_id,
                conversation_id,
                message_id,
                &status,
            ));
        }
        Ok(())
    }
}

/// Splits statuses into rounds holding at most one status per message (account and wamid),
/// each message's statuses in their order, each round in wamid order: concurrent batches then
/// lock shared messages in one order.
fn rounds(statuses: Vec<Status<'_>>) -> Vec<Vec<Status<'_>>> {
    let mut seen: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut rounds: Vec<Vec<Status>> = Vec::new();
    for s in statuses {
        let n = seen.entry((s.account_id, s.wamid)).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(s);
        *n += 1;
    }
    for round in &mut rounds {
        round.sort_by(|a, b| (a.wamid, a.account_id).cmp(&(b.wamid, b.account_id)));
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status<'a>(wamid: &'a str, status: &'a str) -> Status<'a> {
        Status {
            account_id: Uuid::nil(),
            org_id: Uuid::nil(),
            wamid,
            status,
            at: Utc::now(),
            error: None,
        }
    }

    #[test]
    fn a_message_gets_its_statuses_in_order_one_per_round() {
        let rounds = rounds(vec![
            status("w2", "sent"),
            status("w1", "sent"),
            status("w2", "delivered"),
            status("w2", "read"),
            status("w1", "delivered"),
        ]);
        let shown: Vec<Vec<(&str, &str)>> = rounds
            .iter()
            .map(|r| r.iter().map(|s| (s.wamid, s.status)).collect())
            .collect();
        assert_eq!(
            shown,
            vec![
                vec![("w1", "sent"), ("w2", "sent")],
                vec![("w1", "delivered"), ("w2", "delivered")],
                vec![("w2", "read")],
            ]
        );
    }
}
