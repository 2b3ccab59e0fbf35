-- Analytics per UTC day, hour and slot, and per-day cycle-time
-- histograms; see the Postgres migration. The read model starts over
-- from the first event.
DROP TABLE analytics_tasks;
DROP TABLE analytics_activity;
DROP TABLE analytics_open;
DROP TABLE analytics_completions;

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
    cycle_bin    INTEGER,
    version      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX analytics_tasks_done ON analytics_tasks (generation, tenant_id, completed_at, cycle_bin, project_id)
    WHERE cycle_bin IS NOT NULL;
CREATE INDEX analytics_tasks_project_done ON analytics_tasks (generation, tenant_id, project_id, completed_at, cycle_bin)
    WHERE cycle_bin IS NOT NULL;
CREATE INDEX analytics_tasks_bin ON analytics_tasks (generation, tenant_id, cycle_bin, cycle_ms, completed_at, project_id)
    WHERE cycle_bin IS NOT NULL;
CREATE INDEX analytics_tasks_project_bin ON analytics_tasks (generation, tenant_id, project_id, cycle_bin, cycle_ms, completed_at)
    WHERE cycle_bin IS NOT NULL;

CREATE TABLE analytics_activity (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    project_id BLOB    NOT NULL,
    minutes    INTEGER NOT NULL,
    slot       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, minutes, slot, kind)
);
CREATE INDEX analytics_activity_slot ON analytics_activity (generation, tenant_id, minutes, slot);

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
    minutes     INTEGER NOT NULL,
    slot        TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, assignee_id, minutes, slot)
);
CREATE INDEX analytics_completions_slot ON analytics_completions (generation, tenant_id, minutes, slot);
CREATE INDEX analytics_completions_project_slot ON analytics_completions (generation, tenant_id, project_id, minutes, slot);

CREATE TABLE analytics_cycle_days (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    project_id BLOB    NOT NULL,
    day        TEXT    NOT NULL,
    bin        INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, day, bin)
);
CREATE INDEX analytics_cycle_days_day ON analytics_cycle_days (generation, tenant_id, day, bin);

UPDATE projection_checkpoints SET position = 0 WHERE name = 'analytics';
