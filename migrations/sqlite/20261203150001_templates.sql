-- Projects remember the template (and its version) they were made from;
-- see the Postgres migration.
ALTER TABLE projects_view ADD COLUMN template_id BLOB;
ALTER TABLE projects_view ADD COLUMN template_version INTEGER;

CREATE TABLE templates_view (
    generation  INTEGER NOT NULL,
    tenant_id   BLOB    NOT NULL,
    id          BLOB    NOT NULL,
    created_by  BLOB,
    created_at  TEXT    NOT NULL,
    from_project_id BLOB,
    name        TEXT    NOT NULL,
    parameters  TEXT    NOT NULL,
    project     TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX templates_view_name ON templates_view (generation, tenant_id, name, id);
