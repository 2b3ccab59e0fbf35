//! The task aggregate: the work itself. Its number comes from its project
//! (handed out on the project's stream, so numbers never repeat or skip),
//! its assignee must be a member of the workspace at the version the
//! decision read, and its status follows the workflow of [`TaskStatus`].

use chrono::{DateTime, NaiveDate, Utc};
use tenet_events::catalogue::project::ProjectEvent;
use tenet_events::catalogue::task::{
    Priority, TaskAssigned, TaskCreated, TaskDeleted, TaskEvent, TaskStatus, TaskStatusChanged,
    TaskUnassigned, TaskUpdated,
};
use tenet_events::ids::{ProjectId, TaskId, UserId};

use crate::project::aggregate::{Project, ProjectCommand, ProjectError};
use crate::repository::{Aggregate, Applied, Pair, Unrelated};
use crate::workspace::aggregate::Workspace;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    pub created: bool,
    pub deleted: bool,
    pub project_id: Option<ProjectId>,
    pub number: i64,
    pub key: String,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub priority: Priority,
    pub assignee: Option<UserId>,
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
    pub created_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Its first move to in_progress.
    pub started_at: Option<DateTime<Utc>>,
    /// Its move to done, while it is done.
    pub completed_at: Option<DateTime<Utc>>,
}

impl Task {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }
}

impl Aggregate for Task {
    const KIND: &'static str = "task";
    type Event = TaskEvent;

    fn evolve(&mut self, event: &TaskEvent, applied: &Applied) {
        match event {
            TaskEvent::Created(created) => {
                self.created = true;
                self.project_id = Some(created.project_id);
                self.number = created.number;
                self.key = created.key.clone();
                self.title = created.title.clone();
                self.description = created.description.clone();
                self.priority = created.priority;
                self.assignee = created.assignee_id;
                self.labels = created.labels.clone();
                self.due_date = created.due_date;
                self.created_by = applied.by;
                self.created_at = Some(applied.occurred_at);
            }
            TaskEvent::Updated(updated) => {
                if let Some(title) = &updated.title {
                    self.title = title.clone();
                }
                if let Some(description) = &updated.description {
                    self.description = description.clone();
                }
                if let Some(priority) = updated.priority {
                    self.priority = priority;
                }
                if let Some(labels) = &updated.labels {
                    self.labels = labels.clone();
                }
                if let Some(due_date) = updated.due_date {
                    self.due_date = due_date;
                }
            }
            TaskEvent::Assigned(assigned) => self.assignee = Some(assigned.assignee_id),
            TaskEvent::Unassigned(_) => self.assignee = None,
            TaskEvent::StatusChanged(changed) => {
                self.status = changed.to;
                if changed.to == TaskStatus::InProgress && self.started_at.is_none() {
                    self.started_at = Some(applied.occurred_at);
                }
                self.completed_at = (changed.to == TaskStatus::Done).then_some(applied.occurred_at);
            }
            TaskEvent::Deleted(_) => self.deleted = true,
        }
        self.updated_at = Some(applied.occurred_at);
    }
}

/// The fields of a new task, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub project_id: ProjectId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub assignee: Option<UserId>,
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
}

/// What an edit asks to change (`None`: leave as is). For `assignee` and
/// `due_date`, `Some(None)` clears the value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub labels: Option<Vec<String>>,
    pub due_date: Option<Option<NaiveDate>>,
    pub assignee: Option<Option<UserId>>,
}

pub enum TaskCommand {
    Edit(TaskChanges),
    Transition {
        to: TaskStatus,
    },
    Delete,
    /// The policy's reaction to a member leaving the workspace: unassign
    /// this open task if it is still theirs and they are still gone.
    UnassignDeparted {
        user: UserId,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("the task already exists")]
    AlreadyExists,
    #[error("no such task")]
    NotFound,
    #[error("no such project")]
    ProjectNotFound,
    #[error("the project is archived; restore it before adding tasks")]
    ProjectArchived,
    #[error("the assignee is not a member of this workspace")]
    AssigneeNotMember,
    #[error("a task cannot move from {from} to {to}", from = .from.as_str(), to = .to.as_str())]
    InvalidTransition { from: TaskStatus, to: TaskStatus },
}

/// The key of a task: its project's key and its number (`WEB-APP` and 42
/// → `WEB-APP-42`).
pub fn task_key(project_key: &str, number: i64) -> String {
    format!("{project_key}-{number}")
}

