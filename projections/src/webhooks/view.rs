//! The webhooks read model (`webhooks_view`): a webhook as the API shows
//! it (never its secret), and the rows the dispatcher delivers from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use tenet_events::db::Db;
use tenet_events::ids::{TenantId, UserId, WebhookId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::PageRequest;
use tenet_http::pagination::Page;
use utoipa::ToSchema;

use super::GENERATION;
use crate::listing::{Bind, Listing};
use crate::table::{columns, table};

/// A webhook, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    /// Where deliveries are POSTed.
    pub url: String,
    pub description: String,
    /// Exact event types or prefixes ending in `.`; empty: every event.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the service disabled it (its deliveries failed for days).
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `webhooks_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct WebhookRow in webhooks_view {
        key {
            tenant_id: TenantId,
            id: WebhookId,
        }
        fixed {
            created_by: UserId,
            created_at: DateTime<Utc>,
        }
        set {
            url: String,
            description: String,
            event_types: Json<Vec<String>>,
            enabled: bool,
            /// Events after this position are delivered: its creation, or
            /// the event that last enabled it.
            active_from: i64,
            disabled_reason: Option<String>,
            /// The signing secret, sealed (`tenet_http::auth::sealed`).
            sealed_secret: String,
            /// The secret before the last rotation, sealed, and until when
            /// it still signs.
            sealed_previous: Option<String>,
            previous_until: Option<DateTime<Utc>>,
            updated_at: DateTime<Utc>,
            deleted_at: Option<DateTime<Utc>>,
            version: i64,
        }
        guard "webhooks_view.version <= EXCLUDED.version";
    }
}

impl WebhookRow {
    pub fn to_view(&self) -> WebhookView {
        WebhookView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.0.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            previous_secret_until: self.previous_until,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

/// A webhook's row (with its sealed secrets), unless deleted.
pub async fn get_row(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM webhooks_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            columns::<WebhookRow>()
        )))
        .bind(tenant)
        .bind(webhook)
        .fetch_optional(pool)
        .await?
    }))
}

/// A webhook as the read model shows it now.
pub async fn get(
    db: &Db,
    tenant: TenantId,
    webhook: WebhookId,
) -> Result<Option<WebhookView>, sqlx::Error> {
    Ok(get_row(db, tenant, webhook).await?.map(|row| row.to_view()))
}

/// One page of a workspace's webhooks, oldest first.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Page<WebhookView>, sqlx::Error> {
    let mut listing = Listing::new(
        columns::<WebhookRow>(),
        String::new(),
        "created_at ASC, id ASC",
    );
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    listing.from = format!(
        "FROM webhooks_view WHERE generation = {GENERATION} AND tenant_id = {tenant} AND deleted_at IS NULL"
    );
    let rows: Page<WebhookRow> = listing.page(db, page).await?;
    Ok(rows.map(|row| row.to_view()))
}

/// Every enabled webhook of every workspace: what the dispatcher delivers to.
pub async fn enabled(db: &Db) -> Result<Vec<WebhookRow>, sqlx::Error> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM webhooks_view WHERE generation = {GENERATION} AND enabled AND deleted_at IS NULL",
            columns::<WebhookRow>()
        )))
        .fetch_all(pool)
        .await?
    }))
}
