//! Reading a workspace's API keys, never with their secrets (from the
//! access model, which is always current: no consistency wait).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenet_events::ids::{ApiKeyId, UserId};
use tenet_http::auth::{ApiKeysRead, Scoped};
use tenet_http::openapi::{Forbidden, NotFound, Unauthenticated, Unprocessable};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query};
use tenet_projections::access::{ApiKeyView, GENERATION};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::listing::{Bind, Listing};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(list_api_keys))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListApiKeys {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `active` (default: neither revoked nor expired), `expired`, `revoked` or `all`.
    pub status: Option<String>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: ApiKeyId,
    name: String,
    prefix: String,
    scopes: String,
    issued_by: UserId,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl KeyRow {
    fn into_view(self) -> ApiKeyView {
        ApiKeyView {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
            issued_by: self.issued_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// `GET /api/v1/workspaces/{workspace_id}/api-keys`: the workspace's keys,
/// newest first, never with their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/api-keys",
    tag = "api-keys",
    params(("workspace_id" = uuid::Uuid, Path), ListApiKeys),
    responses(
        (status = 200, description = "A page of API keys", body = Page<ApiKeyView>),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["api_keys:read"]))
)]
pub async fn list_api_keys(
    State(state): State<QueryState>,
    access: Scoped<ApiKeysRead>,
    Query(query): Query<ListApiKeys>,
    token: ConsistencyToken,
) -> Result<axum::Json<Page<ApiKeyView>>, ApiError> {
    state.valid_token(token).await?;
    let page = PageRequest::new(query.offset, query.limit)?;
    let mut listing = Listing::new(
        "k.id, k.name, k.prefix, k.scopes, k.issued_by, k.created_at, k.expires_at, u.last_used_at, k.revoked_at",
        String::new(),
        "k.created_at DESC, k.id DESC",
    );
    let workspace = listing.bind(Bind::Uuid(access.workspace_id.as_uuid()));
    let condition = match query.status.as_deref() {
        None | Some("active") => {
            let now = listing.bind(Bind::Time(tenet_events::envelope::now()));
            format!(" AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > {now})")
        }
        Some("expired") => {
            let now = listing.bind(Bind::Time(tenet_events::envelope::now()));
            format!(" AND k.revoked_at IS NULL AND k.expires_at <= {now}")
        }
        Some("revoked") => " AND k.revoked_at IS NOT NULL".to_owned(),
        Some("all") => String::new(),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be active, expired, revoked or all",
            ));
        }
    };
    listing.from = format!(
        "FROM access_api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.id \
         WHERE k.generation = {GENERATION} AND k.tenant_id = {workspace}{condition}"
    );
    let rows: Page<KeyRow> = listing.page(&state.db, page).await?;
    Ok(axum::Json(Page {
        items: rows.items.into_iter().map(KeyRow::into_view).collect(),
        total: rows.total,
        has_more: rows.has_more,
        offset: rows.offset,
        limit: rows.limit,
    }))
}
