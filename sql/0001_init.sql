-- gpuledger schema, first version. Forward-only: never edit this file once landed; add 0002_… instead.

-- One row per LLM request served (contract section 2).
--
-- Why one plain table and not monthly partitions: the idempotency key is (tenant, request_id)
-- across all time. PostgreSQL can only enforce a unique key on a partitioned table when the key
-- contains the partition column (started_at), so partitioning would need a second, global key
-- table written on every insert: about half the ingest rate, for a benefit (dropping old months)
-- that a retention job deleting by started_at gives too. Time-range scans use the BRIN index,
-- which stays tiny because records arrive roughly in time order; reports read summary tables.
CREATE TABLE usage_records (
    tenant              text             NOT NULL,
    request_id          text             NOT NULL,
    model               text             NOT NULL,
    accelerator         text             NOT NULL,
    pool                text,
    started_at          timestamptz      NOT NULL,
    gpu_seconds         numeric          NOT NULL CHECK (gpu_seconds >= 0),
    input_tokens        bigint           NOT NULL CHECK (input_tokens >= 0),
    output_tokens       bigint           NOT NULL CHECK (output_tokens >= 0),
    cached_input_tokens bigint           CHECK (cached_input_tokens >= 0 AND cached_input_tokens <= input_tokens),
    ttft_ms             double precision CHECK (ttft_ms >= 0),
    tpot_ms             double precision CHECK (tpot_ms >= 0),
    e2e_ms              double precision CHECK (e2e_ms >= 0),
    status              text             NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error')),
    error_type          text,
    labels              jsonb,
    ingested_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, request_id)
) WITH (fillfactor = 100);

CREATE INDEX usage_records_started_at_brin ON usage_records USING brin (started_at) WITH (pages_per_range = 32);

-- API keys: only a SHA-256 of each key is kept. The prefix identifies a key in listings.
CREATE TABLE api_keys (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('admin', 'finance', 'ingest', 'tenant')),
    tenant      text,
    key_hash    bytea       NOT NULL UNIQUE,
    key_prefix  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (role <> 'tenant' OR tenant IS NOT NULL),
    CHECK (role IN ('ingest', 'tenant') OR tenant IS NULL)
);
