//! Reading project templates: pages of a workspace's templates and single
//! templates, from the asynchronous `templates` read model (with
//! read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_events::ids::{TemplateId, WorkspaceId};
use tenet_http::auth::{Scoped, TemplatesRead};
use tenet_http::headers::etag;
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query};
use tenet_projections::templates::{self, TemplateView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates))
        .routes(routes!(get_template))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTemplates {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct TemplatePath {
    pub workspace_id: WorkspaceId,
    pub template_id: TemplateId,
}

/// `GET /api/v1/workspaces/{workspace_id}/templates`: a page of
/// templates, by name.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/templates",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListTemplates,
    ),
    responses(
        (status = 200, description = "A page of templates", body = Page<TemplateView>),
        ReadErrors,
    ),
    security(("bearer" = ["templates:read"]))
)]
pub async fn list_templates(
    State(state): State<QueryState>,
    access: Scoped<TemplatesRead>,
    token: ConsistencyToken,
    Query(query): Query<ListTemplates>,
) -> Result<axum::Json<Page<TemplateView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, templates::NAME).await?;
    Ok(axum::Json(
        templates::list(&state.db, access.tenant(), page).await?,
    ))
}

/// `GET /api/v1/workspaces/{workspace_id}/templates/{template_id}`: one
/// template at its current version, with `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/templates/{template_id}",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("template_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The template", body = TemplateView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["templates:read"]))
)]
pub async fn get_template(
    State(state): State<QueryState>,
    access: Scoped<TemplatesRead>,
    Path(path): Path<TemplatePath>,
    token: ConsistencyToken,
) -> Result<Response, ApiError> {
    state.caught_up(token, templates::NAME).await?;
    let template = templates::get(&state.db, access.tenant(), path.template_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such template"))?;
    Ok((
        [(header::ETAG, etag(template.version))],
        axum::Json(template),
    )
        .into_response())
}
