-- Impersonation: the admin behind an impersonated user's events, and the
-- impersonations the inline access model checks tokens against (an ended
-- one's token is refused on the very next request).
ALTER TABLE events ADD COLUMN impersonated_by uuid;

CREATE TABLE access_impersonations (
    generation integer     NOT NULL,
    id         uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    admin_id   uuid        NOT NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz,
    version    bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);
