-- When work on a task started and when it was completed; see the Postgres
-- migration. Existing rows are filled from the log, as of their version.
ALTER TABLE tasks_view ADD COLUMN started_at TEXT;
ALTER TABLE tasks_view ADD COLUMN completed_at TEXT;

UPDATE tasks_view SET
    started_at = (
        SELECT e.occurred_at FROM events e
        WHERE e.tenant_id = tasks_view.tenant_id AND e.stream_id = tasks_view.id
          AND e.stream_version <= tasks_view.version
          AND e.event_type = 'task.status_changed' AND e.data->>'to' = 'in_progress'
        ORDER BY e.stream_version LIMIT 1
    ),
    completed_at = CASE WHEN status = 'done' THEN (
        SELECT e.occurred_at FROM events e
        WHERE e.tenant_id = tasks_view.tenant_id AND e.stream_id = tasks_view.id
          AND e.stream_version <= tasks_view.version
          AND e.event_type = 'task.status_changed' AND e.data->>'to' = 'done'
        ORDER BY e.stream_version DESC LIMIT 1
    ) END;
