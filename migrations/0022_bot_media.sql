-- Bot media assets: files an organization uploads for the bot to send to customers (images,
-- videos, audio, documents), managed at /bot-config/media (`wharf_shared::bot::media`). The
-- bytes live on disk under BLOB_DIR (`blob_path`, relative: bot-media/<org_id>/<id>), with a
-- PNG thumbnail for images and videos (`thumbnail_path`: bot-media/<org_id>/<id>.thumb.png).

CREATE TABLE bot_media (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations (id),
    name           text NOT NULL,
    description    text,
    media_type     text NOT NULL CHECK (media_type IN ('IMAGE', 'VIDEO', 'AUDIO', 'DOCUMENT')),
    mime_type      text NOT NULL,
    size           bigint NOT NULL CHECK (size > 0),
    filename       text NOT NULL,
    blob_path      text NOT NULL,
    thumbnail_path text,
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The organization's list, newest first.
CREATE INDEX bot_media_org_created ON bot_media (org_id, created_at DESC);
CREATE TRIGGER bot_media_updated_at BEFORE UPDATE ON bot_media
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
