-- Every analytics counter is now also kept for the whole workspace, under
-- the nil project id, so a workspace's figures read as few rows as one
-- project's however many projects it holds; the indexes that served
-- workspace reads by summing every project's rows go.
--
-- The counters are refolded from the log: the read model is emptied and
-- every generation of the projection starts over from the first event.
DROP INDEX analytics_activity_slot;
DROP INDEX analytics_completions_slot;
DROP INDEX analytics_cycle_days_day;

DELETE FROM analytics_tasks;
DELETE FROM analytics_activity;
DELETE FROM analytics_open;
DELETE FROM analytics_completions;
DELETE FROM analytics_cycle_days;

-- A range's sums read their counts from the index alone (once autovacuum
-- has marked the pages of past days all-visible): a day in a quarter-hour
-- zone is some 27 buckets, and fetching each from the heap cost more than
-- the index walk.
ALTER TABLE analytics_activity DROP CONSTRAINT analytics_activity_pkey,
    ADD CONSTRAINT analytics_activity_pkey
        PRIMARY KEY (generation, tenant_id, project_id, minutes, slot, kind) INCLUDE (count);
ALTER TABLE analytics_cycle_days DROP CONSTRAINT analytics_cycle_days_pkey,
    ADD CONSTRAINT analytics_cycle_days_pkey
        PRIMARY KEY (generation, tenant_id, project_id, day, bin) INCLUDE (count);
DROP INDEX analytics_completions_project_slot;
CREATE INDEX analytics_completions_project_slot
    ON analytics_completions (generation, tenant_id, project_id, minutes, slot) INCLUDE (assignee_id, count);

UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE name = 'analytics';
