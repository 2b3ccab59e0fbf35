//! Reading tasks and comments: filtered, sorted pages of tasks (in one
//! project or across the workspace), single tasks, and a task's comments,
//! from the asynchronous `tasks` read model (with read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use tenet_events::catalogue::task::{Priority, TaskStatus};
use tenet_events::ids::{ProjectId, TaskId, UserId, WorkspaceId};
use tenet_http::auth::{Access, CommentsRead, Scoped, TasksRead};
use tenet_http::headers::etag;
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query, Sort};
use tenet_projections::projects;
use tenet_projections::tasks::{self, CommentView, TaskFilter, TaskOrder, TaskView, comments};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::search::Words;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_project_tasks))
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(list_comments))
}

/// Most values one filter lists.
const VALUES_MAX: usize = 20;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// `created_at` (default), `updated_at`, `priority`, `due_date` or `number`;
    /// `-` prefix for descending. Tasks without a due date sort last.
    #[param(pattern = "^-?(created_at|updated_at|priority|due_date|number)$")]
    pub sort: Option<String>,
    /// `todo`, `in_progress`, `in_review`, `done`, `cancelled`: repeat the
    /// parameter or separate with commas for several.
    #[serde(default)]
    pub status: Vec<String>,
    /// A user id, `me` (the caller) or `none` (unassigned).
    pub assignee_id: Option<String>,
    /// `low`, `medium`, `high`, `urgent`: repeat or separate with commas.
    #[serde(default)]
    pub priority: Vec<String>,
    /// Tasks carrying this label (repeat: all of them).
    #[serde(default)]
    pub label: Vec<String>,
    /// Tasks due strictly before this date (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    pub due_before: Option<NaiveDate>,
    /// Words that must all appear (any order, any case) in the key, title or description.
    pub search: Option<String>,
    /// Only tasks of this project (workspace-wide list only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}

/// Parses a task list's filters (`project_id` aside).
fn filter(query: &ListTasks, caller: UserId) -> Result<TaskFilter, ApiError> {
    let statuses = values(
        &query.status,
        "status",
        TaskStatus::parse,
        "todo, in_progress, in_review, done or cancelled",
    )?;
    let priorities = values(
        &query.priority,
        "priority",
        Priority::parse,
        "low, medium, high or urgent",
    )?;
    let assignee = match query.assignee_id.as_deref() {
        None => None,
        Some("me") => Some(Some(caller)),
        Some("none") => Some(None),
        Some(id) => Some(Some(id.parse::<UserId>().map_err(|_| {
            ApiError::field("assignee_id", "must be a UUID, me or none")
        })?)),
    };
    if query.label.len() > VALUES_MAX {
        return Err(ApiError::field(
            "label",
            format!("must be given at most {VALUES_MAX} times"),
        ));
    }
    for label in &query.label {
        if label.is_empty() || label.chars().count() > 50 || label.chars().any(char::is_control) {
            return Err(ApiError::field(
                "label",
                "must be 1 to 50 printable characters",
            ));
        }
    }
    let words = Words::parse("search", query.search.as_deref())?;
    Ok(TaskFilter {
        project: query.project_id,
        statuses,
        assignee,
        priorities,
        labels: query.label.clone(),
        due_before: query.due_before,
        words: words.as_slice().to_vec(),
    })
}

/// Values of a repeatable, comma-separable parameter.
fn values<T>(
    given: &[String],
    field: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Vec<T>, ApiError> {
    let mut parsed = Vec::new();
    for value in given.iter().flat_map(|value| value.split(',')) {
        let value = value.trim();
        parsed.push(
            parse(value).ok_or_else(|| ApiError::field(field, format!("must be {allowed}")))?,
        );
        if parsed.len() > VALUES_MAX {
            return Err(ApiError::field(
                field,
                format!("must list at most {VALUES_MAX} values"),
            ));
        }
    }
    Ok(parsed)
}

/// One page of the workspace's tasks matching `filter`.
async fn page_of_tasks(
    state: &QueryState,
    access: &Access,
    query: &ListTasks,
    filter: TaskFilter,
) -> Result<Page<TaskView>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("created_at", TaskOrder::CreatedAt),
            ("updated_at", TaskOrder::UpdatedAt),
            ("priority", TaskOrder::Priority),
            ("due_date", TaskOrder::DueDate),
            ("number", TaskOrder::Number),
        ],
        Sort {
            field: TaskOrder::CreatedAt,
            descending: false,
        },
    )?;
    Ok(tasks::list(&state.db, access.tenant(), &filter, sort, page).await?)
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

