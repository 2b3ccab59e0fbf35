//! Creating, updating, archiving and restoring projects.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::catalogue::project::key_claim;
use tenet_events::ids::{ProjectId, WorkspaceId};
use tenet_http::auth::{Access, ProjectsDelete, ProjectsWrite, Scoped};
use tenet_http::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed, Unauthenticated, Unprocessable,
    UnsupportedMediaType,
};
use tenet_http::validate::slugify;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::projects::{ProjectStatus, ProjectView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Project, ProjectCommand, ProjectError, decide};
use crate::http::{CommandState, failure, metadata, position_of};
use crate::idempotency::Idempotency;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::{Committed, ExecuteError, Target};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_project))
        .routes(routes!(update_project, archive_project))
        .routes(routes!(restore_project))
}

/// Descriptions longer than this are refused.
pub const DESCRIPTION_MAX: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 100 characters.
    pub name: String,
    /// Unique within the workspace; derived from the name when absent.
    pub slug: Option<String>,
    /// Up to 10,000 characters.
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

fn rejected(error: ProjectError) -> ApiError {
    match error {
        ProjectError::NotFound => ApiError::not_found("No such project"),
        other => ApiError::conflict(other.to_string()),
    }
}

fn slug_taken(slug: &str) -> ApiError {
    ApiError::conflict(format!(
        "A project with the slug {slug:?} exists in this workspace"
    ))
    .with_field("slug", "is taken")
}

/// The API's project, from the state a command commits and the task
/// counts the read model knows.
fn view(
    workspace: WorkspaceId,
    id: ProjectId,
    (open_tasks, done_tasks): (i64, i64),
    committed: &Committed<Project>,
) -> ProjectView {
    let state = &committed.state;
    ProjectView {
        id,
        workspace_id: workspace,
        name: state.name.clone(),
        slug: state.slug.clone(),
        description: state.description.clone(),
        key: state.key.clone(),
        status: if state.archived {
            ProjectStatus::Archived
        } else {
            ProjectStatus::Active
        },
        created_by: state.created_by,
        created_at: state.created_at.unwrap_or_default(),
        updated_at: state.updated_at.unwrap_or_default(),
        archived_at: state.archived_at,
        open_tasks,
        done_tasks,
        version: committed.revision(),
    }
}

async fn task_counts(
    state: &CommandState,
    access: &Access,
    project: ProjectId,
) -> Result<(i64, i64), ApiError> {
    Ok(tenet_projections::projects::task_counts(&state.db, access.tenant(), project).await?)
}

fn target(
    access: &Access,
    project: ProjectId,
    if_match: Option<i64>,
    request_id: &RequestId,
) -> Target<Project> {
    Target {
        tenant: access.tenant(),
        stream: project.into(),
        metadata: metadata(Some(&access.principal), request_id),
        if_match,
        idempotency: None,
        new_stream: false,
    }
}

/// The prefix for a new project's task keys: its slug in capitals, or, if
/// an earlier project of the workspace used that (a slug can be renamed
/// and reused; task keys must never repeat), the first of `SLUG2`,
/// `SLUG3`, ... none used. Claimed with the project, so a race for one is
/// refused at commit.
async fn free_key(
    state: &CommandState,
    workspace: WorkspaceId,
    slug: &str,
) -> Result<String, ApiError> {
    let base = slug.to_uppercase();
    let scope = key_claim(workspace);
    for n in 1..=100 {
        let key = if n == 1 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        let claim = tenet_events::store::Claim::new(&scope, &key);
        if state.repository.store().find_claim(&claim).await?.is_none() {
            return Ok(key);
        }
    }
    Err(ApiError::conflict(format!(
        "Every task key from {base} to {base}100 is used in this workspace; choose another slug"
    ))
    .with_field("slug", "has no free task key"))
}

