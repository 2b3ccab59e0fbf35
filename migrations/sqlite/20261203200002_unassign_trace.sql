-- The unassign policy's trace context; see the Postgres migration.
ALTER TABLE unassign_work ADD COLUMN traceparent TEXT;
ALTER TABLE unassign_work ADD COLUMN tracestate TEXT;
