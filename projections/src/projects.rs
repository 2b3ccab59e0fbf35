//! The projects read model (`projects_view`) and its list totals
//! (`project_counts`), kept asynchronously from `project.*` events, with
//! live task counts per project from `task.*` events.
//!
//! A batch is applied in memory: the rows it touches are loaded at once,
//! events are applied in log order with a per-stream version check (an
//! event at or below the row's version was applied already; one that skips
//! a version is refused rather than applied out of order), and dirty rows
//! are written back with one statement on Postgres.

use std::collections::{HashMap, HashSet};

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
use tenet_events::with_tx;
use utoipa::ToSchema;

use crate::feed::{self, Recorder};

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

/// One row of `projects_view`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ProjectRow {
    pub tenant_id: TenantId,
    pub id: ProjectId,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub key: String,
    pub status: String,
    pub search: String,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// The stream version applied (the stream also records task numbers).
    pub version: i64,
    /// What clients see as the version: changes to the project itself.
    pub revision: i64,
    pub open_tasks: i64,
    pub done_tasks: i64,
}

pub const COLUMNS: &str = "tenant_id, id, name, slug, description, key, status, search, \
    created_by, created_at, updated_at, archived_at, version, revision, open_tasks, done_tasks";

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

type Key = (TenantId, ProjectId);

#[async_trait]
impl Projector for ProjectsProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("project.")
            || matches!(
                event_type,
                "task.created" | "task.status_changed" | "task.deleted"
            )
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut changes = Vec::new();
        for event in events.iter().filter(|e| self.handles(&e.event_type)) {
            changes.push(Change::of(event)?);
        }
        if changes.is_empty() {
            return Ok(());
        }
        // A project whose first event here is its creation has no row yet:
        // only the others are loaded.
        let mut seen: HashSet<Key> = HashSet::new();
        let mut existing: HashSet<Key> = HashSet::new();
        for change in &changes {
            let creates = matches!(change.what, What::Project(ProjectEvent::Created(_)));
            if seen.insert(change.key) && !creates {
                existing.insert(change.key);
            }
        }
        let mut rows = if existing.is_empty() {
            HashMap::new()
        } else {
            load(tx, generation, &existing).await?
        };
        let mut counts: HashMap<(TenantId, ProjectStatus), i64> = HashMap::new();
        let mut dirty: HashSet<Key> = HashSet::new();
        let mut recorded = Recorder::for_batch(tx, NAME, generation).await?;
        for change in changes {
            let event = change.event;
            match change.what {
                What::Project(decoded) => {
                    let current = rows.get(&change.key).map_or(0, |row| row.version);
                    if event.stream_version <= current {
                        continue;
                    }
                    if event.stream_version != current + 1 {
                        return Err(ProjectionError::event(
                            event,
                            format!(
                                "stream version {} follows {current}: an event is missing",
                                event.stream_version
                            ),
                        ));
                    }
                    // A task number handed out changes nothing a client sees.
                    let visible = !matches!(decoded, ProjectEvent::TaskAdded(_));
                    apply(&mut rows, &mut counts, change.key, event, decoded)?;
                    if visible && let Some(row) = rows.get(&change.key) {
                        record(&mut recorded, event, row)?;
                    }
                }
                What::Tasks { open, done } => {
                    let row = rows
                        .get_mut(&change.key)
                        .ok_or_else(|| ProjectionError::event(event, "its project has no row"))?;
                    row.open_tasks += open;
                    row.done_tasks += done;
                    if open != 0 || done != 0 {
                        record(&mut recorded, event, row)?;
                    }
                }
            }
            dirty.insert(change.key);
        }
        let dirty: Vec<&ProjectRow> = dirty.iter().filter_map(|key| rows.get(key)).collect();
        save(tx, generation, &dirty).await?;
        save_counts(tx, generation, &counts).await?;
        recorded.save(tx, NAME).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        with_tx!(tx, conn => {
            for table in ["projects_view", "project_counts"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE generation = $1")))
                    .bind(generation)
                    .execute(&mut *conn)
                    .await?;
            }
        });
        Ok(())
    }
}

