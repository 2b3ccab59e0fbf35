-- Access control: users, workspaces and memberships. An inline projection,
-- written in the same transaction as the events that change it, so a
-- removed member or a revoked credential is refused on the very next
-- request, on every instance. Every read-model table carries the generation
-- it belongs to: a rebuild fills generation N+1 beside the live N.
CREATE TABLE access_users (
    generation     integer     NOT NULL,
    id             uuid        NOT NULL,
    email          text        NOT NULL,
    name           text        NOT NULL,
    password_hash  text        NOT NULL,
    platform_admin boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX access_users_email ON access_users (generation, email);

CREATE TABLE access_workspaces (
    generation integer     NOT NULL,
    id         uuid        NOT NULL,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    version    bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);

CREATE TABLE access_members (
    generation   integer     NOT NULL,
    workspace_id uuid        NOT NULL,
    user_id      uuid        NOT NULL,
    role         text        NOT NULL,
    joined_at    timestamptz NOT NULL,
    PRIMARY KEY (generation, workspace_id, user_id)
);
CREATE INDEX access_members_user ON access_members (generation, user_id);

-- Projects, as lists and detail pages read them (asynchronous projection).
-- `search` is the lower-cased name, slug and description (lower-cased in
-- Rust, so case folding is Unicode-correct on both backends).
CREATE TABLE projects_view (
    generation  integer     NOT NULL,
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    name        text        NOT NULL,
    slug        text        NOT NULL,
    description text        NOT NULL,
    status      text        NOT NULL,
    search      text        NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    archived_at timestamptz,
    version     bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX projects_view_created ON projects_view (generation, tenant_id, created_at, id);
CREATE INDEX projects_view_status ON projects_view (generation, tenant_id, status, created_at, id);
CREATE INDEX projects_view_name ON projects_view (generation, tenant_id, name, id);

-- Totals of the project lists, kept by the projector: a page's `total`
-- without counting rows.
CREATE TABLE project_counts (
    generation integer NOT NULL,
    tenant_id  uuid    NOT NULL,
    status     text    NOT NULL,
    count      bigint  NOT NULL,
    PRIMARY KEY (generation, tenant_id, status)
);
