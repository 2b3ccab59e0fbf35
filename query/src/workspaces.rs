//! Reading workspaces: the caller's list, and one workspace.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_http::auth::{Credential, Principal, Scoped, WorkspaceRead};
use tenet_http::headers::etag;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query, Sort};
use tenet_projections::access::{WorkspaceOrder, WorkspaceView, workspace, workspaces};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::{CallerErrors, CallerLookupErrors};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_workspaces))
        .routes(routes!(get_workspace))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWorkspaces {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `name`, `slug`, `created_at` (default) or `updated_at`; `-` prefix for descending.
    #[param(pattern = "^-?(name|slug|created_at|updated_at)$")]
    pub sort: Option<String>,
}

/// `GET /api/v1/workspaces`: the workspaces the caller belongs to.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    params(ListWorkspaces),
    responses(
        (status = 200, description = "A page of workspaces", body = Page<WorkspaceView>),
        CallerErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_workspaces(
    State(state): State<QueryState>,
    principal: Principal,
    token: ConsistencyToken,
    Query(query): Query<ListWorkspaces>,
) -> Result<axum::Json<Page<WorkspaceView>>, ApiError> {
    state.valid_token(token).await?;
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("name", WorkspaceOrder::Name),
            ("slug", WorkspaceOrder::Slug),
            ("created_at", WorkspaceOrder::CreatedAt),
            ("updated_at", WorkspaceOrder::UpdatedAt),
        ],
        Sort {
            field: WorkspaceOrder::CreatedAt,
            descending: false,
        },
    )?;
    // An API key sees only its own workspace.
    let only = match &principal.credential {
        Credential::ApiKey { workspace_id, .. } => Some(*workspace_id),
        Credential::Token { .. } | Credential::Impersonation { .. } => None,
    };
    let listed = workspaces(&state.db, principal.user_id, only, sort, page).await?;
    Ok(axum::Json(listed))
}

/// `GET /api/v1/workspaces/{workspace_id}`: one workspace, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView, headers(("ETag" = String))),
        CallerLookupErrors,
    ),
    security(("bearer" = ["workspace:read"]))
)]
pub async fn get_workspace(
    State(state): State<QueryState>,
    access: Scoped<WorkspaceRead>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.valid_token(token).await?;
    let found = workspace(&state.db, access.workspace_id, access.principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such workspace"))?;
    Ok(([(header::ETAG, etag(found.version))], axum::Json(found)).into_response())
}
