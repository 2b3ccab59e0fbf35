//! Creating, renaming and deleting workspaces.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::catalogue::workspace::Role;
use tenet_events::ids::WorkspaceId;
use tenet_events::store::Claim;
use tenet_http::auth::{Credential, Principal, Scoped, WorkspaceDelete, WorkspaceWrite};
use tenet_http::openapi::{ChangeErrors, DeleteErrors};
use tenet_http::validate::slugify;
use tenet_http::{ApiError, Checks, IfMatch, Json, RequestId};
use tenet_projections::access::{RoleName, WorkspaceView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Workspace, WorkspaceCommand, WorkspaceError, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::NewWorkspaceErrors;
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace))
        .routes(routes!(update_workspace, delete_workspace))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Unique across workspaces; derived from the name when absent.
    #[schema(min_length = 2, max_length = 50, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(
        nullable = false,
        min_length = 2,
        max_length = 50,
        pattern = "^[a-z0-9]+(-[a-z0-9]+)*$"
    )]
    pub slug: Option<String>,
}

/// For the workspace's own routes and its members' (`members.rs`).
impl Refusal for WorkspaceError {
    fn problem(self) -> ApiError {
        match self {
            WorkspaceError::NotFound => ApiError::not_found("No such workspace"),
            WorkspaceError::NotMember => ApiError::not_found("No such member"),
            WorkspaceError::OwnersOnly | WorkspaceError::ActorNotMember => {
                ApiError::forbidden(self.to_string())
            }
            other => ApiError::conflict(other.to_string()),
        }
    }

    /// A workspace claims its slug (when created or renamed).
    fn claim_taken(claim: &Claim) -> ApiError {
        ApiError::conflict(format!("The workspace slug {:?} is taken", claim.value))
            .with_field("slug", "is taken")
    }
}

fn view(id: WorkspaceId, role: Role, committed: &Committed<Workspace>) -> WorkspaceView {
    let state = &committed.state;
    WorkspaceView {
        id,
        name: state.name.clone(),
        slug: state.slug.clone(),
        role: RoleName(role),
        created_at: state.created_at.unwrap_or_default(),
        updated_at: state.updated_at.unwrap_or_default(),
        version: committed.version,
    }
}

/// `POST /api/v1/workspaces`: creates a workspace; the caller becomes its
/// owner. API keys (bound to one workspace) cannot create workspaces.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)")),
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "Created", body = WorkspaceView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        NewWorkspaceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_workspace(
    State(state): State<CommandState>,
    principal: Principal,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateWorkspace>,
) -> Result<Written<WorkspaceView>, ApiError> {
    if matches!(principal.credential, Credential::ApiKey { .. }) {
        return Err(ApiError::forbidden("API keys cannot create workspaces"));
    }
    let id = WorkspaceId::generate();
    let mut checks = Checks::new();
    let name = checks.line("name", &body.name, 100);
    let slug = match &body.slug {
        Some(slug) => checks.slug("slug", slug),
        None => slugify(&name, "workspace", id.as_uuid()),
    };
    checks.finish()?;
    let owner = principal.user_id;
    // The new workspace is its own tenant.
    state
        .repository
        .by(&principal, &request_id)
        .on::<Workspace>(id.into(), id)
        .new_stream()
        .decide(|workspace| {
            decide(
                workspace,
                WorkspaceCommand::Create {
                    name: name.clone(),
                    slug: slug.clone(),
                    owner,
                },
            )
        })
        .reply(move |workspace| {
            Reply::created(
                view(id, Role::Owner, workspace),
                Some(workspace.version),
                format!("/api/v1/workspaces/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}`: renames a workspace or
/// changes its slug.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    request_body(content((UpdateWorkspace = "application/json"), (UpdateWorkspace = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = WorkspaceView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["workspace:write"]))
)]
pub async fn update_workspace(
    State(state): State<CommandState>,
    access: Scoped<WorkspaceWrite>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateWorkspace>,
) -> Result<Written<WorkspaceView>, ApiError> {
    let mut checks = Checks::new();
    let name = body
        .name
        .as_deref()
        .map(|name| checks.line("name", name, 100));
    let slug = body.slug.as_deref().map(|slug| checks.slug("slug", slug));
    checks.finish()?;
    let (id, role) = (access.workspace_id, access.role);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Workspace>(access.tenant(), id)
        .if_match(if_match)
        .decide(|workspace| {
            decide(
                workspace,
                WorkspaceCommand::Rename {
                    name: name.clone(),
                    slug: slug.clone(),
                },
            )
        })
        .reply(move |workspace| Reply::ok(view(id, role, workspace), Some(workspace.version)))
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}`: deletes a workspace (owners
/// only); its slug becomes free and its data unreachable.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        DeleteErrors,
    ),
    security(("bearer" = ["workspace:delete"]))
)]
pub async fn delete_workspace(
    State(state): State<CommandState>,
    access: Scoped<WorkspaceDelete>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Workspace>(access.tenant(), access.workspace_id)
        .if_match(if_match)
        .decide(|workspace| decide(workspace, WorkspaceCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