/// `GET /api/v1/workspaces/{workspace_id}/projects/{project_id}/tasks`: a
/// page of a project's tasks. Without `label`, `due_before` and `search`,
/// `total` comes from counts the projector keeps.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/tasks",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListTasks,
    ),
    responses(
        (status = 200, description = "A page of tasks", body = Page<TaskView>),
        ReadErrors,
    ),
    security(("bearer" = ["tasks:read"]))
)]
pub async fn list_project_tasks(
    State(state): State<QueryState>,
    access: Scoped<TasksRead>,
    Path(path): Path<ProjectPath>,
    token: ConsistencyToken,
    Query(query): Query<ListTasks>,
) -> Result<axum::Json<Page<TaskView>>, ApiError> {
    if query.project_id.is_some() {
        return Err(ApiError::field(
            "project_id",
            "is the path's here; use it on the workspace-wide list",
        ));
    }
    let mut filter = filter(&query, access.principal.user_id)?;
    filter.project = Some(path.project_id);
    state.caught_up(token, projects::NAME).await?;
    state.caught_up(token, tasks::NAME).await?;
    if !projects::exists(&state.db, access.tenant(), path.project_id).await? {
        return Err(ApiError::not_found("No such project"));
    }
    Ok(axum::Json(
        page_of_tasks(&state, &access, &query, filter).await?,
    ))
}

/// `GET /api/v1/workspaces/{workspace_id}/tasks`: a page of the workspace's
/// tasks across its projects. Without `label`, `due_before` and `search`,
/// `total` comes from counts the projector keeps.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/tasks",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListTasks,
    ),
    responses(
        (status = 200, description = "A page of tasks", body = Page<TaskView>),
        ReadErrors,
    ),
    security(("bearer" = ["tasks:read"]))
)]
pub async fn list_tasks(
    State(state): State<QueryState>,
    access: Scoped<TasksRead>,
    token: ConsistencyToken,
    Query(query): Query<ListTasks>,
) -> Result<axum::Json<Page<TaskView>>, ApiError> {
    let filter = filter(&query, access.principal.user_id)?;
    state.caught_up(token, tasks::NAME).await?;
    Ok(axum::Json(
        page_of_tasks(&state, &access, &query, filter).await?,
    ))
}

/// The task as the read model shows it now, or 404.
async fn current_task(
    state: &QueryState,
    access: &Access,
    task: TaskId,
) -> Result<TaskView, ApiError> {
    tasks::get(&state.db, access.tenant(), task)
        .await?
        .ok_or_else(|| ApiError::not_found("No such task"))
}

/// `GET /api/v1/workspaces/{workspace_id}/tasks/{task_id}`: one task, with
/// its comment count and `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        AsOf,
    ),
    responses(
        (status = 200, description = "The task", body = TaskView, headers(("ETag" = String))),
        ReadErrors,
    ),
    security(("bearer" = ["tasks:read"]))
)]
pub async fn get_task(
    State(state): State<QueryState>,
    access: Scoped<TasksRead>,
    Path(path): Path<TaskPath>,
    token: ConsistencyToken,
    Query(as_of): Query<AsOf>,
) -> Result<Response, ApiError> {
    let task = match as_of.as_of {
        Some(at) => crate::history::task_as_of(&state, access.tenant(), path.task_id, at)
            .await?
            .ok_or_else(|| ApiError::not_found("No such task at that time"))?,
        None => {
            state.caught_up(token, tasks::NAME).await?;
            current_task(&state, &access, path.task_id).await?
        }
    };
    Ok(([(header::ETAG, etag(task.version))], axum::Json(task)).into_response())
}

/// A single resource as it was at an instant, folded from the log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// An instant (RFC 3339): the resource as it was then (404 if it did
    /// not exist then).
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListComments {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// `GET /api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments`: a page
/// of a task's comments, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments",
    tag = "comments",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListComments,
    ),
    responses(
        (status = 200, description = "A page of comments", body = Page<CommentView>),
        ReadErrors,
    ),
    security(("bearer" = ["comments:read"]))
)]
pub async fn list_comments(
    State(state): State<QueryState>,
    access: Scoped<CommentsRead>,
    Path(path): Path<TaskPath>,
    token: ConsistencyToken,
    Query(query): Query<ListComments>,
) -> Result<axum::Json<Page<CommentView>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    state.caught_up(token, tasks::NAME).await?;
    current_task(&state, &access, path.task_id).await?;
    let comments = comments::list(&state.db, access.tenant(), path.task_id, page).await?;
    Ok(axum::Json(comments))
}
