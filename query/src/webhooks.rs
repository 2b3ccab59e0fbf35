//! Reading a workspace's webhooks (never their secrets), from the
//! webhooks read model.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::ids::{WebhookId, WorkspaceId};
use tenet_http::auth::{Scoped, WebhooksRead};
use tenet_http::headers::etag;
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query};
use tenet_projections::webhooks::deliveries::{self, DeliveryView};
use tenet_projections::webhooks::{self, WebhookView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks))
        .routes(routes!(get_webhook))
        .routes(routes!(list_deliveries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `pending`, `succeeded` or `failed` (default: all).
    #[param(pattern = "^(pending|succeeded|failed)$")]
    pub status: Option<String>,
}

/// `GET /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries`:
/// the webhook's deliveries, newest event first, each with every attempt
/// (time, status code, duration, the first bytes of the answer, error).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ListDeliveries,
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
        ReadErrors,
    ),
    security(("bearer" = ["webhooks:read"]))
)]
pub async fn list_deliveries(
    State(state): State<QueryState>,
    access: Scoped<WebhooksRead>,
    Path(path): Path<WebhookPath>,
    Query(query): Query<ListDeliveries>,
    token: ConsistencyToken,
) -> Result<axum::Json<Page<DeliveryView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(status @ (deliveries::PENDING | deliveries::SUCCEEDED | deliveries::FAILED)) => {
            Some(status)
        }
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be pending, succeeded or failed",
            ));
        }
    };
    state.caught_up(token, webhooks::NAME).await?;
    if webhooks::get(&state.db, access.tenant(), path.webhook_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("No such webhook"));
    }
    Ok(axum::Json(
        deliveries::list(&state.db, access.tenant(), path.webhook_id, status, page).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooks {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct WebhookPath {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

/// `GET /api/v1/workspaces/{workspace_id}/webhooks`: the workspace's
/// webhooks, oldest first, never with their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/webhooks",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ListWebhooks,
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "A page of webhooks", body = Page<WebhookView>),
        ReadErrors,
    ),
    security(("bearer" = ["webhooks:read"]))
)]
pub async fn list_webhooks(
    State(state): State<QueryState>,
    access: Scoped<WebhooksRead>,
    Query(query): Query<ListWebhooks>,
    token: ConsistencyToken,
) -> Result<axum::Json<Page<WebhookView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, webhooks::NAME).await?;
    Ok(axum::Json(
        webhooks::list(&state.db, access.tenant(), page).await?,
    ))
}

/// `GET /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}`: one
/// webhook, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The webhook", body = WebhookView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["webhooks:read"]))
)]
pub async fn get_webhook(
    State(state): State<QueryState>,
    access: Scoped<WebhooksRead>,
    Path(path): Path<WebhookPath>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.caught_up(token, webhooks::NAME).await?;
    let webhook = webhooks::get(&state.db, access.tenant(), path.webhook_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such webhook"))?;
    Ok(([(header::ETAG, etag(webhook.version))], axum::Json(webhook)).into_response())
}
