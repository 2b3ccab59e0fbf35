-- The analytics read model; see the Postgres migration.
CREATE TABLE analytics_tasks (
    generation   INTEGER NOT NULL,
    tenant_id    BLOB    NOT NULL,
    id           BLOB    NOT NULL,
    project_id   BLOB    NOT NULL,
    created_at   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    priority     TEXT    NOT NULL,
    assignee_id  BLOB,
    started_at   TEXT,
    completed_at TEXT,
    cycle_ms     INTEGER,
    version      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX analytics_tasks_done ON analytics_tasks (generation, tenant_id, completed_at, cycle_ms)
    WHERE cycle_ms IS NOT NULL;
CREATE INDEX analytics_tasks_project_done ON analytics_tasks (generation, tenant_id, project_id, completed_at, cycle_ms)
    WHERE cycle_ms IS NOT NULL;

CREATE TABLE analytics_activity (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    project_id BLOB    NOT NULL,
    slot       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, slot, kind)
);
CREATE INDEX analytics_activity_slot ON analytics_activity (generation, tenant_id, slot);

CREATE TABLE analytics_open (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    project_id BLOB    NOT NULL,
    status     TEXT    NOT NULL,
    priority   TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, status, priority)
);

CREATE TABLE analytics_completions (
    generation  INTEGER NOT NULL,
    tenant_id   BLOB    NOT NULL,
    project_id  BLOB    NOT NULL,
    assignee_id BLOB    NOT NULL,
    slot        TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, assignee_id, slot)
);
CREATE INDEX analytics_completions_slot ON analytics_completions (generation, tenant_id, slot);
