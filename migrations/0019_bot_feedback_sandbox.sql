-- What people think of the bot's answers, and the admins' sandbox conversations with it.
--
-- `bot_feedback`: a user's rating (1 to 5) of one answer the bot sent, with an optional
-- comment. One per message and user: rating again replaces the first. Listed newest first by
-- cursor, and averaged by the bot's quality metrics over a window of days.
--
-- `bot_sandbox_turns`: an admin talking to the active bot config without WhatsApp. Each turn
-- (the admin's words, or the bot's answer with whether it would have handed over) is kept per
-- organization and user, so the next message has the same context a real conversation
-- would; `reset` deletes them. Nothing here is a conversation or a message: the sandbox never
-- touches the inbox or the customers.
--
-- A bot session is derived from `conversation_events` (where it enters and leaves
-- BOT_HANDLING); the partial index lets the metrics find those moves without scanning every
-- event of the organization.

CREATE TABLE bot_feedback (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id),
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    rating          smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id)
);
-- The list (newest first, cursor on created_at and id) and the metrics' window.
CREATE INDEX bot_feedback_org_created ON bot_feedback (org_id, created_at DESC, id DESC);

CREATE TABLE bot_sandbox_turns (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- user: the admin's message; assistant: the bot's answer (or its handoff message).
    role           text NOT NULL CHECK (role IN ('user', 'assistant')),
    content        text NOT NULL,
    handed_off     boolean NOT NULL DEFAULT false,
    handoff_reason text,
    intent         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_sandbox_turns_user ON bot_sandbox_turns (org_id, user_id, id);

CREATE INDEX conversation_events_bot_moves ON conversation_events (org_id, at)
    WHERE to_status = 'BOT_HANDLING' OR from_status = 'BOT_HANDLING';
