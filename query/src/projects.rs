//! Reading projects: paged, filtered, sorted lists and single projects,
//! from the asynchronous `projects` read model (with read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::ids::{ProjectId, WorkspaceId};
use tenet_http::auth::{ProjectsRead, Scoped};
use tenet_http::headers::etag;
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query, Sort};
use tenet_projections::projects::{self, ProjectOrder, ProjectView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::search::Words;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects))
        .routes(routes!(get_project))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListProjects {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `name`, `slug`, `created_at` (default) or `updated_at`; `-` prefix for descending.
    #[param(pattern = "^-?(name|slug|created_at|updated_at)$")]
    pub sort: Option<String>,
    /// `active` (default), `archived` or `all`.
    #[param(pattern = "^(active|archived|all)$")]
    pub status: Option<String>,
    /// Words that must all appear (any order, any case) in the name, slug or description.
    pub search: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

/// `GET /api/v1/workspaces/{workspace_id}/projects`: a page of projects.
/// Without `search`, `total` comes from counts the projector keeps, not
/// from counting rows.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListProjects,
    ),
    responses(
        (status = 200, description = "A page of projects", body = Page<ProjectView>),
        ReadErrors,
    ),
    security(("bearer" = ["projects:read"]))
)]
pub async fn list_projects(
    State(state): State<QueryState>,
    access: Scoped<ProjectsRead>,
    token: ConsistencyToken,
    Query(query): Query<ListProjects>,
) -> Result<axum::Json<Page<ProjectView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("name", ProjectOrder::Name),
            ("slug", ProjectOrder::Slug),
            ("created_at", ProjectOrder::CreatedAt),
            ("updated_at", ProjectOrder::UpdatedAt),
        ],
        Sort {
            field: ProjectOrder::CreatedAt,
            descending: false,
        },
    )?;
    let status = match query.status.as_deref() {
        None | Some("active") => Some(projects::ProjectStatus::Active),
        Some("archived") => Some(projects::ProjectStatus::Archived),
        Some("all") => None,
        Some(_) => return Err(ApiError::field("status", "must be active, archived or all")),
    };
    let words = Words::parse("search", query.search.as_deref())?;
    state.caught_up(token, projects::NAME).await?;

    let projects = projects::list(
        &state.db,
        access.tenant(),
        status,
        words.as_slice(),
        sort,
        page,
    )
    .await?;
    Ok(axum::Json(projects))
}

/// `GET /api/v1/workspaces/{workspace_id}/projects/{project_id}`: one
/// project, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        crate::tasks::AsOf,
    ),
    responses(
        (status = 200, description = "The project", body = ProjectView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["projects:read"]))
)]
pub async fn get_project(
    State(state): State<QueryState>,
    access: Scoped<ProjectsRead>,
    Path(path): Path<ProjectPath>,
    token: ConsistencyToken,
    Query(as_of): Query<crate::tasks::AsOf>,
) -> Result<Response, ApiError> {
    if let Some(at) = as_of.as_of {
        let project = crate::history::project_as_of(&state, access.tenant(), path.project_id, at)
            .await?
            .ok_or_else(|| ApiError::not_found("No such project at that time"))?;
        return Ok(([(header::ETAG, etag(project.version))], axum::Json(project)).into_response());
    }
    state.caught_up(token, projects::NAME).await?;
    let project = projects::get(&state.db, access.tenant(), path.project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such project"))?;
    Ok(([(header::ETAG, etag(project.version))], axum::Json(project)).into_response())
}
