-- A request's time in the engine's queue before it was scheduled (contract section 5: a new
-- optional record field, from OpenTelemetry's gen_ai.latency.time_in_queue on POST /v1/traces,
-- also taken by POST /v1/usage). Nullable without a default: adding it rewrites nothing.
ALTER TABLE usage_records ADD COLUMN queue_ms double precision CHECK (queue_ms >= 0);
