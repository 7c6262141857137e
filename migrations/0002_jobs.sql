-- The durable job queue (ARCHITECTURE.md "Job rules"; River and Oban are the models).
--
-- One table holds every job from enqueue to pruning. A job is pending (`available`,
-- `scheduled`, `retryable`: it runs once `run_at` has passed), `running` (leased by one worker
-- until `lease_expires_at`, renewed by heartbeats), or finished (`completed`, `cancelled`,
-- `dead`) and kept until the pruner removes it.

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    lane             text NOT NULL
                     CHECK (lane IN ('inbound', 'outbound', 'bulk', 'media', 'llm', 'maintenance')),
    -- NULL for platform jobs that belong to no tenant.
    org_id           uuid,
    -- Fairness key: the org, with platform jobs grouped under the nil uuid so the loose index
    -- scan over (lane, fair_key) needs no NULL handling.
    fair_key         uuid NOT NULL GENERATED ALWAYS AS
                     (COALESCE(org_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'scheduled', 'retryable', 'running',
                                      'completed', 'cancelled', 'dead')),
    -- Lower runs first within an org's backlog.
    priority         smallint NOT NULL DEFAULT 0,
    -- Attempts started so far (a snooze or a shutdown hand-back gives its attempt back).
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts > 0),
    run_at           timestamptz NOT NULL DEFAULT now(),
    unique_key       text,
    -- [{"attempt": n, "at": timestamp, "error": text}, ...], oldest first.
    errors           jsonb NOT NULL DEFAULT '[]'::jsonb,
    cancel_requested boolean NOT NULL DEFAULT false,
    attempted_by     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    heartbeat_at     timestamptz,
    lease_expires_at timestamptz,
    finished_at      timestamptz
);

-- The fetch path: per lane, per org, in priority and time order; pending rows only, so the
-- index stays as small as the backlog however many finished rows await pruning.
CREATE INDEX jobs_fetch_idx ON jobs (lane, fair_key, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');

-- Insert-or-skip while an earlier job with the same key is unfinished.
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'retryable', 'running');

-- The rescuer looks for running jobs whose lease expired.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';

-- Pruning, "finished in the last minute" and admin lists of finished jobs.
CREATE INDEX jobs_finished_idx ON jobs (finished_at)
    WHERE state IN ('completed', 'cancelled', 'dead');

-- Admin lists scoped by org, newest first.
CREATE INDEX jobs_org_idx ON jobs (org_id, id) WHERE org_id IS NOT NULL;

-- Cluster-wide lane switches: every worker's fetch reads this, so a pause holds within one fetch.
CREATE TABLE job_lanes (
    lane       text PRIMARY KEY
               CHECK (lane IN ('inbound', 'outbound', 'bulk', 'media', 'llm', 'maintenance')),
    paused     boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO job_lanes (lane)
VALUES ('inbound'), ('outbound'), ('bulk'), ('media'), ('llm'), ('maintenance');

-- The scheduler's single-fire guarantee: a replica enqueues a cron job only if it moves this
-- row forward to the tick, in the same transaction as the enqueue.
CREATE TABLE cron_ticks (
    name       text PRIMARY KEY,
    last_tick  timestamptz NOT NULL,
    job_id     bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);
