-- Retroactive routing runs (`POST /routing-rules/run-now`): the request, its job's progress
-- and its result, so the caller can follow a run that may touch thousands of conversations.

CREATE TABLE routing_runs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id),
    requested_by  uuid REFERENCES users (id),
    status        text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    checked       integer NOT NULL DEFAULT 0,
    rerouted      integer NOT NULL DEFAULT 0,
    assigned      integer NOT NULL DEFAULT 0,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX routing_runs_org ON routing_runs (org_id, created_at DESC);
