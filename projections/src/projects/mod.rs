//! The projects projector: the projects read model (`projects_view`,
//! [`view`]) and its list totals (`project_counts`, [`counts`]), kept
//! asynchronously from `project.*` events, with live task counts per
//! project from `task.*` events.
//!
//! A batch has the shape of every projector's (`crate::batch`): the rows
//! it touches are loaded at once, events are applied in memory in log
//! order with a per-stream version check (an event at or below the row's
//! version was applied already; one that skips a version is refused rather
//! than applied out of order), and changed rows are written back at the end.

pub mod counts;
pub mod view;

use std::collections::HashSet;

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::project::ProjectEvent;
use tenet_events::catalogue::task::{TaskEvent, TaskStatus};
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ProjectId, TenantId, UserId};
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Counts, Fold, Rows, follows};
use crate::feed::{self, Recorder};
use crate::table::{self, Table};

pub use counts::ProjectCountRow;
pub use view::{
    ProjectOrder, ProjectRow, ProjectStatus, ProjectView, exists, get, list, search_text,
    task_totals, workspace_of,
};

pub const NAME: &str = "projects";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'projects')";

pub struct ProjectsProjector;

type Key = <ProjectRow as Table>::Key;

/// What one batch works on.
#[derive(Default)]
struct Working {
    rows: Rows<ProjectRow>,
    counts: Counts<ProjectCountRow>,
}

/// A project whose first event in the batch is its creation has no row
/// yet: only the others are loaded.
#[derive(Default)]
struct Keys {
    seen: HashSet<Key>,
    existing: HashSet<Key>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = true;

    type Change = Change;
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("project.")
            || matches!(
                event_type,
                "task.created" | "task.status_changed" | "task.deleted"
            )
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        Change::of(event)
    }

    fn keys(keys: &mut Keys, _event: &RecordedEvent, change: &Change) {
        let creates = matches!(change.what, What::Project(ProjectEvent::Created(_)));
        if keys.seen.insert(change.key) && !creates {
            keys.existing.insert(change.key);
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            rows: Rows::load(tx, generation, keys.existing).await?,
            counts: Counts::default(),
        })
    }

    fn apply(
        &mut self,
        feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        match change.what {
            What::Project(decoded) => {
                let current = self.rows.get(&change.key).map_or(0, |row| row.version);
                if !follows(current, event)? {
                    return Ok(());
                }
                // A task number handed out changes nothing a client sees.
                let visible = !matches!(decoded, ProjectEvent::TaskAdded(_));
                apply(self, change.key, event, decoded)?;
                if visible && let Some(row) = self.rows.get(&change.key) {
                    record(feed, event, row)?;
                }
            }
            What::Tasks { open, done } => {
                let row = self
                    .rows
                    .get_mut(&change.key)
                    .ok_or_else(|| ProjectionError::event(event, "its project has no row"))?;
                row.open_tasks += open;
                row.done_tasks += done;
                if open != 0 || done != 0 {
                    record(feed, event, row)?;
                }
            }
        }
        self.rows.changed(change.key);
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.rows.save(tx, generation).await?;
        self.counts.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for ProjectsProjector {
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
        table::clear::<ProjectRow>(tx, generation).await?;
        table::clear::<ProjectCountRow>(tx, generation).await?;
        Ok(())
    }
}

/// A project folded from its events and its tasks' (in log order) by the
/// projector's own rules, for time travel.
#[derive(Default)]
pub struct ProjectFold(Fold<Working>);

impl ProjectFold {
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.0.apply(event)
    }

    pub fn row(&self, tenant: TenantId, project: ProjectId) -> Option<&ProjectRow> {
        self.0.batch.rows.get(&(tenant, project))
    }
}

/// One event of a batch, as it changes a project row.
struct Change {
    key: Key,
    what: What,
}

enum What {
    Project(ProjectEvent),
    /// A task event: how the project's task counts move.
    Tasks {
        open: i64,
        done: i64,
    },
}

