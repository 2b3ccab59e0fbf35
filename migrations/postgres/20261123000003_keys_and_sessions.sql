-- API keys and refresh-token sessions, in the inline access model: a
-- revoked key or session is refused on the very next request. Secrets are
-- stored as SHA-256 digests only (the secrets are 256-bit random strings,
-- so a fast digest is safe; a slow password hash would only cost latency).
CREATE TABLE access_api_keys (
    generation integer     NOT NULL,
    id         uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    name       text        NOT NULL,
    prefix     text        NOT NULL,
    key_hash   text        NOT NULL,
    -- Space-separated scopes.
    scopes     text        NOT NULL,
    issued_by  uuid        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    version    bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX access_api_keys_hash ON access_api_keys (generation, key_hash);
CREATE INDEX access_api_keys_tenant ON access_api_keys (generation, tenant_id, created_at, id);

-- When a key was last used: written as keys are used (at most once a
-- minute per key), not an event, and outside the generations so a rebuild
-- of the access model keeps it.
CREATE TABLE api_key_usage (
    key_id       uuid        PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);

-- One row per refresh-token family (a login and its rotations).
CREATE TABLE access_sessions (
    generation     integer     NOT NULL,
    id             uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    current_hash   text        NOT NULL,
    created_at     timestamptz NOT NULL,
    refreshed_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    version        bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);

-- Every refresh token ever issued, to recognise a reused (already rotated)
-- one and revoke its whole family.
CREATE TABLE access_refresh_tokens (
    generation integer NOT NULL,
    token_hash text    NOT NULL,
    session_id uuid    NOT NULL,
    PRIMARY KEY (generation, token_hash)
);
