//! Reading projects: paged, filtered, sorted lists and single projects,
//! from the asynchronous `projects` read model (with read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::ids::{ProjectId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::auth::{ProjectsRead, Scoped};
use tenet_http::headers::etag;
use tenet_http::openapi::{
    BadRequest, NotFound, ReadErrors, Unauthenticated, Unavailable, Unprocessable,
};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query, Sort};
use tenet_projections::projects::{self, GENERATION, ProjectRow, ProjectView};
use tenet_projections::table::columns;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::search::{Words, like_pattern};
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
    pub sort: Option<String>,
    /// `active` (default), `archived` or `all`.
    pub status: Option<String>,
    /// Words that must all appear (any order, any case) in the name, slug or description.
    pub search: Option<String>,
}

#[derive(Clone, Copy)]
enum Field {
    Name,
    Slug,
    CreatedAt,
    UpdatedAt,
}

impl Field {
    fn column(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Slug => "slug",
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
        }
    }
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = tenet_http::openapi::Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
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
            ("name", Field::Name),
            ("slug", Field::Slug),
            ("created_at", Field::CreatedAt),
            ("updated_at", Field::UpdatedAt),
        ],
        Sort {
            field: Field::CreatedAt,
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

    let tenant = access.tenant();
    let (rows, total) = with_pool!(state.db, pool => {
        let mut select = sqlx::QueryBuilder::new(format!("SELECT {} FROM projects_view WHERE generation = {GENERATION} AND tenant_id = ", columns::<ProjectRow>()));
        select.push_bind(tenant);
        let mut count = sqlx::QueryBuilder::new(format!("SELECT count(*) FROM projects_view WHERE generation = {GENERATION} AND tenant_id = "));
        count.push_bind(tenant);
        for builder in [&mut select, &mut count] {
            if let Some(status) = status {
                builder.push(" AND status = ").push_bind(status.as_str());
            }
            for word in words.iter() {
                builder.push(" AND search LIKE ").push_bind(like_pattern(word)).push(" ESCAPE '\\'");
            }
        }
        select
            .push(format!(" ORDER BY {} {dir}, id {dir} LIMIT ", sort.field.column(), dir = sort.direction()))
            .push_bind(page.limit_i64())
            .push(" OFFSET ")
            .push_bind(page.offset_i64());
        let rows: Vec<ProjectRow> = select.build_query_as().fetch_all(pool).await?;
        let total: i64 = if words.is_empty() {
            // The projector's counts answer without scanning the rows.
            let mut counted = sqlx::QueryBuilder::new(format!(
                "SELECT CAST(coalesce(sum(count), 0) AS BIGINT) FROM project_counts WHERE generation = {GENERATION} AND tenant_id = "
            ));
            counted.push_bind(tenant);
            if let Some(status) = status {
                counted.push(" AND status = ").push_bind(status.as_str());
            }
            counted.build_query_scalar().fetch_one(pool).await?
        } else {
            count.build_query_scalar().fetch_one(pool).await?
        };
        (rows, total)
    });
    let items = rows.iter().map(ProjectRow::to_view).collect();
    Ok(axum::Json(page.page(items, total.max(0) as u64)))
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
    let row: Option<ProjectRow> = with_pool!(state.db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM projects_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<ProjectRow>()
        )))
        .bind(access.tenant())
        .bind(path.project_id)
        .fetch_optional(pool)
        .await?
    });
    let project = row
        .ok_or_else(|| ApiError::not_found("No such project"))?
        .to_view();
    Ok(([(header::ETAG, etag(project.version))], axum::Json(project)).into_response())
}
