-- Webhooks, as the API and the dispatcher read them. The secrets are
-- sealed (encrypted and authenticated by the service); a deleted webhook
-- keeps its row, marked, so a redelivered event of its stream is known.
CREATE TABLE webhooks_view (
    generation      INTEGER NOT NULL,
    tenant_id       BLOB    NOT NULL,
    id              BLOB    NOT NULL,
    url             TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    event_types     TEXT    NOT NULL,
    enabled         BOOLEAN NOT NULL,
    active_from     INTEGER NOT NULL,
    disabled_reason TEXT,
    sealed_secret   TEXT    NOT NULL,
    sealed_previous TEXT,
    previous_until  TEXT,
    created_by      BLOB    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    deleted_at      TEXT,
    version         INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, id)
);
CREATE INDEX webhooks_view_created ON webhooks_view (generation, tenant_id, created_at, id);
CREATE INDEX webhooks_view_enabled ON webhooks_view (generation, enabled);
