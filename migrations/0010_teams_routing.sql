-- Teams, their members and working hours; routing rules; the organization's default team.
-- Inbound conversations are routed to a team by the first matching rule (else the default
-- team) and assigned to an available member.

CREATE TABLE teams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id),
    name        text NOT NULL,
    description text,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_org_name_key ON teams (org_id, lower(name)) WHERE is_active;

CREATE TABLE team_members (
    team_id    uuid NOT NULL REFERENCES teams (id),
    user_id    uuid NOT NULL REFERENCES users (id),
    role       text NOT NULL DEFAULT 'MEMBER' CHECK (role IN ('MEMBER', 'LEAD')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

-- A team's working hours (same shape as the organization's business hours).
CREATE TABLE team_schedules (
    team_id    uuid PRIMARY KEY REFERENCES teams (id),
    timezone   text NOT NULL DEFAULT 'UTC',
    is_enabled boolean NOT NULL DEFAULT true,
    slots      jsonb NOT NULL DEFAULT '[]',
    holidays   jsonb NOT NULL DEFAULT '[]',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routing_rules (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id     uuid NOT NULL REFERENCES organizations (id),
    name       text NOT NULL,
    team_id    uuid NOT NULL REFERENCES teams (id),
    match_type text NOT NULL DEFAULT 'ANY' CHECK (match_type IN ('ANY', 'ALL')),
    is_active  boolean NOT NULL DEFAULT true,
    priority   integer NOT NULL DEFAULT 0,
    -- [{"field": "message", "operator": "contains", "value": "refund"}]
    conditions jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_org_idx ON routing_rules (org_id, priority, created_at);

ALTER TABLE org_cx_settings ADD COLUMN default_team_id uuid REFERENCES teams (id);

-- Round-robin among equally loaded agents: the one assigned longest ago goes first.
ALTER TABLE users ADD COLUMN last_assigned_at timestamptz;

CREATE INDEX conversations_waiting_idx ON conversations (org_id, team_id, created_at)
    WHERE assigned_to IS NULL AND status = 'OPEN';
CREATE INDEX conversations_assigned_open_idx ON conversations (assigned_to)
    WHERE status <> 'CLOSED';
