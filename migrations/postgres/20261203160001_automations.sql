-- Automations of projects and their executions (read models of the
-- `automations` projector), and the work of the policy that runs them.
CREATE TABLE automations_view (
    generation       integer     NOT NULL,
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    project_id       uuid        NOT NULL,
    created_by       uuid,
    created_at       timestamptz NOT NULL,
    -- The log position of its creation: only task events after it trigger it.
    created_position bigint      NOT NULL,
    name             text        NOT NULL,
    trigger          jsonb       NOT NULL,
    actions          jsonb       NOT NULL,
    enabled          boolean     NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX automations_view_project ON automations_view (generation, tenant_id, project_id, created_at, id);

CREATE TABLE automation_executions_view (
    generation       integer     NOT NULL,
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    automation_id    uuid        NOT NULL,
    project_id       uuid        NOT NULL,
    task_id          uuid        NOT NULL,
    trigger_event_id uuid        NOT NULL,
    trigger_event_type text      NOT NULL,
    depth            integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    status           text        NOT NULL,
    steps            jsonb       NOT NULL,
    error            text,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX automation_executions_view_automation
    ON automation_executions_view (generation, tenant_id, automation_id, started_at, id);

-- Task events still to be evaluated against their project's automations:
-- one row per event, recorded by the `automation-triggers` projector in the
-- same transaction as its checkpoint, deleted once evaluated and run.
CREATE TABLE automation_work (
    event_id       uuid PRIMARY KEY,
    tenant_id      uuid   NOT NULL,
    stream_id      uuid   NOT NULL,
    stream_version bigint NOT NULL,
    position       bigint NOT NULL
);
CREATE INDEX automation_work_position ON automation_work (position);
