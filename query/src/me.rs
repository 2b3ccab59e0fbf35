//! `GET /api/v1/auth/me`: the caller, with their workspaces and what they
//! may do in each; `GET /api/v1/auth/sessions`: their sessions.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::ids::UserId;
use tenet_http::auth::{Credential, Principal};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Query, Scopes};
use tenet_projections::access::{SessionView, WorkspaceView, account, sessions_of, workspaces_of};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::{CallerErrors, SignedInErrors};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_sessions))
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
    /// The workspaces the caller belongs to, with their role and the
    /// scopes it grants (for an API key: its own workspace only, with the
    /// scopes the key holds there today).
    pub workspaces: Vec<MyWorkspace>,
}

/// A workspace of the caller's, with what they may do in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyWorkspace {
    #[serde(flatten)]
    pub workspace: WorkspaceView,
    /// The effective scopes (`{resource}:{action}`, `{resource}:*` or
    /// `*`): the role's, and for an API key only those of its own it
    /// still holds through its issuer's role.
    pub scopes: Vec<String>,
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
    let workspaces = workspaces
        .into_iter()
        .map(|workspace| {
            let mut scopes = Scopes::of_role(workspace.role.0);
            if let Credential::ApiKey {
                scopes: granted, ..
            } = &principal.credential
            {
                scopes = granted.intersect(&scopes);
            }
            MyWorkspace {
                workspace,
                scopes: scopes.to_strings(),
            }
        })
        .collect();
    Ok(Json(Me {
        id: user.id,
        email: user.email,
        name: user.name,
        platform_admin: user.platform_admin,
        created_at: user.created_at,
        workspaces,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSessions {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// `GET /api/v1/auth/sessions`: the caller's sessions that still work
/// (logins neither logged out, revoked, expired nor ended by a password
/// change), newest first; `current` marks the one of this request's token.
/// Never another user's.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    params(ListSessions),
    responses(
        (status = 200, description = "A page of the caller's sessions", body = Page<SessionView>),
        CallerErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_sessions(
    State(state): State<QueryState>,
    principal: Principal,
    Query(query): Query<ListSessions>,
    token: ConsistencyToken,
) -> Result<Json<Page<SessionView>>, ApiError> {
    state.valid_token(token).await?;
    let page = PageRequest::new(query.offset, query.limit)?;
    let current = match principal.credential {
        Credential::Token { session } => session,
        Credential::ApiKey { .. } | Credential::Impersonation { .. } => None,
    };
    let sessions = sessions_of(&state.db, principal.user_id, page)
        .await?
        .map(|mut session| {
            session.current = Some(session.id) == current;
            session
        });
    Ok(Json(sessions))
}
