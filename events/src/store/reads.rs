//! The reads of the log, written once for both backends: the SQL agrees
//! (placeholders are `$N` on both, and `with_pool!` type-checks each copy
//! against its driver), except where only Postgres has a clock of its own
//! to ask. They read from the database's read pool: the pool itself on
//! Postgres, the readers on SQLite (which never wait for the writer).

use super::rows::{EVENT_COLUMNS, EventRow, into_recorded, limit_of};
use super::{Claim, LogQuery, StoreError, StoredResponse};
use crate::db::{Db, Pool};
use crate::envelope::{RecordedEvent, now};
use crate::ids::{Position, StreamId, TenantId};
use crate::with_pool;

/// Events of one stream with a version above `after_version`, in order.
pub(super) async fn read_stream(
    db: &Db,
    tenant_id: TenantId,
    stream_id: StreamId,
    after_version: i64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND stream_id = $2 \
         AND stream_version > $3 ORDER BY stream_version LIMIT $4"
    );
    let rows: Vec<EventRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(stream_id)
            .bind(after_version)
            .bind(limit_of(limit))
            .fetch_all(pool)
            .await?
    });
    into_recorded(rows)
}

/// Events of the log after `query.after`, of one tenant or of all, in
/// position order.
pub(super) async fn read_log(db: &Db, query: LogQuery) -> Result<Vec<RecordedEvent>, StoreError> {
    let limit = limit_of(query.limit);
    let rows: Vec<EventRow> = match query.tenant_id {
        Some(tenant_id) => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND position > $2 \
                 ORDER BY position LIMIT $3"
            );
            with_pool!(db, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant_id)
                    .bind(query.after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        }
        None => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 \
                 ORDER BY position LIMIT $2"
            );
            with_pool!(db, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(query.after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        }
    };
    into_recorded(rows)
}

/// The position of the last committed event.
pub(super) async fn head(db: &Db) -> Result<Position, StoreError> {
    let position: i64 = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(pool)
            .await?
    });
    Ok(Position(position))
}

/// The unexpired response stored for an idempotency key.
pub(super) async fn find_response(
    db: &Db,
    scope: &str,
    key: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    let row: Option<(String, serde_json::Value, i64)> = match db.pool() {
        // Postgres judges expiry by its own clock; SQLite is given this
        // process's.
        Pool::Postgres(pool) => {
            sqlx::query_as(
                "SELECT fingerprint, response, position FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2 AND expires_at > now()",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(pool)
            .await?
        }
        Pool::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT fingerprint, response, position FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2 AND expires_at > $3",
            )
            .bind(scope)
            .bind(key)
            .bind(now())
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(row.map(|(fingerprint, response, position)| StoredResponse {
        fingerprint,
        response,
        position: Position(position),
    }))
}

/// Which stream holds a claimed value.
pub(super) async fn find_claim(
    db: &Db,
    claim: &Claim,
) -> Result<Option<(TenantId, StreamId)>, StoreError> {
    let row: Option<(TenantId, StreamId)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT tenant_id, stream_id FROM unique_claims WHERE scope = $1 AND value = $2",
        )
        .bind(&claim.scope)
        .bind(&claim.value)
        .fetch_optional(pool)
        .await?
    });
    Ok(row)
}
