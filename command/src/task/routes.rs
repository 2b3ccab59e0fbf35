//! Creating, editing, moving and deleting tasks.

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use tenet_events::catalogue::task::{Priority, TaskStatus};
use tenet_events::ids::{ProjectId, TaskId, WorkspaceId};
use tenet_http::auth::{Access, Scoped, TasksDelete, TasksWrite};
use tenet_http::openapi::{ChangeErrors, CreateErrors, DeleteErrors};
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::tasks::TaskView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{NewTask, Task, TaskChanges, TaskCommand, TaskError, create, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::pipeline::Refusal;
use crate::project::aggregate::Project;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;
use crate::workspace::aggregate::Workspace;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_task))
        .routes(routes!(update_task, delete_task))
        .routes(routes!(transition_task))
}

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 20_000;
pub const LABELS_MAX: usize = 20;
pub const LABEL_MAX: usize = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub title: String,
    /// Up to 20,000 characters.
    pub description: Option<String>,
    /// `medium` when absent.
    pub priority: Option<Priority>,
    /// A member of the workspace.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub assignee_id: Option<tenet_events::ids::UserId>,
    /// Up to 20 labels of up to 50 characters; duplicates are dropped.
    pub labels: Option<Vec<String>>,
    /// A calendar date, `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
}

/// Fields to change (a JSON merge patch): absent fields stay as they
/// are; `null` clears `assignee_id` and `due_date`, empties `description`
/// and `labels`, and is 422 for `title` and `priority`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::emptied")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "tenet_http::patch::clearable")]
    #[schema(value_type = Option<String>, format = Uuid, nullable)]
    pub assignee_id: Option<Option<tenet_events::ids::UserId>>,
    #[serde(default, deserialize_with = "tenet_http::patch::emptied")]
    pub labels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "tenet_http::patch::clearable")]
    #[schema(value_type = Option<String>, format = Date, nullable)]
    pub due_date: Option<Option<NaiveDate>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The status to move to.
    pub to: TaskStatus,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

#[derive(Debug, Deserialize)]
pub struct TaskPath {
    pub workspace_id: WorkspaceId,
    pub task_id: TaskId,
}

