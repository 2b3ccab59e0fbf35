//! The realtime feed's outbox (`feed_updates`): what each projector
//! records, beside its read-model writes, for WebSocket clients, and how the
//! outbox is read, pruned and announced.
//!
//! - **Exact rows, in log order.** A projector records one update per
//!   visible change of a row, with the row's REST JSON as it was right after
//!   that event (a batch may change a row several times; each change is
//!   recorded), in the transaction that writes the row and the checkpoint.
//!   Below a projection's checkpoint its outbox is therefore complete.
//! - **Active generation only.** A generation being rebuilt re-applies old
//!   events; it records nothing, or clients would see history again.
//! - **Not the delivery.** Reading, routing and sending to clients belongs
//!   to the query side (`tenet_query::realtime`); this module only owns the
//!   table, its pruning, and the announcement of checkpoints over NATS that
//!   wakes query instances on other machines.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_events::bus::Bus;
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{CommentId, Position, ProjectId, TaskId, TenantId};
use tenet_events::projection::{self, ProjectionError};
use tenet_events::with_pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::checkpoints::Checkpoints;

/// The projections that write the outbox. The feed can deliver a position
/// only once every one of them has applied it.
pub const WRITERS: [&str; 2] = [crate::projects::NAME, crate::tasks::NAME];

/// What happened to the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Created or changed: `data` is the row after the change.
    Update,
    /// Deleted: `data` holds its ids.
    Removed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Removed => "removed",
        }
    }

    pub fn parse(value: &str) -> Option<Kind> {
        match value {
            "update" => Some(Kind::Update),
            "removed" => Some(Kind::Removed),
            _ => None,
        }
    }
}

/// The row a feed update is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Project(ProjectId),
    Task(TaskId),
    Comment(CommentId),
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Project(_) => "project",
            Resource::Task(_) => "task",
            Resource::Comment(_) => "comment",
        }
    }

    fn uuid(self) -> Uuid {
        match self {
            Resource::Project(id) => id.as_uuid(),
            Resource::Task(id) => id.as_uuid(),
            Resource::Comment(id) => id.as_uuid(),
        }
    }

    fn parse(name: &str, id: Uuid) -> Option<Resource> {
        Some(match name {
            "project" => Resource::Project(ProjectId::from_uuid(id)),
            "task" => Resource::Task(TaskId::from_uuid(id)),
            "comment" => Resource::Comment(CommentId::from_uuid(id)),
            _ => return None,
        })
    }
}

/// One visible change of one read-model row.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedUpdate {
    pub position: Position,
    pub tenant_id: TenantId,
    pub kind: Kind,
    pub resource: Resource,
    /// The project the row belongs to (itself for a project): routes it to
    /// `project:` channels.
    pub project_id: Option<ProjectId>,
    /// The task the row belongs to (itself for a task): routes it to
    /// `task:` channels.
    pub task_id: Option<TaskId>,
    pub event_type: String,
    /// JSON text, forwarded verbatim.
    pub data: String,
}

/// The updates one projector batch records, in the order it applies
/// events. `None` inside when it records nothing.
pub struct Recorder {
    updates: Option<Vec<FeedUpdate>>,
    /// Events at or below this position are not recorded: the active
    /// generation has recorded them already.
    from: Position,
}

impl Recorder {
    /// A recorder for a batch applied to `generation` of `projection`. The
    /// generation queries read records every change. A rebuild records the
    /// changes of events the active generation has not reached: a rebuild
    /// that overtakes it before the swap must not leave a hole in the feed
    /// (whichever applies an event first records it; the outbox's key
    /// makes the other's record a no-op). Asked once per batch, inside its
    /// transaction.
    pub async fn for_batch(
        tx: &mut Tx<'_>,
        projection: &str,
        generation: i32,
    ) -> Result<Recorder, ProjectionError> {
        let active = projection::active_generation(tx, projection).await?;
        if active == generation {
            return Ok(Recorder {
                updates: Some(Vec::new()),
                from: Position::START,
            });
        }
        let reached: Option<i64> = tenet_events::with_tx!(tx, conn => {
            sqlx::query_scalar(
                "SELECT position FROM projection_checkpoints WHERE name = $1 AND generation = $2",
            )
            .bind(projection)
            .bind(active)
            .fetch_optional(&mut *conn)
            .await?
        });
        Ok(Recorder {
            updates: Some(Vec::new()),
            from: Position(reached.unwrap_or(i64::MAX)),
        })
    }

