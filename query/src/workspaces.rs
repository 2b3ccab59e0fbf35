//! Reading workspaces: the caller's list, and one workspace.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::http::auth::{Credential, Principal, Scoped, WorkspaceRead};
use tenet_events::http::headers::etag;
use tenet_events::http::openapi::{NotFound, Unauthenticated, Unprocessable};
use tenet_events::http::pagination::Page;
use tenet_events::http::{ApiError, PageRequest, Query, Sort};
use tenet_events::with_pool;
use tenet_projections::access::{GENERATION, WorkspaceView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    pub sort: Option<String>,
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
            Field::Name => "w.name",
            Field::Slug => "w.slug",
            Field::CreatedAt => "w.created_at",
            Field::UpdatedAt => "w.updated_at",
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    workspace: WorkspaceView,
    total: i64,
}

/// `GET /api/v1/workspaces`: the workspaces the caller belongs to.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    params(ListWorkspaces),
    responses(
        (status = 200, description = "A page of workspaces", body = Page<WorkspaceView>),
        (status = 401, response = Unauthenticated),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = []))
)]
pub async fn list_workspaces(
    State(state): State<QueryState>,
    principal: Principal,
    Query(query): Query<ListWorkspaces>,
) -> Result<axum::Json<Page<WorkspaceView>>, ApiError> {
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
    let only = match &principal.credential {
        Credential::ApiKey { workspace_id, .. } => Some(*workspace_id),
        Credential::Token { .. } => None,
    };
    let filter = format!(
        "FROM access_members m JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
         WHERE m.generation = {GENERATION} AND m.user_id = $1 AND w.deleted_at IS NULL AND ($2 IS NULL OR w.id = $2)"
    );
    let sql = format!(
        "SELECT w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version, \
           (SELECT count(*) {filter}) AS total {filter} \
         ORDER BY {column} {direction}, w.id {direction} LIMIT $3 OFFSET $4",
        column = sort.field.column(),
        direction = sort.direction(),
    );
    let count = format!("SELECT count(*) {filter}");
    let (rows, empty_total) = with_pool!(state.db, pool => {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(principal.user_id)
            .bind(only)
            .bind(page.limit_i64())
            .bind(page.offset_i64())
            .fetch_all(pool)
            .await?;
        let empty_total: Option<i64> = if rows.is_empty() && page.offset > 0 {
            Some(sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(principal.user_id)
                .bind(only)
                .fetch_one(pool)
                .await?)
        } else {
            None
        };
        (rows, empty_total)
    });
    let total = rows.first().map(|r| r.total).or(empty_total).unwrap_or(0);
    let items = rows.into_iter().map(|r| r.workspace).collect();
    Ok(axum::Json(page.page(items, total as u64)))
}

/// `GET /api/v1/workspaces/{workspace_id}`: one workspace, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView, headers(("ETag" = String))),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["workspace:read"]))
)]
pub async fn get_workspace(
    State(state): State<QueryState>,
    access: Scoped<WorkspaceRead>,
) -> Result<Response, ApiError> {
    let workspace: Option<WorkspaceView> = with_pool!(state.db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version \
             FROM access_workspaces w JOIN access_members m \
               ON m.generation = w.generation AND m.workspace_id = w.id AND m.user_id = $2 \
             WHERE w.generation = {GENERATION} AND w.id = $1 AND w.deleted_at IS NULL"
        )))
        .bind(access.workspace_id)
        .bind(access.principal.user_id)
        .fetch_optional(pool)
        .await?
    });
    let workspace = workspace.ok_or_else(|| ApiError::not_found("No such workspace"))?;
    Ok((
        [(header::ETAG, etag(workspace.version))],
        axum::Json(workspace),
    )
        .into_response())
}
