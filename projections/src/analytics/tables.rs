//! The analytics read model's tables: one row per live task (what its
//! next event needs to move the counters), and three counter tables the
//! queries sum instead of scanning tasks.
//!
//! Time buckets are **15-minute slots** in UTC (`slot`: the slot's
//! start). Every time zone in use since the 1970s has an offset that is a
//! whole number of quarter hours, and changes it on a quarter hour, so a
//! slot lies within one local day in any of them: per-day figures are
//! exact in every zone a request may name.

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
            version: i64,
        }
        guard "analytics_tasks.version <= EXCLUDED.version";
    }
}

table! {
    /// Tasks created (`kind` = `created`) or completed (`completed`) in a
    /// project in one 15-minute slot.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ActivityRow in analytics_activity {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
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
    /// Tasks of a project completed in one 15-minute slot, by assignee
    /// (the nil id: unassigned).
    #[derive(Clone, Debug, PartialEq)]
    pub struct CompletionRow in analytics_completions {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            assignee_id: UserId,
            slot: DateTime<Utc>,
        }
        add {
            count: i64,
        }
    }
}

impl Counter for ActivityRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta(
        (tenant_id, project_id, slot, kind): (TenantId, ProjectId, DateTime<Utc>, String),
        count: i64,
    ) -> Self {
        ActivityRow {
            tenant_id,
            project_id,
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
        (tenant_id, project_id, assignee_id, slot): (TenantId, ProjectId, UserId, DateTime<Utc>),
        count: i64,
    ) -> Self {
        CompletionRow {
            tenant_id,
            project_id,
            assignee_id,
            slot,
            count,
        }
    }
}
