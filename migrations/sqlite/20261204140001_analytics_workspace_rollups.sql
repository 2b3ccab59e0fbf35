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

UPDATE projection_checkpoints SET position = 0 WHERE name = 'analytics';
