-- Access control (inline projection) and the projects view; see the
-- Postgres migration of the same name for the reasoning.
CREATE TABLE access_users (
    generation     INTEGER NOT NULL,
    id             BLOB    NOT NULL,
    email          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    platform_admin INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX access_users_email ON access_users (generation, email);

CREATE TABLE access_workspaces (
    generation INTEGER NOT NULL,
    id         BLOB    NOT NULL,
    name       TEXT    NOT NULL,
    slug       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    deleted_at TEXT,
    version    INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);

CREATE TABLE access_members (
    generation   INTEGER NOT NULL,
    workspace_id BLOB    NOT NULL,
    user_id      BLOB    NOT NULL,
    role         TEXT    NOT NULL,
    joined_at    TEXT    NOT NULL,
    PRIMARY KEY (generation, workspace_id, user_id)
);
CREATE INDEX access_members_user ON access_members (generation, user_id);

CREATE TABLE projects_view (
    generation  INTEGER NOT NULL,
    tenant_id   BLOB    NOT NULL,
    id          BLOB    NOT NULL,
    name        TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    search      TEXT    NOT NULL,
    created_by  BLOB,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    archived_at TEXT,
    version     INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX projects_view_created ON projects_view (generation, tenant_id, created_at, id);
CREATE INDEX projects_view_status ON projects_view (generation, tenant_id, status, created_at, id);
CREATE INDEX projects_view_name ON projects_view (generation, tenant_id, name, id);

CREATE TABLE project_counts (
    generation INTEGER NOT NULL,
    tenant_id  BLOB    NOT NULL,
    status     TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, status)
);
