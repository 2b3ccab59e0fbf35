//! Automations ("when a task is done, …") and their executions.
//!
//! An automation is a stream of its own (`automation`), in a project: a
//! trigger and ordered actions. Each run of one is an execution, a stream
//! of its own too (`automation_execution`), whose id follows from the
//! automation and the triggering event, so a run is recorded once however
//! often it is attempted. Its events carry the triggering event as their
//! causation id; the changes its actions make carry the execution's id as
//! theirs and the automation as their actor.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::catalogue::task::{Priority, TaskStatus};
use crate::event_family;
use crate::ids::{AutomationId, EventId, ProjectId, TaskId, UserId};

/// What starts an automation: a task event of its project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event")]
pub enum Trigger {
    /// A task entered status `to`.
    #[serde(rename = "task.status_changed")]
    StatusChanged { to: TaskStatus },
    /// A task was created (with `label` among its labels, if one is named).
    #[serde(rename = "task.created")]
    Created {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
}

/// One step of an automation, run on the triggering task. Strings may say
/// `{{task.title}}`, `{{task.key}}` and `{{task.id}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Assign {
        user_id: UserId,
    },
    SetPriority {
        priority: Priority,
    },
    AddLabel {
        label: String,
    },
    /// A comment on the task, written as the automation.
    Comment {
        body: String,
    },
    /// A follow-up task in the automation's project.
    CreateTask {
        title: String,
        #[serde(default)]
        description: String,
        #[serde(default)]
        priority: Priority,
        #[serde(default)]
        labels: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee_id: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_date: Option<NaiveDate>,
    },
    Transition {
        to: TaskStatus,
    },
}

impl Action {
    /// Its `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Assign { .. } => "assign",
            Action::SetPriority { .. } => "set_priority",
            Action::AddLabel { .. } => "add_label",
            Action::Comment { .. } => "comment",
            Action::CreateTask { .. } => "create_task",
            Action::Transition { .. } => "transition",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationCreated {
    pub project_id: ProjectId,
    pub name: String,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    pub enabled: bool,
}

/// What a PATCH changed (absent: unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationUpdated {
    pub project_id: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl AutomationUpdated {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.trigger.is_none()
            && self.actions.is_none()
            && self.enabled.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationDeleted {
    pub project_id: ProjectId,
}

/// Where a step (or an execution) stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Succeeded, failed or skipped: it changes no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
        )
    }

    /// pending → running → succeeded | failed; pending or running →
    /// skipped; pending → failed (a step that could not start).
    pub fn can_become(self, to: StepStatus) -> bool {
        use StepStatus::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Running, Succeeded)
                | (Running | Pending, Failed)
                | (Pending | Running, Skipped)
        )
    }
}

/// A run of an automation began; every step is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionStarted {
    pub automation_id: AutomationId,
    pub project_id: ProjectId,
    /// The task whose event triggered it.
    pub task_id: TaskId,
    pub trigger_event_id: EventId,
    pub trigger_event_type: String,
    /// 1 when a person's change triggered it; one more than the execution
    /// whose change triggered it otherwise.
    pub depth: u32,
    /// The automations of the chain that led here, this one last.
    pub chain: Vec<AutomationId>,
    /// The actions as they were when it started, in order.
    pub steps: Vec<Action>,
}

/// A step moved on. `result` holds what a step made (`{"task_id"}` of a
/// follow-up task, `{"comment_id"}` of a comment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatusChanged {
    pub automation_id: AutomationId,
    pub step: u32,
    pub from: StepStatus,
    pub to: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// The run ended: `succeeded` (every step did), `failed` (a step failed;
/// the ones after it were skipped) or `skipped` (nothing ran, `error` says
/// why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionFinished {
    pub automation_id: AutomationId,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

event_family! {
    /// What happens to an automation.
    pub enum AutomationEvent {
        Created(AutomationCreated) = "automation.created" v 1;
        Updated(AutomationUpdated) = "automation.updated" v 1;
        Deleted(AutomationDeleted) = "automation.deleted" v 1;
    }
}

event_family! {
    /// What happens in one run of an automation.
    pub enum ExecutionEvent {
        Started(ExecutionStarted) = "automation.execution_started" v 1;
        StepStatusChanged(StepStatusChanged) = "automation.step_status_changed" v 1;
        Finished(ExecutionFinished) = "automation.execution_finished" v 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_and_actions_have_the_wire_shape_of_the_contract() {
        let trigger: Trigger = serde_json::from_value(
            serde_json::json!({"event": "task.status_changed", "to": "done"}),
        )
        .unwrap();
        assert_eq!(
            trigger,
            Trigger::StatusChanged {
                to: TaskStatus::Done
            }
        );
        let created: Trigger =
            serde_json::from_value(serde_json::json!({"event": "task.created", "label": "bug"}))
                .unwrap();
        assert_eq!(
            serde_json::to_value(&created).unwrap(),
            serde_json::json!({"event": "task.created", "label": "bug"})
        );
        let action = Action::CreateTask {
            title: "Review {{task.key}}".into(),
            description: String::new(),
            priority: Priority::High,
            labels: vec![],
            assignee_id: None,
            due_date: None,
        };
        let json = serde_json::to_value(&action).unwrap();
        assert_eq!(json["type"], "create_task");
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), action);
    }

    #[test]
    fn steps_move_only_forward() {
        use StepStatus::*;
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(Succeeded));
        assert!(Running.can_become(Failed));
        assert!(Pending.can_become(Skipped));
        assert!(!Succeeded.can_become(Running));
        assert!(!Pending.can_become(Succeeded));
        assert!(!Failed.can_become(Skipped));
    }
}
