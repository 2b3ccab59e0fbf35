//! Creating, renaming and deleting workspaces.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tenet_events::catalogue::workspace::Role;
use tenet_events::ids::WorkspaceId;
use tenet_http::auth::{Credential, Principal, Scoped, WorkspaceDelete, WorkspaceWrite};
use tenet_http::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed, Unauthenticated, Unprocessable,
    UnsupportedMediaType,
};
use tenet_http::validate::slugify;
use tenet_http::{ApiError, Checks, IfMatch, Json, RequestId};
use tenet_projections::access::{RoleName, WorkspaceView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Workspace, WorkspaceCommand, WorkspaceError, decide};
use crate::http::{CommandState, failure, metadata, position_of};
use crate::idempotency::Idempotency;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::{Committed, ExecuteError, Target};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace))
        .routes(routes!(update_workspace, delete_workspace))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// 1 to 100 characters.
    pub name: String,
    /// Unique across workspaces; derived from the name when absent.
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    pub name: Option<String>,
    pub slug: Option<String>,
}

fn rejected(error: WorkspaceError) -> ApiError {
    match error {
        WorkspaceError::NotFound => ApiError::not_found("No such workspace"),
        other => ApiError::conflict(other.to_string()),
    }
}

fn slug_taken(slug: &str) -> ApiError {
    ApiError::conflict(format!("The workspace slug {slug:?} is taken"))
        .with_field("slug", "is taken")
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
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
    let reply = move |committed: &Committed<Workspace>| {
        Reply::created(
            view(id, Role::Owner, committed),
            Some(committed.version),
            format!("/api/v1/workspaces/{id}"),
        )
    };
    let target = Target::new(id.into(), id, metadata(Some(&principal), &request_id))
        .new_stream()
        .idempotent(idempotency.record(reply));
    let owner = principal.user_id;
    let committed = state
        .repository
        .execute::<Workspace, _>(target, |workspace| {
            decide(
                workspace,
                WorkspaceCommand::Create {
                    name: name.clone(),
                    slug: slug.clone(),
                    owner,
                },
            )
        })
        .await
        .map_err(|error| match error {
            ExecuteError::ClaimTaken(_) => slug_taken(&slug),
            other => failure(other, rejected),
        })?;
    let position = position_of(&state.repository, committed.position).await?;
    Ok(reply(&committed).written(position))
}

/// `PATCH /api/v1/workspaces/{workspace_id}`: renames a workspace or
/// changes its slug.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    request_body = UpdateWorkspace,
    responses(
        (status = 200, description = "Updated", body = WorkspaceView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
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
    let target = Target {
        tenant: access.tenant(),
        stream: access.workspace_id.into(),
        metadata: metadata(Some(&access.principal), &request_id),
        if_match,
        idempotency: None,
        new_stream: false,
    };
    let committed = state
        .repository
        .execute::<Workspace, _>(target, |workspace| {
            decide(
                workspace,
                WorkspaceCommand::Rename {
                    name: name.clone(),
                    slug: slug.clone(),
                },
            )
        })
        .await
        .map_err(|error| match error {
            ExecuteError::ClaimTaken(_) => slug_taken(slug.as_deref().unwrap_or_default()),
            other => failure(other, rejected),
        })?;
    Ok(Written {
        status: StatusCode::OK,
        body: view(access.workspace_id, access.role, &committed),
        version: Some(committed.version),
        position: position_of(&state.repository, committed.position).await?,
        location: None,
    })
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
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["workspace:delete"]))
)]
pub async fn delete_workspace(
    State(state): State<CommandState>,
    access: Scoped<WorkspaceDelete>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let target = Target {
        tenant: access.tenant(),
        stream: access.workspace_id.into(),
        metadata: metadata(Some(&access.principal), &request_id),
        if_match,
        idempotency: None,
        new_stream: false,
    };
    let committed = state
        .repository
        .execute::<Workspace, _>(target, |workspace| {
            decide(workspace, WorkspaceCommand::Delete)
        })
        .await
        .map_err(|error| failure(error, rejected))?;
    Ok(Written {
        status: StatusCode::OK,
        body: Deleted::ok(),
        version: None,
        position: position_of(&state.repository, committed.position).await?,
        location: None,
    })
}
