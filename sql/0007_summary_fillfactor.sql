-- The summaries are updated in place by every ingest batch (one upsert per key the batch
-- touches). Room on each page lets PostgreSQL make those updates HOT (heap-only: the updated
-- columns are not indexed), so an update writes no index entries; with full pages every update
-- moved the row and wrote to every index. Applies to pages written from now on.
ALTER TABLE usage_hourly SET (fillfactor = 70);
ALTER TABLE usage_daily SET (fillfactor = 70);
ALTER TABLE usage_daily_fleet SET (fillfactor = 70);
ALTER TABLE pool_day_versions SET (fillfactor = 70);
