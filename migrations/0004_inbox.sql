-- The inbox: raw webhook events, contacts, conversations and messages (ARCHITECTURE.md
-- "Inbound webhooks", "Media download").

-- Every signed webhook as received, before any parsing: the durable record a `process_webhook`
-- job works from. Reprocessing an event is always possible and always idempotent.
CREATE TABLE webhook_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- platform: POST /webhooks/whatsapp (META_APP_SECRET); channel: /webhooks/whatsapp/{id}.
    source       text NOT NULL CHECK (source IN ('platform', 'channel')),
    -- The account the event was routed to at ingestion (the channel, or the one account all
    -- its phone_number_ids resolve to). NULL: routed per change by the job.
    account_id   uuid REFERENCES whatsapp_accounts (id),
    org_id       uuid REFERENCES organizations (id),
    -- The signature-verified body. A body that is not JSON is kept as {"_raw": "<text>"}.
    payload      jsonb NOT NULL,
    -- sha256 (hex) of the raw body: Meta's retries of the same delivery are stored once.
    dedupe_key   text NOT NULL UNIQUE,
    processed_at timestamptz,
    -- Why (part of) the event could not be applied: malformed, unknown phone number...
    error        text
);
CREATE INDEX webhook_events_received_idx ON webhook_events (received_at);
CREATE INDEX webhook_events_unprocessed_idx ON webhook_events (received_at) WHERE processed_at IS NULL;

CREATE TABLE contacts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id),
    -- The customer's WhatsApp id (digits of the phone number).
    wa_id         text NOT NULL,
    -- The WhatsApp profile name, from the latest inbound webhook.
    profile_name  text,
    -- The name an agent gave the contact (takes precedence over the profile name).
    name          text,
    category      text,
    custom_fields jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, wa_id)
);
CREATE INDEX contacts_org_created_idx ON contacts (org_id, created_at DESC, id DESC);
CREATE TRIGGER contacts_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE conversations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                 uuid NOT NULL REFERENCES organizations (id),
    account_id             uuid NOT NULL REFERENCES whatsapp_accounts (id),
    contact_id             uuid NOT NULL REFERENCES contacts (id),
    status                 text NOT NULL DEFAULT 'OPEN'
                           CHECK (status IN ('BOT_HANDLING', 'HUMAN_HANDLING', 'OPEN', 'WAITING_FOR_CUSTOMER', 'CLOSED')),
    assigned_to            uuid REFERENCES users (id),
    -- Teams come later; kept as a plain id until then.
    team_id                uuid,
    category               text,
    unread_count           integer NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
    last_message_at        timestamptz NOT NULL DEFAULT now(),
    last_message_preview   text,
    last_message_direction text CHECK (last_message_direction IN ('INBOUND', 'OUTBOUND')),
    -- The customer-service window: open while now() < last_inbound_at + 24 h.
    last_inbound_at        timestamptz,
    closed_at              timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
-- One open conversation per (number, customer); closed ones are history.
CREATE UNIQUE INDEX conversations_open_key ON conversations (account_id, contact_id) WHERE status <> 'CLOSED';
CREATE INDEX conversations_org_last_idx ON conversations (org_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_org_created_idx ON conversations (org_id, created_at DESC, id DESC);
CREATE INDEX conversations_org_status_idx ON conversations (org_id, status, last_message_at DESC);
CREATE INDEX conversations_unread_idx ON conversations (org_id) WHERE unread_count > 0;
CREATE INDEX conversations_contact_idx ON conversations (contact_id);
CREATE TRIGGER conversations_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Statuses only move forward: queued/received < sent < delivered < read < failed (terminal).
CREATE FUNCTION message_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'received' THEN 0 WHEN 'queued' THEN 0 WHEN 'sent' THEN 1
        WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 0 END
$$;

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Insertion order: the tie-breaker of messages with the same (second-precision) timestamp.
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    org_id          uuid NOT NULL REFERENCES organizations (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    account_id      uuid NOT NULL REFERENCES whatsapp_accounts (id),
    direction       text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    -- Meta's message id; NULL for an outbound message not sent yet.
    wamid           text,
    type            text NOT NULL,
    -- The type-specific payload (text body, caption, location, reaction, reply ids, context...).
    content         jsonb NOT NULL DEFAULT '{}',
    -- The message object exactly as Meta sent it (inbound).
    raw             jsonb,
    status          text NOT NULL
                    CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
    -- Meta's error for failed (and unsupported inbound) messages: {code, title, message, details}.
    error           jsonb,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    read_at         timestamptz,
    failed_at       timestamptz,
    -- Media (image, audio, video, document, sticker).
    media_id        text,
    mime_type       text,
    sha256          text,
    file_size       bigint,
    filename        text,
    media_status    text CHECK (media_status IN ('pending', 'downloaded', 'failed')),
    media_error     text,
    -- Relative to BLOB_DIR: <org_id>/<yyyy>/<mm>/<message_id>.
    blob_path       text,
    media_attempts  integer NOT NULL DEFAULT 0,
    is_hidden       boolean NOT NULL DEFAULT false,
    -- Meta's timestamp for inbound messages; creation time for outbound ones.
    created_at      timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Meta retries deliver the same wamid again: stored once.
CREATE UNIQUE INDEX messages_wamid_key ON messages (account_id, wamid);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at DESC, seq DESC);
CREATE INDEX messages_org_idx ON messages (org_id, created_at DESC);
CREATE INDEX messages_media_pending_idx ON messages (media_status) WHERE media_status IN ('pending', 'failed');
CREATE TRIGGER messages_updated_at BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- message_template_status_update webhooks, recorded until the templates table exists.
CREATE TABLE template_status_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            uuid NOT NULL REFERENCES organizations (id),
    waba_id           text NOT NULL,
    template_id       text,
    template_name     text,
    template_language text,
    event             text NOT NULL,
    reason            text,
    payload           jsonb NOT NULL,
    webhook_event_id  uuid REFERENCES webhook_events (id),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_status_events_org_idx ON template_status_events (org_id, created_at DESC);
-- The same webhook processed twice records its events once.
CREATE UNIQUE INDEX template_status_events_dedupe ON template_status_events (webhook_event_id, org_id, template_id, event);
