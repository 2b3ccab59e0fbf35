//! The tasks read model (`tasks_view`), its list totals (`task_counts`)
//! and the comments read model (`comments_view`), kept asynchronously from
//! `task.*` and `comment.*` events.
//!
//! One projector owns all three because they move together: a comment
//! changes its task's `comment_count`, a deleted task takes its comments
//! with it, and a task's status, priority or assignee moves it between the
//! buckets of `task_counts`. Like the projects projector, a batch is
//! applied in memory: the rows it touches are loaded at once, events are
//! applied in log order with a per-stream version check, and the rows are
//! written back at the end.

mod comments;
mod view;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::comment::CommentEvent;
use tenet_events::catalogue::task::TaskEvent;
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{CommentId, ProjectId, TaskId, TenantId, UserId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::with_tx;

use crate::feed::Recorder;

pub use comments::{COMMENT_COLUMNS, CommentRow, CommentView};
pub use view::{TASK_COLUMNS, TaskRow, TaskView, comment_count, open_tasks_of, search_text};

use comments::{apply_comment, comment_task};
use view::apply_task;

pub const NAME: &str = "tasks";

/// The generation queries read, as a subquery.
pub const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'tasks')";

/// The assignee of unassigned tasks in `task_counts`, whose key cannot
/// hold a NULL.
pub const UNASSIGNED: UserId = UserId::from_uuid(uuid::Uuid::nil());

pub struct TasksProjector;

type TaskKey = (TenantId, TaskId);
type CommentKey = (TenantId, CommentId);
/// A cell of `task_counts`: tenant, project, status, priority, assignee.
type Bucket = (TenantId, ProjectId, String, String, UserId);

/// What one batch changes.
#[derive(Default)]
struct Batch {
    tasks: HashMap<TaskKey, TaskRow>,
    comments: HashMap<CommentKey, CommentRow>,
    dirty_tasks: HashSet<TaskKey>,
    dirty_comments: HashSet<CommentKey>,
    deleted_tasks: HashSet<TaskKey>,
    deleted_comments: HashSet<CommentKey>,
    counts: HashMap<Bucket, i64>,
    /// Each visible change, for the realtime feed.
    feed: Recorder,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::off()
    }
}

impl Batch {
    fn count(&mut self, bucket: Bucket, delta: i64) {
        *self.counts.entry(bucket).or_default() += delta;
    }
}

enum Decoded {
    Task(TaskEvent),
    Comment(CommentEvent),
}

#[async_trait]
impl Projector for TasksProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("task.") || event_type.starts_with("comment.")
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events.iter().filter(|e| self.handles(&e.event_type)) {
            let fail = |e| ProjectionError::event(event, e);
            decoded.push((
                event,
                if event.aggregate() == "task" {
                    Decoded::Task(TaskEvent::from_recorded(event).map_err(fail)?)
                } else {
                    Decoded::Comment(CommentEvent::from_recorded(event).map_err(fail)?)
                },
            ));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        // Rows to load: every task and comment touched, except those whose
        // first event here creates them.
        let mut created_tasks = HashSet::new();
        let mut created_comments = HashSet::new();
        let mut task_keys = HashSet::new();
        let mut comment_keys = HashSet::new();
        for (event, decoded) in &decoded {
            match decoded {
                Decoded::Task(task) => {
                    let key = (
                        event.tenant_id,
                        TaskId::from_uuid(event.stream_id.as_uuid()),
                    );
                    if matches!(task, TaskEvent::Created(_)) {
                        created_tasks.insert(key);
                    } else if !created_tasks.contains(&key) {
                        task_keys.insert(key);
                    }
                }
                Decoded::Comment(comment) => {
                    let key = (
                        event.tenant_id,
                        CommentId::from_uuid(event.stream_id.as_uuid()),
                    );
                    let task = (event.tenant_id, comment_task(comment));
                    if !created_tasks.contains(&task) {
                        task_keys.insert(task);
                    }
                    if matches!(comment, CommentEvent::Added(_)) {
                        created_comments.insert(key);
                    } else if !created_comments.contains(&key) {
                        comment_keys.insert(key);
                    }
                }
            }
        }
        let mut batch = Batch {
            tasks: load_tasks(tx, generation, &task_keys).await?,
            comments: load_comments(tx, generation, &comment_keys).await?,
            feed: Recorder::for_batch(tx, NAME, generation).await?,
            ..Batch::default()
        };
        for (event, decoded) in decoded {
            match decoded {
                Decoded::Task(task) => apply_task(&mut batch, event, task)?,
                Decoded::Comment(comment) => apply_comment(&mut batch, event, comment)?,
            }
        }
        let recorded = std::mem::take(&mut batch.feed);
        save(tx, generation, batch).await?;
        recorded.save(tx, NAME).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        with_tx!(tx, conn => {
            for table in ["tasks_view", "task_counts", "comments_view"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE generation = $1")))
                    .bind(generation)
                    .execute(&mut *conn)
                    .await?;
            }
        });
        Ok(())
    }
}

