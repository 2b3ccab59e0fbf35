-- Feature flags, as the feature_flags projector folds them (overrides as a
-- JSON object of workspace id to true/false).
CREATE TABLE feature_flags (
    generation      integer     NOT NULL,
    id              uuid        NOT NULL,
    key             text        NOT NULL,
    description     text        NOT NULL,
    enabled         boolean     NOT NULL,
    rollout_percent integer     NOT NULL,
    overrides       text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE UNIQUE INDEX feature_flags_key ON feature_flags (generation, key);