impl Change {
    fn of(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        if event.aggregate() == "project" {
            return Ok(Change {
                key: (
                    event.tenant_id,
                    ProjectId::from_uuid(event.stream_id.as_uuid()),
                ),
                what: What::Project(ProjectEvent::from_recorded(event).map_err(fail)?),
            });
        }
        let bucket = |status: TaskStatus| match status {
            status if status.is_open() => (1, 0),
            TaskStatus::Done => (0, 1),
            _ => (0, 0),
        };
        let (project, (open, done)) = match TaskEvent::from_recorded(event).map_err(fail)? {
            TaskEvent::Created(created) => (created.project_id, bucket(TaskStatus::Todo)),
            TaskEvent::StatusChanged(changed) => {
                let (from, to) = (bucket(changed.from), bucket(changed.to));
                (changed.project_id, (to.0 - from.0, to.1 - from.1))
            }
            TaskEvent::Deleted(deleted) => {
                let (open, done) = bucket(deleted.status);
                (deleted.project_id, (-open, -done))
            }
            _ => {
                return Err(ProjectionError::event(
                    event,
                    "not an event that moves task counts",
                ));
            }
        };
        Ok(Change {
            key: (event.tenant_id, project),
            what: What::Tasks { open, done },
        })
    }
}

/// Records a project as it is after `event`, for the feed.
fn record(
    feed: &mut Recorder,
    event: &RecordedEvent,
    row: &ProjectRow,
) -> Result<(), ProjectionError> {
    feed.update(
        event,
        feed::Resource::Project(row.id),
        Some(row.id),
        None,
        &row.to_view(),
    )
}

/// Applies a project event to its row (and the counts' buckets).
fn apply(
    batch: &mut Working,
    key: Key,
    event: &RecordedEvent,
    decoded: ProjectEvent,
) -> Result<(), ProjectionError> {
    let at = event.occurred_at;
    if let ProjectEvent::Created(created) = decoded {
        batch.counts.add(bucket(key, ProjectStatus::Active), 1);
        batch.rows.insert(ProjectRow {
            tenant_id: key.0,
            id: key.1,
            search: search_text(&created.name, &created.slug, &created.description),
            name: created.name,
            slug: created.slug,
            description: created.description,
            key: created.key,
            template_id: created.template_id,
            template_version: created.template_version,
            status: ProjectStatus::Active.as_str().to_owned(),
            created_by: event.metadata.actor.user_id().map(UserId::from_uuid),
            created_at: at,
            updated_at: at,
            archived_at: None,
            version: event.stream_version,
            revision: 1,
            open_tasks: 0,
            done_tasks: 0,
        });
        return Ok(());
    }
    let Some(row) = batch.rows.get_mut(&key) else {
        return Err(ProjectionError::event(
            event,
            "no project.created before it",
        ));
    };
    if let ProjectEvent::TaskAdded(_) = decoded {
        // A task number handed out: the project itself is unchanged.
        row.version = event.stream_version;
        return Ok(());
    }
    match decoded {
        ProjectEvent::Created(_) | ProjectEvent::TaskAdded(_) => {}
        ProjectEvent::Updated(updated) => {
            if let Some(name) = updated.name {
                row.name = name;
            }
            if let Some(slug) = updated.slug {
                row.slug = slug;
            }
            if let Some(description) = updated.description {
                row.description = description;
            }
            row.search = search_text(&row.name, &row.slug, &row.description);
        }
        ProjectEvent::Archived(_) => {
            row.status = ProjectStatus::Archived.as_str().to_owned();
            row.archived_at = Some(at);
            batch.counts.add(bucket(key, ProjectStatus::Active), -1);
            batch.counts.add(bucket(key, ProjectStatus::Archived), 1);
        }
        ProjectEvent::Restored(_) => {
            row.status = ProjectStatus::Active.as_str().to_owned();
            row.archived_at = None;
            batch.counts.add(bucket(key, ProjectStatus::Archived), -1);
            batch.counts.add(bucket(key, ProjectStatus::Active), 1);
        }
    }
    row.updated_at = at;
    row.version = event.stream_version;
    row.revision += 1;
    Ok(())
}

/// The `project_counts` bucket of a tenant's projects in `status`.
fn bucket(key: Key, status: ProjectStatus) -> (TenantId, String) {
    (key.0, status.as_str().to_owned())
}
