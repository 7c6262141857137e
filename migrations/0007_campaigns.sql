-- Campaigns: a template broadcast to a frozen audience, priced before it starts, paced at the
-- number's rate, pausable and crash-safe (ARCHITECTURE.md "Campaigns").
--
-- A recipient's delivery state is not copied here: once the dispatcher has created its message
-- (`message_id`), the message row (which send results and status webhooks already move
-- forward monotonically) is the single source of truth, joined by primary key. The recipient's
-- own `status` only says what the dispatcher did: pending (not claimed yet), sending (message
-- created) or skipped (never sent: cancelled, ...).

CREATE TABLE campaigns (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organizations (id),
    account_id          uuid NOT NULL REFERENCES whatsapp_accounts (id),
    name                text NOT NULL,
    -- The template as it was when the campaign was created (frozen, like the audience).
    template_id         uuid REFERENCES message_templates (id),
    template_name       text NOT NULL,
    template_language   text NOT NULL,
    template_category   text NOT NULL,
    parameter_format    text NOT NULL DEFAULT 'POSITIONAL',
    template_components jsonb NOT NULL DEFAULT '[]',
    -- Media headers: the link every recipient's header parameter uses.
    header_media_link   text,
    status              text NOT NULL DEFAULT 'DRAFT'
                        CHECK (status IN ('DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED')),
    -- Why a campaign is paused (by a user, or by itself: template paused at Meta, spam limit).
    paused_reason       text,
    scheduled_at        timestamptz,
    launched_at         timestamptz,
    paused_at           timestamptz,
    completed_at        timestamptz,
    cancelled_at        timestamptz,
    created_by          uuid REFERENCES users (id),
    recipient_count     integer NOT NULL DEFAULT 0,
    rejected_count      integer NOT NULL DEFAULT 0,
    -- Priced at creation with the rate table of `rate_table_version` (USD).
    estimated_cost      double precision NOT NULL DEFAULT 0,
    currency            text NOT NULL DEFAULT 'USD',
    rate_table_version  text NOT NULL DEFAULT '',
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_org_created_idx ON campaigns (org_id, created_at DESC, id) WHERE deleted_at IS NULL;
-- The scheduler's launch sweep.
CREATE INDEX campaigns_scheduled_idx ON campaigns (scheduled_at) WHERE status = 'SCHEDULED';
CREATE TRIGGER campaigns_updated_at BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE campaign_recipients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES organizations (id),
    -- Where it came from: index in the JSON array (1-based) or CSV line number.
    row_number  integer NOT NULL,
    -- E.164 digits, no '+'.
    phone       text NOT NULL,
    name        text,
    -- Template variables by placeholder ("1", "2", ... or names; "header_1"/header names).
    variables   jsonb NOT NULL DEFAULT '{}',
    -- ISO country of the calling code and the estimated price of this send (USD).
    country     text,
    unit_cost   double precision NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'skipped')),
    skip_reason text,
    message_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, phone)
);
-- The dispatcher claims `pending` rows in id order.
CREATE INDEX campaign_recipients_claim_idx ON campaign_recipients (campaign_id, status, id);
CREATE UNIQUE INDEX campaign_recipients_message_key ON campaign_recipients (message_id) WHERE message_id IS NOT NULL;

-- "How many campaign messages are queued but not sent yet": the dispatcher's pacing window.
CREATE INDEX messages_campaign_queued_idx ON messages (campaign_id) WHERE campaign_id IS NOT NULL AND status = 'queued';

-- When the send job last handed this message to Meta. A send attempt that ends (sent, failed,
-- retry...) records an attempt after it; none after it means the worker died while the request
-- was in flight: the next run waits for Meta's status webhook (which adopts the wamid through
-- biz_opaque_callback_data) instead of sending a second copy.
ALTER TABLE messages ADD COLUMN send_started_at timestamptz;
