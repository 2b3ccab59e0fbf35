-- Impersonation; see the Postgres migration.
ALTER TABLE events ADD COLUMN impersonated_by BLOB;

CREATE TABLE access_impersonations (
    generation INTEGER NOT NULL,
    id         BLOB    NOT NULL,
    user_id    BLOB    NOT NULL,
    admin_id   BLOB    NOT NULL,
    reason     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    ended_at   TEXT,
    version    INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
