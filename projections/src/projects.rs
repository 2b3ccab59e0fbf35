//! The projects read model (`projects_view`) and its list totals
//! (`project_counts`), kept asynchronously from `project.*` events, with
//! live task counts per project from `task.*` events.
//!
//! A batch has the shape of every projector's ([`crate::batch`]): the rows
//! it touches are loaded at once, events are applied in memory in log
//! order with a per-stream version check (an event at or below the row's
//! version was applied already; one that skips a version is refused rather
//! than applied out of order), and changed rows are written back at the end.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::project::ProjectEvent;
use tenet_events::catalogue::task::{TaskEvent, TaskStatus};
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ProjectId, TenantId, UserId, WorkspaceId};
use tenet_events::projection::{ProjectionError, Projector};
use utoipa::ToSchema;

use crate::batch::{self, Counter, Counts, Emptied, Fold, Rows, follows};
use crate::feed::{self, Recorder};
use crate::table::{self, Table, table};

pub const NAME: &str = "projects";

/// The generation queries read, as a subquery.
pub const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'projects')";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    Archived,
}

impl ProjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Active => "active",
            ProjectStatus::Archived => "archived",
        }
    }

    pub fn parse(value: &str) -> Option<ProjectStatus> {
        match value {
            "active" => Some(ProjectStatus::Active),
            "archived" => Some(ProjectStatus::Archived),
            _ => None,
        }
    }
}

/// A project, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Project)]
pub struct ProjectView {
    pub id: ProjectId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// Unique within the workspace.
    pub slug: String,
    pub description: String,
    /// The prefix of its tasks' keys (`WEB` in `WEB-42`), fixed at creation.
    pub key: String,
    pub status: ProjectStatus,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Tasks to do, in progress or in review.
    pub open_tasks: i64,
    /// Tasks done (cancelled ones count in neither).
    pub done_tasks: i64,
    /// The project's revision: changes to the project itself, not to its
    /// tasks. Also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `projects_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ProjectRow in projects_view {
        key {
            tenant_id: TenantId,
            id: ProjectId,
        }
        fixed {
            /// The prefix of its tasks' keys.
            key: String,
            created_by: Option<UserId>,
            created_at: DateTime<Utc>,
        }
        set {
            name: String,
            slug: String,
            description: String,
            status: String,
            /// What free-text search matches ([`search_text`]).
            search: String,
            updated_at: DateTime<Utc>,
            archived_at: Option<DateTime<Utc>>,
            /// The stream version applied (the stream also records task numbers).
            version: i64,
            /// What clients see as the version: changes to the project itself.
            revision: i64,
            open_tasks: i64,
            done_tasks: i64,
        }
        // Never moves a row back to an older version (task counts change at
        // the same version).
        guard "projects_view.version <= EXCLUDED.version";
    }
}

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

impl ProjectRow {
    pub fn to_view(&self) -> ProjectView {
        ProjectView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            name: self.name.clone(),
            slug: self.slug.clone(),
            description: self.description.clone(),
            key: self.key.clone(),
            status: ProjectStatus::parse(&self.status).unwrap_or(ProjectStatus::Active),
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
            open_tasks: self.open_tasks,
            done_tasks: self.done_tasks,
            version: self.revision,
        }
    }
}

/// What free-text search matches: name, slug and description, lower-cased
/// here (Unicode-aware, unlike SQLite's `lower`).
pub fn search_text(name: &str, slug: &str, description: &str) -> String {
    format!("{name}\n{slug}\n{description}").to_lowercase()
}

/// A project's open and done task counts as the read model knows them
/// ((0, 0) if unknown).
pub async fn task_counts(
    db: &tenet_events::db::Db,
    tenant: TenantId,
    project: ProjectId,
) -> Result<(i64, i64), sqlx::Error> {
    let counts: Option<(i64, i64)> = tenet_events::with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT open_tasks, done_tasks FROM projects_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(project)
        .fetch_optional(pool)
        .await?
    });
    Ok(counts.unwrap_or((0, 0)))
}

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