    /// A recorder that records nothing.
    pub fn off() -> Recorder {
        Recorder {
            updates: None,
            from: Position::START,
        }
    }

    /// Records that `event` changed a row, which is now `view` (serialized
    /// here, at this point of the batch, because later events of the same
    /// batch may change the row again).
    pub fn update(
        &mut self,
        event: &RecordedEvent,
        resource: Resource,
        project_id: Option<ProjectId>,
        task_id: Option<TaskId>,
        view: &impl serde::Serialize,
    ) -> Result<(), ProjectionError> {
        let Some(updates) = &mut self.updates else {
            return Ok(());
        };
        if event.position <= self.from {
            return Ok(());
        }
        let data = serde_json::to_string(view).map_err(|e| ProjectionError::event(event, e))?;
        updates.push(FeedUpdate {
            position: event.position,
            tenant_id: event.tenant_id,
            kind: Kind::Update,
            resource,
            project_id,
            task_id,
            event_type: event.event_type.clone(),
            data,
        });
        Ok(())
    }

    /// Records that `event` removed a row; `ids` is what clients get to
    /// know which one.
    pub fn removed(
        &mut self,
        event: &RecordedEvent,
        resource: Resource,
        project_id: Option<ProjectId>,
        task_id: Option<TaskId>,
        ids: serde_json::Value,
    ) {
        if let Some(updates) = &mut self.updates
            && event.position > self.from
        {
            updates.push(FeedUpdate {
                position: event.position,
                tenant_id: event.tenant_id,
                kind: Kind::Removed,
                resource,
                project_id,
                task_id,
                event_type: event.event_type.clone(),
                data: ids.to_string(),
            });
        }
    }

    /// Writes what was recorded, in the batch's transaction.
    pub async fn save(self, tx: &mut Tx<'_>, projection: &str) -> Result<(), ProjectionError> {
        let Some(updates) = self.updates else {
            return Ok(());
        };
        if updates.is_empty() {
            return Ok(());
        }
        let now = tenet_events::envelope::now();
        // Order within one position: the order the projector recorded them.
        let seqs: Vec<i32> = updates
            .iter()
            .scan((Position(-1), 0), |(last, seq), update| {
                if update.position != *last {
                    *last = update.position;
                    *seq = 0;
                } else {
                    *seq += 1;
                }
                Some(*seq)
            })
            .collect();
        match tx {
            Tx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO feed_updates (projection, position, seq, tenant_id, kind, resource, \
                       resource_id, project_id, task_id, event_type, data, recorded_at) \
                     SELECT $1, u.*, $12 FROM unnest($2::int8[], $3::int4[], $4::uuid[], $5::text[], \
                       $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::text[], $11::text[]) AS u \
                     ON CONFLICT DO NOTHING",
                )
                .bind(projection)
                .bind(updates.iter().map(|u| u.position.0).collect::<Vec<_>>())
                .bind(&seqs)
                .bind(updates.iter().map(|u| u.tenant_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.kind.as_str()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.resource.name()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.resource.uuid()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.project_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.task_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.event_type.as_str()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.data.as_str()).collect::<Vec<_>>())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Sqlite(tx) => {
                for (update, seq) in updates.iter().zip(seqs) {
                    sqlx::query(
                        "INSERT INTO feed_updates (projection, position, seq, tenant_id, kind, \
                           resource, resource_id, project_id, task_id, event_type, data, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(projection)
                    .bind(update.position.0)
                    .bind(seq)
                    .bind(update.tenant_id)
                    .bind(update.kind.as_str())
                    .bind(update.resource.name())
                    .bind(update.resource.uuid())
                    .bind(update.project_id)
                    .bind(update.task_id)
                    .bind(&update.event_type)
                    .bind(&update.data)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// A row of the outbox, read back.
#[derive(sqlx::FromRow)]
struct Row {
    position: i64,
    tenant_id: TenantId,
    kind: String,
    resource: String,
    resource_id: Uuid,
    project_id: Option<ProjectId>,
    task_id: Option<TaskId>,
    event_type: String,
    data: String,
}

impl Row {
    fn into_update(self) -> Option<FeedUpdate> {
        Some(FeedUpdate {
            position: Position(self.position),
            tenant_id: self.tenant_id,
            kind: Kind::parse(&self.kind)?,
            resource: Resource::parse(&self.resource, self.resource_id)?,
            project_id: self.project_id,
            task_id: self.task_id,
            event_type: self.event_type,
            data: self.data,
        })
    }
}

const COLUMNS: &str =
    "position, tenant_id, kind, resource, resource_id, project_id, task_id, event_type, data";

/// The order of the feed: log order, and within one event the projection
/// and the order it recorded.
const ORDER: &str = "ORDER BY position, projection, seq";

/// Every update of every tenant with a position in `(after, through]`, in
/// feed order. The range must lie below every writer's checkpoint.
pub async fn read_range(
    db: &Db,
    after: Position,
    through: Position,
) -> Result<Vec<FeedUpdate>, sqlx::Error> {
    let rows: Vec<Row> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM feed_updates WHERE position > $1 AND position <= $2 {ORDER}"
        )))
        .bind(after.0)
        .bind(through.0)
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().filter_map(Row::into_update).collect())
}

/// Which updates of a tenant a resume reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Project(ProjectId),
    Task(TaskId),
}