/// A task folded from its events (its own and its comments', in log
/// order) by the projector's own rules: what the read model held after
/// each of them. Time travel and history use it, so a past version has
/// exactly the shape and values the read model had then.
#[derive(Default)]
pub struct TaskFold {
    batch: Batch,
}

impl TaskFold {
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        match event.aggregate() {
            "task" => apply_task(
                &mut self.batch,
                event,
                TaskEvent::from_recorded(event).map_err(fail)?,
            ),
            "comment" => apply_comment(
                &mut self.batch,
                event,
                CommentEvent::from_recorded(event).map_err(fail)?,
            ),
            _ => Ok(()),
        }
    }

    /// The task's row now (none before its creation or after its deletion).
    pub fn row(&self, tenant: TenantId, task: TaskId) -> Option<&TaskRow> {
        self.batch.tasks.get(&(tenant, task))
    }
}

/// Refuses an event that does not follow the row's version: applied
/// already (answers `false`: skip it) or one missing before it (an error).
fn follows(current: i64, event: &RecordedEvent) -> Result<bool, ProjectionError> {
    if event.stream_version <= current {
        return Ok(false);
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
    Ok(true)
}

async fn load_tasks(
    tx: &mut Tx<'_>,
    generation: i32,
    keys: &HashSet<TaskKey>,
) -> Result<HashMap<TaskKey, TaskRow>, ProjectionError> {
    let keys = keys.iter().map(|(tenant, id)| (*tenant, id.as_uuid()));
    let rows: Vec<TaskRow> =
        crate::rows::load(tx, "tasks_view", TASK_COLUMNS, generation, keys).await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.tenant_id, row.id), row))
        .collect())
}

async fn load_comments(
    tx: &mut Tx<'_>,
    generation: i32,
    keys: &HashSet<CommentKey>,
) -> Result<HashMap<CommentKey, CommentRow>, ProjectionError> {
    let keys = keys.iter().map(|(tenant, id)| (*tenant, id.as_uuid()));
    let rows: Vec<CommentRow> =
        crate::rows::load(tx, "comments_view", COMMENT_COLUMNS, generation, keys).await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.tenant_id, row.id), row))
        .collect())
}

/// Never moves a row back to an older version (comment counts change at
/// the same version).
const TASK_UPSERT: &str = "ON CONFLICT (generation, tenant_id, id) DO UPDATE SET \
    title = EXCLUDED.title, description = EXCLUDED.description, status = EXCLUDED.status, \
    priority = EXCLUDED.priority, priority_rank = EXCLUDED.priority_rank, \
    assignee_id = EXCLUDED.assignee_id, labels = EXCLUDED.labels, due_date = EXCLUDED.due_date, \
    search = EXCLUDED.search, comment_count = EXCLUDED.comment_count, \
    updated_at = EXCLUDED.updated_at, version = EXCLUDED.version \
    WHERE tasks_view.version <= EXCLUDED.version";

const COMMENT_UPSERT: &str = "ON CONFLICT (generation, tenant_id, id) DO UPDATE SET \
    body = EXCLUDED.body, edited_at = EXCLUDED.edited_at, version = EXCLUDED.version \
    WHERE comments_view.version <= EXCLUDED.version";

/// Rows per multi-row statement on SQLite (20 binds a task row, well under
/// SQLite's limit on parameters).
const SQLITE_ROWS: usize = 400;

