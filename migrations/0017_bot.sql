-- The AI agent: an organization's bot configs (one active at a time; drafts beside it), every
-- system-prompt version, the organization's bot switches and monthly limit, and what each
-- model call cost and did (usage per call, a trace per reply).

CREATE TABLE bot_configs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id             uuid NOT NULL REFERENCES organizations (id),
    name               text NOT NULL,
    is_active          boolean NOT NULL DEFAULT false,
    provider           text NOT NULL DEFAULT 'OPENAI'
                       CHECK (provider IN ('OPENAI', 'ANTHROPIC', 'GOOGLE', 'DEEPSEEK', 'KIMI', 'LOCAL')),
    model              text NOT NULL DEFAULT 'gpt-4o-mini',
    -- Encrypted at rest (v1:...); never returned unmasked except by reveal-key.
    api_key            text,
    base_url           text,
    system_prompt      text NOT NULL DEFAULT '',
    greeting           text,
    handoff_message    text,
    temperature        real NOT NULL DEFAULT 0.3,
    debounce_seconds   integer NOT NULL DEFAULT 3,
    max_turns          integer NOT NULL DEFAULT 20,
    handoff_keywords   jsonb NOT NULL DEFAULT '[]',
    embedding_provider text,
    embedding_model    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bot_configs_one_active ON bot_configs (org_id) WHERE is_active;
CREATE INDEX bot_configs_org ON bot_configs (org_id, created_at);

-- Every change of a config's system prompt, so a change can be rolled back.
CREATE TABLE bot_prompt_versions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id),
    bot_config_id uuid NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    system_prompt text NOT NULL,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_config_id, version)
);

CREATE TABLE org_bot_settings (
    org_id              uuid PRIMARY KEY REFERENCES organizations (id),
    bot_enabled         boolean NOT NULL DEFAULT false,
    auto_categorize     boolean NOT NULL DEFAULT false,
    -- {"handleNewConversations": true, ...}
    bot_mode            jsonb NOT NULL DEFAULT '{}',
    -- Tokens (input + output) the bot may use per calendar month (UTC); NULL: no limit.
    monthly_token_limit bigint,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per model call: tokens, cost (with the price table's version) and latency.
CREATE TABLE llm_usage (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations (id),
    bot_config_id   uuid REFERENCES bot_configs (id) ON DELETE SET NULL,
    conversation_id uuid REFERENCES conversations (id),
    -- reply, test, summary, classify, embedding
    purpose         text NOT NULL,
    provider        text NOT NULL,
    model           text NOT NULL,
    input_tokens    integer NOT NULL,
    output_tokens   integer NOT NULL,
    cost_usd        double precision NOT NULL,
    price_version   text NOT NULL,
    latency_ms      integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_usage_org_month ON llm_usage (org_id, created_at);

-- What one bot reply did: its context, the provider call and the outcome.
CREATE TABLE bot_traces (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id),
    conversation_id uuid REFERENCES conversations (id),
    bot_config_id   uuid REFERENCES bot_configs (id) ON DELETE SET NULL,
    -- answered, handoff, skipped, failed
    outcome         text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    latency_ms      integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_traces_org ON bot_traces (org_id, created_at DESC);

ALTER TABLE conversations
    ADD COLUMN bot_turns        integer NOT NULL DEFAULT 0,
    ADD COLUMN handoff_summary  text;

-- A bot config's intents: keywords (whole words or phrases) that, found in a customer's
-- message, answer with a fixed text, hand the conversation to a team, or tag it; checked in
-- position order before the model is asked.
CREATE TABLE bot_intents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id),
    bot_config_id uuid NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    name          text NOT NULL,
    keywords      jsonb NOT NULL DEFAULT '[]',
    examples      jsonb NOT NULL DEFAULT '[]',
    -- ANSWER (reply with `response`), HANDOFF (to `team_id`, or routing), TAG (add `tag_id`, then answer as usual)
    action        text NOT NULL CHECK (action IN ('ANSWER', 'HANDOFF', 'TAG')),
    response      text,
    team_id       uuid REFERENCES teams (id),
    tag_id        uuid REFERENCES tags (id) ON DELETE SET NULL,
    position      integer NOT NULL DEFAULT 0,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_intents_config ON bot_intents (bot_config_id, position);
