//! Platform administration: every user and every workspace (platform admins
//! only; no tenant scoping by design, so nothing else may live here).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::ids::{UserId, WorkspaceId};
use tenet_http::auth::PlatformAdmin;
use tenet_http::openapi::{Forbidden, Unauthenticated, Unprocessable};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, PageRequest, Query, Sort};
use tenet_projections::access::GENERATION;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::listing::{Bind, Listing};
use crate::search::{Words, like_pattern};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
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
    pub sort: Option<String>,
    /// Words that must all appear in the name or email.
    pub search: Option<String>,
}

/// A user, as platform admins see them.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AdminUser {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
    /// How many workspaces they belong to.
    pub workspaces: i64,
}

/// Adds `AND (lower(col) LIKE $n OR …)` per search word.
fn search(listing: &mut Listing, columns: &[&str], words: &Words) {
    for word in words.iter() {
        let placeholder = listing.bind(Bind::Text(like_pattern(word)));
        let any: Vec<String> = columns
            .iter()
            .map(|column| format!("lower({column}) LIKE {placeholder} ESCAPE '\\'"))
            .collect();
        listing
            .from
            .push_str(&format!(" AND ({})", any.join(" OR ")));
    }
}

/// `GET /api/v1/admin/users`: every user of the platform.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    params(ListUsers),
    responses(
        (status = 200, description = "A page of users", body = Page<AdminUser>),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
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
            ("email", "u.email"),
            ("name", "u.name"),
            ("created_at", "u.created_at"),
        ],
        Sort {
            field: "u.created_at",
            descending: false,
        },
    )?;
    let words = Words::parse("search", query.search.as_deref())?;
    let mut listing = Listing::new(
        "u.id, u.email, u.name, u.platform_admin, u.created_at, \
           (SELECT count(*) FROM access_members m JOIN access_workspaces w \
              ON w.generation = m.generation AND w.id = m.workspace_id \
            WHERE m.generation = u.generation AND m.user_id = u.id AND w.deleted_at IS NULL) AS workspaces",
        format!("FROM access_users u WHERE u.generation = {GENERATION}"),
        format!("{} {dir}, u.id {dir}", sort.field, dir = sort.direction()),
    );
    search(&mut listing, &["u.name", "u.email"], &words);
    Ok(axum::Json(listing.page(&state.db, page).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAllWorkspaces {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `name`, `slug` or `created_at` (default); `-` prefix for descending.
    pub sort: Option<String>,
    /// Words that must all appear in the name or slug.
    pub search: Option<String>,
    /// Include deleted workspaces (default false).
    pub deleted: Option<bool>,
}

/// A workspace, as platform admins see it.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AdminWorkspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// How many members it has.
    pub members: i64,
}

/// `GET /api/v1/admin/workspaces`: every workspace of the platform.
#[utoipa::path(
    get,
    path = "/api/v1/admin/workspaces",
    tag = "admin",
    params(ListAllWorkspaces),
    responses(
        (status = 200, description = "A page of workspaces", body = Page<AdminWorkspace>),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
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
            ("name", "w.name"),
            ("slug", "w.slug"),
            ("created_at", "w.created_at"),
        ],
        Sort {
            field: "w.created_at",
            descending: false,
        },
    )?;
    let words = Words::parse("search", query.search.as_deref())?;
    let deleted = if query.deleted.unwrap_or(false) {
        ""
    } else {
        " AND w.deleted_at IS NULL"
    };
    let mut listing = Listing::new(
        "w.id, w.name, w.slug, w.created_at, w.updated_at, w.deleted_at, \
           (SELECT count(*) FROM access_members m \
             WHERE m.generation = w.generation AND m.workspace_id = w.id) AS members",
        format!("FROM access_workspaces w WHERE w.generation = {GENERATION}{deleted}"),
        format!("{} {dir}, w.id {dir}", sort.field, dir = sort.direction()),
    );
    search(&mut listing, &["w.name", "w.slug"], &words);
    Ok(axum::Json(listing.page(&state.db, page).await?))
}
