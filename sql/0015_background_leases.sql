-- Many `serve` replicas on one database: the background jobs (the summary fold, the budget and
-- pool gauges) run on one replica at a time, the holder of the lease below.
--
-- A replica takes the lease when it is free or its holder let it lapse (expires_at in the past,
-- by the database's clock, so the replicas' clocks do not matter) and renews it every second; a
-- replica that is killed stops renewing and another takes over once the lease expires (5 s by
-- default). `term` counts the hand-overs. A stopping replica gives the lease up at once.
CREATE TABLE background_leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    term        bigint      NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- How often each job ran, per replica: the proof that each runs on one replica at a time (the
-- test and scripts/ha-drill count these), and what an operator reads to see where they run.
CREATE TABLE background_runs (
    job         text        NOT NULL,
    holder      text        NOT NULL,
    runs        bigint      NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (job, holder)
);
