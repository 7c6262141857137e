-- Fewer index entries per campaign message, and status updates that stay on their page
-- (ARCHITECTURE.md "Campaigns", issue 18).
--
-- Every index a row is in costs a WAL record and a page write when the row is inserted, and
-- again each time an indexed column (or a column in an index's WHERE) changes. A campaign
-- message is inserted, gets its wamid, then `delivered` and `read`.

-- A queued message has no wamid and an unopened campaign message no conversation: they need
-- no entry (lookups by wamid or conversation never ask for NULL).
DROP INDEX messages_wamid_key;
CREATE UNIQUE INDEX messages_wamid_key ON messages (account_id, wamid) WHERE wamid IS NOT NULL;
DROP INDEX messages_conversation_idx;
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at DESC, seq DESC)
    WHERE conversation_id IS NOT NULL;

-- No index mentions `status` any more, so `delivered` and `read` (which change only the status
-- and its timestamps) are HOT updates: one small WAL record, no index entry, when the page has
-- room; the fill factor keeps that room. `status = 'failed'` implies `failed_at` is set and
-- `status = 'queued'` implies no wamid and no `failed_at` (every writer sets them together),
-- so the queries keep their `status` condition and add these.
DROP INDEX messages_failed_idx;
CREATE INDEX messages_failed_idx ON messages (org_id, failed_at DESC, id)
    WHERE failed_at IS NOT NULL AND direction = 'OUTBOUND' AND discarded_at IS NULL;
DROP INDEX messages_campaign_queued_idx;
CREATE INDEX messages_campaign_unsent_idx ON messages (campaign_id)
    WHERE campaign_id IS NOT NULL AND wamid IS NULL AND failed_at IS NULL;
ALTER TABLE messages SET (fillfactor = 80);

-- Recipients are claimed only while pending: a claimed recipient leaves the index instead of
-- getting a second entry.
DROP INDEX campaign_recipients_claim_idx;
CREATE INDEX campaign_recipients_pending_idx ON campaign_recipients (campaign_id, id)
    WHERE status = 'pending';

-- Webhook events: no query reads the unprocessed index (jobs find their events by id), and its
-- `processed_at IS NULL` kept the one update every event gets, marking it processed, from being
-- HOT. The fill factor leaves room on each page for that update.
DROP INDEX webhook_events_unprocessed_idx;
ALTER TABLE webhook_events SET (fillfactor = 70);