/// Creates a task in `project` (whose stream hands out its number),
/// checking its assignee against `workspace`.
pub fn create(
    task: &Task,
    project: &Project,
    workspace: &Workspace,
    id: TaskId,
    new: NewTask,
) -> Result<Pair<Task, Project>, TaskError> {
    if task.created {
        return Err(TaskError::AlreadyExists);
    }
    let numbered = crate::project::aggregate::decide(project, ProjectCommand::AddTask { task: id })
        .map_err(|error| match error {
            ProjectError::Archived => TaskError::ProjectArchived,
            _ => TaskError::ProjectNotFound,
        })?;
    let number = match numbered.first() {
        Some(ProjectEvent::TaskAdded(added)) => added.number,
        _ => return Err(TaskError::ProjectNotFound),
    };
    if let Some(assignee) = new.assignee {
        check_member(workspace, assignee)?;
    }
    let created = TaskEvent::Created(TaskCreated {
        project_id: new.project_id,
        number,
        key: task_key(&project.key, number),
        title: new.title,
        description: new.description,
        priority: new.priority,
        assignee_id: new.assignee,
        labels: new.labels,
        due_date: new.due_date,
    });
    Ok((vec![created], numbered))
}

/// Decides a command on an existing task; `workspace` is read for
/// assignments (the assignee must be a member at this version).
pub fn decide(
    task: &Task,
    workspace: &Workspace,
    command: TaskCommand,
) -> Result<Pair<Task, Unrelated>, TaskError> {
    let events = decide_task(task, workspace, command)?;
    Ok((events, Vec::new()))
}

fn decide_task(
    task: &Task,
    workspace: &Workspace,
    command: TaskCommand,
) -> Result<Vec<TaskEvent>, TaskError> {
    if !task.exists() {
        return Err(TaskError::NotFound);
    }
    let Some(project_id) = task.project_id else {
        return Err(TaskError::NotFound);
    };
    match command {
        TaskCommand::Edit(changes) => edit(task, workspace, project_id, changes),
        TaskCommand::Transition { to } => {
            if !task.status.can_become(to) {
                return Err(TaskError::InvalidTransition {
                    from: task.status,
                    to,
                });
            }
            Ok(vec![TaskEvent::StatusChanged(TaskStatusChanged {
                project_id,
                from: task.status,
                to,
            })])
        }
        TaskCommand::Delete => Ok(vec![TaskEvent::Deleted(TaskDeleted {
            project_id,
            status: task.status,
        })]),
        TaskCommand::UnassignDeparted { user } => {
            let still_theirs = task.assignee == Some(user) && task.status.is_open();
            if !still_theirs || workspace.members.contains_key(&user) {
                return Ok(Vec::new());
            }
            Ok(vec![TaskEvent::Unassigned(TaskUnassigned {
                project_id,
                previous: user,
            })])
        }
    }
}

fn edit(
    task: &Task,
    workspace: &Workspace,
    project_id: ProjectId,
    changes: TaskChanges,
) -> Result<Vec<TaskEvent>, TaskError> {
    let mut events = Vec::new();
    // Only what actually changes is recorded.
    let updated = TaskUpdated {
        title: changes.title.filter(|title| *title != task.title),
        description: changes
            .description
            .filter(|description| *description != task.description),
        priority: changes
            .priority
            .filter(|priority| *priority != task.priority),
        labels: changes.labels.filter(|labels| *labels != task.labels),
        due_date: changes.due_date.filter(|due| *due != task.due_date),
        ..TaskUpdated::of(project_id)
    };
    if !updated.is_empty() {
        events.push(TaskEvent::Updated(updated));
    }
    match changes.assignee {
        Some(Some(assignee)) if task.assignee != Some(assignee) => {
            check_member(workspace, assignee)?;
            events.push(TaskEvent::Assigned(TaskAssigned {
                project_id,
                assignee_id: assignee,
                previous: task.assignee,
            }));
        }
        Some(None) => {
            if let Some(previous) = task.assignee {
                events.push(TaskEvent::Unassigned(TaskUnassigned {
                    project_id,
                    previous,
                }));
            }
        }
        _ => {}
    }
    Ok(events)
}

