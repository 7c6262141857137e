-- Customer-experience settings of an organization (business hours, off-hours reply,
-- maintenance mode) and, per conversation, which closed period or maintenance window it was
-- last answered for: one automatic reply per conversation per period.

CREATE TABLE org_cx_settings (
    org_id                 uuid PRIMARY KEY REFERENCES organizations (id),
    timezone               text NOT NULL DEFAULT 'UTC',
    business_hours_enabled boolean NOT NULL DEFAULT false,
    -- [{"dayOfWeek": 1, "start": "09:00", "end": "18:00"}]
    business_slots         jsonb NOT NULL DEFAULT '[]',
    -- ["2026-12-25"]
    holidays               jsonb NOT NULL DEFAULT '[]',
    off_hours_auto_reply   boolean NOT NULL DEFAULT false,
    off_hours_message      text,
    maintenance_mode       boolean NOT NULL DEFAULT false,
    -- When maintenance_mode was last switched on (names its period).
    maintenance_since      timestamptz,
    maintenance_message    text,
    maintenance_start      timestamptz,
    maintenance_end        timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE conversations
    ADD COLUMN off_hours_replied_for    text,
    ADD COLUMN maintenance_replied_for  text;