/// A project folded from its events and its tasks' (in log order) by the
/// projector's own rules, for time travel.
#[derive(Default)]
pub struct ProjectFold {
    rows: HashMap<Key, ProjectRow>,
    counts: HashMap<(TenantId, ProjectStatus), i64>,
}

impl ProjectFold {
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if !ProjectsProjector.handles(&event.event_type) {
            return Ok(());
        }
        let change = Change::of(event)?;
        match change.what {
            What::Project(decoded) => {
                apply(&mut self.rows, &mut self.counts, change.key, event, decoded)
            }
            What::Tasks { open, done } => {
                if let Some(row) = self.rows.get_mut(&change.key) {
                    row.open_tasks += open;
                    row.done_tasks += done;
                }
                Ok(())
            }
        }
    }

    pub fn row(&self, tenant: TenantId, project: ProjectId) -> Option<&ProjectRow> {
        self.rows.get(&(tenant, project))
    }
}

/// One event of a batch, as it changes a project row.
struct Change<'a> {
    event: &'a RecordedEvent,
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

impl<'a> Change<'a> {
    fn of(event: &'a RecordedEvent) -> Result<Change<'a>, ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        if event.aggregate() == "project" {
            return Ok(Change {
                event,
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
            event,
            key: (event.tenant_id, project),
            what: What::Tasks { open, done },
        })
    }
}

/// Records a project as it is after `event`, for the feed.
fn record(
    recorded: &mut Recorder,
    event: &RecordedEvent,
    row: &ProjectRow,
) -> Result<(), ProjectionError> {
    recorded.update(
        event,
        feed::Resource::Project(row.id),
        Some(row.id),
        None,
        &row.to_view(),
    )
}

fn apply(
    rows: &mut HashMap<Key, ProjectRow>,
    counts: &mut HashMap<(TenantId, ProjectStatus), i64>,
    key: Key,
    event: &RecordedEvent,
    decoded: ProjectEvent,
) -> Result<(), ProjectionError> {
    let at = event.occurred_at;
    if let ProjectEvent::Created(created) = decoded {
        *counts.entry((key.0, ProjectStatus::Active)).or_default() += 1;
        rows.insert(
            key,
            ProjectRow {
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
            },
        );
        return Ok(());
    }
    let Some(row) = rows.get_mut(&key) else {
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
            *counts.entry((key.0, ProjectStatus::Active)).or_default() -= 1;
            *counts.entry((key.0, ProjectStatus::Archived)).or_default() += 1;
        }
        ProjectEvent::Restored(_) => {
            row.status = ProjectStatus::Active.as_str().to_owned();
            row.archived_at = None;
            *counts.entry((key.0, ProjectStatus::Archived)).or_default() -= 1;
            *counts.entry((key.0, ProjectStatus::Active)).or_default() += 1;
        }
    }
    row.updated_at = at;
    row.version = event.stream_version;
    row.revision += 1;
    Ok(())
}

async fn load(
    tx: &mut Tx<'_>,
    generation: i32,
    keys: &HashSet<Key>,
) -> Result<HashMap<Key, ProjectRow>, ProjectionError> {
    let keys = keys.iter().map(|(tenant, id)| (*tenant, id.as_uuid()));
    let rows: Vec<ProjectRow> =
        crate::rows::load(tx, "projects_view", COLUMNS, generation, keys).await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.tenant_id, row.id), row))
        .collect())
}

