-- Schema version 9: an execution keeps the W3C traceparent of the span that created it, so
-- that each run of it, on whichever replica, continues the same OpenTelemetry trace (NULL
-- when the factory that created it did not trace).
ALTER TABLE executions ADD COLUMN trace TEXT;
