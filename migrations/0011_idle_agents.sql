-- Idle-agent detection settings: a customer left unanswered for `idle_threshold_minutes` by
-- an agent inactive for `idle_inactivity_minutes` is moved on (REASSIGN within the team, or
-- UNASSIGN to the team's queue) and the agent set AWAY.

ALTER TABLE org_cx_settings
    ADD COLUMN idle_enabled             boolean NOT NULL DEFAULT false,
    ADD COLUMN idle_threshold_minutes   integer NOT NULL DEFAULT 10 CHECK (idle_threshold_minutes > 0),
    ADD COLUMN idle_inactivity_minutes  integer NOT NULL DEFAULT 30 CHECK (idle_inactivity_minutes > 0),
    ADD COLUMN idle_action              text NOT NULL DEFAULT 'REASSIGN' CHECK (idle_action IN ('REASSIGN', 'UNASSIGN'));

CREATE INDEX org_cx_settings_idle_idx ON org_cx_settings (org_id) WHERE idle_enabled;
