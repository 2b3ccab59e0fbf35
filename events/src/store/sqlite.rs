//! The event store on SQLite (embedded mode).
//!
//! The same group-commit loop as Postgres feeds one write connection; SQLite
//! itself admits one writer at a time, so positions commit in order. Rows
//! are inserted one statement at a time: in-process statements cost
//! microseconds, and the prepared statement is cached.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::watch;

use super::batch::{as_conflict, run_inline};
use super::commit::{BatchState, BatchWriter, GroupCommit, Plan, plan};
use super::rows::{EVENT_COLUMNS, EventRow, into_recorded, limit_of};
use super::{
    AppendError, AppendRequest, Appended, Claim, EventStore, LogQuery, PendingAppend, StoreError,
    StoreOptions, StoredResponse,
};
use crate::db::{Db, SqliteDb, Tx};
use crate::envelope::{RecordedEvent, now};
use crate::ids::{Position, StreamId, TenantId};
use crate::projection::{self, Projector};

pub struct SqliteStore {
    reader: SqlitePool,
    commit: GroupCommit,
    head: watch::Sender<Position>,
}

impl SqliteStore {
    pub async fn open(db: SqliteDb, options: StoreOptions) -> Result<Self, StoreError> {
        for inline in &options.inline {
            projection::register_inline(&Db::Sqlite(db.clone()), inline.name()).await?;
        }
        let current: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&db.writer)
            .await?;
        let (head, _) = watch::channel(Position(current));
        let writer = SqliteWriter {
            writer: db.writer.clone(),
            inline: options.inline,
        };
        let commit = GroupCommit::start(Arc::new(writer), options.max_batch_events, head.clone());
        Ok(SqliteStore {
            reader: db.reader,
            commit,
            head,
        })
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn submit(&self, request: AppendRequest) -> Result<PendingAppend, AppendError> {
        self.commit.submit(request).await
    }

    async fn read_stream(
        &self,
        tenant_id: TenantId,
        stream_id: StreamId,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND stream_id = $2 \
             AND stream_version > $3 ORDER BY stream_version LIMIT $4"
        );
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(stream_id)
            .bind(after_version)
            .bind(limit_of(limit))
            .fetch_all(&self.reader)
            .await?;
        into_recorded(rows)
    }

    async fn read_log(&self, query: LogQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = match query.tenant_id {
            Some(tenant_id) => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND position > $2 \
                     ORDER BY position LIMIT $3"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant_id)
                    .bind(query.after)
                    .bind(limit_of(query.limit))
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 \
                     ORDER BY position LIMIT $2"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(query.after)
                    .bind(limit_of(query.limit))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        into_recorded(rows)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let position: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&self.reader)
            .await?;
        Ok(Position(position))
    }

    async fn find_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row: Option<(String, serde_json::Value, i64)> = sqlx::query_as(
            "SELECT fingerprint, response, position FROM idempotency_keys \
             WHERE scope = $1 AND key = $2 AND expires_at > $3",
        )
        .bind(scope)
        .bind(key)
        .bind(now())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(fingerprint, response, position)| StoredResponse {
            fingerprint,
            response,
            position: Position(position),
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<(TenantId, StreamId)>, StoreError> {
        let row: Option<(TenantId, StreamId)> = sqlx::query_as(
            "SELECT tenant_id, stream_id FROM unique_claims WHERE scope = $1 AND value = $2",
        )
        .bind(&claim.scope)
        .bind(&claim.value)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

struct SqliteWriter {
    writer: SqlitePool,
    inline: Vec<Arc<dyn Projector>>,
}

#[async_trait]
impl BatchWriter for SqliteWriter {
    async fn write(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        as_conflict(batch, self.write_batch(batch).await)
    }
}

impl SqliteWriter {
    async fn write_batch(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let state = read_state(&mut tx, batch).await?;
        let plan = plan(batch, state);
        if plan.is_empty() {
            tx.rollback().await?;
            return Ok(plan.outcomes);
        }
        insert_events(&mut tx, batch, &plan).await?;
        write_claims(&mut tx, &plan).await?;
        write_responses(&mut tx, batch, &plan).await?;
        let mut tx = Tx::Sqlite(tx);
        if !self.inline.is_empty() {
            let recorded = plan.recorded(batch);
            run_inline(&mut tx, &self.inline, &recorded).await?;
        }
        tx.commit().await?;
        Ok(plan.outcomes)
    }
}

async fn read_state(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[AppendRequest],
) -> Result<BatchState, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(&mut **tx)
        .await?;
    let mut versions = HashMap::new();
    let streams: HashSet<(TenantId, StreamId)> = batch
        .iter()
        .flat_map(|r| {
            r.segments()
                .filter(|segment| !segment.new_stream)
                .map(move |segment| (r.tenant_id, segment.stream_id))
        })
        .collect();
    for (tenant, stream) in streams {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(stream_version) FROM events WHERE tenant_id = $1 AND stream_id = $2",
        )
        .bind(tenant)
        .bind(stream)
        .fetch_one(&mut **tx)
        .await?;
        if let Some(version) = version {
            versions.insert((tenant, stream), version);
        }
    }
    let mut claims = HashMap::new();
    let wanted: HashSet<&Claim> = batch
        .iter()
        .flat_map(|r| r.claims.iter().chain(&r.releases))
        .collect();
    for claim in wanted {
        let holder: Option<(TenantId, StreamId)> = sqlx::query_as(
            "SELECT tenant_id, stream_id FROM unique_claims WHERE scope = $1 AND value = $2",
        )
        .bind(&claim.scope)
        .bind(&claim.value)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(holder) = holder {
            claims.insert((claim.scope.clone(), claim.value.clone()), holder);
        }
    }
    let mut used_keys = HashSet::new();
    let current = now();
    for record in batch.iter().filter_map(|r| r.idempotency.as_ref()) {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > $3",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(current)
        .fetch_optional(&mut **tx)
        .await?;
        if used.is_some() {
            used_keys.insert((record.scope.clone(), record.key.clone()));
        }
    }
    Ok(BatchState {
        head: Position(head),
        versions,
        claims,
        used_keys,
    })
}

