//! Reading a workspace's members (from the access model, which is always
//! current: no consistency wait).

use axum::extract::State;
use serde::Deserialize;
use tenet_http::auth::{MembersRead, Scoped};
use tenet_http::openapi::{Forbidden, NotFound, Unauthenticated, Unprocessable};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query, Sort};
use tenet_projections::access::{GENERATION, MemberView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::listing::{Bind, Listing};
use crate::search::{Words, like_pattern};
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
    pub sort: Option<String>,
    /// Words that must all appear in the name or email.
    pub search: Option<String>,
}

#[derive(Clone, Copy)]
enum MemberField {
    Name,
    Email,
    Role,
    JoinedAt,
}

/// `GET /api/v1/workspaces/{workspace_id}/members`: a page of members.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/members",
    tag = "members",
    params(("workspace_id" = uuid::Uuid, Path), ListMembers),
    responses(
        (status = 200, description = "A page of members", body = Page<MemberView>),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
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
            ("name", MemberField::Name),
            ("email", MemberField::Email),
            ("role", MemberField::Role),
            ("joined_at", MemberField::JoinedAt),
        ],
        Sort {
            field: MemberField::JoinedAt,
            descending: false,
        },
    )?;
    let column = match sort.field {
        MemberField::Name => "u.name",
        MemberField::Email => "u.email",
        MemberField::Role => "m.role",
        MemberField::JoinedAt => "m.joined_at",
    };
    let words = Words::parse("search", query.search.as_deref())?;
    let mut listing = Listing::new(
        "m.user_id, u.email, u.name, m.role, m.joined_at",
        String::new(),
        format!("{column} {dir}, m.user_id {dir}", dir = sort.direction()),
    );
    let workspace = listing.bind(Bind::Uuid(access.workspace_id.as_uuid()));
    listing.from = format!(
        "FROM access_members m JOIN access_users u ON u.generation = m.generation AND u.id = m.user_id \
         WHERE m.generation = {GENERATION} AND m.workspace_id = {workspace}"
    );
    for word in words.iter() {
        let pattern = listing.bind(Bind::Text(like_pattern(word)));
        listing.from.push_str(&format!(
            " AND (lower(u.name) LIKE {pattern} ESCAPE '\\' OR u.email LIKE {pattern} ESCAPE '\\')"
        ));
    }
    Ok(axum::Json(listing.page(&state.db, page).await?))
}
