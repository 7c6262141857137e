-- Operations console sign-ins (api/src/console/session.rs). A browser holds an opaque random
-- token in an HttpOnly cookie; only its SHA-256 is stored. Each session has its own CSRF
-- token, which every console form and action must carry. Sessions slide: each use within the
-- idle limit moves `expires_at` on; sign-out, a password change or deactivation deletes them.
CREATE TABLE console_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
