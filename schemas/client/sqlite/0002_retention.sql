-- When the local copy of a delivered instance was removed by the retention sweep.
ALTER TABLE outbox ADD COLUMN purged_at INTEGER;