/// Where a page of a resume starts: after a position, or after the
/// feed-order key of the previous page's last row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    position: i64,
    /// `None`: after every row of `position`.
    within: Option<(String, i32)>,
}

impl Cursor {
    pub fn after(position: Position) -> Cursor {
        Cursor {
            position: position.0,
            within: None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PagedRow {
    #[sqlx(flatten)]
    row: Row,
    projection: String,
    seq: i32,
}

/// One page of a tenant's updates after `cursor` and at or before
/// `through`, narrowed to `scope`, in feed order; with the cursor of the
/// next page when there may be more.
pub async fn read_tenant(
    db: &Db,
    tenant: TenantId,
    scope: Scope,
    cursor: &Cursor,
    through: Position,
    limit: i64,
) -> Result<(Vec<FeedUpdate>, Option<Cursor>), sqlx::Error> {
    let mut next_placeholder = 5;
    let mut placeholder = || {
        let this = format!("${next_placeholder}");
        next_placeholder += 1;
        this
    };
    let after = match &cursor.within {
        None => "position > $4".to_owned(),
        Some(_) => {
            let (projection, seq) = (placeholder(), placeholder());
            format!(
                "(position > $4 OR (position = $4 AND (projection > {projection} \
                 OR (projection = {projection} AND seq > {seq}))))"
            )
        }
    };
    let (filter, id) = match scope {
        Scope::Tenant => (String::new(), None),
        Scope::Project(project) => (
            format!(" AND project_id = {}", placeholder()),
            Some(project.as_uuid()),
        ),
        Scope::Task(task) => (
            format!(" AND task_id = {}", placeholder()),
            Some(task.as_uuid()),
        ),
    };
    let sql = format!(
        "SELECT {COLUMNS}, projection, seq FROM feed_updates \
         WHERE tenant_id = $1 AND position <= $2 AND {after}{filter} {ORDER} LIMIT $3"
    );
    let rows: Vec<PagedRow> = with_pool!(db, pool => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant)
            .bind(through.0)
            .bind(limit)
            .bind(cursor.position);
        if let Some((projection, seq)) = &cursor.within {
            query = query.bind(projection.clone()).bind(*seq);
        }
        if let Some(id) = id {
            query = query.bind(id);
        }
        query.fetch_all(pool).await?
    });
    let next = (rows.len() as i64 >= limit)
        .then(|| rows.last())
        .flatten()
        .map(|last| Cursor {
            position: last.row.position,
            within: Some((last.projection.clone(), last.seq)),
        });
    Ok((
        rows.into_iter()
            .filter_map(|paged| paged.row.into_update())
            .collect(),
        next,
    ))
}

/// The position through which the outbox has been pruned: a resume from
/// before it would miss updates.
pub async fn horizon(db: &Db) -> Result<Position, sqlx::Error> {
    let position: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT position FROM feed_horizon WHERE id = 1")
            .fetch_optional(pool)
            .await?
    });
    Ok(Position(position.unwrap_or(0)))
}

/// The position through which every writer of the outbox has applied the
/// log (their active generations' checkpoints), from the database.
pub async fn watermark(db: &Db) -> Result<Position, sqlx::Error> {
    let mut lowest: Option<Position> = None;
    for name in WRITERS {
        let position = crate::checkpoints::active_position(db, name)
            .await?
            .unwrap_or(Position::START);
        lowest = Some(lowest.map_or(position, |lowest| lowest.min(position)));
    }
    Ok(lowest.unwrap_or(Position::START))
}

