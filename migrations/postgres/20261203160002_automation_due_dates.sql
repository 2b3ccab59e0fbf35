-- Automations triggered by a task's due date passing: the trigger's event
-- name beside the trigger (what the due-date clock looks for), and the
-- (task, due date) pairs the clock has recorded as passed, so its scan
-- skips them.
ALTER TABLE automations_view ADD COLUMN trigger_event text NOT NULL DEFAULT '';
UPDATE automations_view SET trigger_event = trigger->>'event';

CREATE TABLE automation_due_dates_seen (
    tenant_id uuid NOT NULL,
    task_id   uuid NOT NULL,
    due_date  date NOT NULL,
    PRIMARY KEY (tenant_id, task_id, due_date)
);
