-- Projects remember the template (and its version) they were made from.
ALTER TABLE projects_view ADD COLUMN template_id uuid;
ALTER TABLE projects_view ADD COLUMN template_version bigint;

-- Project templates as the API shows them: the current version's
-- definition, kept by the `templates` projector.
CREATE TABLE templates_view (
    generation  integer     NOT NULL,
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL,
    from_project_id uuid,
    name        text        NOT NULL,
    parameters  jsonb       NOT NULL,
    project     jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX templates_view_name ON templates_view (generation, tenant_id, name, id);
