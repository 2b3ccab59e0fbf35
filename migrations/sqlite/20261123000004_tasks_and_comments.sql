-- Tasks, task counts and comments; see the Postgres migration.
ALTER TABLE projects_view ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects_view ADD COLUMN open_tasks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects_view ADD COLUMN done_tasks INTEGER NOT NULL DEFAULT 0;
-- Before this, a project's stream held only changes to the project.
UPDATE projects_view SET revision = version;

CREATE TABLE tasks_view (
    generation    INTEGER NOT NULL,
    tenant_id     BLOB    NOT NULL,
    id            BLOB    NOT NULL,
    project_id    BLOB    NOT NULL,
    number        INTEGER NOT NULL,
    key           TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    priority      TEXT    NOT NULL,
    priority_rank INTEGER NOT NULL,
    assignee_id   BLOB,
    labels        TEXT    NOT NULL,
    due_date      TEXT,
    search        TEXT    NOT NULL,
    comment_count INTEGER NOT NULL,
    created_by    BLOB,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX tasks_view_project ON tasks_view (generation, tenant_id, project_id, number);
CREATE INDEX tasks_view_created ON tasks_view (generation, tenant_id, created_at, id);
CREATE INDEX tasks_view_updated ON tasks_view (generation, tenant_id, updated_at, id);
CREATE INDEX tasks_view_status ON tasks_view (generation, tenant_id, status, created_at, id);
CREATE INDEX tasks_view_assignee ON tasks_view (generation, tenant_id, assignee_id, status);
CREATE INDEX tasks_view_priority ON tasks_view (generation, tenant_id, priority_rank, id);
CREATE INDEX tasks_view_due ON tasks_view (generation, tenant_id, due_date, id);

CREATE TABLE task_counts (
    generation  INTEGER NOT NULL,
    tenant_id   BLOB    NOT NULL,
    project_id  BLOB    NOT NULL,
    status      TEXT    NOT NULL,
    priority    TEXT    NOT NULL,
    assignee_id BLOB    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, status, priority, assignee_id)
);

CREATE TABLE comments_view (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    id         BLOB    NOT NULL,
    task_id    BLOB    NOT NULL,
    author_id  BLOB    NOT NULL,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    edited_at  TEXT,
    version    INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX comments_view_task ON comments_view (generation, tenant_id, task_id, created_at, id);

-- Work of the policy that unassigns the open tasks of a member who left a
-- workspace: one row per removal, recorded by its projector in the same
-- transaction as its checkpoint, deleted once the tasks are unassigned.
CREATE TABLE unassign_work (
    event_id       BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL,
    user_id        BLOB NOT NULL,
    position       INTEGER NOT NULL,
    correlation_id BLOB,
    created_at     TEXT NOT NULL
);
CREATE INDEX unassign_work_position ON unassign_work (position);
