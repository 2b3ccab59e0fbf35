-- The platform's figures; see the Postgres migration.
CREATE TABLE stats_daily (
    generation INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    metric     TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, day, metric)
);

CREATE TABLE stats_hourly_events (
    generation INTEGER NOT NULL,
    hour       TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (generation, hour)
);

CREATE TABLE stats_active_users (
    generation INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    user_id    BLOB    NOT NULL,
    events     INTEGER NOT NULL,
    PRIMARY KEY (generation, day, user_id)
);
