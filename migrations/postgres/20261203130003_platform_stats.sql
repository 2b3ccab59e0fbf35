-- The platform's figures, folded from the whole log by the platform_stats
-- projector into buckets (per day, per hour for events, per day and user
-- for activity), so every window (7 days, 24 hours, 30 days) is summed at
-- read time and a rebuild gives the same rows.
CREATE TABLE stats_daily (
    generation integer NOT NULL,
    day        date    NOT NULL,
    metric     text    NOT NULL,
    count      bigint  NOT NULL,
    PRIMARY KEY (generation, day, metric)
);

CREATE TABLE stats_hourly_events (
    generation integer     NOT NULL,
    hour       timestamptz NOT NULL,
    count      bigint      NOT NULL,
    PRIMARY KEY (generation, hour)
);

CREATE TABLE stats_active_users (
    generation integer NOT NULL,
    day        date    NOT NULL,
    user_id    uuid    NOT NULL,
    events     bigint  NOT NULL,
    PRIMARY KEY (generation, day, user_id)
);
