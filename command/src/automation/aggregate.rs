//! The automation aggregate: a project's trigger and ordered actions,
//! enabled or not. Its project must exist (in the tenant) when it is
//! created; what the actions name (members, labels) is checked when they
//! run, against the state of that moment.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::automation::{
    Action, AutomationCreated, AutomationDeleted, AutomationEvent, AutomationUpdated, Trigger,
};
use tenet_events::ids::{ProjectId, UserId};

use crate::project::aggregate::Project;
use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Automation {
    pub created: bool,
    pub deleted: bool,
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub trigger: Option<Trigger>,
    pub actions: Vec<Action>,
    pub enabled: bool,
    pub created_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Automation {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }

    /// Whether it is a live automation of `project`.
    pub fn belongs_to(&self, project: ProjectId) -> bool {
        self.exists() && self.project_id == Some(project)
    }
}

impl Aggregate for Automation {
    const KIND: &'static str = "automation";
    type Event = AutomationEvent;

    fn evolve(&mut self, event: &AutomationEvent, applied: &Applied) {
        match event {
            AutomationEvent::Created(created) => {
                self.created = true;
                self.project_id = Some(created.project_id);
                self.name = created.name.clone();
                self.trigger = Some(created.trigger.clone());
                self.actions = created.actions.clone();
                self.enabled = created.enabled;
                self.created_by = applied.by;
                self.created_at = Some(applied.occurred_at);
            }
            AutomationEvent::Updated(updated) => {
                if let Some(name) = &updated.name {
                    self.name = name.clone();
                }
                if let Some(trigger) = &updated.trigger {
                    self.trigger = Some(trigger.clone());
                }
                if let Some(actions) = &updated.actions {
                    self.actions = actions.clone();
                }
                if let Some(enabled) = updated.enabled {
                    self.enabled = enabled;
                }
            }
            AutomationEvent::Deleted(_) => self.deleted = true,
        }
        self.updated_at = Some(applied.occurred_at);
    }
}

/// A new automation's fields, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAutomation {
    pub project_id: ProjectId,
    pub name: String,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    pub enabled: bool,
}

/// What an edit asks to change (`None`: leave as is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutomationChanges {
    pub name: Option<String>,
    pub trigger: Option<Trigger>,
    pub actions: Option<Vec<Action>>,
    pub enabled: Option<bool>,
}

pub enum AutomationCommand {
    Update(AutomationChanges),
    Delete,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AutomationError {
    #[error("the automation already exists")]
    AlreadyExists,
    #[error("no such automation")]
    NotFound,
    #[error("no such project")]
    ProjectNotFound,
    #[error("the project is archived; restore it before adding automations")]
    ProjectArchived,
}

/// Creates an automation in `project`, which must exist and be active.
pub fn create(
    automation: &Automation,
    project: &Project,
    new: NewAutomation,
) -> Result<Vec<AutomationEvent>, AutomationError> {
    if automation.created {
        return Err(AutomationError::AlreadyExists);
    }
    if !project.created {
        return Err(AutomationError::ProjectNotFound);
    }
    if project.archived {
        return Err(AutomationError::ProjectArchived);
    }
    Ok(vec![AutomationEvent::Created(AutomationCreated {
        project_id: new.project_id,
        name: new.name,
        trigger: new.trigger,
        actions: new.actions,
        enabled: new.enabled,
    })])
}

/// Decides a command on an automation of `project`.
pub fn decide(
    automation: &Automation,
    project: ProjectId,
    command: AutomationCommand,
) -> Result<Vec<AutomationEvent>, AutomationError> {
    if !automation.belongs_to(project) {
        return Err(AutomationError::NotFound);
    }
    match command {
        AutomationCommand::Update(changes) => {
            // Only what actually changes is recorded.
            let updated = AutomationUpdated {
                project_id: project,
                name: changes.name.filter(|name| *name != automation.name),
                trigger: changes
                    .trigger
                    .filter(|trigger| Some(trigger) != automation.trigger.as_ref()),
                actions: changes
                    .actions
                    .filter(|actions| *actions != automation.actions),
                enabled: changes
                    .enabled
                    .filter(|enabled| *enabled != automation.enabled),
            };
            if updated.is_empty() {
                return Ok(Vec::new());
            }
            Ok(vec![AutomationEvent::Updated(updated)])
        }
        AutomationCommand::Delete => Ok(vec![AutomationEvent::Deleted(AutomationDeleted {
            project_id: project,
        })]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use tenet_events::catalogue::project::{ProjectArchived, ProjectCreated, ProjectEvent};
    use tenet_events::catalogue::task::TaskStatus;

    fn project_id() -> ProjectId {
        ProjectId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn project() -> Project {
        given([ProjectEvent::Created(ProjectCreated {
            name: "Web".into(),
            slug: "web".into(),
            description: String::new(),
            key: "WEB".into(),
        })])
    }

    fn new() -> NewAutomation {
        NewAutomation {
            project_id: project_id(),
            name: "Follow up".into(),
            trigger: Trigger::StatusChanged {
                to: TaskStatus::Done,
            },
            actions: vec![Action::AddLabel {
                label: "shipped".into(),
            }],
            enabled: true,
        }
    }

    fn created() -> Automation {
        let events = create(&Automation::default(), &project(), new()).unwrap();
        given(events)
    }

    #[test]
    fn an_automation_needs_an_active_project() {
        assert_eq!(
            create(&Automation::default(), &Project::default(), new()),
            Err(AutomationError::ProjectNotFound)
        );
        let mut archived = project();
        archived.evolve(
            &ProjectEvent::Archived(ProjectArchived {}),
            &crate::repository::Applied {
                stream_version: 2,
                occurred_at: Utc::now(),
                by: None,
            },
        );
        assert_eq!(
            create(&Automation::default(), &archived, new()),
            Err(AutomationError::ProjectArchived)
        );
        assert!(created().enabled);
    }

    #[test]
    fn an_edit_records_only_what_changes_and_another_project_does_not_find_it() {
        let automation = created();
        let same = AutomationChanges {
            name: Some("Follow up".into()),
            enabled: Some(true),
            ..AutomationChanges::default()
        };
        assert_eq!(
            decide(&automation, project_id(), AutomationCommand::Update(same)),
            Ok(vec![])
        );
        let off = AutomationChanges {
            enabled: Some(false),
            ..AutomationChanges::default()
        };
        assert_eq!(
            decide(&automation, project_id(), AutomationCommand::Update(off)),
            Ok(vec![AutomationEvent::Updated(AutomationUpdated {
                project_id: project_id(),
                name: None,
                trigger: None,
                actions: None,
                enabled: Some(false),
            })])
        );
        let elsewhere = ProjectId::from_uuid(uuid::Uuid::from_u128(8));
        assert_eq!(
            decide(&automation, elsewhere, AutomationCommand::Delete),
            Err(AutomationError::NotFound)
        );
    }
}