/// Deletes updates recorded before `cutoff` (and below the watermark, so a
/// lagging writer's rows are never cut out from under the live feed), and
/// moves the horizon past them. Answers how many rows went.
pub async fn prune(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let through = watermark(db).await?;
    let oldest_kept: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT max(position) FROM feed_updates WHERE recorded_at < $1 AND position <= $2",
        )
        .bind(cutoff)
        .bind(through.0)
        .fetch_one(pool)
        .await?
    });
    let Some(through) = oldest_kept else {
        return Ok(0);
    };
    let mut tx = db.begin().await?;
    let deleted = tenet_events::with_tx!(&mut tx, conn => {
        let deleted = sqlx::query("DELETE FROM feed_updates WHERE position <= $1")
            .bind(through)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("UPDATE feed_horizon SET position = $1 WHERE id = 1 AND position < $1")
            .bind(through)
            .execute(&mut *conn)
            .await?;
        deleted
    });
    tx.commit().await?;
    Ok(deleted)
}

/// Prunes the outbox every `every`, keeping `retention`, until shutdown.
pub async fn run_pruner(db: Db, retention: Duration, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            continue;
        };
        match prune(&db, tenet_events::envelope::now() - retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned the feed outbox"),
            Err(error) => tracing::warn!(%error, "cannot prune the feed outbox"),
        }
    }
}

/// The NATS subject on which projector processes announce the checkpoints
/// of the outbox's writers (`name:position`).
pub fn announcement_subject(bus: &Bus) -> String {
    format!("{}.feed.checkpoints", bus.prefix())
}

/// Announces, on NATS, each advance of the outbox writers' checkpoints that
/// this process sees, until shutdown. Query instances elsewhere learn from
/// it that the feed can move on (the outbox in the database stays the
/// source of truth; a lost announcement only delays delivery until the
/// next one, or the database notification, or the poll).
pub async fn announce(db: Db, checkpoints: Checkpoints, bus: Bus, shutdown: CancellationToken) {
    let subject = announcement_subject(&bus);
    let mut tasks = tokio::task::JoinSet::new();
    for name in WRITERS {
        let (db, checkpoints, bus, subject, shutdown) = (
            db.clone(),
            checkpoints.clone(),
            bus.clone(),
            subject.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            let mut announced = Position::START;
            while !shutdown.is_cancelled() {
                let waited = tokio::select! {
                    () = shutdown.cancelled() => return,
                    waited = checkpoints.follow_to(&db, name, announced.next(), Duration::from_secs(5)) => waited,
                };
                if let Err(crate::checkpoints::WaitError::Database(error)) = waited {
                    tracing::debug!(%error, "cannot read checkpoints to announce");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                let reached = checkpoints.current(name);
                if reached <= announced {
                    continue;
                }
                let payload = format!("{name}:{reached}");
                if let Err(error) = bus.client.publish(subject.clone(), payload.into()).await {
                    tracing::debug!(%error, "cannot announce a checkpoint");
                    continue;
                }
                announced = reached;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Follows the announcements of [`announce`] (from every projector
/// process) into this process's checkpoint registry, until shutdown.
pub async fn follow_announcements(bus: Bus, checkpoints: Checkpoints, shutdown: CancellationToken) {
    use futures::StreamExt;
    while !shutdown.is_cancelled() {
        let mut subscription = match bus.client.subscribe(announcement_subject(&bus)).await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to feed announcements; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = subscription.next() => message,
            };
            let Some(message) = message else { break };
            if let Some((name, position)) = parse_announcement(&message.payload)
                && WRITERS.contains(&name)
            {
                checkpoints.advance(name, position);
            }
        }
    }
}

fn parse_announcement(payload: &[u8]) -> Option<(&str, Position)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, position) = text.rsplit_once(':')?;
    Some((name, Position(position.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_and_refuse_garbage() {
        assert_eq!(
            parse_announcement(b"tasks:42"),
            Some(("tasks", Position(42)))
        );
        assert_eq!(parse_announcement(b"tasks"), None);
        assert_eq!(parse_announcement(b"tasks:x"), None);
        assert_eq!(parse_announcement(&[0xff, b':', b'1']), None);
    }

    #[test]
    fn kinds_and_resources_round_trip() {
        for kind in [Kind::Update, Kind::Removed] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        let id = Uuid::now_v7();
        for resource in [
            Resource::Project(ProjectId::from_uuid(id)),
            Resource::Task(TaskId::from_uuid(id)),
            Resource::Comment(CommentId::from_uuid(id)),
        ] {
            assert_eq!(Resource::parse(resource.name(), id), Some(resource));
        }
        assert_eq!(Resource::parse("member", id), None);
    }
}
