-- The delivery log of webhooks, written by the dispatcher (not a
-- projection: a rebuild must not send everything again). A delivery is
-- unique per (webhook, event), so its id — the webhook-id header — is
-- stable across retries and restarts; its body is fixed when recorded.
CREATE TABLE webhook_cursors (
    webhook_id    BLOB    PRIMARY KEY,
    tenant_id     BLOB    NOT NULL,
    position      INTEGER NOT NULL,
    failing_since TEXT
);

CREATE TABLE webhook_deliveries (
    id               BLOB    PRIMARY KEY,
    tenant_id        BLOB    NOT NULL,
    webhook_id       BLOB    NOT NULL,
    event_id         BLOB    NOT NULL,
    position         INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, position) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (tenant_id, webhook_id, position);
CREATE INDEX webhook_deliveries_oldest ON webhook_deliveries (created_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  BLOB    NOT NULL,
    number       INTEGER NOT NULL,
    attempted_at TEXT    NOT NULL,
    status_code  INTEGER,
    duration_ms  INTEGER NOT NULL,
    response     TEXT,
    error        TEXT,
    PRIMARY KEY (delivery_id, number)
);
