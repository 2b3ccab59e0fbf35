-- The delivery log of webhooks, written by the dispatcher (not a
-- projection: a rebuild must not send everything again). A delivery is
-- unique per (webhook, event), so its id — the webhook-id header — is
-- stable across retries and restarts; its body is fixed when recorded.
CREATE TABLE webhook_cursors (
    webhook_id    uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    position      bigint      NOT NULL,
    failing_since timestamptz
);

CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    webhook_id       uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    position         bigint      NOT NULL,
    event_type       text        NOT NULL,
    body             text        NOT NULL,
    status           text        NOT NULL,
    attempts         integer     NOT NULL,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_status_code integer,
    last_error       text,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, position) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (tenant_id, webhook_id, position);
CREATE INDEX webhook_deliveries_oldest ON webhook_deliveries (created_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL,
    number       integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    duration_ms  bigint      NOT NULL,
    response     text,
    error        text,
    PRIMARY KEY (delivery_id, number)
);
