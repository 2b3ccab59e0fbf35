-- Tracing across the log; see the Postgres migration.
ALTER TABLE events ADD COLUMN traceparent TEXT;
ALTER TABLE events ADD COLUMN tracestate TEXT;
-- The unassign policy's pending work keeps the removal's context, so the
-- unassignments it appends continue that trace.
ALTER TABLE unassign_work ADD COLUMN traceparent TEXT;
ALTER TABLE unassign_work ADD COLUMN tracestate TEXT;
