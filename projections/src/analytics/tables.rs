//! The analytics read model's tables: one row per live task (what its
//! next event needs to move the counters), and the counter tables the
//! queries sum instead of scanning tasks.
//!
//! Time buckets are UTC intervals of three widths (`minutes`): **15-minute
//! slots**, **hours** and **days**, each event counted once in each. Every
//! time zone in use since the 1970s has an offset that is a whole number
//! of quarter hours, and changes it on a quarter hour, so any local day is
//! a union of buckets: its UTC days whole, then hours, then slots only at
//! its ragged ends (`reads::pieces`). A day in UTC reads one row per kind,
//! a day in Europe/Paris 24 hours, one in Asia/Kathmandu 23 hours and 4
//! slots, and every figure stays exact in every zone.

use chrono::{DateTime, Utc};
use tenet_events::ids::{ProjectId, TaskId, TenantId, UserId};

use crate::batch::{Counter, Emptied};
use crate::table::table;

table! {
    /// One live task, as the analytics need it.
    #[derive(Clone, Debug, PartialEq)]
    pub struct AnalyticsTaskRow in analytics_tasks {
        key {
            tenant_id: TenantId,
            id: TaskId,
        }
        fixed {
            project_id: ProjectId,
            created_at: DateTime<Utc>,
        }
        set {
            status: String,
            priority: String,
            assignee_id: Option<UserId>,
            /// Its first move to in_progress.
            started_at: Option<DateTime<Utc>>,
            /// Its move to done, while it is done.
            completed_at: Option<DateTime<Utc>>,
            /// From `started_at` to `completed_at`, in milliseconds, while
            /// it is done (none if it was never in progress).
            cycle_ms: Option<i64>,
            /// The histogram bin of `cycle_ms` (`super::cycle_bin`), set
            /// with it.
            cycle_bin: Option<i32>,
            version: i64,
        }
        guard "analytics_tasks.version <= EXCLUDED.version";
    }
}

table! {
    /// Tasks created (`kind` = `created`) or completed (`completed`) in a
    /// project in one bucket: `minutes` wide (15, 60 or 1440) from `slot`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ActivityRow in analytics_activity {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            minutes: i32,
            slot: DateTime<Utc>,
            kind: String,
        }
        add {
            count: i64,
        }
    }
}

table! {
    /// Open tasks of a project by status and priority.
    #[derive(Clone, Debug, PartialEq)]
    pub struct OpenRow in analytics_open {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            status: String,
            priority: String,
        }
        add {
            count: i64,
        }
    }
}

table! {
    /// Tasks of a project completed in one bucket (as in
    /// [`ActivityRow`]), by assignee (the nil id: unassigned).
    #[derive(Clone, Debug, PartialEq)]
    pub struct CompletionRow in analytics_completions {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            assignee_id: UserId,
            minutes: i32,
            slot: DateTime<Utc>,
        }
        add {
            count: i64,
        }
    }
}

table! {
    /// The cycle-time histogram: tasks of a project completed in one UTC
    /// day (from its midnight, `day`) whose cycle time falls in `bin`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct CycleDayRow in analytics_cycle_days {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            day: DateTime<Utc>,
            bin: i32,
        }
        add {
            count: i64,
        }
    }
}

pub(crate) type ActivityKey = (TenantId, ProjectId, i32, DateTime<Utc>, String);
pub(crate) type CompletionKey = (TenantId, ProjectId, UserId, i32, DateTime<Utc>);
pub(crate) type CycleKey = (TenantId, ProjectId, DateTime<Utc>, i32);

impl Counter for ActivityRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((tenant_id, project_id, minutes, slot, kind): ActivityKey, count: i64) -> Self {
        ActivityRow {
            tenant_id,
            project_id,
            minutes,
            slot,
            kind,
            count,
        }
    }
}

impl Counter for OpenRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta(
        (tenant_id, project_id, status, priority): (TenantId, ProjectId, String, String),
        count: i64,
    ) -> Self {
        OpenRow {
            tenant_id,
            project_id,
            status,
            priority,
            count,
        }
    }
}

impl Counter for CompletionRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta(
        (tenant_id, project_id, assignee_id, minutes, slot): CompletionKey,
        count: i64,
    ) -> Self {
        CompletionRow {
            tenant_id,
            project_id,
            assignee_id,
            minutes,
            slot,
            count,
        }
    }
}

impl Counter for CycleDayRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((tenant_id, project_id, day, bin): CycleKey, count: i64) -> Self {
        CycleDayRow {
            tenant_id,
            project_id,
            day,
            bin,
            count,
        }
    }
}
