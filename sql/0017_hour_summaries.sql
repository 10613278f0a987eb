-- Summaries derived from whole hours of records (issue 19): mergeable latency sketches per hour
-- and model, and a summary by label per hour.
--
-- Exact percentiles over a long window sort every record of it: the Models table over 7 days
-- took 10 s at 10 million records. A sketch per (hour, model) of each latency figure (DDSketch,
-- 1% relative accuracy: `LatencySketch` in GPULedgerCore, its bytes from `encoded()`) merges
-- into any window of whole hours by adding bucket counts, so a long window reads a few thousand
-- small rows instead of millions of records (StatsStore, README "Latency sketches").
--
-- A sketch is derived data, like the idle cache: each row keeps the sums it was computed from
-- (requests, errors, input and output tokens), and a reader uses it only while they equal the
-- hour's sums in the summaries (usage_hourly_live), computing the hour from the raw records
-- otherwise. So a sketch can be missing or late, never counted wrong. The fold marks the hours
-- whose records changed in hour_summaries_dirty; the background runner recomputes those hours
-- from the raw records (HourSummaryKeeper), whole past hours only, sketches and labels together.
CREATE TABLE latency_sketches (
    hour                timestamptz NOT NULL,
    model               text        NOT NULL,
    requests            bigint      NOT NULL,
    errors              bigint      NOT NULL,
    input_tokens        bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    gpu_seconds         double precision NOT NULL,
    -- input tokens of the records that report cached_input_tokens, and those cached tokens
    cache_input_tokens  bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL,
    ttft                bytea       NOT NULL,
    tpot                bytea       NOT NULL,
    e2e                 bytea       NOT NULL,
    queue               bytea       NOT NULL,
    PRIMARY KEY (hour, model)
);

-- The label summary: per hour, tenant, model, accelerator, pool ('' for none), label key and
-- value, the sums of the records carrying that value, priced like raw rows by the cost reports
-- (`group_by=label:KEY`, ReportSQL.base). Records without the key are the hour's totals less
-- these. label_hours keeps, per hour and tenant, the sums the rows were made from and the keys
-- not summarized in that hour: a key with more than 1,000 values in an hour (a request
-- id, a user id) is left to the raw records for that hour, which bounds the summary at 1,000
-- rows per key and hourly key.
CREATE TABLE usage_label_hourly (
    key                 text        NOT NULL,
    hour                timestamptz NOT NULL,
    tenant              text        NOT NULL,
    model               text        NOT NULL,
    accelerator         text        NOT NULL,
    pool                text        NOT NULL,
    value               text        NOT NULL,
    requests            bigint      NOT NULL,
    errors              bigint      NOT NULL,
    gpu_seconds         numeric     NOT NULL,
    input_tokens        bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL
);
-- No primary key: the keeper writes each hour's rows once, grouped, and replaces them by hour; a
-- key of every column would double the table's size. Reports read by key, hour and tenant.
CREATE INDEX usage_label_hourly_key ON usage_label_hourly (key, hour, tenant);
CREATE INDEX usage_label_hourly_hour ON usage_label_hourly (hour);

CREATE TABLE label_hours (
    hour          timestamptz NOT NULL,
    tenant        text        NOT NULL,
    requests      bigint      NOT NULL,
    errors        bigint      NOT NULL,
    input_tokens  bigint      NOT NULL,
    output_tokens bigint      NOT NULL,
    unsummarized  text[]      NOT NULL,
    PRIMARY KEY (hour, tenant)
);

-- The same by day (the sums of the day's hourly label rows, and of its label_hours), rewritten
-- whenever one of its hours is: a month's breakdown reads days, 24 times fewer rows. A day is read
-- from it while its label_days sums equal the day's in usage_daily_live (so every hour of it is
-- current), the rate does not change inside it, and not for pools that allocate by tokens (those
-- split each hour by the hour's weights, so they read hours).
CREATE TABLE usage_label_daily (LIKE usage_label_hourly);
ALTER TABLE usage_label_daily RENAME COLUMN hour TO day;
CREATE INDEX usage_label_daily_key ON usage_label_daily (key, day, tenant);
CREATE INDEX usage_label_daily_day ON usage_label_daily (day);

CREATE TABLE label_days (LIKE label_hours INCLUDING ALL);
ALTER TABLE label_days RENAME COLUMN hour TO day;

-- marked_at: the last fold that touched the hour; the runner waits until an hour has been quiet
-- for a few seconds (a backfill touches the same hours batch after batch).
CREATE TABLE hour_summaries_dirty (
    hour      timestamptz PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- Every hour with records now is to be sketched.
INSERT INTO hour_summaries_dirty (hour)
SELECT DISTINCT hour FROM usage_hourly_live ORDER BY 1
ON CONFLICT (hour) DO NOTHING;

-- The fold (sql/0010's, renamed) then marks the hours it folded: their rows are still in the
-- fold's batch table until the transaction ends.
ALTER FUNCTION usage_fold() RENAME TO usage_fold_summaries;

CREATE FUNCTION usage_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    folded := usage_fold_summaries();
    IF folded > 0 THEN
        INSERT INTO hour_summaries_dirty (hour)
        SELECT DISTINCT hour FROM usage_fold_batch ORDER BY 1
        ON CONFLICT (hour) DO UPDATE SET marked_at = now();
    END IF;
    RETURN folded;
END $$;
