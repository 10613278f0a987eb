-- Rate history: every rate the rate cards have held, so that any re-pricing can be explained.
-- A rate is keyed by (provider, region, accelerator, tier, effective_from). Loading the cards
-- adds new rates, updates changed prices (logged in rate_changes) and retires rates that left
-- the cards (retired_at; kept for the record, no longer used for pricing).
CREATE TABLE rates (
    provider          text        NOT NULL,
    region            text        NOT NULL,
    accelerator       text        NOT NULL,
    tier              text        NOT NULL CHECK (tier IN ('on_demand', 'spot', 'reserved', 'committed')),
    effective_from    timestamptz NOT NULL,
    usd_per_gpu_hour  numeric     NOT NULL CHECK (usd_per_gpu_hour >= 0),
    source            text        NOT NULL,
    card              text        NOT NULL,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    changed_at        timestamptz NOT NULL DEFAULT now(),
    retired_at        timestamptz,
    PRIMARY KEY (provider, region, accelerator, tier, effective_from)
);

CREATE TABLE rate_changes (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT now(),
    change            text        NOT NULL CHECK (change IN ('added', 'changed', 'retired', 'restored')),
    provider          text        NOT NULL,
    region            text        NOT NULL,
    accelerator       text        NOT NULL,
    tier              text        NOT NULL,
    effective_from    timestamptz NOT NULL,
    old_usd_per_gpu_hour numeric,
    new_usd_per_gpu_hour numeric,
    card              text        NOT NULL
);

-- Which rate prices usage on no registered pool, per accelerator (pricing/defaults.csv).
CREATE TABLE default_rates (
    accelerator text PRIMARY KEY,
    provider    text NOT NULL,
    region      text NOT NULL,
    tier        text NOT NULL
);
