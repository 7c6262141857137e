-- A scheduled maintenance window is opened and closed by jobs at its start and end (and a
-- catch-up sweep every minute). This remembers that the current window was opened, so an
-- admin who switches maintenance off during the window is not overruled by the next sweep.
ALTER TABLE org_cx_settings
    ADD COLUMN maintenance_by_window boolean NOT NULL DEFAULT false;
