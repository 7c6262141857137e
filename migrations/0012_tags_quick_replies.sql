-- Tags agents put on conversations (a name and a colour), and quick replies: canned answers
-- agents insert by shortcut, each optionally with one media attachment kept in the blob store.

CREATE TABLE tags (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id     uuid NOT NULL REFERENCES organizations (id),
    name       text NOT NULL,
    -- Stored upper-case, so "#ef4444" and "#EF4444" are one colour.
    color      text NOT NULL CHECK (color ~ '^#[0-9A-F]{6}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- "VIP" and "vip" would look like one tag in the inbox: names are unique case-insensitively.
CREATE UNIQUE INDEX tags_org_name_key ON tags (org_id, lower(name));
CREATE TRIGGER tags_updated_at BEFORE UPDATE ON tags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Deleting a tag takes it off every conversation.
CREATE TABLE conversation_tags (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tag_id          uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Who tagged it (null: an API key).
    created_by      uuid REFERENCES users (id),
    PRIMARY KEY (conversation_id, tag_id)
);
-- The conversation list's tag filter and the cascade of a tag's deletion look up by tag.
CREATE INDEX conversation_tags_tag_idx ON conversation_tags (tag_id);

CREATE TABLE quick_replies (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id),
    shortcut        text NOT NULL,
    title           text NOT NULL,
    content         text NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    -- The attachment, all set or all null; the file is at `media_blob_path` under BLOB_DIR.
    media_type      text CHECK (media_type IN ('image', 'video', 'audio', 'document')),
    media_mime_type text,
    media_file_name text,
    media_size      bigint,
    media_blob_path text,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((media_type IS NULL) = (media_blob_path IS NULL))
);
-- "/Hello", "/hello" and "hello" are one shortcut to an agent typing it.
CREATE UNIQUE INDEX quick_replies_org_shortcut_key ON quick_replies (org_id, lower(ltrim(shortcut, '/')));
CREATE TRIGGER quick_replies_updated_at BEFORE UPDATE ON quick_replies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
