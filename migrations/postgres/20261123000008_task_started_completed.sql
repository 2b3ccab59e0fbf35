-- Tasks learn when work on them started (their first move to in_progress,
-- kept after) and when they were completed (their move to done, cleared
-- when they leave it). Both are folded from task.status_changed by the
-- projector; rows that exist already are filled here from the log, each
-- as of its own version, exactly as a rebuild would fill them.
ALTER TABLE tasks_view ADD COLUMN started_at timestamptz;
ALTER TABLE tasks_view ADD COLUMN completed_at timestamptz;

UPDATE tasks_view t SET
    started_at = (
        SELECT e.occurred_at FROM events e
        WHERE e.tenant_id = t.tenant_id AND e.stream_id = t.id
          AND e.stream_version <= t.version
          AND e.event_type = 'task.status_changed' AND e.data->>'to' = 'in_progress'
        ORDER BY e.stream_version LIMIT 1
    ),
    completed_at = CASE WHEN t.status = 'done' THEN (
        SELECT e.occurred_at FROM events e
        WHERE e.tenant_id = t.tenant_id AND e.stream_id = t.id
          AND e.stream_version <= t.version
          AND e.event_type = 'task.status_changed' AND e.data->>'to' = 'done'
        ORDER BY e.stream_version DESC LIMIT 1
    ) END;
