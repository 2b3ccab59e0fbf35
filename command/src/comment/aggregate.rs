//! The comment aggregate: a remark on a task. Only its author, or an
//! admin or owner of the workspace, edits or deletes it; the role is read
//! from the workspace version the decision sees, never from what the
//! request saw earlier.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::comment::{CommentAdded, CommentDeleted, CommentEdited, CommentEvent};
use tenet_events::catalogue::workspace::Role;
use tenet_events::ids::{TaskId, UserId};

use crate::repository::{Aggregate, Applied};
use crate::task::aggregate::Task;
use crate::workspace::aggregate::Workspace;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comment {
    pub created: bool,
    pub deleted: bool,
    pub task_id: Option<TaskId>,
    pub author: Option<UserId>,
    pub body: String,
    pub created_at: Option<DateTime<Utc>>,
    pub edited_at: Option<DateTime<Utc>>,
}

impl Comment {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }

    /// Whether it is a live comment of `task`.
    pub fn belongs_to(&self, task: TaskId) -> bool {
        self.exists() && self.task_id == Some(task)
    }
}

impl Aggregate for Comment {
    const KIND: &'static str = "comment";
    type Event = CommentEvent;

    fn evolve(&mut self, event: &CommentEvent, applied: &Applied) {
        match event {
            CommentEvent::Added(added) => {
                self.created = true;
                self.task_id = Some(added.task_id);
                self.author = Some(added.author_id);
                self.body = added.body.clone();
                self.created_at = Some(applied.occurred_at);
            }
            CommentEvent::Edited(edited) => {
                self.body = edited.body.clone();
                self.edited_at = Some(applied.occurred_at);
            }
            CommentEvent::Deleted(_) => self.deleted = true,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommentError {
    #[error("the comment already exists")]
    AlreadyExists,
    #[error("no such task")]
    TaskNotFound,
    #[error("no such comment")]
    NotFound,
    #[error("only its author or a workspace admin or owner may change a comment")]
    NotAuthor,
}

/// Adds a comment to `task`, which must exist at the version read.
pub fn add(
    comment: &Comment,
    task: &Task,
    task_id: TaskId,
    author: UserId,
    body: String,
) -> Result<Vec<CommentEvent>, CommentError> {
    if comment.created {
        return Err(CommentError::AlreadyExists);
    }
    if !task.exists() {
        return Err(CommentError::TaskNotFound);
    }
    Ok(vec![CommentEvent::Added(CommentAdded {
        task_id,
        author_id: author,
        body,
    })])
}

pub enum CommentCommand {
    Edit { body: String },
    Delete,
}

/// Edits or deletes a comment of `task` on behalf of `by`. `workspace` is
/// consulted only when `by` is not the author: then `by` must be an admin
/// or owner in it.
pub fn decide(
    comment: &Comment,
    workspace: &Workspace,
    task: TaskId,
    by: UserId,
    command: CommentCommand,
) -> Result<Vec<CommentEvent>, CommentError> {
    if !comment.belongs_to(task) {
        return Err(CommentError::NotFound);
    }
    if comment.author != Some(by) && !moderates(workspace, by) {
        return Err(CommentError::NotAuthor);
    }
    match command {
        CommentCommand::Edit { body } if body == comment.body => Ok(Vec::new()),
        CommentCommand::Edit { body } => Ok(vec![CommentEvent::Edited(CommentEdited {
            task_id: task,
            body,
        })]),
        CommentCommand::Delete => Ok(vec![CommentEvent::Deleted(CommentDeleted {
            task_id: task,
        })]),
    }
}

fn moderates(workspace: &Workspace, user: UserId) -> bool {
    workspace.exists()
        && matches!(
            workspace.members.get(&user),
            Some(Role::Owner | Role::Admin)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use tenet_events::catalogue::task::{
        Priority, TaskCreated, TaskDeleted, TaskEvent, TaskStatus,
    };
    use tenet_events::catalogue::workspace::{MemberAdded, WorkspaceCreated, WorkspaceEvent};
    use tenet_events::ids::ProjectId;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn task_id() -> TaskId {
        TaskId::from_uuid(uuid::Uuid::from_u128(40))
    }

    fn task_created() -> TaskEvent {
        TaskEvent::Created(TaskCreated {
            project_id: ProjectId::from_uuid(uuid::Uuid::from_u128(7)),
            number: 1,
            key: "WEB-1".into(),
            title: "Ship it".into(),
            description: String::new(),
            priority: Priority::Medium,
            assignee_id: None,
            labels: vec![],
            due_date: None,
        })
    }

    /// Owner 1, admin 2, member 3, viewer 4.
    fn workspace() -> Workspace {
        let mut events = vec![WorkspaceEvent::Created(WorkspaceCreated {
            name: "Acme".into(),
            slug: "acme".into(),
            owner_id: user(1),
        })];
        for (n, role) in [(2, Role::Admin), (3, Role::Member), (4, Role::Viewer)] {
            events.push(WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: user(n),
                role,
            }));
        }
        given(events)
    }

    /// A comment by member 3 on the task.
    fn comment() -> Comment {
        given([CommentEvent::Added(CommentAdded {
            task_id: task_id(),
            author_id: user(3),
            body: "Looks good".into(),
        })])
    }

    #[test]
    fn a_comment_is_added_to_a_task_that_exists() {
        let task: Task = given([task_created()]);
        assert_eq!(
            add(&Comment::default(), &task, task_id(), user(3), "Hi".into()),
            Ok(vec![CommentEvent::Added(CommentAdded {
                task_id: task_id(),
                author_id: user(3),
                body: "Hi".into()
            })])
        );
        let deleted: Task = given([
            task_created(),
            TaskEvent::Deleted(TaskDeleted {
                project_id: ProjectId::from_uuid(uuid::Uuid::from_u128(7)),
                status: TaskStatus::Todo,
            }),
        ]);
        for task in [Task::default(), deleted] {
            assert_eq!(
                add(&Comment::default(), &task, task_id(), user(3), "Hi".into()),
                Err(CommentError::TaskNotFound)
            );
        }
    }

    #[test]
    fn the_author_and_admins_and_owners_may_edit_and_delete_others_may_not() {
        let edit = || CommentCommand::Edit {
            body: "Changed".into(),
        };
        let edited = vec![CommentEvent::Edited(CommentEdited {
            task_id: task_id(),
            body: "Changed".into(),
        })];
        let deleted = vec![CommentEvent::Deleted(CommentDeleted { task_id: task_id() })];
        for (who, allowed) in [(1, true), (2, true), (3, true), (4, false), (9, false)] {
            let edit_outcome = decide(&comment(), &workspace(), task_id(), user(who), edit());
            let delete_outcome = decide(
                &comment(),
                &workspace(),
                task_id(),
                user(who),
                CommentCommand::Delete,
            );
            if allowed {
                assert_eq!(edit_outcome, Ok(edited.clone()), "user {who}");
                assert_eq!(delete_outcome, Ok(deleted.clone()), "user {who}");
            } else {
                assert_eq!(edit_outcome, Err(CommentError::NotAuthor), "user {who}");
                assert_eq!(delete_outcome, Err(CommentError::NotAuthor), "user {who}");
            }
        }
    }

    #[test]
    fn an_edit_to_the_same_body_records_nothing() {
        let same = CommentCommand::Edit {
            body: "Looks good".into(),
        };
        assert_eq!(
            decide(&comment(), &workspace(), task_id(), user(3), same),
            Ok(vec![])
        );
    }

    #[test]
    fn a_comment_is_found_only_under_its_own_task_and_only_until_deleted() {
        let other_task = TaskId::from_uuid(uuid::Uuid::from_u128(41));
        assert_eq!(
            decide(
                &comment(),
                &workspace(),
                other_task,
                user(3),
                CommentCommand::Delete
            ),
            Err(CommentError::NotFound)
        );
        let gone: Comment = given([
            CommentEvent::Added(CommentAdded {
                task_id: task_id(),
                author_id: user(3),
                body: "x".into(),
            }),
            CommentEvent::Deleted(CommentDeleted { task_id: task_id() }),
        ]);
        assert_eq!(
            decide(
                &gone,
                &workspace(),
                task_id(),
                user(3),
                CommentCommand::Delete
            ),
            Err(CommentError::NotFound)
        );
    }

    #[test]
    fn an_edit_stamps_edited_at() {
        let edited: Comment = given([
            CommentEvent::Added(CommentAdded {
                task_id: task_id(),
                author_id: user(3),
                body: "x".into(),
            }),
            CommentEvent::Edited(CommentEdited {
                task_id: task_id(),
                body: "y".into(),
            }),
        ]);
        assert!(edited.edited_at.is_some());
        assert!(edited.edited_at > edited.created_at);
        assert_eq!(edited.body, "y");
    }
}
