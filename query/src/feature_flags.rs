//! Reading feature flags: every flag with its rollout and overrides
//! (platform admins), and the evaluated set of one workspace (any member).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenet_http::auth::{PlatformAdmin, Scoped, WorkspaceRead};
use tenet_http::headers::etag;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query};
use tenet_projections::feature_flags::{self, FlagView, evaluate};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::{AdminErrors, ScopedErrors};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_flags))
        .routes(routes!(get_flag))
        .routes(routes!(workspace_features))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// `GET /api/v1/admin/feature-flags`: every feature flag, by key.
#[utoipa::path(
    get,
    path = "/api/v1/admin/feature-flags",
    tag = "feature-flags",
    params(FlagsPage, ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible")),
    responses(
        (status = 200, description = "A page of flags", body = Page<FlagView>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn list_flags(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    token: ConsistencyToken,
    Query(query): Query<FlagsPage>,
) -> Result<axum::Json<Page<FlagView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, feature_flags::NAME).await?;
    let all = feature_flags::list(&state.db).await?;
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(100))
        .collect();
    Ok(axum::Json(page.page(items, total)))
}

#[derive(Debug, Deserialize)]
pub struct FlagPath {
    pub key: String,
}

/// `GET /api/v1/admin/feature-flags/{key}`: one flag, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/feature-flags/{key}",
    tag = "feature-flags",
    params(("key" = String, Path), ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible")),
    responses(
        (status = 200, description = "The flag", body = FlagView, headers(("ETag" = String))),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn get_flag(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<FlagPath>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.caught_up(token, feature_flags::NAME).await?;
    let flag = feature_flags::get(&state.db, &path.key)
        .await?
        .ok_or_else(|| ApiError::not_found("No such feature flag"))?;
    Ok(([(header::ETAG, etag(flag.version))], axum::Json(flag)).into_response())
}

/// A workspace's flags, evaluated.
#[derive(Debug, Serialize, ToSchema)]
pub struct Features {
    /// Every flag's key: whether it is on for this workspace.
    pub flags: BTreeMap<String, bool>,
}

/// `GET /api/v1/workspaces/{workspace_id}/features`: every feature flag,
/// evaluated for this workspace (any member): its override if it has one;
/// otherwise on when the flag is enabled and the workspace falls inside
/// its rollout (a stable hash of the key and the workspace id, so the
/// answer does not flicker).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/features",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path), ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible")),
    responses(
        (status = 200, description = "The evaluated flags", body = Features),
        ScopedErrors,
    ),
    security(("bearer" = ["workspace:read"]))
)]
pub async fn workspace_features(
    State(state): State<QueryState>,
    access: Scoped<WorkspaceRead>,
    token: ConsistencyToken,
) -> Result<axum::Json<Features>, ApiError> {
    state.caught_up(token, feature_flags::NAME).await?;
    let flags = feature_flags::list(&state.db)
        .await?
        .iter()
        .map(|flag| (flag.key.clone(), evaluate(flag, access.workspace_id)))
        .collect();
    Ok(axum::Json(Features { flags }))
}
