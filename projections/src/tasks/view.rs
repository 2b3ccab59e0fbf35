//! The tasks read model (`tasks_view`): a task as the API shows it, how
//! task events change it, and how queries read it (single tasks, filtered
//! and sorted pages).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::types::Json;
use tenet_events::catalogue::task::{Priority, TaskCreated, TaskEvent, TaskStatus};
use tenet_events::db::{Backend, Db};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ProjectId, TaskId, TenantId, UserId, WorkspaceId};
use tenet_events::projection::ProjectionError;
use tenet_events::with_pool;
use tenet_http::pagination::Page;
use tenet_http::{PageRequest, Sort};
use utoipa::ToSchema;

use super::counts::{Bucket, UNASSIGNED};
use super::{GENERATION, Working};
use crate::batch::follows;
use crate::feed::{self, Recorder};
use crate::listing::{Bind, Listing, like_pattern};
use crate::table::{Table, columns, table};

/// A task, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Task)]
pub struct TaskView {
    pub id: TaskId,
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    /// Per project, from 1, without gaps or duplicates.
    pub number: i64,
    /// The project's slug in capitals and the number (`WEB-42`), fixed at creation.
    pub key: String,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub priority: Priority,
    pub assignee_id: Option<UserId>,
    pub labels: Vec<String>,
    /// A calendar date (`YYYY-MM-DD`).
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
    /// Comments on the task (not deleted).
    pub comment_count: i64,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When work on it started (RFC 3339): its first move to
    /// `in_progress`, kept after; null if it never moved there.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was completed (RFC 3339): its move to `done`; null unless it
    /// is done (reopening clears it).
    pub completed_at: Option<DateTime<Utc>>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `tasks_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct TaskRow in tasks_view {
        key {
            tenant_id: TenantId,
            id: TaskId,
        }
        fixed {
            project_id: ProjectId,
            number: i64,
            key: String,
            created_by: Option<UserId>,
            created_at: DateTime<Utc>,
        }
        set {
            title: String,
            description: String,
            status: String,
            priority: String,
            /// Orders by urgency.
            priority_rank: i32,
            assignee_id: Option<UserId>,
            labels: Json<Vec<String>>,
            due_date: Option<NaiveDate>,
            /// What free-text search matches ([`search_text`]).
            search: String,
            comment_count: i64,
            updated_at: DateTime<Utc>,
            started_at: Option<DateTime<Utc>>,
            completed_at: Option<DateTime<Utc>>,
            version: i64,
        }
        // Never moves a row back to an older version (comment counts
        // change at the same version).
        guard "tasks_view.version <= EXCLUDED.version";
    }
}

impl TaskRow {
    pub fn to_view(&self) -> TaskView {
        TaskView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            project_id: self.project_id,
            number: self.number,
            key: self.key.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            status: TaskStatus::parse(&self.status).unwrap_or_default(),
            priority: Priority::parse(&self.priority).unwrap_or_default(),
            assignee_id: self.assignee_id,
            labels: self.labels.0.clone(),
            due_date: self.due_date,
            comment_count: self.comment_count,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            version: self.version,
        }
    }

    pub(super) fn bucket(&self) -> Bucket {
        (
            self.tenant_id,
            self.project_id,
            self.status.clone(),
            self.priority.clone(),
            self.assignee_id.unwrap_or(UNASSIGNED),
        )
    }
}

/// What free-text search matches: key, title and description, lower-cased
/// here (Unicode-aware, unlike SQLite's `lower`).
pub fn search_text(key: &str, title: &str, description: &str) -> String {
    format!("{key}\n{title}\n{description}").to_lowercase()
}

/// A task's comment count as the read model knows it (0 if unknown).
pub async fn comment_count(db: &Db, tenant: TenantId, task: TaskId) -> Result<i64, sqlx::Error> {
    let count: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT comment_count FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(task)
        .fetch_optional(pool)
        .await?
    });
    Ok(count.unwrap_or(0))
}

/// The open tasks of `tenant` assigned to `user`, as the read model knows
/// them.
pub async fn open_tasks_of(
    db: &Db,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<TaskId>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = $1 \
             AND assignee_id = $2 AND status IN ('todo', 'in_progress', 'in_review')"
        )))
        .bind(tenant)
        .bind(user)
        .fetch_all(pool)
        .await
    })
}

/// A task as the read model shows it now.
pub async fn get(db: &Db, tenant: TenantId, task: TaskId) -> Result<Option<TaskView>, sqlx::Error> {
    let row: Option<TaskRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<TaskRow>()
        )))
        .bind(tenant)
        .bind(task)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|row| row.to_view()))
}

/// The workspace of a task, looked up only among the workspaces `member`
/// belongs to (so the lookup itself reveals nothing of the others).
pub async fn workspace_of(
    db: &Db,
    task: TaskId,
    member: UserId,
) -> Result<Option<WorkspaceId>, sqlx::Error> {
    crate::access::tenant_among(db, TaskRow::NAME, GENERATION, task.as_uuid(), member).await
}

/// What a task list filters on; empty or absent means any.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub project: Option<ProjectId>,
    pub statuses: Vec<TaskStatus>,
    /// `Some(None)`: unassigned tasks only.
    pub assignee: Option<Option<UserId>>,
    pub priorities: Vec<Priority>,
    /// Tasks carrying all of them.
    pub labels: Vec<String>,
    /// Tasks due strictly before it.
    pub due_before: Option<NaiveDate>,
    /// Lower-cased words that must all appear in the key, title or
    /// description.
    pub words: Vec<String>,
}

/// What a task list sorts by (ties broken by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOrder {
    CreatedAt,
    UpdatedAt,
    /// By urgency, then creation.
    Priority,
    /// Undated tasks last in either direction.
    DueDate,
    Number,
}

impl TaskFilter {
    /// Whether the projector's counts answer the total (every filter is
    /// one of their dimensions).
    fn counted(&self) -> bool {
        self.labels.is_empty() && self.due_before.is_none() && self.words.is_empty()
    }

    /// Adds the filters to `listing`'s `WHERE`; `counts` when it lists
    /// `task_counts` (which holds only their dimensions).
    fn restrict(&self, listing: &mut Listing, backend: Backend, counts: bool) {
        if let Some(project) = self.project {
            let project = listing.bind(Bind::Uuid(project.as_uuid()));
            listing
                .from
                .push_str(&format!(" AND project_id = {project}"));
        }
        if !self.statuses.is_empty() {
            let list = self
                .statuses
                .iter()
                .map(|status| listing.bind(Bind::Text(status.as_str().to_owned())))
                .collect::<Vec<_>>()
                .join(", ");
            listing.from.push_str(&format!(" AND status IN ({list})"));
        }
        if !self.priorities.is_empty() {
            let list = self
                .priorities
                .iter()
                .map(|priority| listing.bind(Bind::Text(priority.as_str().to_owned())))
                .collect::<Vec<_>>()
                .join(", ");
            listing.from.push_str(&format!(" AND priority IN ({list})"));
        }
        match self.assignee {
            None => {}
            Some(Some(user)) => {
                let user = listing.bind(Bind::Uuid(user.as_uuid()));
                listing.from.push_str(&format!(" AND assignee_id = {user}"));
            }
            Some(None) if counts => {
                let none = listing.bind(Bind::Uuid(UNASSIGNED.as_uuid()));
                listing.from.push_str(&format!(" AND assignee_id = {none}"));
            }
            Some(None) => listing.from.push_str(" AND assignee_id IS NULL"),
        }
        if counts {
            return;
        }
        for label in &self.labels {
            let label = listing.bind(Bind::Text(label.clone()));
            listing.from.push_str(&match backend {
                Backend::Postgres => format!(" AND labels @> jsonb_build_array(CAST({label} AS text))"),
                Backend::Sqlite => format!(
                    " AND EXISTS (SELECT 1 FROM json_each(tasks_view.labels) WHERE json_each.value = {label})"
                ),
            });
        }
        if let Some(due) = self.due_before {
            let due = listing.bind(Bind::Date(due));
            listing.from.push_str(&format!(" AND due_date < {due}"));
        }
        for word in &self.words {
            let pattern = listing.bind(Bind::Text(like_pattern(word)));
            listing
                .from
                .push_str(&format!(" AND search LIKE {pattern} ESCAPE '\\'"));
        }
    }
}

/// One page of the tasks of `tenant` matching `filter`. Without labels,
/// due dates and words, the total comes from the counts the projector
/// keeps, not from counting rows.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    filter: &TaskFilter,
    sort: Sort<TaskOrder>,
    page: PageRequest,
) -> Result<Page<TaskView>, sqlx::Error> {
    let dir = sort.direction();
    let order = match sort.field {
        TaskOrder::CreatedAt => format!("created_at {dir}, id {dir}"),
        TaskOrder::UpdatedAt => format!("updated_at {dir}, id {dir}"),
        TaskOrder::Priority => format!("priority_rank {dir}, created_at {dir}, id {dir}"),
        TaskOrder::DueDate => format!("due_date IS NULL, due_date {dir}, id {dir}"),
        TaskOrder::Number => format!("number {dir}, id {dir}"),
    };
    let backend = db.backend();
    let mut listing = Listing::new(columns::<TaskRow>(), String::new(), order);
    let bound = listing.bind(Bind::Uuid(tenant.as_uuid()));
    listing.from =
        format!("FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = {bound}");
    filter.restrict(&mut listing, backend, false);
    let rows: Page<TaskRow> = if filter.counted() {
        let mut counted = Listing::new("", String::new(), "");
        let bound = counted.bind(Bind::Uuid(tenant.as_uuid()));
        counted.from =
            format!("FROM task_counts WHERE generation = {GENERATION} AND tenant_id = {bound}");
        filter.restrict(&mut counted, backend, true);
        let total = counted.sum(db, "count").await?;
        listing.page_of(db, page, total).await?
    } else {
        listing.page(db, page).await?
    };
    Ok(rows.map(|row| row.to_view()))
}

/// Applies a task event to the batch's rows (and the counts' buckets).
pub(super) fn apply(
    batch: &mut Working,
    feed: &mut Recorder,
    event: &RecordedEvent,
    decoded: TaskEvent,
) -> Result<(), ProjectionError> {
    let key = super::task_key(event);
    let at = event.occurred_at;
    if let TaskEvent::Created(created) = decoded {
        return create(batch, feed, event, created);
    }
    let Some(row) = batch.tasks.get_mut(&key) else {
        return Err(ProjectionError::event(event, "no task.created before it"));
    };
    if !follows(row.version, event)? {
        return Ok(());
    }
    let before = row.bucket();
    match decoded {
        TaskEvent::Created(_) => {}
        TaskEvent::Updated(updated) => {
            if let Some(title) = updated.title {
                row.title = title;
            }
            if let Some(description) = updated.description {
                row.description = description;
            }
            if let Some(priority) = updated.priority {
                row.priority = priority.as_str().to_owned();
                row.priority_rank = priority.rank();
            }
            if let Some(labels) = updated.labels {
                row.labels = Json(labels);
            }
            if let Some(due_date) = updated.due_date {
                row.due_date = due_date;
            }
            row.search = search_text(&row.key, &row.title, &row.description);
        }
        TaskEvent::Assigned(assigned) => row.assignee_id = Some(assigned.assignee_id),
        TaskEvent::Unassigned(_) => row.assignee_id = None,
        TaskEvent::StatusChanged(changed) => {
            row.status = changed.to.as_str().to_owned();
            if changed.to == TaskStatus::InProgress && row.started_at.is_none() {
                row.started_at = Some(at);
            }
            row.completed_at = (changed.to == TaskStatus::Done).then_some(at);
        }
        TaskEvent::Deleted(_) => {
            let project = row.project_id;
            feed.removed(
                event,
                feed::Resource::Task(key.1),
                Some(project),
                Some(key.1),
                serde_json::json!({
                    "id": key.1,
                    "workspace_id": WorkspaceId::from(key.0),
                    "project_id": project,
                }),
            );
            batch.tasks.remove(&key);
            batch.counts.add(before, -1);
            return Ok(());
        }
    }
    row.updated_at = at;
    row.version = event.stream_version;
    let after = row.bucket();
    record(feed, event, row)?;
    if after != before {
        batch.counts.add(before, -1);
        batch.counts.add(after, 1);
    }
    batch.tasks.changed(key);
    Ok(())
}

/// A task created: its row, and its bucket of the counts.
fn create(
    batch: &mut Working,
    feed: &mut Recorder,
    event: &RecordedEvent,
    created: TaskCreated,
) -> Result<(), ProjectionError> {
    let key = super::task_key(event);
    let at = event.occurred_at;
    if batch.tasks.contains(&key) || batch.tasks.was_removed(&key) {
        // Applied already (the row exists at a later version).
        return Ok(());
    }
    let row = TaskRow {
        tenant_id: key.0,
        id: key.1,
        project_id: created.project_id,
        number: created.number,
        search: search_text(&created.key, &created.title, &created.description),
        key: created.key,
        title: created.title,
        description: created.description,
        status: TaskStatus::Todo.as_str().to_owned(),
        priority: created.priority.as_str().to_owned(),
        priority_rank: created.priority.rank(),
        assignee_id: created.assignee_id,
        labels: Json(created.labels),
        due_date: created.due_date,
        comment_count: 0,
        created_by: event.metadata.actor.user_id().map(UserId::from_uuid),
        created_at: at,
        updated_at: at,
        started_at: None,
        completed_at: None,
        version: event.stream_version,
    };
    batch.counts.add(row.bucket(), 1);
    record(feed, event, &row)?;
    batch.tasks.insert(row);
    Ok(())
}

/// Records a task as it is after `event`, for the feed.
pub(super) fn record(
    feed: &mut Recorder,
    event: &RecordedEvent,
    row: &TaskRow,
) -> Result<(), ProjectionError> {
    feed.update(
        event,
        feed::Resource::Task(row.id),
        Some(row.project_id),
        Some(row.id),
        &row.to_view(),
    )
}
