-- HydraCore channel endpoints: the channels of an instance (one of the organization's bot
-- configs). Only `whatsapp` is operated (through a connected number, `account_id`); the other
-- types are stored with status `not_supported`.

CREATE TABLE channel_endpoints (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organizations (id),
    instance_id         uuid NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    channel_type        text NOT NULL
                        CHECK (channel_type IN ('telegram', 'whatsapp', 'voice', 'sms', 'email', 'web_chat')),
    provider            text NOT NULL CHECK (length(provider) <= 50),
    external_identifier text NOT NULL CHECK (length(external_identifier) <= 255),
    config              jsonb NOT NULL DEFAULT '{}',
    connection_id       uuid,
    credential_id       uuid,
    -- AES-256-GCM (shared::crypto::SecretBox).
    webhook_secret_enc  text,
    enabled             boolean NOT NULL DEFAULT true,
    status              text NOT NULL,
    error_message       text,
    -- The connected number behind a WhatsApp channel; kept (disconnected) after teardown.
    account_id          uuid REFERENCES whatsapp_accounts (id),
    last_event_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_endpoints_instance_idx ON channel_endpoints (org_id, instance_id, created_at);
