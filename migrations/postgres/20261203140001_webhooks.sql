-- Webhooks, as the API and the dispatcher read them. The secrets are
-- sealed (encrypted and authenticated by the service); a deleted webhook
-- keeps its row, marked, so a redelivered event of its stream is known.
CREATE TABLE webhooks_view (
    generation      integer     NOT NULL,
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    url             text        NOT NULL,
    description     text        NOT NULL,
    event_types     jsonb       NOT NULL,
    enabled         boolean     NOT NULL,
    active_from     bigint      NOT NULL,
    disabled_reason text,
    sealed_secret   text        NOT NULL,
    sealed_previous text,
    previous_until  timestamptz,
    created_by      uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    version         bigint      NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX webhooks_view_created ON webhooks_view (generation, tenant_id, created_at, id);
CREATE INDEX webhooks_view_enabled ON webhooks_view (generation, enabled) WHERE deleted_at IS NULL;
