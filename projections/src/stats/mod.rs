//! The platform's figures (`GET /admin/stats`): counters folded from the
//! whole log into buckets, so every window is summed at read time and a
//! rebuild, blue/green like every projection, gives the same rows.
//!
//! Per day: users registered, workspaces created and deleted, projects
//! created, tasks created, deleted and moved to `done`, and events; per
//! hour: events (for the last 24 hours); per day and user: the events the
//! user caused (for active users). Holds no rules: it counts facts.

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use serde::Serialize;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::task::{TaskEvent, TaskStatus};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::UserId;
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::with_pool;
use utoipa::ToSchema;

use crate::batch::{self, Counter, Counts, Emptied};
use crate::feed::Recorder;
use crate::table::{self, table};

pub const NAME: &str = "platform_stats";

/// The generation queries read, as a subquery.
const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'platform_stats')";

/// The metrics of `stats_daily`.
mod metric {
    pub const USERS: &str = "users_registered";
    pub const WORKSPACES_CREATED: &str = "workspaces_created";
    pub const WORKSPACES_DELETED: &str = "workspaces_deleted";
    pub const PROJECTS_CREATED: &str = "projects_created";
    pub const TASKS_CREATED: &str = "tasks_created";
    pub const TASKS_DELETED: &str = "tasks_deleted";
    pub const TASKS_DONE: &str = "tasks_done";
    pub const EVENTS: &str = "events";
}

table! {
    /// One bucket of `stats_daily`: how often `metric` happened on `day`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct DailyStatRow in stats_daily {
        key {
            day: NaiveDate,
            metric: String,
        }
        add {
            count: i64,
        }
    }
}

table! {
    /// One bucket of `stats_hourly_events`: events in the hour from `hour`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct HourlyEventsRow in stats_hourly_events {
        key {
            hour: DateTime<Utc>,
        }
        add {
            count: i64,
        }
    }
}

table! {
    /// One bucket of `stats_active_users`: a user caused events that day.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ActiveUserRow in stats_active_users {
        key {
            day: NaiveDate,
            user_id: UserId,
        }
        add {
            events: i64,
        }
    }
}

// Counts only grow: no bucket ever empties.
impl Counter for DailyStatRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((day, metric): Self::Key, count: i64) -> Self {
        DailyStatRow { day, metric, count }
    }
}

impl Counter for HourlyEventsRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((hour,): Self::Key, count: i64) -> Self {
        HourlyEventsRow { hour, count }
    }
}

impl Counter for ActiveUserRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((day, user_id): Self::Key, events: i64) -> Self {
        ActiveUserRow {
            day,
            user_id,
            events,
        }
    }
}

pub struct PlatformStatsProjector;

/// What one event adds, beside the event itself.
struct Change {
    metric: Option<&'static str>,
}

#[derive(Default)]
struct Working {
    daily: Counts<DailyStatRow>,
    hourly: Counts<HourlyEventsRow>,
    active: Counts<ActiveUserRow>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = false;

    type Change = Change;
    type Keys = ();

    /// Every event counts.
    fn handles(_event_type: &str) -> bool {
        true
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        let metric = match event.event_type.as_str() {
            "user.registered" => Some(metric::USERS),
            "workspace.created" => Some(metric::WORKSPACES_CREATED),
            "workspace.deleted" => Some(metric::WORKSPACES_DELETED),
            "project.created" => Some(metric::PROJECTS_CREATED),
            "task.created" => Some(metric::TASKS_CREATED),
            "task.deleted" => Some(metric::TASKS_DELETED),
            "task.status_changed" => match TaskEvent::from_recorded(event)
                .map_err(|e| ProjectionError::event(event, e))?
            {
                TaskEvent::StatusChanged(changed) if changed.to == TaskStatus::Done => {
                    Some(metric::TASKS_DONE)
                }
                _ => None,
            },
            _ => None,
        };
        Ok(Change { metric })
    }

    fn keys(_keys: &mut (), _event: &RecordedEvent, _change: &Change) {}

    async fn load(_tx: &mut Tx<'_>, _generation: i32, _keys: ()) -> Result<Self, ProjectionError> {
        Ok(Working::default())
    }

    fn apply(
        &mut self,
        _feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        let day = event.occurred_at.date_naive();
        self.daily.add((day, metric::EVENTS.to_owned()), 1);
        if let Some(metric) = change.metric {
            self.daily.add((day, metric.to_owned()), 1);
        }
        let hour = event
            .occurred_at
            .duration_trunc(Duration::hours(1))
            .unwrap_or(event.occurred_at);
        self.hourly.add((hour,), 1);
        if let Some(user) = event.metadata.actor.user_id() {
            self.active.add((day, UserId::from_uuid(user)), 1);
        }
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.daily.save(tx, generation).await?;
        self.hourly.save(tx, generation).await?;
        self.active.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for PlatformStatsProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<DailyStatRow>(tx, generation).await?;
        table::clear::<HourlyEventsRow>(tx, generation).await?;
        table::clear::<ActiveUserRow>(tx, generation).await?;
        Ok(())
    }
}

