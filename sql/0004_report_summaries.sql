-- Summaries that reports read instead of the raw records.
--
-- usage_hourly and usage_daily: one row per (hour or day, tenant, model, accelerator, pool) with
-- the sums of its records. They hold no money: costs are derived at query time from the rate
-- history (rates change only on whole hours, so every record of an hourly row has one rate, and
-- so does a daily row unless a rate changes inside that day), which is what lets a corrected or
-- earlier rate re-price past usage at once. Both are kept by statement-level triggers in the same
-- transaction as the records, so a report reflects a batch as soon as its ingest is acknowledged
-- and a rolled-back batch leaves no trace. `pool` is '' for records with no pool (a pool name is
-- 1–64 characters, so '' is never a real one).
CREATE TABLE usage_hourly (
    hour          timestamptz NOT NULL,
    tenant        text        NOT NULL,
    model         text        NOT NULL,
    accelerator   text        NOT NULL,
    pool          text        NOT NULL,
    requests      bigint      NOT NULL,
    errors        bigint      NOT NULL,
    gpu_seconds   numeric     NOT NULL,
    input_tokens  bigint      NOT NULL,
    output_tokens bigint      NOT NULL,
    PRIMARY KEY (hour, tenant, model, accelerator, pool)
);

CREATE TABLE usage_daily (LIKE usage_hourly INCLUDING ALL);
ALTER TABLE usage_daily RENAME COLUMN hour TO day;

-- A chargeback reads one pool's hours at a time (idle sharing, below).
CREATE INDEX usage_hourly_pool_hour ON usage_hourly (pool, hour);

-- Idle sharing needs usage per pool, hour and tenant, which is the costly part of a chargeback.
-- Its result is kept per pool and day in idle_cache, valid while the pool-day's usage version
-- and the pricing epoch are those it was computed from: ingest into a pool-day bumps its version,
-- and any change to rates, pools or capacity bumps the epoch. A report recomputes what is not
-- valid from usage_hourly, so the cache can be stale but never wrong.
CREATE TABLE pool_day_versions (
    pool    text        NOT NULL,
    day     timestamptz NOT NULL,
    version bigint      NOT NULL,
    PRIMARY KEY (pool, day)
);

CREATE TABLE report_epoch (epoch bigint NOT NULL);
INSERT INTO report_epoch VALUES (1);

