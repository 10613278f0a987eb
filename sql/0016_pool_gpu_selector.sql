-- GPU hardware telemetry (contract section 5): which of dcgm-exporter's GPU series, in the
-- Prometheus that `serve --prometheus-url` names, are a pool's GPUs: label name -> regular
-- expression, as Prometheus `=~` matchers. NULL: the pool says nothing (no hardware figures).
ALTER TABLE pools ADD COLUMN gpu_selector jsonb
    CHECK (gpu_selector IS NULL OR jsonb_typeof(gpu_selector) = 'object');
