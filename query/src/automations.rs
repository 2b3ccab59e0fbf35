//! Reading automations and their executions, from the asynchronous
//! `automations` read model (with read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::ids::{AutomationId, ExecutionId, ProjectId, WorkspaceId};
use tenet_http::auth::{Access, AutomationsRead, Scoped};
use tenet_http::headers::etag;
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query};
use tenet_projections::automations::{self, AutomationView, ExecutionView};
use tenet_projections::projects;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_automations))
        .routes(routes!(get_automation))
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

#[derive(Debug, Deserialize)]
pub struct AutomationPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub automation_id: AutomationId,
}

#[derive(Debug, Deserialize)]
pub struct ExecutionPath {
    pub workspace_id: WorkspaceId,
    pub execution_id: ExecutionId,
}

/// The automation of the path's project, or 404.
async fn automation_of(
    state: &QueryState,
    access: &Access,
    path: &AutomationPath,
) -> Result<AutomationView, ApiError> {
    automations::get(&state.db, access.tenant(), path.automation_id)
        .await?
        .filter(|automation| automation.project_id == path.project_id)
        .ok_or_else(|| ApiError::not_found("No such automation"))
}

/// `GET /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations`:
/// a page of the project's automations, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListPage,
    ),
    responses(
        (status = 200, description = "A page of automations", body = Page<AutomationView>),
        ReadErrors,
    ),
    security(("bearer" = ["automations:read"]))
)]
pub async fn list_automations(
    State(state): State<QueryState>,
    access: Scoped<AutomationsRead>,
    Path(path): Path<ProjectPath>,
    token: ConsistencyToken,
    Query(query): Query<ListPage>,
) -> Result<axum::Json<Page<AutomationView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, projects::NAME).await?;
    state.caught_up(token, automations::NAME).await?;
    if !projects::exists(&state.db, access.tenant(), path.project_id).await? {
        return Err(ApiError::not_found("No such project"));
    }
    Ok(axum::Json(
        automations::list(&state.db, access.tenant(), path.project_id, page).await?,
    ))
}

/// `GET /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}`:
/// one automation, with its `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("automation_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The automation", body = AutomationView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["automations:read"]))
)]
pub async fn get_automation(
    State(state): State<QueryState>,
    access: Scoped<AutomationsRead>,
    Path(path): Path<AutomationPath>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.caught_up(token, automations::NAME).await?;
    let automation = automation_of(&state, &access, &path).await?;
    Ok((
        [(header::ETAG, etag(automation.version))],
        axum::Json(automation),
    )
        .into_response())
}

/// `GET /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}/executions`:
/// a page of the automation's executions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}/executions",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("automation_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListPage,
    ),
    responses(
        (status = 200, description = "A page of executions", body = Page<ExecutionView>),
        ReadErrors,
    ),
    security(("bearer" = ["automations:read"]))
)]
pub async fn list_executions(
    State(state): State<QueryState>,
    access: Scoped<AutomationsRead>,
    Path(path): Path<AutomationPath>,
    token: ConsistencyToken,
    Query(query): Query<ListPage>,
) -> Result<axum::Json<Page<ExecutionView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, automations::NAME).await?;
    automation_of(&state, &access, &path).await?;
    Ok(axum::Json(
        automations::executions(&state.db, access.tenant(), path.automation_id, page).await?,
    ))
}

/// `GET /api/v1/workspaces/{workspace_id}/executions/{execution_id}`: one
/// execution of an automation, with its status and every step's.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/executions/{execution_id}",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("execution_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The execution", body = ExecutionView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["automations:read"]))
)]
pub async fn get_execution(
    State(state): State<QueryState>,
    access: Scoped<AutomationsRead>,
    Path(path): Path<ExecutionPath>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.caught_up(token, automations::NAME).await?;
    let execution = automations::execution(&state.db, access.tenant(), path.execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such execution"))?;
    Ok((
        [(header::ETAG, etag(execution.version))],
        axum::Json(execution),
    )
        .into_response())
}
