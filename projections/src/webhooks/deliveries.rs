//! The delivery log of webhooks: per webhook, how far the dispatcher has
//! turned the log into deliveries (`webhook_cursors`), each delivery of
//! one event to one webhook (`webhook_deliveries`, unique per pair, so
//! its id — the `webhook-id` header — never changes) with the body it
//! sends on every attempt, and every attempt (`webhook_attempts`).
//!
//! Not a projection: the dispatcher writes these as it delivers (a
//! rebuild must never send everything again), and they are not
//! generations. Every read is scoped by tenant in SQL.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::db::Db;
use tenet_events::ids::{TenantId, WebhookId};
use tenet_events::{with_pool, with_tx};
use tenet_http::PageRequest;
use tenet_http::pagination::Page;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::listing::{Bind, Listing};

/// Where a delivery stands.
pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

/// How far one webhook's deliveries reach into the log.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Cursor {
    /// Every event of the tenant at or below it has its delivery row (or
    /// was not for this webhook).
    pub position: i64,
    /// The first failed attempt since the last success.
    pub failing_since: Option<DateTime<Utc>>,
}

/// A delivery about to be recorded.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub position: i64,
    pub event_type: String,
    pub body: String,
}

/// One delivery, as the dispatcher works on it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub position: i64,
    pub event_type: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, tenant_id, webhook_id, event_id, position, event_type, body, status, \
    attempts, next_attempt_at, created_at, updated_at, last_status_code, last_error";

/// One attempt, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct AttemptView {
    #[serde(skip)]
    pub delivery_id: Uuid,
    pub number: i32,
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's status code, if it answered.
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    /// The first bytes of its answer (up to 512).
    pub response: Option<String>,
    /// Why the attempt failed without an answer (timeout, refused address…).
    pub error: Option<String>,
}

