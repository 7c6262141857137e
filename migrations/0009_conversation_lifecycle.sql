-- Conversation lifecycle: follow-ups, and every move of a conversation (assignment, takeover,
-- resolution, automatic moves) recorded with who made it, from whom, to whom and why.

ALTER TABLE conversations
    ADD COLUMN follow_up_note text,
    ADD COLUMN follow_up_at   timestamptz,
    ADD COLUMN follow_up_by   uuid REFERENCES users (id);

CREATE TABLE conversation_events (
    id              bigserial PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    -- ASSIGNED, UNASSIGNED, TAKEOVER, RETURNED_TO_BOT, RESOLVED, REOPENED, STATUS_CHANGED,
    -- FOLLOW_UP_SET, FOLLOW_UP_CLEARED
    type            text NOT NULL,
    -- Who made the move; NULL for the platform itself or an API key.
    actor_id        uuid REFERENCES users (id),
    from_user_id    uuid REFERENCES users (id),
    to_user_id      uuid REFERENCES users (id),
    from_status     text,
    to_status       text,
    reason          text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_events_conversation_idx ON conversation_events (conversation_id, id);

ALTER TABLE users
    -- Most open conversations assigned to this agent at once (NULL: no limit).
    ADD COLUMN max_conversations integer CHECK (max_conversations > 0);
