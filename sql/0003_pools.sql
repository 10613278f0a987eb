-- Capacity pools (clusters, node groups): each pins the rate key its GPUs are bought at and may
-- override the price. Capacity events say how many GPUs a pool holds from a time on; the pool
-- is paid for gpus × hours × rate, and idle = provisioned − used GPU-seconds.
CREATE TABLE pools (
    name             text        PRIMARY KEY,
    accelerator      text        NOT NULL,
    provider         text        NOT NULL,
    region           text        NOT NULL,
    tier             text        NOT NULL CHECK (tier IN ('on_demand', 'spot', 'reserved', 'committed')),
    usd_per_gpu_hour numeric     CHECK (usd_per_gpu_hour >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pool_capacity (
    pool        text        NOT NULL REFERENCES pools (name),
    at          timestamptz NOT NULL,
    gpus        integer     NOT NULL CHECK (gpus >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, at)
);
