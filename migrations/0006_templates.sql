-- WhatsApp message templates, kept in sync with Meta (ARCHITECTURE.md "Template sync").
--
-- A row is one (account, name, language) template. Drafts live only here (no Meta id); every
-- other status mirrors Meta's, plus two of ours: PENDING_SUBMISSION (a submit, edit or delete
-- job is on its way to Meta) and REMOVED (soft-deleted here, or vanished at Meta).

CREATE TABLE message_templates (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            uuid NOT NULL REFERENCES organizations (id),
    account_id        uuid NOT NULL REFERENCES whatsapp_accounts (id),
    -- Templates belong to the WABA at Meta; copied here so webhooks (keyed by WABA) find them.
    waba_id           text NOT NULL,
    -- Meta's template id; NULL for drafts and for submissions Meta has not answered yet.
    meta_template_id  text,
    name              text NOT NULL CHECK (name ~ '^[a-z0-9_]+$' AND length(name) <= 512),
    language          text NOT NULL,
    category          text NOT NULL CHECK (category IN ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
    previous_category text,
    status            text NOT NULL CHECK (status IN (
                          'DRAFT', 'PENDING_SUBMISSION', 'PENDING', 'APPROVED', 'REJECTED', 'PAUSED',
                          'DISABLED', 'IN_APPEAL', 'FLAGGED', 'REINSTATED', 'PENDING_DELETION', 'DELETED',
                          'ARCHIVED', 'LIMIT_EXCEEDED', 'LOCKED', 'REMOVED')),
    parameter_format  text NOT NULL DEFAULT 'POSITIONAL' CHECK (parameter_format IN ('POSITIONAL', 'NAMED')),
    -- Meta's create/edit shape: [{"type": "HEADER"|"BODY"|"FOOTER"|"BUTTONS", ...}].
    components        jsonb NOT NULL DEFAULT '[]',
    -- GREEN | YELLOW | RED | UNKNOWN.
    quality_score     text,
    rejected_reason   text,
    -- Why the last submit/edit/delete at Meta failed (shown to the user; cleared on success).
    last_error        text,
    -- Header media uploaded through POST /templates/upload-media (relative to BLOB_DIR).
    header_blob_path  text,
    header_mime_type  text,
    header_handle     text,
    created_by        uuid REFERENCES users (id),
    last_synced_at    timestamptz,
    submitted_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Set when a user removed it (soft delete or delete at Meta): a sync never revives it.
    deleted_at        timestamptz
);
-- Meta allows one template per (name, language) in a WABA. Drafts are local scratch and are
-- checked in code (409) instead, so a template created elsewhere in Meta is never hidden by a
-- draft of the same name when it is synced.
CREATE UNIQUE INDEX message_templates_name_key ON message_templates (account_id, name, language)
    WHERE status NOT IN ('REMOVED', 'DRAFT');
-- Sync upserts by Meta's id.
CREATE UNIQUE INDEX message_templates_meta_key ON message_templates (account_id, meta_template_id)
    WHERE meta_template_id IS NOT NULL;
CREATE INDEX message_templates_org_status_idx ON message_templates (org_id, status, name);
CREATE INDEX message_templates_org_created_idx ON message_templates (org_id, created_at DESC, id);
CREATE INDEX message_templates_waba_idx ON message_templates (waba_id, meta_template_id);
CREATE TRIGGER message_templates_updated_at BEFORE UPDATE ON message_templates
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Header files uploaded for templates, by the handle given to the client. The handle goes in
-- the header's `example.header_handle`; a template that uses it gets the file attached.
CREATE TABLE template_media (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id),
    handle      text NOT NULL UNIQUE,
    blob_path   text NOT NULL,
    mime_type   text NOT NULL,
    filename    text,
    size_bytes  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_media_org_idx ON template_media (org_id, created_at DESC);