/// Never moves a row back to an older version (task counts change at the
/// same version).
const UPSERT_SET: &str = "name = EXCLUDED.name, slug = EXCLUDED.slug, description = EXCLUDED.description, \
    status = EXCLUDED.status, search = EXCLUDED.search, updated_at = EXCLUDED.updated_at, \
    archived_at = EXCLUDED.archived_at, version = EXCLUDED.version, revision = EXCLUDED.revision, \
    open_tasks = EXCLUDED.open_tasks, done_tasks = EXCLUDED.done_tasks \
    WHERE projects_view.version <= EXCLUDED.version";

async fn save(
    tx: &mut Tx<'_>,
    generation: i32,
    rows: &[&ProjectRow],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Postgres(tx) => {
            let column =
                |f: fn(&ProjectRow) -> String| rows.iter().map(|r| f(r)).collect::<Vec<String>>();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO projects_view (generation, {COLUMNS}) \
                 SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
                   $7::text[], $8::text[], $9::text[], $10::uuid[], $11::timestamptz[], \
                   $12::timestamptz[], $13::timestamptz[], $14::int8[], $15::int8[], $16::int8[], \
                   $17::int8[]) \
                 ON CONFLICT (generation, tenant_id, id) DO UPDATE SET {UPSERT_SET}"
            )))
            .bind(generation)
            .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(column(|r| r.name.clone()))
            .bind(column(|r| r.slug.clone()))
            .bind(column(|r| r.description.clone()))
            .bind(column(|r| r.key.clone()))
            .bind(column(|r| r.status.clone()))
            .bind(column(|r| r.search.clone()))
            .bind(rows.iter().map(|r| r.created_by).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.archived_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.revision).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.open_tasks).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.done_tasks).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Tx::Sqlite(tx) => {
            for row in rows {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO projects_view (generation, {COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                     ON CONFLICT (generation, tenant_id, id) DO UPDATE SET {UPSERT_SET}"
                )))
                .bind(generation)
                .bind(row.tenant_id)
                .bind(row.id)
                .bind(&row.name)
                .bind(&row.slug)
                .bind(&row.description)
                .bind(&row.key)
                .bind(&row.status)
                .bind(&row.search)
                .bind(row.created_by)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.archived_at)
                .bind(row.version)
                .bind(row.revision)
                .bind(row.open_tasks)
                .bind(row.done_tasks)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

async fn save_counts(
    tx: &mut Tx<'_>,
    generation: i32,
    counts: &HashMap<(TenantId, ProjectStatus), i64>,
) -> Result<(), ProjectionError> {
    let changed: Vec<(TenantId, &str, i64)> = counts
        .iter()
        .filter(|(_, delta)| **delta != 0)
        .map(|((tenant, status), delta)| (*tenant, status.as_str(), *delta))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    const UPSERT: &str = "ON CONFLICT (generation, tenant_id, status) \
        DO UPDATE SET count = project_counts.count + EXCLUDED.count";
    match tx {
        Tx::Postgres(tx) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO project_counts (generation, tenant_id, status, count) \
                 SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::int8[]) {UPSERT}"
            )))
            .bind(generation)
            .bind(changed.iter().map(|c| c.0).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.1).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.2).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
            // An emptied bucket goes, however the log was batched.
            sqlx::query(
                "DELETE FROM project_counts c USING unnest($2::uuid[], $3::text[]) AS k(tenant_id, status) \
                 WHERE c.generation = $1 AND c.tenant_id = k.tenant_id AND c.status = k.status AND c.count = 0",
            )
            .bind(generation)
            .bind(changed.iter().map(|c| c.0).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.1).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Tx::Sqlite(tx) => {
            for (tenant, status, delta) in changed {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO project_counts (generation, tenant_id, status, count) \
                     VALUES ($1, $2, $3, $4) {UPSERT}"
                )))
                .bind(generation)
                .bind(tenant)
                .bind(status)
                .bind(delta)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM project_counts WHERE generation = $1 AND tenant_id = $2 \
                     AND status = $3 AND count = 0",
                )
                .bind(generation)
                .bind(tenant)
                .bind(status)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}
