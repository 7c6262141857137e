-- The AI agent's provider presets and config snapshots. A preset is a provider connection an
-- organization saved under a name (provider, model, encrypted key, base URL, temperature) so
-- configs can be set up from it. A snapshot is a copy of one bot config's settings, system
-- prompt and intents, taken on request, that can be written back onto that config; it never
-- holds the API key (a restore keeps the key the config has).

CREATE TABLE bot_presets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id),
    name        text NOT NULL,
    provider    text NOT NULL
                CHECK (provider IN ('OPENAI', 'ANTHROPIC', 'GOOGLE', 'DEEPSEEK', 'KIMI', 'LOCAL')),
    model       text NOT NULL,
    -- Encrypted at rest (v1:...); answered masked.
    api_key     text,
    base_url    text,
    temperature real,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- "OpenAI" and "openai" would look like one preset in a picker: names are unique in any case.
-- The index also serves the organization's list, ordered by name.
CREATE UNIQUE INDEX bot_presets_org_name_key ON bot_presets (org_id, lower(name));
CREATE TRIGGER bot_presets_updated_at BEFORE UPDATE ON bot_presets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE bot_snapshots (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id),
    -- A snapshot restores onto the config it came from, so it goes with that config.
    bot_config_id uuid NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- {"config": {...settings and systemPrompt, no key}, "intents": [...]}
    -- (`wharf_shared::bot::portable::snapshots::SnapshotContent`).
    content       jsonb NOT NULL,
    intent_count  integer NOT NULL,
    size_bytes    integer NOT NULL,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_snapshots_org ON bot_snapshots (org_id, created_at DESC);
