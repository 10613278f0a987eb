-- The hourly rollup that reports read instead of the raw records.
--
-- One row per (hour, tenant, model, accelerator, pool) with the sums of its records. It holds no
-- money: costs are derived at query time from the rate history (rates change only on whole
-- hours, so every record of a row has the same rate), which is what lets a corrected or earlier
-- rate re-price past usage at once. The rollup is kept by statement-level triggers in the same
-- transaction as the records, so a report reflects a batch as soon as its ingest is
-- acknowledged, and a rolled-back batch leaves no trace. `pool` is '' for records with no pool
-- (a pool name is 1–64 characters, so '' is never a real one).
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

-- Rows are upserted in key order so that concurrent batches lock shared rows in the same order.
CREATE FUNCTION usage_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE FUNCTION usage_hourly_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE TRIGGER usage_hourly_on_insert AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_add();
CREATE TRIGGER usage_hourly_on_delete AFTER DELETE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_subtract();
-- An update (none of gpuledger's own paths updates records) is a delete and an insert.
CREATE TRIGGER usage_hourly_on_update_old AFTER UPDATE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_subtract();
CREATE TRIGGER usage_hourly_on_update_new AFTER UPDATE ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_add();

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
