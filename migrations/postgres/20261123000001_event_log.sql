-- The event log: the single source of truth of Tenet.
--
-- Positions are handed out by the one row of event_log_head. Every append
-- locks that row for the length of its transaction, so appends commit one
-- after another in position order: a reader that tails "position > N" can
-- never skip an event that commits later with a lower position (the gap trap
-- of sequences under concurrent writers). Group commit in the application
-- (many commands per transaction) keeps that serialisation cheap.
CREATE TABLE event_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);
INSERT INTO event_log_head (singleton, position) VALUES (true, 0);

-- Hash-partitioned by tenant: a tenant's streams, its audit log and its
-- index maintenance live in one partition (reads prune to it), vacuum and
-- index bloat are spread over eight smaller tables instead of one large one,
-- and the table already has the shape that a Citus-style distribution by
-- tenant_id needs. Every unique key therefore leads with tenant_id; global
-- uniqueness of position comes from event_log_head.
CREATE TABLE events (
    tenant_id      uuid        NOT NULL,
    position       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    stream_id      uuid        NOT NULL,
    stream_type    text        NOT NULL,
    stream_version bigint      NOT NULL,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    data           jsonb       NOT NULL,
    actor_type     text        NOT NULL,
    actor_id       uuid,
    actor_name     text,
    actor_user_id  uuid,
    request_id     text,
    correlation_id uuid,
    causation_id   uuid,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, position),
    UNIQUE (tenant_id, stream_id, stream_version),
    UNIQUE (tenant_id, event_id)
) PARTITION BY HASH (tenant_id);

CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE events_p2 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE events_p3 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE events_p4 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE events_p5 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE events_p6 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE events_p7 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 7);

-- The global tail (relay, projectors, replay) reads in position order across
-- partitions: a merge of these per-partition indexes.
CREATE INDEX events_position ON events (position);

-- Values that must be unique across streams (an email, a workspace slug, a
-- project slug within its workspace). Claimed and released in the same
-- transaction as the events that need them, so uniqueness holds even when
-- many requests race for one value.
CREATE TABLE unique_claims (
    scope      text        NOT NULL,
    value      text        NOT NULL,
    tenant_id  uuid        NOT NULL,
    stream_id  uuid        NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (scope, value)
);

-- Responses of commands sent with an Idempotency-Key, written in the same
-- transaction as their events: a replay can never disagree with the log.
CREATE TABLE idempotency_keys (
    scope       text        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    response    jsonb       NOT NULL,
    position    bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- How far the relay has published the log to JetStream.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Which generation of each projection's read model queries use. A rebuild
-- fills generation N+1 beside the live N and flips this row when it has
-- caught up.
CREATE TABLE projections (
    name              text    PRIMARY KEY,
    active_generation integer NOT NULL
);

-- Progress of every generation of every projection. A projector advances its
-- row in the same transaction as its read-model writes.
CREATE TABLE projection_checkpoints (
    name            text        NOT NULL,
    generation      integer     NOT NULL,
    position        bigint      NOT NULL,
    status          text        NOT NULL,
    last_error      text,
    error_position  bigint,
    error_at        timestamptz,
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (name, generation)
);
