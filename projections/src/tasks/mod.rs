//! The tasks projector: the tasks read model (`tasks_view`, [`view`]), its
//! list totals (`task_counts`, [`counts`]) and the comments read model
//! (`comments_view`, [`comments`]), kept asynchronously from `task.*` and
//! `comment.*` events.
//!
//! One projector owns all three because they move together: a comment
//! changes its task's `comment_count`, a deleted task takes its comments
//! with it, and a task's status, priority or assignee moves it between the
//! buckets of `task_counts`. A batch has the shape of every projector's
//! (`crate::batch`): the rows it touches are loaded at once, events are
//! applied in memory in log order with a per-stream version check, and the
//! rows are written back at the end.

pub mod comments;
pub mod counts;
pub mod view;

use std::collections::HashSet;

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::comment::CommentEvent;
use tenet_events::catalogue::task::TaskEvent;
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{CommentId, TaskId, TenantId};
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Counts, Fold, Rows};
use crate::feed::Recorder;
use crate::table::{self, Table};

pub use comments::{CommentRow, CommentView};
pub use counts::{TaskCountRow, UNASSIGNED};
pub use view::{
    TaskFilter, TaskOrder, TaskRow, TaskView, comment_count, get, list, open_tasks_of, search_text,
    workspace_of,
};

pub const NAME: &str = "tasks";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'tasks')";

pub struct TasksProjector;

type TaskKey = <TaskRow as Table>::Key;
type CommentKey = <CommentRow as Table>::Key;

/// What one batch works on.
#[derive(Default)]
struct Working {
    tasks: Rows<TaskRow>,
    comments: Rows<CommentRow>,
    counts: Counts<TaskCountRow>,
}

enum Change {
    Task(TaskEvent),
    Comment(CommentEvent),
}

/// The rows a batch loads: every task and comment touched, except those
/// whose first event in the batch creates them.
#[derive(Default)]
struct Keys {
    tasks: HashSet<TaskKey>,
    comments: HashSet<CommentKey>,
    created_tasks: HashSet<TaskKey>,
    created_comments: HashSet<CommentKey>,
}

fn task_key(event: &RecordedEvent) -> TaskKey {
    (
        event.tenant_id,
        TaskId::from_uuid(event.stream_id.as_uuid()),
    )
}

fn comment_key(event: &RecordedEvent) -> CommentKey {
    (
        event.tenant_id,
        CommentId::from_uuid(event.stream_id.as_uuid()),
    )
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = true;

    type Change = Change;
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("task.") || event_type.starts_with("comment.")
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        Ok(if event.aggregate() == "task" {
            Change::Task(TaskEvent::from_recorded(event).map_err(fail)?)
        } else {
            Change::Comment(CommentEvent::from_recorded(event).map_err(fail)?)
        })
    }

    fn keys(keys: &mut Keys, event: &RecordedEvent, change: &Change) {
        match change {
            Change::Task(task) => {
                let key = task_key(event);
                if matches!(task, TaskEvent::Created(_)) {
                    keys.created_tasks.insert(key);
                } else if !keys.created_tasks.contains(&key) {
                    keys.tasks.insert(key);
                }
            }
            Change::Comment(comment) => {
                let key = comment_key(event);
                let task = (event.tenant_id, comments::task_of(comment));
                if !keys.created_tasks.contains(&task) {
                    keys.tasks.insert(task);
                }
                if matches!(comment, CommentEvent::Added(_)) {
                    keys.created_comments.insert(key);
                } else if !keys.created_comments.contains(&key) {
                    keys.comments.insert(key);
                }
            }
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            tasks: Rows::load(tx, generation, keys.tasks).await?,
            comments: Rows::load(tx, generation, keys.comments).await?,
            counts: Counts::default(),
        })
    }

    fn apply(
        &mut self,
        feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        match change {
            Change::Task(task) => view::apply(self, feed, event, task),
            Change::Comment(comment) => comments::apply(self, feed, event, comment),
        }
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.tasks.save(tx, generation).await?;
        self.comments.save(tx, generation).await?;
        // A deleted task takes its comments with it.
        let deleted: Vec<TaskKey> = self.tasks.removed().copied().collect();
        table::delete_matching::<CommentRow, TaskKey>(
            tx,
            generation,
            &["tenant_id", "task_id"],
            &deleted,
            None,
        )
        .await?;
        self.counts.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for TasksProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<TaskRow>(tx, generation).await?;
        table::clear::<TaskCountRow>(tx, generation).await?;
        table::clear::<CommentRow>(tx, generation).await?;
        Ok(())
    }
}

/// A task folded from its events (its own and its comments', in log
/// order) by the projector's own rules: what the read model held after
/// each of them. Time travel and history use it, so a past version has
/// exactly the shape and values the read model had then.
#[derive(Default)]
pub struct TaskFold(Fold<Working>);

impl TaskFold {
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.0.apply(event)
    }

    /// The task's row now (none before its creation or after its deletion).
    pub fn row(&self, tenant: TenantId, task: TaskId) -> Option<&TaskRow> {
        self.0.batch.tasks.get(&(tenant, task))
    }
}
