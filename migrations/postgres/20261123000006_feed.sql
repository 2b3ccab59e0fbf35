-- The realtime feed's outbox: one row per visible change of a read model,
-- written by its projector in the same transaction as the change and its
-- checkpoint, so the feed is exactly the read model's history in log order.
-- `data` is the REST detail JSON of the row after the change (or the ids of
-- what was removed), kept as text: it is forwarded to clients verbatim.
--
-- The key has no generation: a rebuilt generation that re-applies events
-- the old one already recorded finds its rows there and adds nothing.
CREATE TABLE feed_updates (
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    seq         integer     NOT NULL,
    tenant_id   uuid        NOT NULL,
    kind        text        NOT NULL,
    resource    text        NOT NULL,
    resource_id uuid        NOT NULL,
    project_id  uuid,
    task_id     uuid,
    event_type  text        NOT NULL,
    data        text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (projection, position, resource_id)
);
-- Live fan-out reads every tenant by position; resume reads one tenant.
CREATE INDEX feed_updates_position ON feed_updates (position);
CREATE INDEX feed_updates_tenant ON feed_updates (tenant_id, position);
-- Pruning finds what is past the retention without reading the rest.
CREATE INDEX feed_updates_recorded ON feed_updates (recorded_at);

-- How far the outbox has been pruned: a resume from at or before this
-- position cannot be answered in full.
CREATE TABLE feed_horizon (
    id       integer PRIMARY KEY CHECK (id = 1),
    position bigint  NOT NULL
);
INSERT INTO feed_horizon (id, position) VALUES (1, 0);
