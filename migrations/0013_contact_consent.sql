-- Consent: a contact may opt out of marketing (campaigns skip them) and a number may be
-- blocked (its inbound is dropped, nothing is sent to it). Every change is kept with its
-- source, and an organization may set its own opt-out / opt-in keywords per language.

ALTER TABLE contacts
    ADD COLUMN marketing_opt_out boolean NOT NULL DEFAULT false,
    ADD COLUMN opted_out_at      timestamptz,
    ADD COLUMN blocked           boolean NOT NULL DEFAULT false,
    ADD COLUMN blocked_at        timestamptz;

CREATE TABLE contact_consent_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id),
    contact_id  uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- OPT_OUT, OPT_IN, BLOCK, UNBLOCK
    change      text NOT NULL CHECK (change IN ('OPT_OUT', 'OPT_IN', 'BLOCK', 'UNBLOCK')),
    -- KEYWORD (the customer wrote one), API (a user or key), ...
    source      text NOT NULL,
    -- The keyword the customer wrote, when the source is KEYWORD.
    keyword     text,
    user_id     uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_consent_events_contact ON contact_consent_events (contact_id, created_at DESC);

-- {"en": ["STOP"], "es": ["BAJA"]}; NULL: the built-in defaults.
ALTER TABLE org_cx_settings
    ADD COLUMN opt_out_keywords     jsonb,
    ADD COLUMN opt_in_keywords      jsonb,
    ADD COLUMN opt_out_confirmation text,
    ADD COLUMN opt_in_confirmation  text;
