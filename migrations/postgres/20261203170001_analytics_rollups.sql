-- Analytics read in a few rows whatever the range: activity and
-- completions are counted per UTC day and hour as well as per 15-minute
-- slot (`minutes` says which), and cycle times in a per-day histogram of
-- log-scaled bins, each done task keeping its bin, so a percentile is the
-- histogram's sums and one indexed step inside one bin.
--
-- The read model is rebuilt from the log: its tables are dropped and made
-- again empty, and every generation of the projection starts over from
-- the first event.
DROP TABLE analytics_tasks;
DROP TABLE analytics_activity;
DROP TABLE analytics_open;
DROP TABLE analytics_completions;

CREATE TABLE analytics_tasks (
    generation   integer     NOT NULL,
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    project_id   uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    status       text        NOT NULL,
    priority     text        NOT NULL,
    assignee_id  uuid,
    started_at   timestamptz,
    completed_at timestamptz,
    cycle_ms     bigint,
    cycle_bin    integer,
    version      bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
-- The done tasks of a range's ragged ends, counted per bin.
CREATE INDEX analytics_tasks_done ON analytics_tasks (generation, tenant_id, completed_at, cycle_bin, project_id)
    WHERE cycle_bin IS NOT NULL;
CREATE INDEX analytics_tasks_project_done ON analytics_tasks (generation, tenant_id, project_id, completed_at, cycle_bin)
    WHERE cycle_bin IS NOT NULL;
-- The done tasks of one bin in cycle-time order: a percentile's value.
CREATE INDEX analytics_tasks_bin ON analytics_tasks (generation, tenant_id, cycle_bin, cycle_ms, completed_at, project_id)
    WHERE cycle_bin IS NOT NULL;
CREATE INDEX analytics_tasks_project_bin ON analytics_tasks (generation, tenant_id, project_id, cycle_bin, cycle_ms, completed_at)
    WHERE cycle_bin IS NOT NULL;

CREATE TABLE analytics_activity (
    generation integer     NOT NULL,
    tenant_id  uuid        NOT NULL,
    project_id uuid        NOT NULL,
    minutes    integer     NOT NULL,
    slot       timestamptz NOT NULL,
    kind       text        NOT NULL,
    count      bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, minutes, slot, kind)
);
CREATE INDEX analytics_activity_slot ON analytics_activity (generation, tenant_id, minutes, slot);

CREATE TABLE analytics_open (
    generation integer NOT NULL,
    tenant_id  uuid    NOT NULL,
    project_id uuid    NOT NULL,
    status     text    NOT NULL,
    priority   text    NOT NULL,
    count      bigint  NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, status, priority)
);

CREATE TABLE analytics_completions (
    generation  integer     NOT NULL,
    tenant_id   uuid        NOT NULL,
    project_id  uuid        NOT NULL,
    assignee_id uuid        NOT NULL,
    minutes     integer     NOT NULL,
    slot        timestamptz NOT NULL,
    count       bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, assignee_id, minutes, slot)
);
CREATE INDEX analytics_completions_slot ON analytics_completions (generation, tenant_id, minutes, slot);
CREATE INDEX analytics_completions_project_slot ON analytics_completions (generation, tenant_id, project_id, minutes, slot);

CREATE TABLE analytics_cycle_days (
    generation integer     NOT NULL,
    tenant_id  uuid        NOT NULL,
    project_id uuid        NOT NULL,
    day        timestamptz NOT NULL,
    bin        integer     NOT NULL,
    count      bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, day, bin)
);
CREATE INDEX analytics_cycle_days_day ON analytics_cycle_days (generation, tenant_id, day, bin);

UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE name = 'analytics';
