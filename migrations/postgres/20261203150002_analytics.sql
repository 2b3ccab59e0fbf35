-- The analytics read model (the `analytics` projector): one row per live
-- task, and counters per 15-minute slot (exact per day in any time zone,
-- whose offsets are whole quarter hours) that queries sum.
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
    version      bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
-- Cycle-time percentiles: the done tasks of a range, by completion.
CREATE INDEX analytics_tasks_done ON analytics_tasks (generation, tenant_id, completed_at, cycle_ms)
    WHERE cycle_ms IS NOT NULL;
CREATE INDEX analytics_tasks_project_done ON analytics_tasks (generation, tenant_id, project_id, completed_at, cycle_ms)
    WHERE cycle_ms IS NOT NULL;

CREATE TABLE analytics_activity (
    generation integer     NOT NULL,
    tenant_id  uuid        NOT NULL,
    project_id uuid        NOT NULL,
    slot       timestamptz NOT NULL,
    kind       text        NOT NULL,
    count      bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, slot, kind)
);
CREATE INDEX analytics_activity_slot ON analytics_activity (generation, tenant_id, slot);

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
    slot        timestamptz NOT NULL,
    count       bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, assignee_id, slot)
);
CREATE INDEX analytics_completions_slot ON analytics_completions (generation, tenant_id, slot);
