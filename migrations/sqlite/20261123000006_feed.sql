-- The realtime feed's outbox; see the Postgres migration.
CREATE TABLE feed_updates (
    projection  TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    tenant_id   BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    resource_id BLOB    NOT NULL,
    project_id  BLOB,
    task_id     BLOB,
    event_type  TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    PRIMARY KEY (projection, position, resource_id)
);
CREATE INDEX feed_updates_position ON feed_updates (position);
CREATE INDEX feed_updates_tenant ON feed_updates (tenant_id, position);
CREATE INDEX feed_updates_recorded ON feed_updates (recorded_at);

CREATE TABLE feed_horizon (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO feed_horizon (id, position) VALUES (1, 0);
