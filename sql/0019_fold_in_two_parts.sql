-- The fold in two parts that can run at once (issue 19: fold lag at most 2 s after a backfill).
--
-- One fold moved every delta into the four summaries in one transaction, on one core: after a
-- month-wide backfill of 200,000 records (about 185,000 hourly keys, one upsert each) it finished
-- 4-5 s after the last answer, while the machine's other core was idle. The deltas of even and odd
-- days (UTC) touch disjoint summary rows in every summary (an hour lies in one day; the daily and
-- fleet rows are per day, the pool-hours and the hours marked for the hour keeper per hour), so
-- two transactions can fold them side by side without waiting on each other's rows, each under an
-- advisory lock of its own (one fold of a part at a time, across replicas). The service runs both
-- at once (UsageStore.foldSummaries); usage_fold() folds both, one after the other, in the
-- caller's transaction, as before. Readers stay exact: each part deletes its deltas and adds their
-- sums in one transaction, as the one fold did.
--
-- Also measured on that backfill's deltas (psql, 2 cores): grouping 200,000 delta rows by sorting
-- before the upsert took 218 ms for the fleet summary's 1,200 keys, hashing first 33 ms; each
-- summary is now aggregated by hash, then sorted (upserts in key order, so that they lock rows in
-- one order). A sort of the batch spilled to disk at the default work_mem (4 MB): the fold sets
-- 64 MB for itself. (MERGE instead of INSERT … ON CONFLICT was 25% faster into an empty table in
-- the same test, but its plan is the planner's choice: with an index-probing plan forced it took
-- 22 s; the upsert's cost does not depend on a plan.)
CREATE FUNCTION usage_fold_part(part integer) RETURNS bigint LANGUAGE plpgsql
SET work_mem = '64MB'
AS $$
DECLARE
    folded bigint;
    negative boolean;
BEGIN
    IF part IS NULL OR part NOT IN (0, 1) THEN
        RAISE EXCEPTION 'usage_fold_part: part is 0 (even days) or 1 (odd days), not %', part;
    END IF;
    IF NOT pg_try_advisory_xact_lock(83170402, part) THEN
        RETURN 0;
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS usage_fold_batch (LIKE usage_delta) ON COMMIT DELETE ROWS;
    TRUNCATE usage_fold_batch;
    WITH d AS (DELETE FROM usage_delta WHERE (date_part('epoch', hour)::bigint / 86400) & 1 = part RETURNING *)
    INSERT INTO usage_fold_batch SELECT * FROM d;
    GET DIAGNOSTICS folded = ROW_COUNT;
    IF folded = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO usage_hourly AS h (hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens,
                                   cached_input_tokens)
    SELECT * FROM (
        SELECT hour, tenant, model, accelerator, pool, sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens),
               sum(cached_input_tokens)
        FROM usage_fold_batch GROUP BY 1, 2, 3, 4, 5 OFFSET 0) g
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
    SELECT * FROM (
        SELECT date_trunc('day', hour, 'UTC'), tenant, model, accelerator, pool,
               sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
        FROM usage_fold_batch GROUP BY 1, 2, 3, 4, 5 OFFSET 0) g
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
    SELECT * FROM (
        SELECT date_trunc('day', hour, 'UTC'), model, accelerator, pool,
               sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens)
        FROM usage_fold_batch GROUP BY 1, 2, 3, 4 OFFSET 0) g
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, model, accelerator, pool) DO UPDATE SET
        requests = f.requests + EXCLUDED.requests,
        errors = f.errors + EXCLUDED.errors,
        gpu_seconds = f.gpu_seconds + EXCLUDED.gpu_seconds,
        input_tokens = f.input_tokens + EXCLUDED.input_tokens,
        output_tokens = f.output_tokens + EXCLUDED.output_tokens,
        cached_input_tokens = f.cached_input_tokens + EXCLUDED.cached_input_tokens;
    INSERT INTO usage_pool_hourly AS ph (pool, accelerator, hour, input_tokens, cached_input_tokens, output_tokens, requests)
    SELECT * FROM (
        SELECT pool, accelerator, hour, sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(requests)
        FROM usage_fold_batch WHERE pool <> '' GROUP BY 1, 2, 3 OFFSET 0) g
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
    -- The hours folded are the hour keeper's to recompute (sql/0017).
    INSERT INTO hour_summaries_dirty (hour)
    SELECT DISTINCT hour FROM usage_fold_batch ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET marked_at = now();
    RETURN folded;
END $$;

-- Both parts, one after the other, in the caller's transaction (tests, benchmarks, psql); the
-- delta rows folded (a part another session is folding is left to it).
CREATE OR REPLACE FUNCTION usage_fold() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN usage_fold_part(0) + usage_fold_part(1);
END $$;

DROP FUNCTION usage_fold_summaries();
