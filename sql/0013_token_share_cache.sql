-- The finished days' token shares of pools that allocate by tokens, per pool-day, tenant, model
-- and accelerator: each hour's paid GPU-seconds split by weight and summed over the day (the
-- `charge_gs` the reports price), so that a report reads a tokens pool's finished day as one row
-- instead of pricing its 24 hours again. Derived data, like idle_cache: valid while the pool-day's
-- usage version and the report epoch (rates, pools, capacity) are the ones recorded in
-- token_share_days; recomputed by the reports when they are not.
CREATE TABLE token_share_days (
    pool          text        NOT NULL,
    day           timestamptz NOT NULL,
    usage_version bigint      NOT NULL,
    epoch         bigint      NOT NULL
);
CREATE INDEX token_share_days_key ON token_share_days (pool, day);

CREATE TABLE token_share_cache (
    pool                text        NOT NULL,
    day                 timestamptz NOT NULL,
    tenant              text        NOT NULL,
    model               text        NOT NULL,
    accelerator         text        NOT NULL,
    requests            bigint      NOT NULL,
    errors              bigint      NOT NULL,
    gpu_seconds         numeric     NOT NULL,
    input_tokens        bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL,
    charge_gs           numeric  -- null: a record of another accelerator than its pool's (no share)
);
CREATE INDEX token_share_cache_key ON token_share_cache (pool, day);
