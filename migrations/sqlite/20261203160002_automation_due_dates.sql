-- Automations triggered by a passed due date; see the Postgres migration.
ALTER TABLE automations_view ADD COLUMN trigger_event TEXT NOT NULL DEFAULT '';
UPDATE automations_view SET trigger_event = json_extract(trigger, '$.event');

CREATE TABLE automation_due_dates_seen (
    tenant_id BLOB NOT NULL,
    task_id   BLOB NOT NULL,
    due_date  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, task_id, due_date)
);
