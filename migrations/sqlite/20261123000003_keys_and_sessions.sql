-- API keys and refresh-token sessions; see the Postgres migration.
CREATE TABLE access_api_keys (
    generation INTEGER NOT NULL,
    id         BLOB    NOT NULL,
    tenant_id  BLOB    NOT NULL,
    name       TEXT    NOT NULL,
    prefix     TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    issued_by  BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    version    INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX access_api_keys_hash ON access_api_keys (generation, key_hash);
CREATE INDEX access_api_keys_tenant ON access_api_keys (generation, tenant_id, created_at, id);

CREATE TABLE api_key_usage (
    key_id       BLOB PRIMARY KEY,
    last_used_at TEXT NOT NULL
);

CREATE TABLE access_sessions (
    generation     INTEGER NOT NULL,
    id             BLOB    NOT NULL,
    user_id        BLOB    NOT NULL,
    current_hash   TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    refreshed_at   TEXT    NOT NULL,
    expires_at     TEXT    NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT,
    version        INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);

CREATE TABLE access_refresh_tokens (
    generation INTEGER NOT NULL,
    token_hash TEXT    NOT NULL,
    session_id BLOB    NOT NULL,
    PRIMARY KEY (generation, token_hash)
);
