-- Tracing across the log: the W3C trace context (traceparent, tracestate)
-- each event was appended in, so the relay, the projectors and the feed
-- continue the trace of the request that caused it.
ALTER TABLE events ADD COLUMN traceparent text;
ALTER TABLE events ADD COLUMN tracestate text;