/// One day of the series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct StatsDay {
    pub date: NaiveDate,
    pub new_users: i64,
    /// Users who caused at least one event that day.
    pub active_users: i64,
    pub workspaces_created: i64,
    pub projects_created: i64,
    pub tasks_created: i64,
    /// Tasks moved to `done` that day.
    pub tasks_done: i64,
    pub events: i64,
}

/// The platform's figures, as of `as_of`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PlatformStats {
    /// Accounts registered.
    pub users: i64,
    /// Users who caused at least one event in the last 7 days (today and
    /// the 6 before, UTC).
    pub active_users_7d: i64,
    /// Workspaces not deleted.
    pub workspaces: i64,
    pub projects: i64,
    /// Tasks not deleted.
    pub tasks: i64,
    pub tasks_created_7d: i64,
    pub tasks_done_7d: i64,
    /// Events in the last 24 hours (by the hour: the current hour and the
    /// 23 before it).
    pub events_24h: i64,
    /// The last 30 days, oldest first, today last (UTC).
    pub series: Vec<StatsDay>,
    pub as_of: DateTime<Utc>,
}

/// The figures at `now`, from the active generation.
pub async fn stats(db: &Db, now: DateTime<Utc>) -> Result<PlatformStats, sqlx::Error> {
    let today = now.date_naive();
    let first = today - Duration::days(29);
    let week = today - Duration::days(6);
    let since = now.duration_trunc(Duration::hours(1)).unwrap_or(now) - Duration::hours(23);
    let totals: Vec<(String, i64)> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT metric, CAST(sum(count) AS BIGINT) FROM stats_daily \
             WHERE generation = {GENERATION} GROUP BY metric"
        )))
        .fetch_all(pool)
        .await?
    });
    let recent: Vec<(NaiveDate, String, i64)> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, metric, count FROM stats_daily \
             WHERE generation = {GENERATION} AND day >= $1 AND day <= $2"
        )))
        .bind(first)
        .bind(today)
        .fetch_all(pool)
        .await?
    });
    let active: Vec<(NaiveDate, i64)> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, count(*) FROM stats_active_users \
             WHERE generation = {GENERATION} AND day >= $1 AND day <= $2 GROUP BY day"
        )))
        .bind(first)
        .bind(today)
        .fetch_all(pool)
        .await?
    });
    let active_users_7d: i64 = with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(DISTINCT user_id) FROM stats_active_users \
             WHERE generation = {GENERATION} AND day >= $1 AND day <= $2"
        )))
        .bind(week)
        .bind(today)
        .fetch_one(pool)
        .await?
    });
    let events_24h: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(sum(count) AS BIGINT) FROM stats_hourly_events \
             WHERE generation = {GENERATION} AND hour >= $1"
        )))
        .bind(since)
        .fetch_one(pool)
        .await?
    });
    let total = |name: &str| {
        totals
            .iter()
            .find(|(metric, _)| metric == name)
            .map_or(0, |(_, count)| *count)
    };
    let mut series: Vec<StatsDay> = (0..30)
        .map(|n| StatsDay {
            date: first + Duration::days(n),
            ..StatsDay::default()
        })
        .collect();
    let index = |day: NaiveDate| usize::try_from((day - first).num_days()).ok();
    for (day, metric, count) in recent {
        let Some(entry) = index(day).and_then(|i| series.get_mut(i)) else {
            continue;
        };
        match metric.as_str() {
            metric::USERS => entry.new_users = count,
            metric::WORKSPACES_CREATED => entry.workspaces_created = count,
            metric::PROJECTS_CREATED => entry.projects_created = count,
            metric::TASKS_CREATED => entry.tasks_created = count,
            metric::TASKS_DONE => entry.tasks_done = count,
            metric::EVENTS => entry.events = count,
            _ => {}
        }
    }
    for (day, count) in active {
        if let Some(entry) = index(day).and_then(|i| series.get_mut(i)) {
            entry.active_users = count;
        }
    }
    let last_week = &series[23..];
    Ok(PlatformStats {
        users: total(metric::USERS),
        active_users_7d,
        workspaces: total(metric::WORKSPACES_CREATED) - total(metric::WORKSPACES_DELETED),
        projects: total(metric::PROJECTS_CREATED),
        tasks: total(metric::TASKS_CREATED) - total(metric::TASKS_DELETED),
        tasks_created_7d: last_week.iter().map(|d| d.tasks_created).sum(),
        tasks_done_7d: last_week.iter().map(|d| d.tasks_done).sum(),
        events_24h: events_24h.unwrap_or(0),
        series,
        as_of: now,
    })
}
