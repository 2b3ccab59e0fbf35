//! Reading a workspace's members (from the access model, which is always
//! current: no consistency wait).

use axum::extract::State;
use serde::Deserialize;
use tenet_http::auth::{MembersRead, Scoped};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query, Sort};
use tenet_projections::access::{MemberOrder, MemberView, members};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::ScopedErrors;
use crate::search::Words;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(list_members))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMembers {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `name`, `email`, `role` or `joined_at` (default); `-` prefix for descending.
    #[param(pattern = "^-?(name|email|role|joined_at)$")]
    pub sort: Option<String>,
    /// Words that must all appear in the name or email.
    pub search: Option<String>,
}

/// `GET /api/v1/workspaces/{workspace_id}/members`: a page of members.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/members",
    tag = "members",
    params(("workspace_id" = uuid::Uuid, Path), ListMembers),
    responses(
        (status = 200, description = "A page of members", body = Page<MemberView>),
        ScopedErrors,
    ),
    security(("bearer" = ["members:read"]))
)]
pub async fn list_members(
    State(state): State<QueryState>,
    access: Scoped<MembersRead>,
    Query(query): Query<ListMembers>,
    token: ConsistencyToken,
) -> Result<axum::Json<Page<MemberView>>, ApiError> {
    state.valid_token(token).await?;
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("name", MemberOrder::Name),
            ("email", MemberOrder::Email),
            ("role", MemberOrder::Role),
            ("joined_at", MemberOrder::JoinedAt),
        ],
        Sort {
            field: MemberOrder::JoinedAt,
            descending: false,
        },
    )?;
    let words = Words::parse("search", query.search.as_deref())?;
    let members = members(&state.db, access.workspace_id, words.as_slice(), sort, page).await?;
    Ok(axum::Json(members))
}
