-- Which projections run inside the append transaction (their checkpoint
-- never moves: they are as far as the log, always).
ALTER TABLE projections ADD COLUMN inline boolean NOT NULL DEFAULT false;

-- Rebuilds of projections (blue/green replays), requested from the admin
-- API or the CLI and carried out by whichever process runs projectors. At
-- most one runs per projection.
CREATE TABLE projection_jobs (
    id            uuid PRIMARY KEY,
    name          TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    -- The head of the log when the rebuild began: the first target.
    start_head    bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    error         TEXT
);
CREATE UNIQUE INDEX projection_jobs_running ON projection_jobs (name) WHERE state = 'running';
CREATE INDEX projection_jobs_created ON projection_jobs (created_at);

-- The audit log filters a tenant's events by actor (the user, or the API
-- key, behind them), and admins read one stream without knowing its
-- tenant. Filters by type scan the tenant's events in position order: each
-- index here is paid on every append, and the log is written far more
-- often than it is audited.
CREATE INDEX events_actor ON events (tenant_id, actor_id, position);
CREATE INDEX events_actor_user ON events (tenant_id, actor_user_id, position);
CREATE INDEX events_stream ON events (stream_id, stream_version);

-- project.created v2 records the prefix of the project's task keys.
ALTER TABLE projects_view ADD COLUMN key TEXT NOT NULL DEFAULT '';
-- What project.created v1 upcasts to: the slug in capitals (slugs are ASCII).
UPDATE projects_view SET key = upper(slug);

-- Time travel folds a task with its comments, and a project with its tasks:
-- the related events are found by the id their payload names.
CREATE INDEX events_comment_task ON events (tenant_id, (data->>'task_id')) WHERE stream_type = 'comment';
CREATE INDEX events_task_project ON events (tenant_id, (data->>'project_id')) WHERE stream_type = 'task';

-- Emptied count buckets are deleted as batches empty them.
CREATE INDEX task_counts_empty ON task_counts (generation) WHERE count = 0;
