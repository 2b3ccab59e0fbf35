-- Feature flags; see the Postgres migration.
CREATE TABLE feature_flags (
    generation      INTEGER NOT NULL,
    id              BLOB    NOT NULL,
    key             TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    rollout_percent INTEGER NOT NULL,
    overrides       TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX feature_flags_key ON feature_flags (generation, key);
