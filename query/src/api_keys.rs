//! Reading a workspace's API keys, never with their secrets (from the
//! access model, which is always current: no consistency wait).

use axum::extract::State;
use serde::Deserialize;
use tenet_http::auth::{ApiKeysRead, Scoped};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query};
use tenet_projections::access::{ApiKeyView, KeyStatus, api_keys};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::ScopedErrors;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(list_api_keys))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListApiKeys {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `active` (default: neither revoked nor expired), `expired`, `revoked` or `all`.
    #[param(pattern = "^(active|expired|revoked|all)$")]
    pub status: Option<String>,
}

/// `GET /api/v1/workspaces/{workspace_id}/api-keys`: the workspace's keys,
/// newest first, never with their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/api-keys",
    tag = "api-keys",
    params(("workspace_id" = uuid::Uuid, Path), ListApiKeys),
    responses(
        (status = 200, description = "A page of API keys", body = Page<ApiKeyView>),
        ScopedErrors,
    ),
    security(("bearer" = ["api_keys:read"]))
)]
pub async fn list_api_keys(
    State(state): State<QueryState>,
    access: Scoped<ApiKeysRead>,
    Query(query): Query<ListApiKeys>,
    token: ConsistencyToken,
) -> Result<axum::Json<Page<ApiKeyView>>, ApiError> {
    state.valid_token(token).await?;
    let page = PageRequest::new(query.offset, query.limit)?;
    let status = match query.status.as_deref() {
        None | Some("active") => KeyStatus::Active,
        Some("expired") => KeyStatus::Expired,
        Some("revoked") => KeyStatus::Revoked,
        Some("all") => KeyStatus::All,
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be active, expired, revoked or all",
            ));
        }
    };
    let keys = api_keys(&state.db, access.workspace_id, status, page).await?;
    Ok(axum::Json(keys))
}
