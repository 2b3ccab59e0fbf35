//! The totals of project lists (`project_counts`), by status: a page's
//! `total` without counting rows.

use tenet_events::ids::TenantId;

use crate::batch::{Counter, Emptied};
use crate::table::table;

table! {
    /// One bucket of `project_counts`: how many projects of a tenant have
    /// this status, for the lists' totals.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ProjectCountRow in project_counts {
        key {
            tenant_id: TenantId,
            status: String,
        }
        add {
            count: i64,
        }
    }
}

impl Counter for ProjectCountRow {
    const EMPTIED: Emptied = Emptied::ByKey;

    fn delta((tenant_id, status): (TenantId, String), count: i64) -> ProjectCountRow {
        ProjectCountRow {
            tenant_id,
            status,
            count,
        }
    }
}