/// `POST /api/v1/workspaces/{workspace_id}/projects`: creates a project.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/projects",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = ProjectView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["projects:write"]))
)]
pub async fn create_project(
    State(state): State<CommandState>,
    access: Scoped<ProjectsWrite>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateProject>,
) -> Result<Written<ProjectView>, ApiError> {
    let id = ProjectId::generate();
    let mut checks = Checks::new();
    let name = checks.line("name", &body.name, 100);
    let slug = match &body.slug {
        Some(slug) => checks.slug("slug", slug),
        None => slugify(&name, "project", id.as_uuid()),
    };
    let description = checks.text(
        "description",
        body.description.as_deref().unwrap_or_default(),
        DESCRIPTION_MAX,
    );
    checks.finish()?;
    let workspace = access.workspace_id;
    let key = free_key(&state, workspace, &slug).await?;
    let reply = move |committed: &Committed<Project>| {
        Reply::created(
            view(workspace, id, (0, 0), committed),
            Some(committed.revision()),
            format!("/api/v1/workspaces/{workspace}/projects/{id}"),
        )
    };
    let committed = state
        .repository
        .execute::<Project, _>(
            target(&access, id, None, &request_id)
                .new_stream()
                .idempotent(idempotency.record(reply)),
            |project| {
                decide(
                    project,
                    ProjectCommand::Create {
                        name: name.clone(),
                        slug: slug.clone(),
                        description: description.clone(),
                        key: key.clone(),
                    },
                )
            },
        )
        .await
        .map_err(|error| match error {
            ExecuteError::ClaimTaken(claim) if claim.scope.starts_with("project.key/") => {
                ApiError::conflict(format!(
                    "Another project took the task key {} meanwhile; retry",
                    claim.value
                ))
            }
            ExecuteError::ClaimTaken(_) => slug_taken(&slug),
            other => failure(other, rejected),
        })?;
    let position = position_of(&state.repository, committed.position).await?;
    Ok(reply(&committed).written(position))
}

/// `PATCH /api/v1/workspaces/{workspace_id}/projects/{project_id}`: changes
/// name, slug or description.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body = UpdateProject,
    responses(
        (status = 200, description = "Updated", body = ProjectView,
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
    security(("bearer" = ["projects:write"]))
)]
pub async fn update_project(
    State(state): State<CommandState>,
    access: Scoped<ProjectsWrite>,
    Path(path): Path<ProjectPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateProject>,
) -> Result<Written<ProjectView>, ApiError> {
    let mut checks = Checks::new();
    let name = body
        .name
        .as_deref()
        .map(|name| checks.line("name", name, 100));
    let slug = body.slug.as_deref().map(|slug| checks.slug("slug", slug));
    let description = body
        .description
        .as_deref()
        .map(|description| checks.text("description", description, DESCRIPTION_MAX));
    checks.finish()?;
    let committed = state
        .repository
        .execute::<Project, _>(
            target(&access, path.project_id, if_match, &request_id),
            |project| {
                decide(
                    project,
                    ProjectCommand::Update {
                        name: name.clone(),
                        slug: slug.clone(),
                        description: description.clone(),
                    },
                )
            },
        )
        .await
        .map_err(|error| match error {
            ExecuteError::ClaimTaken(_) => slug_taken(slug.as_deref().unwrap_or_default()),
            other => failure(other, rejected),
        })?;
    let counts = task_counts(&state, &access, path.project_id).await?;
    let position = position_of(&state.repository, committed.position).await?;
    Ok(Reply::ok(
        view(access.workspace_id, path.project_id, counts, &committed),
        Some(committed.revision()),
    )
    .written(position))
}

/// `DELETE /api/v1/workspaces/{workspace_id}/projects/{project_id}`:
/// archives a project (it can be restored).
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Archived", body = Deleted, headers(("ETag" = String), ("X-Consistency-Token" = String))),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["projects:delete"]))
)]
pub async fn archive_project(
    State(state): State<CommandState>,
    access: Scoped<ProjectsDelete>,
    Path(path): Path<ProjectPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let committed = state
        .repository
        .execute::<Project, _>(
            target(&access, path.project_id, if_match, &request_id),
            |project| decide(project, ProjectCommand::Archive),
        )
        .await
        .map_err(|error| failure(error, rejected))?;
    let position = position_of(&state.repository, committed.position).await?;
    Ok(Reply::ok(Deleted::ok(), Some(committed.revision())).written(position))
}

/// `POST /api/v1/workspaces/{workspace_id}/projects/{project_id}/restore`:
/// brings an archived project back.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/restore",
    tag = "projects",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    responses(
        (status = 200, description = "Restored", body = ProjectView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = ["projects:write"]))
)]
pub async fn restore_project(
    State(state): State<CommandState>,
    access: Scoped<ProjectsWrite>,
    Path(path): Path<ProjectPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    idempotency: Idempotency,
) -> Result<Written<ProjectView>, ApiError> {
    let counts = task_counts(&state, &access, path.project_id).await?;
    let (workspace, id) = (access.workspace_id, path.project_id);
    let reply = move |committed: &Committed<Project>| {
        Reply::ok(
            view(workspace, id, counts, committed),
            Some(committed.revision()),
        )
    };
    let committed = state
        .repository
        .execute::<Project, _>(
            target(&access, id, if_match, &request_id).idempotent(idempotency.record(reply)),
            |project| decide(project, ProjectCommand::Restore),
        )
        .await
        .map_err(|error| failure(error, rejected))?;
    let position = position_of(&state.repository, committed.position).await?;
    Ok(reply(&committed).written(position))
}