const COUNT_UPSERT: &str = "ON CONFLICT (generation, tenant_id, project_id, status, priority, assignee_id) \
    DO UPDATE SET count = task_counts.count + EXCLUDED.count";

async fn save(tx: &mut Tx<'_>, generation: i32, batch: Batch) -> Result<(), ProjectionError> {
    let tasks: Vec<&TaskRow> = batch
        .dirty_tasks
        .iter()
        .filter_map(|key| batch.tasks.get(key))
        .collect();
    let comments: Vec<&CommentRow> = batch
        .dirty_comments
        .iter()
        .filter_map(|key| batch.comments.get(key))
        .collect();
    let deleted_tasks: Vec<TaskKey> = batch.deleted_tasks.iter().copied().collect();
    let deleted_comments: Vec<CommentKey> = batch.deleted_comments.iter().copied().collect();
    let counts: Vec<(&Bucket, i64)> = batch
        .counts
        .iter()
        .filter(|(_, delta)| **delta != 0)
        .map(|(bucket, delta)| (bucket, *delta))
        .collect();
    match tx {
        Tx::Postgres(tx) => {
            if !tasks.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO tasks_view (generation, {TASK_COLUMNS}) \
                     SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::int8[], \
                       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int4[], \
                       $12::uuid[], $13::jsonb[], $14::date[], $15::text[], $16::int8[], $17::uuid[], \
                       $18::timestamptz[], $19::timestamptz[], $20::int8[]) {TASK_UPSERT}"
                )))
                .bind(generation)
                .bind(tasks.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.id).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.project_id).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.number).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.key.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.title.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.description.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.priority.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.priority_rank).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.assignee_id).collect::<Vec<_>>())
                .bind(
                    tasks
                        .iter()
                        .map(|r| serde_json::Value::from(r.labels.0.clone()))
                        .collect::<Vec<_>>(),
                )
                .bind(tasks.iter().map(|r| r.due_date).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.search.clone()).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.comment_count).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.created_by).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.created_at).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.updated_at).collect::<Vec<_>>())
                .bind(tasks.iter().map(|r| r.version).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await?;
            }
            if !comments.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO comments_view (generation, {COMMENT_COLUMNS}) \
                     SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
                       $6::text[], $7::timestamptz[], $8::timestamptz[], $9::int8[]) {COMMENT_UPSERT}"
                )))
                .bind(generation)
                .bind(comments.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.id).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.task_id).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.author_id).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.created_at).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.edited_at).collect::<Vec<_>>())
                .bind(comments.iter().map(|r| r.version).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await?;
            }
            if !deleted_tasks.is_empty() {
                let (tenants, ids): (Vec<TenantId>, Vec<TaskId>) =
                    deleted_tasks.iter().copied().unzip();
                sqlx::query(
                    "DELETE FROM tasks_view v USING unnest($2::uuid[], $3::uuid[]) AS k(tenant_id, id) \
                     WHERE v.generation = $1 AND v.tenant_id = k.tenant_id AND v.id = k.id",
                )
                .bind(generation)
                .bind(&tenants)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM comments_view v USING unnest($2::uuid[], $3::uuid[]) AS k(tenant_id, task_id) \
                     WHERE v.generation = $1 AND v.tenant_id = k.tenant_id AND v.task_id = k.task_id",
                )
                .bind(generation)
                .bind(&tenants)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            if !deleted_comments.is_empty() {
                let (tenants, ids): (Vec<TenantId>, Vec<CommentId>) =
                    deleted_comments.iter().copied().unzip();
                sqlx::query(
                    "DELETE FROM comments_view v USING unnest($2::uuid[], $3::uuid[]) AS k(tenant_id, id) \
                     WHERE v.generation = $1 AND v.tenant_id = k.tenant_id AND v.id = k.id",
                )
                .bind(generation)
                .bind(&tenants)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            if !counts.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO task_counts (generation, tenant_id, project_id, status, priority, assignee_id, count) \
                     SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::int8[]) \
                     {COUNT_UPSERT}"
                )))
                .bind(generation)
                .bind(counts.iter().map(|(b, _)| b.0).collect::<Vec<_>>())
                .bind(counts.iter().map(|(b, _)| b.1).collect::<Vec<_>>())
                .bind(counts.iter().map(|(b, _)| b.2.clone()).collect::<Vec<_>>())
                .bind(counts.iter().map(|(b, _)| b.3.clone()).collect::<Vec<_>>())
                .bind(counts.iter().map(|(b, _)| b.4).collect::<Vec<_>>())
                .bind(counts.iter().map(|(_, delta)| *delta).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await?;
            }
        }
        Tx::Sqlite(tx) => {
            // Many rows per statement: on SQLite each statement is a round
            // trip to the database's worker thread, which dominates a
            // rebuild's cost otherwise.
            for chunk in tasks.chunks(SQLITE_ROWS) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO tasks_view (generation, {TASK_COLUMNS}) "
                ));
                insert.push_values(chunk, |mut values, row| {
                    values
                        .push_bind(generation)
                        .push_bind(row.tenant_id)
                        .push_bind(row.id)
                        .push_bind(row.project_id)
                        .push_bind(row.number)
                        .push_bind(row.key.clone())
                        .push_bind(row.title.clone())
                        .push_bind(row.description.clone())
                        .push_bind(row.status.clone())
                        .push_bind(row.priority.clone())
                        .push_bind(row.priority_rank)
                        .push_bind(row.assignee_id)
                        .push_bind(row.labels.clone())
                        .push_bind(row.due_date)
                        .push_bind(row.search.clone())
                        .push_bind(row.comment_count)
                        .push_bind(row.created_by)
                        .push_bind(row.created_at)
                        .push_bind(row.updated_at)
                        .push_bind(row.version);
                });
                insert.push(format!(" {TASK_UPSERT}"));
                insert.build().execute(&mut **tx).await?;
            }
            for chunk in comments.chunks(SQLITE_ROWS) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO comments_view (generation, {COMMENT_COLUMNS}) "
                ));
                insert.push_values(chunk, |mut values, row| {
                    values
                        .push_bind(generation)
                        .push_bind(row.tenant_id)
                        .push_bind(row.id)
                        .push_bind(row.task_id)
                        .push_bind(row.author_id)
                        .push_bind(row.body.clone())
                        .push_bind(row.created_at)
                        .push_bind(row.edited_at)
                        .push_bind(row.version);
                });
                insert.push(format!(" {COMMENT_UPSERT}"));
                insert.build().execute(&mut **tx).await?;
            }
            for (tenant, id) in deleted_tasks {
                sqlx::query(
                    "DELETE FROM tasks_view WHERE generation = $1 AND tenant_id = $2 AND id = $3",
                )
                .bind(generation)
                .bind(tenant)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM comments_view WHERE generation = $1 AND tenant_id = $2 AND task_id = $3",
                )
                .bind(generation)
                .bind(tenant)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }
            for (tenant, id) in deleted_comments {
                sqlx::query("DELETE FROM comments_view WHERE generation = $1 AND tenant_id = $2 AND id = $3")
                    .bind(generation)
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            for chunk in counts.chunks(SQLITE_ROWS) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO task_counts (generation, tenant_id, project_id, status, priority, assignee_id, count) ",
                );
                insert.push_values(chunk, |mut values, (bucket, delta)| {
                    values
                        .push_bind(generation)
                        .push_bind(bucket.0)
                        .push_bind(bucket.1)
                        .push_bind(bucket.2.clone())
                        .push_bind(bucket.3.clone())
                        .push_bind(bucket.4)
                        .push_bind(*delta);
                });
                insert.push(format!(" {COUNT_UPSERT}"));
                insert.build().execute(&mut **tx).await?;
            }
        }
    }
    if !counts.is_empty() {
        // An emptied bucket goes: whether a bucket that emptied exists must
        // not depend on how the log was batched (a rebuild equals the live
        // model row for row). Every empty bucket of the generation is one
        // this batch just emptied (earlier ones went with their batch), and
        // the partial index on empty buckets finds them without a scan.
        with_tx!(tx, conn => {
            sqlx::query("DELETE FROM task_counts WHERE generation = $1 AND count = 0")
                .bind(generation)
                .execute(&mut *conn)
                .await?;
        });
    }
    Ok(())
}
