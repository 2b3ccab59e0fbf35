-- Projects learn their task counts, and a revision of their own: the
-- project stream also hands out task numbers, which must not change the
-- project's ETag.
ALTER TABLE projects_view ADD COLUMN revision bigint NOT NULL DEFAULT 0;
ALTER TABLE projects_view ADD COLUMN open_tasks bigint NOT NULL DEFAULT 0;
ALTER TABLE projects_view ADD COLUMN done_tasks bigint NOT NULL DEFAULT 0;
-- Before this, a project's stream held only changes to the project.
UPDATE projects_view SET revision = version;

-- Tasks, as lists and detail pages read them. Deleted tasks leave the view.
-- `labels` is a JSON array (jsonb here, text on SQLite); `search` the
-- lower-cased title and description; `priority_rank` orders by urgency.
CREATE TABLE tasks_view (
    generation    integer     NOT NULL,
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    project_id    uuid        NOT NULL,
    number        bigint      NOT NULL,
    key           text        NOT NULL,
    title         text        NOT NULL,
    description   text        NOT NULL,
    status        text        NOT NULL,
    priority      text        NOT NULL,
    priority_rank integer     NOT NULL,
    assignee_id   uuid,
    labels        jsonb       NOT NULL,
    due_date      date,
    search        text        NOT NULL,
    comment_count bigint      NOT NULL,
    created_by    uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX tasks_view_project ON tasks_view (generation, tenant_id, project_id, number);
CREATE INDEX tasks_view_created ON tasks_view (generation, tenant_id, created_at, id);
CREATE INDEX tasks_view_updated ON tasks_view (generation, tenant_id, updated_at, id);
CREATE INDEX tasks_view_status ON tasks_view (generation, tenant_id, status, created_at, id);
CREATE INDEX tasks_view_assignee ON tasks_view (generation, tenant_id, assignee_id, status);
CREATE INDEX tasks_view_priority ON tasks_view (generation, tenant_id, priority_rank, id);
CREATE INDEX tasks_view_due ON tasks_view (generation, tenant_id, due_date, id);
CREATE INDEX tasks_view_labels ON tasks_view USING gin (labels jsonb_path_ops);

-- List totals by the dimensions lists filter on, kept by the projector: a
-- filtered list's total is a sum over a handful of rows, not a count over
-- the tasks. (assignee_id is the nil UUID for unassigned tasks, so it can
-- sit in the key.)
CREATE TABLE task_counts (
    generation  integer NOT NULL,
    tenant_id   uuid    NOT NULL,
    project_id  uuid    NOT NULL,
    status      text    NOT NULL,
    priority    text    NOT NULL,
    assignee_id uuid    NOT NULL,
    count       bigint  NOT NULL,
    PRIMARY KEY (generation, tenant_id, project_id, status, priority, assignee_id)
);

CREATE TABLE comments_view (
    generation integer     NOT NULL,
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    task_id    uuid        NOT NULL,
    author_id  uuid        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL,
    edited_at  timestamptz,
    version    bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX comments_view_task ON comments_view (generation, tenant_id, task_id, created_at, id);

-- Work of the policy that unassigns the open tasks of a member who left a
-- workspace: one row per removal, recorded by its projector in the same
-- transaction as its checkpoint, deleted once the tasks are unassigned.
CREATE TABLE unassign_work (
    event_id       uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    user_id        uuid NOT NULL,
    position       bigint NOT NULL,
    correlation_id uuid,
    created_at     timestamptz NOT NULL
);
CREATE INDEX unassign_work_position ON unassign_work (position);
