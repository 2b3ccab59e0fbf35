//! Creating, updating, archiving and restoring projects.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::catalogue::project::key_claim;
use tenet_events::ids::{ProjectId, WorkspaceId};
use tenet_events::store::Claim;
use tenet_http::auth::{Access, ProjectsDelete, ProjectsWrite, Scoped};
use tenet_http::openapi::{ChangeErrors, CreateErrors};
use tenet_http::validate::slugify;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::projects::{ProjectStatus, ProjectView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Project, ProjectCommand, ProjectError, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::StateErrors;
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;

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
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Unique within the workspace; derived from the name when absent.
    #[schema(min_length = 2, max_length = 50, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    /// Up to 10,000 characters.
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
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
    #[serde(default, deserialize_with = "tenet_http::patch::emptied")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

impl Refusal for ProjectError {
    fn problem(self) -> ApiError {
        match self {
            ProjectError::NotFound => ApiError::not_found("No such project"),
            other => ApiError::conflict(other.to_string()),
        }
    }

    /// A project claims its slug (when created or renamed) and, when
    /// created, its task key.
    fn claim_taken(claim: &Claim) -> ApiError {
        if claim.scope.starts_with("project.key/") {
            return ApiError::conflict(format!(
                "Another project took the task key {} meanwhile; retry",
                claim.value
            ));
        }
        ApiError::conflict(format!(
            "A project with the slug {:?} exists in this workspace",
            claim.value
        ))
        .with_field("slug", "is taken")
    }
}

/// The API's project, from the state a command commits and the task
/// counts the read model knows.
pub(crate) fn view(
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
        template_id: state.template.map(|(id, _)| id),
        template_version: state.template.map(|(_, version)| version),
    }
}

async fn task_totals(
    state: &CommandState,
    access: &Access,
    project: ProjectId,
) -> Result<(i64, i64), ApiError> {
    Ok(tenet_projections::projects::task_totals(&state.db, access.tenant(), project).await?)
}

/// The prefix for a new project's task keys: its slug in capitals, or, if
/// an earlier project of the workspace used that (a slug can be renamed
/// and reused; task keys must never repeat), the first of `SLUG2`,
/// `SLUG3`, ... none used. Claimed with the project, so a race for one is
/// refused at commit.
pub(crate) async fn free_key(
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
        let claim = Claim::new(&scope, &key);
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
        CreateErrors,
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
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Project>(access.tenant(), id)
        .new_stream()
        .decide(|project| {
            decide(
                project,
                ProjectCommand::Create {
                    name: name.clone(),
                    slug: slug.clone(),
                    description: description.clone(),
                    key: key.clone(),
                },
            )
        })
        .reply(move |project| {
            Reply::created(
                view(workspace, id, (0, 0), project),
                Some(project.revision()),
                format!("/api/v1/workspaces/{workspace}/projects/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
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
    request_body(content((UpdateProject = "application/json"), (UpdateProject = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = ProjectView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
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
    let (workspace, id) = (access.workspace_id, path.project_id);
    let done = state
        .repository
        .by(&access.principal, &request_id)
        .on::<Project>(access.tenant(), id)
        .if_match(if_match)
        .decide(|project| {
            decide(
                project,
                ProjectCommand::Update {
                    name: name.clone(),
                    slug: slug.clone(),
                    description: description.clone(),
                },
            )
        })
        .commit()
        .await?;
    // The counts as the read model knows them once the change committed.
    let counts = task_totals(&state, &access, id).await?;
    Ok(done.reply(|project| {
        Reply::ok(
            view(workspace, id, counts, project),
            Some(project.revision()),
        )
    }))
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
        StateErrors,
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
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Project>(access.tenant(), path.project_id)
        .if_match(if_match)
        .decide(|project| decide(project, ProjectCommand::Archive))
        .reply(|project| Reply::ok(Deleted::ok(), Some(project.revision())))
        .await
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
        StateErrors,
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
    let counts = task_totals(&state, &access, path.project_id).await?;
    let (workspace, id) = (access.workspace_id, path.project_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Project>(access.tenant(), id)
        .if_match(if_match)
        .decide(|project| decide(project, ProjectCommand::Restore))
        .reply(move |project| {
            Reply::ok(
                view(workspace, id, counts, project),
                Some(project.revision()),
            )
        })
        .idempotent(&idempotency)
        .await
}
