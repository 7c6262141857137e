-- Connected WhatsApp Business numbers, the org's Meta app settings, and account alerts.

CREATE TABLE whatsapp_accounts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organizations (id),
    waba_id             text NOT NULL,
    phone_number_id     text NOT NULL,
    display_phone       text,
    verified_name       text,
    alias               text,
    -- AES-256-GCM (shared::crypto::SecretBox); never returned unmasked.
    access_token_enc    text NOT NULL,
    -- Per-channel webhook settings (HydraCore dialect): own app secret and verify token.
    app_secret_enc      text,
    verify_token_enc    text,
    -- CONNECTED; NEEDS_REAUTH (token expired/invalid: sends are held); DISCONNECTED.
    status              text NOT NULL DEFAULT 'CONNECTED'
                        CHECK (status IN ('CONNECTED', 'NEEDS_REAUTH', 'DISCONNECTED')),
    status_reason       text,
    quality_rating      text,
    throughput_level    text,
    messaging_limit     text,
    -- Operator override of the send rate; NULL = derived from throughput_level.
    messages_per_second integer CHECK (messages_per_second BETWEEN 1 AND 10000),
    connection_method   text NOT NULL DEFAULT 'MANUAL' CHECK (connection_method IN ('EMBEDDED_SIGNUP', 'MANUAL')),
    last_health_at      timestamptz,
    connected_at        timestamptz NOT NULL DEFAULT now(),
    disconnected_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- A number is connected to at most one organization at a time; a disconnected row keeps its
-- history and frees the number.
CREATE UNIQUE INDEX whatsapp_accounts_phone_key ON whatsapp_accounts (phone_number_id)
    WHERE status <> 'DISCONNECTED';
CREATE INDEX whatsapp_accounts_org_idx ON whatsapp_accounts (org_id, created_at);
CREATE TRIGGER whatsapp_accounts_updated_at BEFORE UPDATE ON whatsapp_accounts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE meta_app_configs (
    org_id      uuid PRIMARY KEY REFERENCES organizations (id),
    app_id      text NOT NULL,
    config_id   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER meta_app_configs_updated_at BEFORE UPDATE ON meta_app_configs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Things a human must act on: expired token, quality drop, spam limit, template paused...
CREATE TABLE account_alerts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id),
    account_id      uuid REFERENCES whatsapp_accounts (id),
    kind            text NOT NULL,
    severity        text NOT NULL DEFAULT 'WARNING' CHECK (severity IN ('INFO', 'WARNING', 'CRITICAL')),
    title           text NOT NULL,
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    acknowledged_at timestamptz,
    acknowledged_by uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_alerts_org_idx ON account_alerts (org_id, created_at DESC);
CREATE INDEX account_alerts_unread_idx ON account_alerts (org_id) WHERE acknowledged_at IS NULL;
