//! Reading workspaces: the caller's list, and one workspace.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::with_pool;
use tenet_http::auth::{Credential, Principal, Scoped, WorkspaceRead};
use tenet_http::headers::etag;
use tenet_http::openapi::{NotFound, Unauthenticated, Unprocessable};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query, Sort};
use tenet_projections::access::{GENERATION, WorkspaceView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::listing::{Bind, Listing};
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
    token: ConsistencyToken,
    Query(query): Query<ListWorkspaces>,
) -> Result<axum::Json<Page<WorkspaceView>>, ApiError> {
    state.valid_token(token).await?;
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
    let mut listing = Listing::new(
        "w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version",
        String::new(),
        format!(
            "{} {dir}, w.id {dir}",
            sort.field.column(),
            dir = sort.direction()
        ),
    );
    let user = listing.bind(Bind::Uuid(principal.user_id.as_uuid()));
    listing.from = format!(
        "FROM access_members m JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
         WHERE m.generation = {GENERATION} AND m.user_id = {user} AND w.deleted_at IS NULL"
    );
    // An API key sees only its own workspace.
    if let Credential::ApiKey { workspace_id, .. } = &principal.credential {
        let only = listing.bind(Bind::Uuid(workspace_id.as_uuid()));
        listing.from.push_str(&format!(" AND w.id = {only}"));
    }
    Ok(axum::Json(listing.page(&state.db, page).await?))
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
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.valid_token(token).await?;
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
