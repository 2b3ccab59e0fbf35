//! The realtime feed's outbox (`feed_updates`): what each projector
//! records, beside its read-model writes, for WebSocket clients, and how the
//! outbox is read, pruned and announced.
//!
//! - **Exact rows, in log order.** A projector records one update per
//!   visible change of a row, with the row's REST JSON as it was right after
//!   that event (a batch may change a row several times; each change is
//!   recorded), in the transaction that writes the row and the checkpoint.
//!   Below a projection's checkpoint its outbox is therefore complete.
//! - **Active generation only.** A generation being rebuilt re-applies old
//!   events; it records nothing, or clients would see history again.
//! - **Not the delivery.** Reading, routing and sending to clients belongs
//!   to the query side (`tenet_query::realtime`); this module only owns the
//!   table, its pruning, and the announcement of checkpoints over NATS that
//!   wakes query instances on other machines.
//!
//! By job: [`record`] (the [`Recorder`] projectors write with), [`read`]
//! (ranges, a tenant's pages, the horizon, the watermark), [`prune`](mod@prune), and
//! [`announce`](mod@announce) (checkpoint announcements over NATS, and following them).
//! What this module defines itself is the update they all share.
//!
//! - **It does not know its writers.** The projectors depend on the outbox
//!   (they record into it), so the outbox must not name them: the
//!   functions that need the set of writers (the watermark, the pruner,
//!   the announcements) take it from whoever wires them
//!   ([`crate::FEED_WRITERS`]).

use tenet_events::ids::{
    AutomationId, CommentId, ExecutionId, FeatureFlagId, Position, ProjectId, TaskId, TenantId,
};
use uuid::Uuid;

pub mod announce;
pub mod prune;
pub mod read;
pub mod record;

pub use announce::{announce, announcement_subject, follow_announcements};
pub use prune::{prune, run_pruner};
pub use read::{Cursor, Scope, horizon, read_range, read_tenant, watermark};
pub use record::Recorder;

/// What happened to the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Created or changed: `data` is the row after the change.
    Update,
    /// Deleted: `data` holds its ids.
    Removed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Removed => "removed",
        }
    }

    pub fn parse(value: &str) -> Option<Kind> {
        match value {
            "update" => Some(Kind::Update),
            "removed" => Some(Kind::Removed),
            _ => None,
        }
    }
}

/// The row a feed update is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Project(ProjectId),
    Task(TaskId),
    Comment(CommentId),
    Automation(AutomationId),
    /// A run of an automation, routed to its project and to the task
    /// whose event triggered it.
    Execution(ExecutionId),
    /// A platform-wide feature flag (tenant [`TenantId::PLATFORM`]): the
    /// query side evaluates it for each workspace channel it reaches.
    FeatureFlag(FeatureFlagId),
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Project(_) => "project",
            Resource::Task(_) => "task",
            Resource::Comment(_) => "comment",
            Resource::Automation(_) => "automation",
            Resource::Execution(_) => "execution",
            Resource::FeatureFlag(_) => "feature_flag",
        }
    }

    fn uuid(self) -> Uuid {
        match self {
            Resource::Project(id) => id.as_uuid(),
            Resource::Task(id) => id.as_uuid(),
            Resource::Comment(id) => id.as_uuid(),
            Resource::Automation(id) => id.as_uuid(),
            Resource::Execution(id) => id.as_uuid(),
            Resource::FeatureFlag(id) => id.as_uuid(),
        }
    }

    fn parse(name: &str, id: Uuid) -> Option<Resource> {
        Some(match name {
            "project" => Resource::Project(ProjectId::from_uuid(id)),
            "task" => Resource::Task(TaskId::from_uuid(id)),
            "comment" => Resource::Comment(CommentId::from_uuid(id)),
            "automation" => Resource::Automation(AutomationId::from_uuid(id)),
            "execution" => Resource::Execution(ExecutionId::from_uuid(id)),
            "feature_flag" => Resource::FeatureFlag(FeatureFlagId::from_uuid(id)),
            _ => return None,
        })
    }
}

/// One visible change of one read-model row.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedUpdate {
    pub position: Position,
    pub tenant_id: TenantId,
    pub kind: Kind,
    pub resource: Resource,
    /// The project the row belongs to (itself for a project): routes it to
    /// `project:` channels.
    pub project_id: Option<ProjectId>,
    /// The task the row belongs to (itself for a task): routes it to
    /// `task:` channels.
    pub task_id: Option<TaskId>,
    pub event_type: String,
    /// JSON text, forwarded verbatim.
    pub data: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_resources_round_trip() {
        for kind in [Kind::Update, Kind::Removed] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        let id = Uuid::now_v7();
        for resource in [
            Resource::Project(ProjectId::from_uuid(id)),
            Resource::Task(TaskId::from_uuid(id)),
            Resource::Comment(CommentId::from_uuid(id)),
            Resource::Automation(AutomationId::from_uuid(id)),
            Resource::Execution(ExecutionId::from_uuid(id)),
            Resource::FeatureFlag(FeatureFlagId::from_uuid(id)),
        ] {
            assert_eq!(Resource::parse(resource.name(), id), Some(resource));
        }
        assert_eq!(Resource::parse("member", id), None);
    }
}
