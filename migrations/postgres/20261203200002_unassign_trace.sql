-- The unassign policy's pending work keeps the removal's trace context, so
-- the unassignments it appends continue that trace.
ALTER TABLE unassign_work ADD COLUMN traceparent text;
ALTER TABLE unassign_work ADD COLUMN tracestate text;