fn check_member(workspace: &Workspace, user: UserId) -> Result<(), TaskError> {
    if workspace.exists() && workspace.members.contains_key(&user) {
        Ok(())
    } else {
        Err(TaskError::AssigneeNotMember)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use TaskStatus::*;
    use tenet_events::catalogue::project::{ProjectArchived, ProjectCreated, TaskAdded};
    use tenet_events::catalogue::workspace::{
        MemberAdded, MemberRemoved, Role, WorkspaceCreated, WorkspaceEvent,
    };

    fn user(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn project_id() -> ProjectId {
        ProjectId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn project_created() -> ProjectEvent {
        ProjectEvent::Created(ProjectCreated {
            name: "Web".into(),
            slug: "web-app".into(),
            description: String::new(),
            key: "WEB-APP".into(),
            template_id: None,
            template_version: None,
        })
    }

    /// A workspace owned by user 1, with user 2 as a member.
    fn workspace() -> Workspace {
        given([
            WorkspaceEvent::Created(WorkspaceCreated {
                name: "Acme".into(),
                slug: "acme".into(),
                owner_id: user(1),
            }),
            WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: user(2),
                role: Role::Member,
            }),
        ])
    }

    fn new_task(assignee: Option<UserId>) -> NewTask {
        NewTask {
            project_id: project_id(),
            title: "Ship it".into(),
            description: String::new(),
            priority: Priority::High,
            assignee,
            labels: vec!["backend".into()],
            due_date: None,
        }
    }

    fn created(number: i64) -> TaskEvent {
        TaskEvent::Created(TaskCreated {
            project_id: project_id(),
            number,
            key: task_key("WEB-APP", number),
            title: "Ship it".into(),
            description: String::new(),
            priority: Priority::High,
            assignee_id: None,
            labels: vec!["backend".into()],
            due_date: None,
        })
    }

    fn moved(from: TaskStatus, to: TaskStatus) -> TaskEvent {
        TaskEvent::StatusChanged(TaskStatusChanged {
            project_id: project_id(),
            from,
            to,
        })
    }

    /// A task brought to `status` through the workflow.
    fn task_in(status: TaskStatus) -> Task {
        let path: &[TaskStatus] = match status {
            Todo => &[],
            InProgress => &[InProgress],
            InReview => &[InProgress, InReview],
            Done => &[InProgress, InReview, Done],
            Cancelled => &[Cancelled],
        };
        let mut events = vec![created(1)];
        let mut from = Todo;
        for to in path {
            events.push(moved(from, *to));
            from = *to;
        }
        given(events)
    }

    #[test]
    fn a_new_task_takes_the_next_number_of_its_project_and_a_key() {
        let project: Project = given([
            project_created(),
            ProjectEvent::TaskAdded(TaskAdded {
                task_id: TaskId::generate(),
                number: 1,
            }),
        ]);
        let id = TaskId::generate();
        let (task_events, project_events) =
            create(&Task::default(), &project, &workspace(), id, new_task(None)).unwrap();
        assert_eq!(task_events, vec![created(2)]);
        assert_eq!(
            project_events,
            vec![ProjectEvent::TaskAdded(TaskAdded {
                task_id: id,
                number: 2
            })]
        );
    }

    #[test]
    fn a_task_cannot_be_created_in_a_missing_or_archived_project() {
        let id = TaskId::generate();
        assert_eq!(
            create(
                &Task::default(),
                &Project::default(),
                &workspace(),
                id,
                new_task(None)
            ),
            Err(TaskError::ProjectNotFound)
        );
        let archived: Project = given([
            project_created(),
            ProjectEvent::Archived(ProjectArchived {}),
        ]);
        assert_eq!(
            create(
                &Task::default(),
                &archived,
                &workspace(),
                id,
                new_task(None)
            ),
            Err(TaskError::ProjectArchived)
        );
    }

    #[test]
    fn the_assignee_of_a_new_task_must_be_a_member() {
        let project: Project = given([project_created()]);
        let id = TaskId::generate();
        assert!(
            create(
                &Task::default(),
                &project,
                &workspace(),
                id,
                new_task(Some(user(2)))
            )
            .is_ok()
        );
        assert_eq!(
            create(
                &Task::default(),
                &project,
                &workspace(),
                id,
                new_task(Some(user(9)))
            ),
            Err(TaskError::AssigneeNotMember)
        );
    }

    #[test]
    fn every_transition_of_the_workflow_is_allowed_and_every_other_refused() {
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let outcome = decide(
                    &task_in(from),
                    &Workspace::default(),
                    TaskCommand::Transition { to },
                );
                if from.can_become(to) {
                    assert_eq!(
                        outcome,
                        Ok((vec![moved(from, to)], vec![])),
                        "{from:?} → {to:?}"
                    );
                } else {
                    assert_eq!(
                        outcome,
                        Err(TaskError::InvalidTransition { from, to }),
                        "{from:?} → {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_edit_records_only_what_changes() {
        let task = task_in(Todo);
        let unchanged = TaskChanges {
            title: Some("Ship it".into()),
            labels: Some(vec!["backend".into()]),
            ..TaskChanges::default()
        };
        assert_eq!(
            decide(&task, &workspace(), TaskCommand::Edit(unchanged)),
            Ok((vec![], vec![]))
        );
        let due = NaiveDate::from_ymd_opt(2027, 1, 31);
        let changes = TaskChanges {
            title: Some("Ship it today".into()),
            due_date: Some(due),
            ..TaskChanges::default()
        };
        assert_eq!(
            decide(&task, &workspace(), TaskCommand::Edit(changes)),
            Ok((
                vec![TaskEvent::Updated(TaskUpdated {
                    title: Some("Ship it today".into()),
                    due_date: Some(due),
                    ..TaskUpdated::of(project_id())
                })],
                vec![]
            ))
        );
    }

    #[test]
    fn assigning_needs_a_member_and_null_unassigns() {
        let task = task_in(Todo);
        let assign = |who| {
            TaskCommand::Edit(TaskChanges {
                assignee: Some(Some(who)),
                ..TaskChanges::default()
            })
        };
        assert_eq!(
            decide(&task, &workspace(), assign(user(9))),
            Err(TaskError::AssigneeNotMember)
        );
        let (events, _) = decide(&task, &workspace(), assign(user(2))).unwrap();
        assert_eq!(
            events,
            vec![TaskEvent::Assigned(TaskAssigned {
                project_id: project_id(),
                assignee_id: user(2),
                previous: None
            })]
        );
        let assigned: Task = given([created(1), events[0].clone()]);
        let unassign = TaskCommand::Edit(TaskChanges {
            assignee: Some(None),
            ..TaskChanges::default()
        });
        assert_eq!(
            decide(&assigned, &workspace(), unassign).unwrap().0,
            vec![TaskEvent::Unassigned(TaskUnassigned {
                project_id: project_id(),
                previous: user(2)
            })]
        );
        // Assigning the current assignee again changes nothing.
        assert_eq!(
            decide(&assigned, &workspace(), assign(user(2))),
            Ok((vec![], vec![]))
        );
    }

    #[test]
    fn a_deleted_task_is_gone_for_every_command() {
        let deleted: Task = given([
            created(1),
            TaskEvent::Deleted(TaskDeleted {
                project_id: project_id(),
                status: Todo,
            }),
        ]);
        for command in [
            TaskCommand::Delete,
            TaskCommand::Transition { to: InProgress },
            TaskCommand::Edit(TaskChanges::default()),
        ] {
            assert_eq!(
                decide(&deleted, &workspace(), command),
                Err(TaskError::NotFound)
            );
        }
        assert_eq!(
            decide(&Task::default(), &workspace(), TaskCommand::Delete),
            Err(TaskError::NotFound)
        );
    }

    #[test]
    fn deleting_records_the_status_it_leaves() {
        assert_eq!(
            decide(&task_in(InReview), &workspace(), TaskCommand::Delete)
                .unwrap()
                .0,
            vec![TaskEvent::Deleted(TaskDeleted {
                project_id: project_id(),
                status: InReview
            })]
        );
    }

    #[test]
    fn the_policy_unassigns_only_open_tasks_of_members_who_are_gone() {
        let assigned = |status| {
            let mut task = task_in(status);
            task.assignee = Some(user(2));
            task
        };
        let departed: Workspace = given([
            WorkspaceEvent::Created(WorkspaceCreated {
                name: "Acme".into(),
                slug: "acme".into(),
                owner_id: user(1),
            }),
            WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: user(2),
                role: Role::Member,
            }),
            WorkspaceEvent::MemberRemoved(MemberRemoved {
                user_id: user(2),
                role: Role::Member,
            }),
        ]);
        let unassign = || TaskCommand::UnassignDeparted { user: user(2) };
        assert_eq!(
            decide(&assigned(InProgress), &departed, unassign())
                .unwrap()
                .0,
            vec![TaskEvent::Unassigned(TaskUnassigned {
                project_id: project_id(),
                previous: user(2)
            })]
        );
        // Finished work keeps its assignee; a returning member keeps theirs.
        assert_eq!(
            decide(&assigned(Done), &departed, unassign()),
            Ok((vec![], vec![]))
        );
        assert_eq!(
            decide(&assigned(Todo), &workspace(), unassign()),
            Ok((vec![], vec![]))
        );
        // Someone else's task is left alone.
        assert_eq!(
            decide(&task_in(Todo), &departed, unassign()),
            Ok((vec![], vec![]))
        );
    }
}
