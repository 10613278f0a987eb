-- Ingest writes its batch's summary deltas itself.
--
-- Until now a statement trigger summed each batch's records into usage_delta from the
-- transition table: PostgreSQL copied every inserted row into a tuplestore and then grouped it,
-- 0.65 s of a 200,000-record month backfill that took 1.05 s to COPY without it (README, "Ingest
-- speed"). The service has parsed the batch already, so it sums the batch's delta rows while it
-- writes the COPY text and COPYs them into usage_delta in the same transaction
-- (`SummaryDelta.rows` in GPULedgerCore); the staging path (a batch with duplicates) writes them
-- from the rows its INSERT returns.
--
-- Every other writer must do the same, so an INSERT into usage_records now fails unless its
-- transaction says it has written the deltas:
--     SELECT set_config('gpuledger.deltas', 'written', true);
-- (then the INSERT, then the sums of the rows it inserted into usage_delta, as the staging path in
-- UsageStore.swift does). A forgotten delta would make every report wrong; a refused INSERT says
-- what to do. Deletes and updates keep their triggers (retention deletes a few thousand rows a
-- time).
DROP TRIGGER usage_summaries_on_insert ON usage_records;

CREATE FUNCTION usage_records_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('gpuledger.deltas', true) IS DISTINCT FROM 'written' THEN
        RAISE EXCEPTION 'rows inserted into usage_records without their summary deltas'
            USING HINT = 'write usage through the service (POST /v1/usage), or in one transaction: SELECT set_config(''gpuledger.deltas'', ''written'', true), the INSERT, and the inserted rows'' sums into usage_delta (sql/0014)';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_records_insert_guard AFTER INSERT ON usage_records
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_insert_guard();
