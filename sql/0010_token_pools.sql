-- Pools that allocate by tokens (contract section 5). With continuous batching a request's own
-- GPU time is not measurable, so a pool may split each hour's paid cost (gpus × rate) over that
-- hour's requests in proportion to their token weight:
--   input × (input_tokens − cached_input_tokens) + cached_input × cached_input_tokens + output × output_tokens.
-- A record on such a pool may omit gpu_seconds (NULL here: not measured).
ALTER TABLE pools
    ADD COLUMN allocation text NOT NULL DEFAULT 'gpu_seconds' CHECK (allocation IN ('gpu_seconds', 'tokens')),
    ADD COLUMN w_input numeric NOT NULL DEFAULT 1 CHECK (w_input >= 0),
    ADD COLUMN w_cached_input numeric NOT NULL DEFAULT 0.1 CHECK (w_cached_input >= 0),
    ADD COLUMN w_output numeric NOT NULL DEFAULT 4 CHECK (w_output >= 0),
    ADD CONSTRAINT pools_weights_not_all_zero CHECK (w_input > 0 OR w_cached_input > 0 OR w_output > 0);

-- Every change of a pool's allocation or weights (it re-prices the pool's whole history, like a
-- rate change), listed by GET /v1/pools/{pool} and in the log.
CREATE TABLE pool_changes (
    pool           text        NOT NULL REFERENCES pools (name),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    old_allocation text,
    new_allocation text        NOT NULL,
    old_weights    text,
    new_weights    text        NOT NULL
);
CREATE INDEX pool_changes_pool ON pool_changes (pool, changed_at);

ALTER TABLE usage_records ALTER COLUMN gpu_seconds DROP NOT NULL;

-- The weights need the cached input tokens of every summary row.
SELECT usage_fold();
-- (The fold's batch table in this session has the old columns.)
DROP TABLE IF EXISTS pg_temp.usage_fold_batch;
ALTER TABLE usage_delta ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_fleet ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0;

UPDATE usage_hourly h SET cached_input_tokens = s.c
FROM (SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
             sum(cached_input_tokens) AS c
      FROM usage_records WHERE cached_input_tokens > 0 GROUP BY 1, 2, 3, 4, 5) s
WHERE h.hour = s.hour AND h.tenant = s.tenant AND h.model = s.model AND h.accelerator = s.accelerator AND h.pool = s.pool;

UPDATE usage_daily d SET cached_input_tokens = s.c
FROM (SELECT date_trunc('day', started_at, 'UTC') AS day, tenant, model, accelerator, coalesce(pool, '') AS pool,
             sum(cached_input_tokens) AS c
      FROM usage_records WHERE cached_input_tokens > 0 GROUP BY 1, 2, 3, 4, 5) s
WHERE d.day = s.day AND d.tenant = s.tenant AND d.model = s.model AND d.accelerator = s.accelerator AND d.pool = s.pool;

UPDATE usage_daily_fleet f SET cached_input_tokens = s.c
FROM (SELECT date_trunc('day', started_at, 'UTC') AS day, model, accelerator, coalesce(pool, '') AS pool,
             sum(cached_input_tokens) AS c
      FROM usage_records WHERE cached_input_tokens > 0 GROUP BY 1, 2, 3, 4) s
WHERE f.day = s.day AND f.model = s.model AND f.accelerator = s.accelerator AND f.pool = s.pool;

-- Each pool-hour's token sums (for the weight sum a tokens pool's hour is split by): one row per
-- (pool, accelerator, hour), so that a report reads a pool-hour's weight by its key instead of
-- summing the hour's summary rows of every tenant and model.
CREATE TABLE usage_pool_hourly (
    pool                text        NOT NULL,
    accelerator         text        NOT NULL,
    hour                timestamptz NOT NULL,
    input_tokens        bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    requests            bigint      NOT NULL,
    PRIMARY KEY (pool, accelerator, hour)
);
INSERT INTO usage_pool_hourly (pool, accelerator, hour, input_tokens, cached_input_tokens, output_tokens, requests)
SELECT pool, accelerator, hour, sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(requests)
FROM usage_hourly WHERE pool <> '' GROUP BY 1, 2, 3;

