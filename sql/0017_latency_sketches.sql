-- Mergeable latency sketches per hour and model (issue 19).
--
-- Exact percentiles over a long window sort every record of it: the Models table over 7 days
-- took 10 s at 10 million records. A sketch per (hour, model) of each latency figure (DDSketch,
-- 1% relative accuracy: `LatencySketch` in GPULedgerCore, its bytes from `encoded()`) merges
-- into any window of whole hours by adding bucket counts, so a long window reads a few thousand
-- small rows instead of millions of records (StatsStore, README "Latency sketches").
--
-- A sketch is derived data, like the idle cache: each row keeps the sums it was computed from
-- (requests, errors, input and output tokens), and a reader uses it only while they equal the
-- hour's sums in the summaries (usage_hourly_live), computing the hour from the raw records
-- otherwise. So a sketch can be missing or late, never counted wrong. The fold marks the hours
-- whose records changed in latency_sketch_dirty; the background runner recomputes those hours
-- from the raw records (LatencySketchStore.keep), whole past hours only.
CREATE TABLE latency_sketches (
    hour                timestamptz NOT NULL,
    model               text        NOT NULL,
    requests            bigint      NOT NULL,
    errors              bigint      NOT NULL,
    input_tokens        bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    gpu_seconds         double precision NOT NULL,
    -- input tokens of the records that report cached_input_tokens, and those cached tokens
    cache_input_tokens  bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL,
    ttft                bytea       NOT NULL,
    tpot                bytea       NOT NULL,
    e2e                 bytea       NOT NULL,
    queue               bytea       NOT NULL,
    PRIMARY KEY (hour, model)
);

CREATE TABLE latency_sketch_dirty (
    hour timestamptz PRIMARY KEY
);

-- Every hour with records now is to be sketched.
INSERT INTO latency_sketch_dirty (hour)
SELECT DISTINCT hour FROM usage_hourly_live ORDER BY 1
ON CONFLICT (hour) DO NOTHING;

-- The fold (sql/0010's, renamed) then marks the hours it folded: their rows are still in the
-- fold's batch table until the transaction ends.
ALTER FUNCTION usage_fold() RENAME TO usage_fold_summaries;

CREATE FUNCTION usage_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    folded := usage_fold_summaries();
    IF folded > 0 THEN
        INSERT INTO latency_sketch_dirty (hour)
        SELECT DISTINCT hour FROM usage_fold_batch ORDER BY 1
        ON CONFLICT (hour) DO NOTHING;
    END IF;
    RETURN folded;
END $$;