impl Refusal for TaskError {
    fn problem(self) -> ApiError {
        match self {
            TaskError::NotFound => ApiError::not_found("No such task"),
            TaskError::ProjectNotFound => ApiError::not_found("No such project"),
            TaskError::AssigneeNotMember => {
                ApiError::field("assignee_id", "must be a member of this workspace")
            }
            TaskError::InvalidTransition { from, to } => ApiError::conflict(format!(
                "The task is {}; it cannot move to {}",
                from.as_str(),
                to.as_str()
            ))
            .with_code("INVALID_TRANSITION"),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

/// Labels as stored: trimmed, each once, in the order given.
fn labels(checks: &mut Checks, labels: &[String]) -> Vec<String> {
    if labels.len() > LABELS_MAX {
        checks.add("labels", format!("must have at most {LABELS_MAX} labels"));
    }
    let mut kept: Vec<String> = Vec::with_capacity(labels.len());
    for (index, label) in labels.iter().enumerate() {
        let label = checks.line(&format!("labels[{index}]"), label, LABEL_MAX);
        if !kept.contains(&label) {
            kept.push(label);
        }
    }
    kept
}

/// The API's task, from the state a command commits.
pub(crate) fn view(
    workspace: WorkspaceId,
    id: TaskId,
    comment_count: i64,
    committed: &Committed<Task>,
) -> TaskView {
    let task = &committed.state;
    TaskView {
        id,
        workspace_id: workspace,
        project_id: task
            .project_id
            .unwrap_or(ProjectId::from_uuid(uuid::Uuid::nil())),
        number: task.number,
        key: task.key.clone(),
        title: task.title.clone(),
        description: task.description.clone(),
        status: task.status,
        priority: task.priority,
        assignee_id: task.assignee,
        labels: task.labels.clone(),
        due_date: task.due_date,
        comment_count,
        created_by: task.created_by,
        created_at: task.created_at.unwrap_or_default(),
        updated_at: task.updated_at.unwrap_or_default(),
        started_at: task.started_at,
        completed_at: task.completed_at,
        version: committed.version,
    }
}

/// The task's comment count for a response: what the read model knows.
async fn comment_count(
    state: &CommandState,
    access: &Access,
    task: TaskId,
) -> Result<i64, ApiError> {
    Ok(tenet_projections::tasks::comment_count(&state.db, access.tenant(), task).await?)
}

/// `POST /api/v1/workspaces/{workspace_id}/projects/{project_id}/tasks`:
/// creates a task with the project's next number.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/tasks",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = TaskView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        CreateErrors,
    ),
    security(("bearer" = ["tasks:write"]))
)]
pub async fn create_task(
    State(state): State<CommandState>,
    access: Scoped<TasksWrite>,
    Path(path): Path<ProjectPath>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateTask>,
) -> Result<Written<TaskView>, ApiError> {
    let mut checks = Checks::new();
    let title = checks.line("title", &body.title, TITLE_MAX);
    let description = checks.text(
        "description",
        body.description.as_deref().unwrap_or_default(),
        DESCRIPTION_MAX,
    );
    let labels = labels(&mut checks, body.labels.as_deref().unwrap_or_default());
    checks.finish()?;
    let new = NewTask {
        project_id: path.project_id,
        title,
        description,
        priority: body.priority.unwrap_or_default(),
        assignee: body.assignee_id,
        labels,
        due_date: body.due_date,
    };
    let (id, workspace) = (TaskId::generate(), access.workspace_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Task>(access.tenant(), id)
        .writing::<Project>(path.project_id)
        .checking_if::<Workspace>(new.assignee.is_some(), workspace)
        .new_stream()
        .decide(|task, project, workspace| create(task, project, workspace, id, new.clone()))
        .reply(move |task| {
            Reply::created(
                view(workspace, id, 0, task),
                Some(task.version),
                format!("/api/v1/workspaces/{workspace}/tasks/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}/tasks/{task_id}`: changes any
/// field; `assignee_id: null` unassigns.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body(content((UpdateTask = "application/json"), (UpdateTask = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = TaskView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["tasks:write"]))
)]
pub async fn update_task(
    State(state): State<CommandState>,
    access: Scoped<TasksWrite>,
    Path(path): Path<TaskPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateTask>,
) -> Result<Written<TaskView>, ApiError> {
    let mut checks = Checks::new();
    let changes = TaskChanges {
        title: body
            .title
            .as_deref()
            .map(|title| checks.line("title", title, TITLE_MAX)),
        description: body
            .description
            .as_deref()
            .map(|description| checks.text("description", description, DESCRIPTION_MAX)),
        priority: body.priority,
        labels: body
            .labels
            .as_deref()
            .map(|given| labels(&mut checks, given)),
        due_date: body.due_date,
        assignee: body.assignee_id,
    };
    checks.finish()?;
    // The workspace is read only to check a new assignee is a member.
    let assigns = matches!(changes.assignee, Some(Some(_)));
    let comments = comment_count(&state, &access, path.task_id).await?;
    let (workspace, id) = (access.workspace_id, path.task_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Task>(access.tenant(), id)
        .checking_if::<Workspace>(assigns, workspace)
        .if_match(if_match)
        .decide(|task, workspace| decide(task, workspace, TaskCommand::Edit(changes.clone())))
        .reply(move |task| Reply::ok(view(workspace, id, comments, task), Some(task.version)))
        .await
}

/// `POST /api/v1/workspaces/{workspace_id}/tasks/{task_id}/transitions`:
/// moves a task along its workflow (`todo → in_progress → in_review →
/// done`, `in_review → in_progress`, any open status → `cancelled`,
/// `done`/`cancelled` → `todo`); any other move is 409 `INVALID_TRANSITION`.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/transitions",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = Transition,
    responses(
        (status = 200, description = "Moved", body = TaskView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["tasks:write"]))
)]
pub async fn transition_task(
    State(state): State<CommandState>,
    access: Scoped<TasksWrite>,
    Path(path): Path<TaskPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<Transition>,
) -> Result<Written<TaskView>, ApiError> {
    let comments = comment_count(&state, &access, path.task_id).await?;
    let (workspace, id, to) = (access.workspace_id, path.task_id, body.to);
    // A move reads no workspace.
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Task>(access.tenant(), id)
        .if_match(if_match)
        .decide(|task| decide(task, &Workspace::default(), TaskCommand::Transition { to }))
        .reply(move |task| Reply::ok(view(workspace, id, comments, task), Some(task.version)))
        .idempotent(&idempotency)
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}/tasks/{task_id}`: removes a
/// task from every list (its history stays in the log).
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        DeleteErrors,
    ),
    security(("bearer" = ["tasks:delete"]))
)]
pub async fn delete_task(
    State(state): State<CommandState>,
    access: Scoped<TasksDelete>,
    Path(path): Path<TaskPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Task>(access.tenant(), path.task_id)
        .if_match(if_match)
        .decide(|task| decide(task, &Workspace::default(), TaskCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
