-- The event log, embedded. SQLite has one writer at a time, so positions
-- (the rowid) are assigned and committed in order: readers tailing
-- "position > N" never skip an event. UUIDs are 16-byte blobs, timestamps
-- RFC 3339 text in UTC (which sorts as time), JSON is text.
CREATE TABLE event_log_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    position  INTEGER NOT NULL
);
INSERT INTO event_log_head (singleton, position) VALUES (1, 0);

CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    tenant_id      BLOB    NOT NULL,
    event_id       BLOB    NOT NULL,
    stream_id      BLOB    NOT NULL,
    stream_type    TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    actor_type     TEXT    NOT NULL,
    actor_id       BLOB,
    actor_name     TEXT,
    actor_user_id  BLOB,
    request_id     TEXT,
    correlation_id BLOB,
    causation_id   BLOB,
    occurred_at    TEXT    NOT NULL,
    UNIQUE (tenant_id, stream_id, stream_version),
    UNIQUE (event_id)
);
CREATE INDEX events_tenant_position ON events (tenant_id, position);

CREATE TABLE unique_claims (
    scope      TEXT NOT NULL,
    value      TEXT NOT NULL,
    tenant_id  BLOB NOT NULL,
    stream_id  BLOB NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (scope, value)
);

CREATE TABLE idempotency_keys (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE relay_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);

CREATE TABLE projections (
    name              TEXT    PRIMARY KEY,
    active_generation INTEGER NOT NULL
);

CREATE TABLE projection_checkpoints (
    name            TEXT    NOT NULL,
    generation      INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    last_error      TEXT,
    error_position  INTEGER,
    error_at        TEXT,
    started_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (name, generation)
);