/// One delivery, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header of every attempt.
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub position: i64,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed` (given up after about a day).
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

/// What one attempt came to.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery: Uuid,
    pub webhook: Uuid,
    pub number: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub response: Option<String>,
    pub error: Option<String>,
    /// The delivery's status after it, and its next attempt if pending.
    pub status: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The webhook's cursor, created at `start` if it has none.
pub async fn cursor(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
    start: i64,
) -> Result<Cursor, sqlx::Error> {
    let found: Option<Cursor> = with_pool!(db, pool => {
        sqlx::query_as("SELECT position, failing_since FROM webhook_cursors WHERE webhook_id = $1")
            .bind(webhook)
            .fetch_optional(pool)
            .await?
    });
    if let Some(cursor) = found {
        return Ok(cursor);
    }
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, conn => {
        sqlx::query(
            "INSERT INTO webhook_cursors (webhook_id, tenant_id, position) VALUES ($1, $2, $3) \
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(webhook)
        .bind(tenant)
        .bind(start)
        .execute(&mut *conn)
        .await?;
    });
    tx.commit().await?;
    Ok(with_pool!(db, pool => {
        sqlx::query_as("SELECT position, failing_since FROM webhook_cursors WHERE webhook_id = $1")
            .bind(webhook)
            .fetch_one(pool)
            .await?
    }))
}

/// Records deliveries (an existing one for the same event is kept, with
/// its id) and moves the cursor to `through`.
pub async fn add(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
    deliveries: &[NewDelivery],
    through: i64,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, conn => {
        for delivery in deliveries {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, position, event_type, body, \
                 status, attempts, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8) \
                 ON CONFLICT (webhook_id, event_id) DO NOTHING",
            )
            .bind(delivery.id)
            .bind(tenant)
            .bind(webhook)
            .bind(delivery.event_id)
            .bind(delivery.position)
            .bind(&delivery.event_type)
            .bind(&delivery.body)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("UPDATE webhook_cursors SET position = $2 WHERE webhook_id = $1 AND position < $2")
            .bind(webhook)
            .bind(through)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit().await
}

/// How many of the webhook's deliveries are pending.
pub async fn pending(db: &Db, webhook: WebhookId) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending'")
            .bind(webhook)
            .fetch_one(pool)
            .await
    })
}

/// The webhook's first pending delivery in log order: the only one it
/// may attempt, so deliveries arrive in log order.
pub async fn next_pending(db: &Db, webhook: WebhookId) -> Result<Option<DeliveryRow>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending' \
             ORDER BY position LIMIT 1"
        )))
        .bind(webhook)
        .fetch_optional(pool)
        .await
    })
}

/// When the oldest pending delivery of any webhook was recorded.
pub async fn oldest_pending(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT created_at FROM webhook_deliveries WHERE status = 'pending' ORDER BY created_at LIMIT 1",
        )
        .fetch_optional(pool)
        .await
    })
}

/// Records an attempt and what it means for its delivery and its
/// webhook's failing streak.
pub async fn record(db: &Db, attempt: &AttemptRecord) -> Result<(), sqlx::Error> {
    let succeeded = attempt.status == SUCCEEDED;
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, conn => {
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, duration_ms, response, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, number) DO NOTHING",
        )
        .bind(attempt.delivery)
        .bind(attempt.number)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code)
        .bind(attempt.duration_ms)
        .bind(&attempt.response)
        .bind(&attempt.error)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, \
             last_status_code = $5, last_error = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(attempt.delivery)
        .bind(attempt.status)
        .bind(attempt.number)
        .bind(attempt.next_attempt_at)
        .bind(attempt.status_code)
        .bind(&attempt.error)
        .bind(attempt.attempted_at)
        .execute(&mut *conn)
        .await?;
        if succeeded {
            sqlx::query("UPDATE webhook_cursors SET failing_since = NULL WHERE webhook_id = $1")
                .bind(attempt.webhook)
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query("UPDATE webhook_cursors SET failing_since = $2 WHERE webhook_id = $1 AND failing_since IS NULL")
                .bind(attempt.webhook)
                .bind(attempt.attempted_at)
                .execute(&mut *conn)
                .await?;
        }
    });
    tx.commit().await
}

/// Sends a delivery again (by hand): pending, due now. Answers whether
/// the tenant's webhook has it.
pub async fn retry(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
    delivery: Uuid,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let done = with_tx!(&mut tx, conn => {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, created_at = $4, updated_at = $4 \
             WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
        )
        .bind(tenant)
        .bind(webhook)
        .bind(delivery)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(done == 1)
}

/// One delivery of the tenant's webhook, with its attempts.
pub async fn get(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
    delivery: Uuid,
) -> Result<Option<DeliveryView>, sqlx::Error> {
    let row: Option<DeliveryRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3"
        )))
        .bind(tenant)
        .bind(webhook)
        .bind(delivery)
        .fetch_optional(pool)
        .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let mut views = with_attempts(db, vec![row]).await?;
    Ok(views.pop())
}

/// One page of a webhook's deliveries, newest first, with their attempts.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
    status: Option<&str>,
    page: PageRequest,
) -> Result<Page<DeliveryView>, sqlx::Error> {
    let mut listing = Listing::new(DELIVERY_COLUMNS, String::new(), "position DESC");
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    let webhook = listing.bind(Bind::Uuid(webhook.as_uuid()));
    listing.from =
        format!("FROM webhook_deliveries WHERE tenant_id = {tenant} AND webhook_id = {webhook}");
    if let Some(status) = status {
        let status = listing.bind(Bind::Text(status.to_owned()));
        listing.from.push_str(&format!(" AND status = {status}"));
    }
    let rows: Page<DeliveryRow> = listing.page(db, page).await?;
    let views = with_attempts(db, rows.items).await?;
    Ok(Page {
        items: views,
        total: rows.total,
        has_more: rows.has_more,
        offset: rows.offset,
        limit: rows.limit,
    })
}

async fn with_attempts(db: &Db, rows: Vec<DeliveryRow>) -> Result<Vec<DeliveryView>, sqlx::Error> {
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let attempts: Vec<AttemptView> = with_pool!(db, pool => {
            sqlx::query_as(
                "SELECT delivery_id, number, attempted_at, status_code, duration_ms, response, error \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY number",
            )
            .bind(row.id)
            .fetch_all(pool)
            .await?
        });
        views.push(DeliveryView {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            position: row.position,
            event_type: row.event_type,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_status_code: row.last_status_code,
            created_at: row.created_at,
            updated_at: row.updated_at,
            attempt_log: attempts,
        });
    }
    Ok(views)
}
