//! Reading a batch's rows of a read model at once: what every batched
//! projector does before applying events in memory.

use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use tenet_events::db::Tx;
use tenet_events::ids::TenantId;
use tenet_events::projection::ProjectionError;
use uuid::Uuid;

/// The rows of one generation of `table` with the given (tenant, id) keys:
/// one round trip on Postgres; on SQLite, in-process lookups by key.
pub(crate) async fn load<T>(
    tx: &mut Tx<'_>,
    table: &str,
    columns: &str,
    generation: i32,
    keys: impl IntoIterator<Item = (TenantId, Uuid)>,
) -> Result<Vec<T>, ProjectionError>
where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    let (tenants, ids): (Vec<TenantId>, Vec<Uuid>) = keys.into_iter().unzip();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT r.* FROM unnest($2::uuid[], $3::uuid[]) AS k(tenant_id, id) \
                 CROSS JOIN LATERAL (SELECT {columns} FROM {table} v \
                   WHERE v.generation = $1 AND v.tenant_id = k.tenant_id AND v.id = k.id LIMIT 1) AS r"
            )))
            .bind(generation)
            .bind(&tenants)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?
        }
        Tx::Sqlite(tx) => {
            let mut found = Vec::with_capacity(ids.len());
            for (tenant, id) in tenants.iter().zip(&ids) {
                let row: Option<T> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {columns} FROM {table} WHERE generation = $1 AND tenant_id = $2 AND id = $3"
                )))
                .bind(generation)
                .bind(tenant)
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                found.extend(row);
            }
            found
        }
    })
}