async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[AppendRequest],
    plan: &Plan,
) -> Result<(), StoreError> {
    for planned in &plan.events {
        let request = &batch[planned.request];
        let event = planned.event(batch);
        let metadata = &request.metadata;
        sqlx::query(
            "INSERT INTO events (position, tenant_id, event_id, stream_id, stream_type, \
               stream_version, event_type, schema_version, data, actor_type, actor_id, \
               actor_name, actor_user_id, request_id, correlation_id, causation_id, occurred_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(planned.position.0)
        .bind(request.tenant_id)
        .bind(event.event_id)
        .bind(planned.stream_id)
        .bind(planned.stream_type)
        .bind(planned.stream_version)
        .bind(event.event_type.as_ref())
        .bind(event.schema_version)
        .bind(event.data.to_string())
        .bind(metadata.actor.kind())
        .bind(metadata.actor.id())
        .bind(metadata.actor.name())
        .bind(metadata.actor.user_id())
        .bind(metadata.request_id.as_deref())
        .bind(metadata.correlation_id)
        .bind(metadata.causation_id)
        .bind(request.occurred_at)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE event_log_head SET position = $1")
        .bind(plan.head.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_claims(tx: &mut Transaction<'_, Sqlite>, plan: &Plan) -> Result<(), StoreError> {
    for (scope, value) in &plan.released {
        sqlx::query("DELETE FROM unique_claims WHERE scope = $1 AND value = $2")
            .bind(scope)
            .bind(value)
            .execute(&mut **tx)
            .await?;
    }
    let claimed_at = now();
    for (scope, value, tenant, stream) in &plan.claimed {
        sqlx::query(
            "INSERT INTO unique_claims (scope, value, tenant_id, stream_id, claimed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(scope)
        .bind(value)
        .bind(tenant)
        .bind(stream)
        .bind(claimed_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_responses(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[AppendRequest],
    plan: &Plan,
) -> Result<(), StoreError> {
    for (index, position) in &plan.idempotent {
        let request = &batch[*index];
        let Some(record) = &request.idempotency else {
            continue;
        };
        sqlx::query(
            "INSERT OR REPLACE INTO idempotency_keys \
               (scope, key, fingerprint, response, position, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.fingerprint)
        .bind(record.response.to_string())
        .bind(position.0)
        .bind(request.occurred_at)
        .bind(record.expires_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
