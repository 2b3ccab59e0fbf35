//! Reading the outbox: ranges for the feed worker, pages of a tenant for a
//! resume, the horizon and the watermark.

use tenet_events::db::Db;
use tenet_events::ids::{Position, ProjectId, TaskId, TenantId};
use tenet_events::with_pool;
use uuid::Uuid;

use super::{FeedUpdate, Kind, Resource};

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

/// The position through which every one of the outbox's `writers` has
/// applied the log (their active generations' checkpoints), from the
/// database.
pub async fn watermark(db: &Db, writers: &[&str]) -> Result<Position, sqlx::Error> {
    let mut lowest: Option<Position> = None;
    for name in writers {
        let position = crate::checkpoints::active_position(db, name)
            .await?
            .unwrap_or(Position::START);
        lowest = Some(lowest.map_or(position, |lowest| lowest.min(position)));
    }
    Ok(lowest.unwrap_or(Position::START))
}
