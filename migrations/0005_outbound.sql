-- Outbound sending: the request each message sends, idempotency, holds, discards, and the
-- history of every attempt (ARCHITECTURE.md "Sending a message", "Rate limits", "Meta errors").

ALTER TABLE messages
    -- The Cloud API body this message sends (built and validated by the API, before queueing).
    ADD COLUMN request         jsonb,
    -- Idempotency-Key of the API request that created it, with a hash of that request so a
    -- reused key with a different body is refused instead of silently answered.
    ADD COLUMN idempotency_key text,
    ADD COLUMN request_hash    text,
    ADD COLUMN sent_by         uuid REFERENCES users (id),
    ADD COLUMN template_name   text,
    -- Why a queued message is waiting instead of going out: token_invalid (account needs a new
    -- token), outcome_unknown (waiting for Meta's status webhook after a timeout).
    ADD COLUMN hold_reason     text,
    -- Failed messages: can a retry help (throttling, outages) or not (bad number, policy).
    ADD COLUMN retryable       boolean,
    ADD COLUMN error_code      integer,
    ADD COLUMN send_attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN discarded_at    timestamptz,
    ADD COLUMN discarded_by    uuid REFERENCES users (id);

CREATE UNIQUE INDEX messages_idempotency_key ON messages (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The failed-messages dashboard.
CREATE INDEX messages_failed_idx ON messages (org_id, failed_at DESC, id)
    WHERE status = 'failed' AND direction = 'OUTBOUND' AND discarded_at IS NULL;

-- One row per send attempt: a retry never erases what happened before.
CREATE TABLE message_attempts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id    uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    org_id        uuid NOT NULL REFERENCES organizations (id),
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz NOT NULL DEFAULT now(),
    -- sent | failed | retry | held | unknown
    outcome       text NOT NULL,
    wamid         text,
    http_status   integer,
    error_code    integer,
    error_title   text,
    error_details text,
    -- Who asked for it: the original send, a dashboard retry, a bulk retry.
    trigger       text NOT NULL DEFAULT 'send'
);
CREATE INDEX message_attempts_message_idx ON message_attempts (message_id, attempt);

-- 131048 (spam rate limit) pauses a number's bulk sends until a human resumes them.
ALTER TABLE whatsapp_accounts
    ADD COLUMN bulk_paused_at     timestamptz,
    ADD COLUMN bulk_paused_reason text;

-- Campaign sends (the campaigns table arrives with campaigns; the column lets the dashboard
-- filter by campaign from the start).
ALTER TABLE messages ADD COLUMN campaign_id uuid;
CREATE INDEX messages_campaign_idx ON messages (campaign_id) WHERE campaign_id IS NOT NULL;