CREATE OR REPLACE FUNCTION usage_summaries_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_delta (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                             cached_input_tokens)
    SELECT date_trunc('hour', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
           count(*), count(*) FILTER (WHERE status = 'error'), coalesce(sum(gpu_seconds), 0), sum(input_tokens), sum(output_tokens),
           coalesce(sum(cached_input_tokens), 0)
    FROM new_rows
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO pool_day_versions AS v (pool, day, version)
    SELECT DISTINCT pool, date_trunc('day', started_at, 'UTC'), 1 FROM new_rows WHERE pool IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION usage_summaries_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_delta (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                             cached_input_tokens)
    SELECT date_trunc('hour', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
           -count(*), -count(*) FILTER (WHERE status = 'error'), -coalesce(sum(gpu_seconds), 0), -sum(input_tokens), -sum(output_tokens),
           -coalesce(sum(cached_input_tokens), 0)
    FROM old_rows
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO pool_day_versions AS v (pool, day, version)
    SELECT DISTINCT pool, date_trunc('day', started_at, 'UTC'), 1 FROM old_rows WHERE pool IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION usage_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
    negative boolean;
BEGIN
    IF NOT pg_try_advisory_xact_lock(8317040201) THEN
        RETURN 0;
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS usage_fold_batch (LIKE usage_delta) ON COMMIT DELETE ROWS;
    WITH d AS (DELETE FROM usage_delta RETURNING *)
    INSERT INTO usage_fold_batch SELECT * FROM d;
    GET DIAGNOSTICS folded = ROW_COUNT;
    IF folded = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO usage_hourly AS h (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                                   cached_input_tokens)
    SELECT hour, tenant, model, accelerator, pool, sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens),
           sum(cached_input_tokens)
    FROM usage_fold_batch
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, tenant, model, accelerator, pool) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        errors = h.errors + EXCLUDED.errors,
        gpu_seconds = h.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = h.input_tokens + EXCLUDED.input_tokens,
        output_tokens = h.output_tokens + EXCLUDED.output_tokens,
        cached_input_tokens = h.cached_input_tokens + EXCLUDED.cached_input_tokens;
    INSERT INTO usage_daily AS d (day, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                                  cached_input_tokens)
    SELECT date_trunc('day', hour, 'UTC'), tenant, model, accelerator, pool,
           sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
    FROM usage_fold_batch
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (day, tenant, model, accelerator, pool) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        errors = d.errors + EXCLUDED.errors,
        gpu_seconds = d.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens;
    INSERT INTO usage_daily_fleet AS f (day, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                                        cached_input_tokens)
    SELECT date_trunc('day', hour, 'UTC'), model, accelerator, pool,
           sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
    FROM usage_fold_batch
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, model, accelerator, pool) DO UPDATE SET
        requests = f.requests + EXCLUDED.requests,
        errors = f.errors + EXCLUDED.errors,
        gpu_seconds = f.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = f.input_tokens + EXCLUDED.input_tokens,
        output_tokens = f.output_tokens + EXCLUDED.output_tokens,
        cached_input_tokens = f.cached_input_tokens + EXCLUDED.cached_input_tokens;
    INSERT INTO usage_pool_hourly AS ph (pool, accelerator, hour, input_tokens, cached_input_tokens, output_tokens, requests)
    SELECT pool, accelerator, hour, sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(requests)
    FROM usage_fold_batch WHERE pool <> ''
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (pool, accelerator, hour) DO UPDATE SET
        input_tokens = ph.input_tokens + EXCLUDED.input_tokens,
        cached_input_tokens = ph.cached_input_tokens + EXCLUDED.cached_input_tokens,
        output_tokens = ph.output_tokens + EXCLUDED.output_tokens,
        requests = ph.requests + EXCLUDED.requests;
    -- Keys whose records are all deleted now hold zero: drop them (only deletions subtract).
    SELECT bool_or(requests < 0) INTO negative FROM usage_fold_batch;
    IF negative THEN
        DELETE FROM usage_pool_hourly ph USING (SELECT DISTINCT pool, accelerator, hour FROM usage_fold_batch WHERE requests < 0 AND pool <> '') k
        WHERE ph.requests = 0 AND ph.pool = k.pool AND ph.accelerator = k.accelerator AND ph.hour = k.hour;
        DELETE FROM usage_hourly h USING (SELECT DISTINCT hour, tenant, model, accelerator, pool FROM usage_fold_batch WHERE requests < 0) k
        WHERE h.requests = 0 AND h.hour = k.hour AND h.tenant = k.tenant AND h.model = k.model AND h.accelerator = k.accelerator AND h.pool = k.pool;
        DELETE FROM usage_daily d USING (SELECT DISTINCT date_trunc('day', hour, 'UTC') AS day, tenant, model, accelerator, pool
                                         FROM usage_fold_batch WHERE requests < 0) k
        WHERE d.requests = 0 AND d.day = k.day AND d.tenant = k.tenant AND d.model = k.model AND d.accelerator = k.accelerator AND d.pool = k.pool;
        DELETE FROM usage_daily_fleet f USING (SELECT DISTINCT date_trunc('day', hour, 'UTC') AS day, model, accelerator, pool
                                               FROM usage_fold_batch WHERE requests < 0) k
        WHERE f.requests = 0 AND f.day = k.day AND f.model = k.model AND f.accelerator = k.accelerator AND f.pool = k.pool;
    END IF;
    RETURN folded;
END $$;

CREATE OR REPLACE VIEW usage_hourly_live AS
    SELECT hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens FROM usage_hourly
    UNION ALL
    SELECT hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens FROM usage_delta;

CREATE OR REPLACE VIEW usage_daily_live AS
    SELECT day, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens FROM usage_daily
    UNION ALL
    SELECT date_trunc('day', hour, 'UTC'), tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
           cached_input_tokens
    FROM usage_delta;

CREATE OR REPLACE VIEW usage_daily_fleet_live AS
    SELECT day, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens FROM usage_daily_fleet
    UNION ALL
    SELECT date_trunc('day', hour, 'UTC'), model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
           cached_input_tokens
    FROM usage_delta;
