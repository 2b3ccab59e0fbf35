-- Automations and their executions; see the Postgres migration.
CREATE TABLE automations_view (
    generation       INTEGER NOT NULL,
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    project_id       BLOB    NOT NULL,
    created_by       BLOB,
    created_at       TEXT    NOT NULL,
    created_position INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    trigger          TEXT    NOT NULL,
    actions          TEXT    NOT NULL,
    enabled          BOOLEAN NOT NULL,
    updated_at       TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX automations_view_project ON automations_view (generation, tenant_id, project_id, created_at, id);

CREATE TABLE automation_executions_view (
    generation       INTEGER NOT NULL,
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    automation_id    BLOB    NOT NULL,
    project_id       BLOB    NOT NULL,
    task_id          BLOB    NOT NULL,
    trigger_event_id BLOB    NOT NULL,
    trigger_event_type TEXT  NOT NULL,
    depth            INTEGER NOT NULL,
    started_at       TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    steps            TEXT    NOT NULL,
    error            TEXT,
    finished_at      TEXT,
    updated_at       TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX automation_executions_view_automation
    ON automation_executions_view (generation, tenant_id, automation_id, started_at, id);

CREATE TABLE automation_work (
    event_id       BLOB PRIMARY KEY,
    tenant_id      BLOB    NOT NULL,
    stream_id      BLOB    NOT NULL,
    stream_version INTEGER NOT NULL,
    position       INTEGER NOT NULL
);
CREATE INDEX automation_work_position ON automation_work (position);
