//! Membership: adding a user by email, changing a role, removing a member.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::catalogue::workspace::Role;
use tenet_events::ids::{UserId, WorkspaceId};
use tenet_http::auth::{Access, Credential, MembersDelete, MembersWrite, Requirement, Scoped};
use tenet_http::openapi::ChangeErrors;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::access::{MemberView, RoleName};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Workspace, WorkspaceCommand, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::StateErrors;
use crate::reply::{Deleted, Reply, Written};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(add_member))
        .routes(routes!(change_role, remove_member))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The email of an existing account.
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    #[serde(deserialize_with = "tenet_http::patch::present")]
    pub role: Role,
}

#[derive(Debug, Deserialize)]
pub struct MemberPath {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
}

async fn member_view(
    state: &CommandState,
    workspace: WorkspaceId,
    user: UserId,
) -> Result<MemberView, ApiError> {
    state
        .access
        .member(workspace, user)
        .await?
        .ok_or_else(|| ApiError::not_found("No such member"))
}

/// `POST /api/v1/workspaces/{workspace_id}/members`: adds an existing user,
/// by email, with a role (only owners grant `owner`).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/members",
    tag = "members",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The workspace version this change is based on"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added", body = MemberView, headers(("Location" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["members:write"]))
)]
pub async fn add_member(
    State(state): State<CommandState>,
    access: Scoped<MembersWrite>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<AddMember>,
) -> Result<Written<MemberView>, ApiError> {
    let mut checks = Checks::new();
    let email = checks.email("email", &body.email);
    checks.finish()?;
    let user = state
        .access
        .user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::field("email", "no account has this email"))?;
    let profile = state
        .access
        .user(user)
        .await?
        .ok_or_else(|| ApiError::field("email", "no account has this email"))?;
    let (role, by, workspace) = (body.role, access.principal.user_id, access.workspace_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Workspace>(access.tenant(), workspace)
        .if_match(if_match)
        .decide(|workspace| decide(workspace, WorkspaceCommand::AddMember { user, role, by }))
        .reply(move |committed| {
            Reply::created(
                MemberView {
                    user_id: user,
                    email: profile.email.clone(),
                    name: profile.name.clone(),
                    role: RoleName(role),
                    joined_at: committed.state.updated_at.unwrap_or_default(),
                },
                Some(committed.version),
                format!("/api/v1/workspaces/{workspace}/members/{user}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}/members/{user_id}`: changes a
/// member's role. Only owners grant or take away `owner`, and the last
/// owner cannot be demoted.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "members",
    params(("workspace_id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The workspace version this change is based on")),
    request_body(content((ChangeRole = "application/json"), (ChangeRole = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Changed", body = MemberView, headers(("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["members:write"]))
)]
pub async fn change_role(
    State(state): State<CommandState>,
    access: Scoped<MembersWrite>,
    Path(path): Path<MemberPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<ChangeRole>,
) -> Result<Written<MemberView>, ApiError> {
    let (user, role, by) = (path.user_id, body.role, access.principal.user_id);
    let done = state
        .repository
        .by(&access.principal, &request_id)
        .on::<Workspace>(access.tenant(), access.workspace_id)
        .if_match(if_match)
        .decide(|workspace| decide(workspace, WorkspaceCommand::ChangeRole { user, role, by }))
        .commit()
        .await?;
    // The member as the read model knows them once the change committed
    // (when they joined is not the workspace's to know).
    let member = member_view(&state, access.workspace_id, user).await?;
    Ok(done.reply(|workspace| Reply::ok(member, Some(workspace.version))))
}

/// `DELETE /api/v1/workspaces/{workspace_id}/members/{user_id}`: removes a
/// member (or, for any member, leaves the workspace); their access ends on
/// their next request. Only owners remove owners; the last owner stays.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "members",
    params(("workspace_id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The workspace version this change is based on")),
    responses(
        (status = 200, description = "Removed", body = Deleted, headers(("X-Consistency-Token" = String))),
        StateErrors,
    ),
    security(("bearer" = ["members:delete"]))
)]
pub async fn remove_member(
    State(state): State<CommandState>,
    access: Access,
    Path(path): Path<MemberPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    // A user leaving with their own token needs no scope; removing someone
    // else does, and so does an API key, which acts for its issuer only
    // within its scopes (a key must never remove the user it belongs to).
    let leaving = path.user_id == access.principal.user_id
        && matches!(access.principal.credential, Credential::Token { .. });
    if !leaving {
        access.require(MembersDelete::SCOPE)?;
    }
    let (user, by) = (path.user_id, access.principal.user_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Workspace>(access.tenant(), access.workspace_id)
        .if_match(if_match)
        .decide(|workspace| decide(workspace, WorkspaceCommand::RemoveMember { user, by }))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
