//! Tasks: the work itself.
//!
//! Every task event carries its project, and status changes carry both
//! ends: the projections that count tasks per project and status need no
//! state of their own.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::{ProjectId, UserId};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[default]
    Todo,
    InProgress,
    InReview,
    Done,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Todo,
        TaskStatus::InProgress,
        TaskStatus::InReview,
        TaskStatus::Done,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::InReview => "in_review",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Open: still to be finished (todo, in progress, in review).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TaskStatus::Todo | TaskStatus::InProgress | TaskStatus::InReview
        )
    }

    /// Whether a task may move from this status to `to`:
    /// todo → in_progress → in_review → done, in_review → in_progress,
    /// any open status → cancelled, done or cancelled → todo (reopen).
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Todo, InProgress)
                | (InProgress, InReview)
                | (InReview, Done)
                | (InReview, InProgress)
                | (Todo | InProgress | InReview, Cancelled)
                | (Done | Cancelled, Todo)
        )
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(value: &str) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|priority| priority.as_str() == value)
    }

    /// Its place in an ordering by urgency (low 1 … urgent 4).
    pub fn rank(self) -> i32 {
        match self {
            Priority::Low => 1,
            Priority::Medium => 2,
            Priority::High => 3,
            Priority::Urgent => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub project_id: ProjectId,
    /// Per project, from 1, without gaps or duplicates.
    pub number: i64,
    /// `<PROJECT-SLUG-UPPER>-<number>`, fixed at creation.
    pub key: String,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub assignee_id: Option<UserId>,
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
}

/// The fields an edit changed (absent: unchanged; for `due_date`, `null`
/// clears it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdated {
    pub project_id: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::double_option"
    )]
    pub due_date: Option<Option<NaiveDate>>,
}

impl TaskUpdated {
    /// An edit of the task in `project_id` that changes nothing yet.
    pub fn of(project_id: ProjectId) -> Self {
        TaskUpdated {
            project_id,
            title: None,
            description: None,
            priority: None,
            labels: None,
            due_date: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.labels.is_none()
            && self.due_date.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAssigned {
    pub project_id: ProjectId,
    pub assignee_id: UserId,
    pub previous: Option<UserId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUnassigned {
    pub project_id: ProjectId,
    pub previous: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatusChanged {
    pub project_id: ProjectId,
    pub from: TaskStatus,
    pub to: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDeleted {
    pub project_id: ProjectId,
    /// Its status when deleted (so counts drop from the right bucket).
    pub status: TaskStatus,
}

event_family! {
    /// What happens to a task.
    pub enum TaskEvent {
        Created(TaskCreated) = "task.created" v 1;
        Updated(TaskUpdated) = "task.updated" v 1;
        Assigned(TaskAssigned) = "task.assigned" v 1;
        Unassigned(TaskUnassigned) = "task.unassigned" v 1;
        StatusChanged(TaskStatusChanged) = "task.status_changed" v 1;
        Deleted(TaskDeleted) = "task.deleted" v 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn the_workflow_allows_exactly_its_transitions() {
        let allowed = [
            (Todo, InProgress),
            (InProgress, InReview),
            (InReview, Done),
            (InReview, InProgress),
            (Todo, Cancelled),
            (InProgress, Cancelled),
            (InReview, Cancelled),
            (Done, Todo),
            (Cancelled, Todo),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
    }

    #[test]
    fn a_cleared_due_date_differs_from_an_untouched_one() {
        let project_id = ProjectId::from_uuid(uuid::Uuid::nil());
        let cleared = TaskUpdated {
            due_date: Some(None),
            ..TaskUpdated::of(project_id)
        };
        let json = serde_json::to_value(&cleared).unwrap();
        assert_eq!(json["due_date"], serde_json::Value::Null);
        let back: TaskUpdated = serde_json::from_value(json).unwrap();
        assert_eq!(back.due_date, Some(None));
        let untouched: TaskUpdated =
            serde_json::from_value(serde_json::json!({ "project_id": project_id })).unwrap();
        assert_eq!(untouched.due_date, None);
    }
}
