-- usage_daily_fleet: usage_daily without the tenant, per (day, model, accelerator, pool). Reports
-- over the whole fleet (costs not grouped or filtered by tenant, spend forecasts) read it instead
-- of usage_daily, which holds a row per tenant as well: with a thousand tenants it is a thousand
-- times smaller. Kept by its own statement-level triggers, like the other summaries, in the
-- ingest transaction.
CREATE TABLE usage_daily_fleet (
    day           timestamptz NOT NULL,
    model         text        NOT NULL,
    accelerator   text        NOT NULL,
    pool          text        NOT NULL,
    requests      bigint      NOT NULL,
    errors        bigint      NOT NULL,
    gpu_seconds   numeric     NOT NULL,
    input_tokens  bigint      NOT NULL,
    output_tokens bigint      NOT NULL,
    PRIMARY KEY (day, model, accelerator, pool)
);

-- One tenant's days (its spend forecast, its budgets, costs filtered to it).
CREATE INDEX usage_daily_tenant_day ON usage_daily (tenant, day);

CREATE FUNCTION usage_fleet_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_daily_fleet AS f (day, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
    SELECT date_trunc('day', started_at, 'UTC'), model, accelerator, coalesce(pool, ''),
           count(*), count(*) FILTER (WHERE status = 'error'), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
    FROM new_rows
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, model, accelerator, pool) DO UPDATE SET
        requests = f.requests + EXCLUDED.requests,
        errors = f.errors + EXCLUDED.errors,
        gpu_seconds = f.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = f.input_tokens + EXCLUDED.input_tokens,
        output_tokens = f.output_tokens + EXCLUDED.output_tokens;
    RETURN NULL;
END $$;

CREATE FUNCTION usage_fleet_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE usage_daily_fleet f SET
        requests = f.requests - o.requests,
        errors = f.errors - o.errors,
        gpu_seconds = f.gpu_seconds - o.gpu_seconds,
        input_tokens = f.input_tokens - o.input_tokens,
        output_tokens = f.output_tokens - o.output_tokens
    FROM (
        SELECT date_trunc('day', started_at, 'UTC') AS day, model, accelerator, coalesce(pool, '') AS pool,
               count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, sum(gpu_seconds) AS gpu_seconds,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
        FROM old_rows GROUP BY 1, 2, 3, 4
    ) o
    WHERE f.day = o.day AND f.model = o.model AND f.accelerator = o.accelerator AND f.pool = o.pool;
    DELETE FROM usage_daily_fleet WHERE requests = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_fleet_on_insert AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_fleet_add();
CREATE TRIGGER usage_fleet_on_delete AFTER DELETE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_fleet_subtract();
CREATE TRIGGER usage_fleet_on_update_old AFTER UPDATE ON usage_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_fleet_subtract();
CREATE TRIGGER usage_fleet_on_update_new AFTER UPDATE ON usage_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_fleet_add();

-- Records stored before this migration.
INSERT INTO usage_daily_fleet (day, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens)
SELECT day, model, accelerator, pool, sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens)
FROM usage_daily GROUP BY 1, 2, 3, 4;
