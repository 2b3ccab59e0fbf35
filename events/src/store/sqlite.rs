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

use super::batch::{as_conflict, claims_to_check, run_inline, streams_to_check};
use super::commit::{BatchState, BatchWriter, GroupCommit, Plan, plan};
use super::handle::Store;
use super::reads;
use super::{AppendError, AppendRequest, Appended, StoreError, StoreOptions};
use crate::db::{Db, SqliteDb, Tx};
use crate::envelope::now;
use crate::ids::{Position, StreamId, TenantId};
use crate::projection::{self, Projector};

/// Opens the store on SQLite: registers the inline projections and starts
/// the writer on the one write connection.
pub(super) async fn open(db: SqliteDb, options: StoreOptions) -> Result<Store, StoreError> {
    let writer = db.writer.clone();
    let db = Db::Sqlite(db);
    for inline in &options.inline {
        projection::register_inline(&db, inline.name()).await?;
    }
    let (head, _) = watch::channel(reads::head(&db).await?);
    let writer = SqliteWriter {
        writer,
        inline: options.inline,
    };
    let commit = GroupCommit::start(Arc::new(writer), options.max_batch_events, head.clone());
    Ok(Store::new(db, commit, head, None))
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
    for (tenant, stream) in streams_to_check(batch) {
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
    for claim in claims_to_check(batch) {
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
               actor_name, actor_user_id, request_id, correlation_id, causation_id, occurred_at, \
               impersonated_by, traceparent, tracestate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
               $19, $20)",
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
        .bind(metadata.impersonated_by)
        .bind(metadata.traceparent.as_deref())
        .bind(metadata.tracestate.as_deref())
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
