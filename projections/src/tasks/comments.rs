//! The comments read model (`comments_view`): a comment as the API shows
//! it, how comment events change it (and their task's comment count), and
//! how queries read a task's comments.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::catalogue::comment::CommentEvent;
use tenet_events::db::Db;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{CommentId, ProjectId, TaskId, TenantId, UserId};
use tenet_events::projection::ProjectionError;
use tenet_http::PageRequest;
use tenet_http::pagination::Page;
use utoipa::ToSchema;

use super::{GENERATION, Working};
use crate::batch::follows;
use crate::feed::{self, Recorder};
use crate::listing::{Bind, Listing};
use crate::table::{columns, table};

/// A comment, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Comment)]
pub struct CommentView {
    pub id: CommentId,
    pub task_id: TaskId,
    pub author_id: UserId,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// When the body last changed; absent if never edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `comments_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct CommentRow in comments_view {
        key {
            tenant_id: TenantId,
            id: CommentId,
        }
        fixed {
            task_id: TaskId,
            author_id: UserId,
            created_at: DateTime<Utc>,
        }
        set {
            body: String,
            edited_at: Option<DateTime<Utc>>,
            version: i64,
        }
        guard "comments_view.version <= EXCLUDED.version";
    }
}

impl CommentRow {
    pub fn to_view(&self) -> CommentView {
        CommentView {
            id: self.id,
            task_id: self.task_id,
            author_id: self.author_id,
            body: self.body.clone(),
            created_at: self.created_at,
            edited_at: self.edited_at,
            version: self.version,
        }
    }
}

/// One page of a task's comments, oldest first.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    task: TaskId,
    page: PageRequest,
) -> Result<Page<CommentView>, sqlx::Error> {
    let mut listing = Listing::new(
        columns::<CommentRow>(),
        String::new(),
        "created_at ASC, id ASC",
    );
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    let task = listing.bind(Bind::Uuid(task.as_uuid()));
    listing.from = format!(
        "FROM comments_view WHERE generation = {GENERATION} AND tenant_id = {tenant} AND task_id = {task}"
    );
    let rows: Page<CommentRow> = listing.page(db, page).await?;
    Ok(rows.map(|row| row.to_view()))
}

/// The task a comment event is about.
pub(super) fn task_of(event: &CommentEvent) -> TaskId {
    match event {
        CommentEvent::Added(added) => added.task_id,
        CommentEvent::Edited(edited) => edited.task_id,
        CommentEvent::Deleted(deleted) => deleted.task_id,
    }
}

/// Applies a comment event to the batch's rows (and its task's comment
/// count).
pub(super) fn apply(
    batch: &mut Working,
    feed: &mut Recorder,
    event: &RecordedEvent,
    decoded: CommentEvent,
) -> Result<(), ProjectionError> {
    let key = super::comment_key(event);
    let task = (event.tenant_id, task_of(&decoded));
    if batch.tasks.was_removed(&task) {
        // Its task is gone, and its comments with it.
        return Ok(());
    }
    let project = batch.tasks.get(&task).map(|row| row.project_id);
    let mut count_delta = 0;
    match decoded {
        CommentEvent::Added(added) => {
            if batch.comments.contains(&key) || batch.comments.was_removed(&key) {
                return Ok(());
            }
            let row = CommentRow {
                tenant_id: key.0,
                id: key.1,
                task_id: added.task_id,
                author_id: added.author_id,
                body: added.body,
                created_at: event.occurred_at,
                edited_at: None,
                version: event.stream_version,
            };
            record(feed, event, project, &row)?;
            batch.comments.insert(row);
            count_delta = 1;
        }
        CommentEvent::Edited(edited) => {
            let Some(row) = batch.comments.get_mut(&key) else {
                // Gone with its task (deleted in an earlier batch).
                return Ok(());
            };
            if !follows(row.version, event)? {
                return Ok(());
            }
            row.body = edited.body;
            row.edited_at = Some(event.occurred_at);
            row.version = event.stream_version;
            record(feed, event, project, row)?;
            batch.comments.changed(key);
        }
        CommentEvent::Deleted(_) => {
            let Some(row) = batch.comments.get(&key) else {
                return Ok(());
            };
            if !follows(row.version, event)? {
                return Ok(());
            }
            feed.removed(
                event,
                feed::Resource::Comment(key.1),
                project,
                Some(task.1),
                serde_json::json!({ "id": key.1, "task_id": task.1 }),
            );
            batch.comments.remove(&key);
            count_delta = -1;
        }
    }
    // A comment is added only to a task that exists at that point of the
    // log, so its row is here; a later change may outlive the task.
    if count_delta != 0
        && let Some(row) = batch.tasks.get_mut(&task)
    {
        row.comment_count += count_delta;
        super::view::record(feed, event, row)?;
        batch.tasks.changed(task);
    }
    Ok(())
}

/// Records a comment as it is after `event`, for the feed.
fn record(
    feed: &mut Recorder,
    event: &RecordedEvent,
    project: Option<ProjectId>,
    row: &CommentRow,
) -> Result<(), ProjectionError> {
    feed.update(
        event,
        feed::Resource::Comment(row.id),
        project,
        Some(row.task_id),
        &row.to_view(),
    )
}
