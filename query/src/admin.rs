//! Platform administration: every user and every workspace (platform admins
//! only; no tenant scoping by design, so nothing else may live here).

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use tenet_events::ids::{ImpersonationId, UserId};
use tenet_http::auth::PlatformAdmin;
use tenet_http::headers::etag;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query, Sort};
use tenet_projections::access::{
    AdminUser, AdminUserDetail, AdminWorkspace, AllWorkspacesOrder, ImpersonationView, UserOrder,
    admin_user, all_users, all_workspaces, impersonation,
};
use tenet_projections::stats::{self, PlatformStats};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::{AdminErrors, ScopedErrors};
use crate::search::Words;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(platform_stats))
        .routes(routes!(get_impersonation))
        .routes(routes!(list_workspaces))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `email`, `name` or `created_at` (default); `-` prefix for descending.
    #[param(pattern = "^-?(email|name|created_at)$")]
    pub sort: Option<String>,
    /// Words that must all appear in the name or email.
    pub search: Option<String>,
}

/// `GET /api/v1/admin/users`: every user of the platform.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    params(ListUsers),
    responses(
        (status = 200, description = "A page of users", body = Page<AdminUser>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn list_users(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Query(query): Query<ListUsers>,
) -> Result<axum::Json<Page<AdminUser>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("email", UserOrder::Email),
            ("name", UserOrder::Name),
            ("created_at", UserOrder::CreatedAt),
        ],
        Sort {
            field: UserOrder::CreatedAt,
            descending: false,
        },
    )?;
    let words = Words::parse("search", query.search.as_deref())?;
    Ok(axum::Json(
        all_users(&state.db, words.as_slice(), sort, page).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAllWorkspaces {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `name`, `slug` or `created_at` (default); `-` prefix for descending.
    #[param(pattern = "^-?(name|slug|created_at)$")]
    pub sort: Option<String>,
    /// Words that must all appear in the name or slug.
    pub search: Option<String>,
    /// Include deleted workspaces (default false).
    pub deleted: Option<bool>,
}

/// `GET /api/v1/admin/workspaces`: every workspace of the platform.
#[utoipa::path(
    get,
    path = "/api/v1/admin/workspaces",
    tag = "admin",
    params(ListAllWorkspaces),
    responses(
        (status = 200, description = "A page of workspaces", body = Page<AdminWorkspace>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn list_workspaces(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Query(query): Query<ListAllWorkspaces>,
) -> Result<axum::Json<Page<AdminWorkspace>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("name", AllWorkspacesOrder::Name),
            ("slug", AllWorkspacesOrder::Slug),
            ("created_at", AllWorkspacesOrder::CreatedAt),
        ],
        Sort {
            field: AllWorkspacesOrder::CreatedAt,
            descending: false,
        },
    )?;
    let words = Words::parse("search", query.search.as_deref())?;
    let deleted = query.deleted.unwrap_or(false);
    Ok(axum::Json(
        all_workspaces(&state.db, words.as_slice(), deleted, sort, page).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct UserPath {
    pub user_id: UserId,
}

/// How many of a user's workspaces a detail lists.
const DETAIL_WORKSPACES: i64 = 100;

/// `GET /api/v1/admin/users/{user_id}`: a user in full: their workspaces
/// and roles (the first 100 by name), how many usable sessions they have,
/// and whether (and why) the account is deactivated. The access model is
/// inline, so this is as current as the log.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{user_id}",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = AdminUserDetail, headers(("ETag" = String))),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn get_user(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<UserPath>,
) -> Result<axum::response::Response, ApiError> {
    let user = admin_user(&state.db, path.user_id, DETAIL_WORKSPACES)
        .await?
        .ok_or_else(|| ApiError::not_found("No such user"))?;
    Ok((
        [(axum::http::header::ETAG, etag(user.version))],
        axum::Json(user),
    )
        .into_response())
}

/// `GET /api/v1/admin/stats`: the platform's figures (users, active users
/// over 7 days, workspaces, projects, tasks, tasks created and done over 7
/// days, events in 24 hours, and a series of the last 30 days), from the
/// `platform_stats` projection of the log; windows are UTC days (and hours
/// for the 24 hours), summed at read time.
#[utoipa::path(
    get,
    path = "/api/v1/admin/stats",
    tag = "admin",
    params(("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is counted")),
    responses(
        (status = 200, description = "The figures", body = PlatformStats),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn platform_stats(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    token: ConsistencyToken,
) -> Result<axum::Json<PlatformStats>, ApiError> {
    state.caught_up(token, stats::NAME).await?;
    Ok(axum::Json(
        stats::stats(&state.db, tenet_events::envelope::now()).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ImpersonationPath {
    pub impersonation_id: ImpersonationId,
}

/// `GET /api/v1/admin/impersonations/{impersonation_id}`: who acts as
/// whom, why, until when, and whether it ended (from the inline access
/// model: current).
#[utoipa::path(
    get,
    path = "/api/v1/admin/impersonations/{impersonation_id}",
    tag = "admin",
    params(("impersonation_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The impersonation", body = ImpersonationView),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn get_impersonation(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<ImpersonationPath>,
) -> Result<axum::Json<ImpersonationView>, ApiError> {
    impersonation(&state.db, path.impersonation_id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("No such impersonation"))
}