CREATE TABLE idle_cache (
    pool          text        NOT NULL,
    day           timestamptz NOT NULL,
    usage_version bigint      NOT NULL,
    epoch         bigint      NOT NULL,
    -- 'computed' (one per pool-day), 'idle' (a tenant's share), 'unallocated', 'provisioned', 'over'
    kind          text        NOT NULL,
    tenant        text,
    accelerator   text,
    provider      text,
    region        text,
    tier          text,
    rate          numeric,
    seg_s         timestamptz,
    seg_e         timestamptz,
    pool_hours    bigint,
    gpu_seconds   numeric,
    cost          numeric
);
CREATE INDEX idle_cache_pool_day ON idle_cache (pool, day);

CREATE FUNCTION report_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_epoch SET epoch = epoch + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER rates_epoch AFTER INSERT OR UPDATE OR DELETE ON rates FOR EACH STATEMENT EXECUTE FUNCTION report_epoch_bump();
CREATE TRIGGER pools_epoch AFTER INSERT OR UPDATE OR DELETE ON pools FOR EACH STATEMENT EXECUTE FUNCTION report_epoch_bump();
CREATE TRIGGER pool_capacity_epoch AFTER INSERT OR UPDATE OR DELETE ON pool_capacity FOR EACH STATEMENT EXECUTE FUNCTION report_epoch_bump();

-- Rows are upserted in key order so that concurrent batches lock shared rows in the same order.
CREATE FUNCTION usage_summaries_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hourly AS h (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
    SELECT date_trunc('hour', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
           count(*), count(*) FILTER (WHERE status = 'error'), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
    FROM new_rows
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, tenant, model, accelerator, pool) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        errors = h.errors + EXCLUDED.errors,
        gpu_seconds = h.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = h.input_tokens + EXCLUDED.input_tokens,
        output_tokens = h.output_tokens + EXCLUDED.output_tokens;
    INSERT INTO usage_daily AS d (day, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
    SELECT date_trunc('day', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
           count(*), count(*) FILTER (WHERE status = 'error'), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
    FROM new_rows
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (day, tenant, model, accelerator, pool) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        errors = d.errors + EXCLUDED.errors,
        gpu_seconds = d.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens;
    INSERT INTO pool_day_versions AS v (pool, day, version)
    SELECT DISTINCT pool, date_trunc('day', started_at, 'UTC'), 1 FROM new_rows WHERE pool IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END $$;

CREATE FUNCTION usage_summaries_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE usage_hourly h SET
        requests = h.requests - o.requests,
        errors = h.errors - o.errors,
        gpu_seconds = h.gpu_seconds - o.gpu_seconds,
        input_tokens = h.input_tokens - o.input_tokens,
        output_tokens = h.output_tokens - o.output_tokens
    FROM (
        SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
               count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, sum(gpu_seconds) AS gpu_seconds,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
        FROM old_rows GROUP BY 1, 2, 3, 4, 5
    ) o
    WHERE h.hour = o.hour AND h.tenant = o.tenant AND h.model = o.model AND h.accelerator = o.accelerator AND h.pool = o.pool;
    DELETE FROM usage_hourly WHERE requests = 0;
    UPDATE usage_daily d SET
        requests = d.requests - o.requests,
        errors = d.errors - o.errors,
        gpu_seconds = d.gpu_seconds - o.gpu_seconds,
        input_tokens = d.input_tokens - o.input_tokens,
        output_tokens = d.output_tokens - o.output_tokens
    FROM (
        SELECT date_trunc('day', started_at, 'UTC') AS day, tenant, model, accelerator, coalesce(pool, '') AS pool,
               count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, sum(gpu_seconds) AS gpu_seconds,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
        FROM old_rows GROUP BY 1, 2, 3, 4, 5
    ) o
    WHERE d.day = o.day AND d.tenant = o.tenant AND d.model = o.model AND d.accelerator = o.accelerator AND d.pool = o.pool;
    DELETE FROM usage_daily WHERE requests = 0;
    INSERT INTO pool_day_versions AS v (pool, day, version)
    SELECT DISTINCT pool, date_trunc('day', started_at, 'UTC'), 1 FROM old_rows WHERE pool IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_summaries_on_insert AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_summaries_add();
CREATE TRIGGER usage_summaries_on_delete AFTER DELETE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_summaries_subtract();
-- An update (none of gpuledger's own paths updates records) is a delete and an insert.
CREATE TRIGGER usage_summaries_on_update_old AFTER UPDATE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_summaries_subtract();
CREATE TRIGGER usage_summaries_on_update_new AFTER UPDATE ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_summaries_add();

-- n / d rounded once, half up, to 12 decimal places, exactly (numeric division alone rounds at a
-- scale of its own choosing, which could round twice). NULL when d is NULL or 0. Amounts here
-- are never negative.
CREATE FUNCTION usd_round(n numeric, d numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n IS NULL OR d IS NULL OR d = 0 THEN NULL
                ELSE (div(n * 1000000000000, d) + CASE WHEN 2 * mod(n * 1000000000000, d) >= d THEN 1 ELSE 0 END) * 0.000000000001
           END
$$;

-- Records stored before this migration.
INSERT INTO usage_hourly (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
SELECT date_trunc('hour', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
       count(*), count(*) FILTER (WHERE status = 'error'), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
FROM usage_records GROUP BY 1, 2, 3, 4, 5;
INSERT INTO usage_daily (day, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
SELECT date_trunc('day', hour, 'UTC'), tenant, model, accelerator, pool,
       sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
FROM usage_hourly GROUP BY 1, 2, 3, 4, 5;
INSERT INTO pool_day_versions (pool, day, version)
SELECT DISTINCT pool, date_trunc('day', hour, 'UTC'), 1 FROM usage_hourly WHERE pool <> '';
