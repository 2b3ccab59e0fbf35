//! `GET /api/v1/auth/me`: the caller, with their workspaces.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::ids::UserId;
use tenet_http::auth::{Credential, Principal};
use tenet_http::{ApiError, ConsistencyToken};
use tenet_projections::access::{WorkspaceView, account, workspaces_of};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::SignedInErrors;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// Most workspaces listed on `/auth/me` (all of them are on `/workspaces`).
pub const WORKSPACES_LISTED: i64 = 1_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
    /// The workspaces the caller belongs to, with their role (for an API
    /// key: its own workspace only).
    pub workspaces: Vec<WorkspaceView>,
}

/// `GET /api/v1/auth/me`: who the caller is.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        SignedInErrors,
    ),
    security(("bearer" = []))
)]
pub async fn me(
    State(state): State<QueryState>,
    principal: Principal,
    token: ConsistencyToken,
) -> Result<Json<Me>, ApiError> {
    state.valid_token(token).await?;
    let only = match &principal.credential {
        Credential::ApiKey { workspace_id, .. } => Some(*workspace_id),
        Credential::Token { .. } | Credential::Impersonation { .. } => None,
    };
    let user = account(&state.db, principal.user_id).await?;
    let workspaces = workspaces_of(&state.db, principal.user_id, only, WORKSPACES_LISTED).await?;
    let user = user.ok_or_else(|| ApiError::unauthenticated("Invalid or expired access token"))?;
    Ok(Json(Me {
        id: user.id,
        email: user.email,
        name: user.name,
        platform_admin: user.platform_admin,
        created_at: user.created_at,
        workspaces,
    }))
}
