-- The knowledge base: documents a business uploads and the chunks the bot answers from.
--
-- `kb_documents`: one uploaded file (kept under BLOB_DIR at `blob_path`) and its ingestion
-- state, PENDING → PROCESSING → READY | FAILED, with progress (`chunks_embedded` of
-- `chunks_total`) and a readable `error`. `index_model` names the embedding model its vectors
-- came from (`PROVIDER/model`), NULL when it is indexed for full text only; `ts_config` the text
-- search configuration its `tsv` columns were built with.
--
-- `kb_chunks`: the document's text cut on headings, paragraphs and sentences. An ingestion
-- replaces all chunks of a document in one transaction, so a document is never half indexed
-- and a re-run never duplicates. `embedding` is the chunk's unit-length vector as
-- little-endian f32 bytes (the scan is done in memory by `wharf_shared::kb::vectors`; pgvector
-- is not available from the machines' package sources); `tsv` the full-text vector.
--
-- `kb_index_versions`: bumped in every transaction that changes an organization's chunks, so
-- the processes' in-memory vector indexes know when to reload.
--
-- `org_bot_settings.kb_language`: the organization's text search configuration
-- (`english`, `french`, ...; NULL: `simple`, no stemming).

CREATE TABLE kb_documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    filename        text NOT NULL,
    format          text NOT NULL CHECK (format IN ('PDF', 'DOCX', 'HTML', 'MARKDOWN', 'TEXT', 'CSV')),
    mime_type       text NOT NULL,
    size_bytes      bigint NOT NULL,
    blob_path       text NOT NULL,
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'PROCESSING', 'READY', 'FAILED')),
    error           text,
    pages           integer,
    chunks_total    integer NOT NULL DEFAULT 0,
    chunks_embedded integer NOT NULL DEFAULT 0,
    index_model     text,
    ts_config       text,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    indexed_at      timestamptz
);
CREATE INDEX kb_documents_org_created ON kb_documents (org_id, created_at DESC, id DESC);

CREATE TABLE kb_chunks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id),
    document_id uuid NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    text        text NOT NULL,
    heading     text,
    page        integer,
    start_char  bigint NOT NULL,
    end_char    bigint NOT NULL,
    tokens      integer NOT NULL,
    embedding   bytea,
    tsv         tsvector NOT NULL,
    UNIQUE (document_id, position)
);
-- Full-text search within one organization: the GIN index finds the matching chunks, the
-- org filter is checked on them.
CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
CREATE INDEX kb_chunks_org ON kb_chunks (org_id);

CREATE TABLE kb_index_versions (
    org_id  uuid PRIMARY KEY REFERENCES organizations (id),
    version bigint NOT NULL DEFAULT 0
);

ALTER TABLE org_bot_settings ADD COLUMN kb_language text;
