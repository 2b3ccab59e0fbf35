//! The totals of task lists (`task_counts`), by the dimensions lists
//! filter on: a filtered list's total is a sum over a handful of buckets,
//! not a count over the tasks.

use tenet_events::ids::{ProjectId, TenantId, UserId};

use crate::batch::{Counter, Emptied};
use crate::table::{Table, table};

table! {
    /// One bucket of `task_counts`: how many tasks of a project have this
    /// status, priority and assignee.
    #[derive(Clone, Debug, PartialEq)]
    pub struct TaskCountRow in task_counts {
        key {
            tenant_id: TenantId,
            project_id: ProjectId,
            status: String,
            priority: String,
            /// [`UNASSIGNED`] for unassigned tasks.
            assignee_id: UserId,
        }
        add {
            count: i64,
        }
    }
}

/// A bucket of `task_counts`: tenant, project, status, priority, assignee.
pub(super) type Bucket = <TaskCountRow as Table>::Key;

/// The assignee of unassigned tasks in `task_counts`, whose key cannot
/// hold a NULL.
pub const UNASSIGNED: UserId = UserId::from_uuid(uuid::Uuid::nil());

impl Counter for TaskCountRow {
    /// The migration made a partial index on empty buckets for this.
    const EMPTIED: Emptied = Emptied::Sweep;

    fn delta(
        (tenant_id, project_id, status, priority, assignee_id): Bucket,
        count: i64,
    ) -> TaskCountRow {
        TaskCountRow {
            tenant_id,
            project_id,
            status,
            priority,
            assignee_id,
            count,
        }
    }
}
