//! Reading tasks and comments: filtered, sorted pages of tasks (in one
//! project or across the workspace), single tasks, and a task's comments,
//! from the asynchronous `tasks` read model (with read-your-writes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use tenet_events::catalogue::task::{Priority, TaskStatus};
use tenet_events::db::Backend;
use tenet_events::ids::{ProjectId, TaskId, UserId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::auth::{Access, CommentsRead, Scoped, TasksRead};
use tenet_http::headers::etag;
use tenet_http::openapi::{
    BadRequest, Forbidden, NotFound, Unauthenticated, Unavailable, Unprocessable,
};
use tenet_http::pagination::Page;
use tenet_http::{ApiError, ConsistencyToken, PageRequest, Path, Query, Sort};
use tenet_projections::table::columns;
use tenet_projections::tasks::{self, CommentRow, CommentView, GENERATION, TaskRow, TaskView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::listing::{Bind, Listing};
use crate::search::{Words, like_pattern};
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

#[derive(Clone, Copy)]
enum Field {
    CreatedAt,
    UpdatedAt,
    Priority,
    DueDate,
    Number,
}

/// The parsed filters of a task list.
struct Filters {
    project: Option<ProjectId>,
    statuses: Vec<TaskStatus>,
    assignee: Option<Option<UserId>>,
    priorities: Vec<Priority>,
    labels: Vec<String>,
    due_before: Option<NaiveDate>,
    words: Words,
}

impl Filters {
    fn parse(query: &ListTasks, caller: UserId) -> Result<Filters, ApiError> {
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
            if label.is_empty() || label.chars().count() > 50 || label.chars().any(char::is_control)
            {
                return Err(ApiError::field(
                    "label",
                    "must be 1 to 50 printable characters",
                ));
            }
        }
        Ok(Filters {
            project: query.project_id,
            statuses,
            assignee,
            priorities,
            labels: query.label.clone(),
            due_before: query.due_before,
            words: Words::parse("search", query.search.as_deref())?,
        })
    }

    /// Whether the projector's counts answer the total (every filter is
    /// one of their dimensions).
    fn counted(&self) -> bool {
        self.labels.is_empty() && self.due_before.is_none() && self.words.is_empty()
    }

    /// Adds the filters to `listing`'s `WHERE`, with `prefix` before column
    /// names shared with `task_counts`.
    fn restrict(&self, listing: &mut Listing, backend: Backend, counts: bool) {
        if let Some(project) = self.project {
            let project = listing.bind(Bind::Uuid(project.as_uuid()));
            listing
                .from
                .push_str(&format!(" AND project_id = {project}"));
        }
        if !self.statuses.is_empty() {
            let list = self
                .statuses
                .iter()
                .map(|status| listing.bind(Bind::Text(status.as_str().to_owned())))
                .collect::<Vec<_>>()
                .join(", ");
            listing.from.push_str(&format!(" AND status IN ({list})"));
        }
        if !self.priorities.is_empty() {
            let list = self
                .priorities
                .iter()
                .map(|priority| listing.bind(Bind::Text(priority.as_str().to_owned())))
                .collect::<Vec<_>>()
                .join(", ");
            listing.from.push_str(&format!(" AND priority IN ({list})"));
        }
        match self.assignee {
            None => {}
            Some(Some(user)) => {
                let user = listing.bind(Bind::Uuid(user.as_uuid()));
                listing.from.push_str(&format!(" AND assignee_id = {user}"));
            }
            Some(None) if counts => {
                let none = listing.bind(Bind::Uuid(tasks::UNASSIGNED.as_uuid()));
                listing.from.push_str(&format!(" AND assignee_id = {none}"));
            }
            Some(None) => listing.from.push_str(" AND assignee_id IS NULL"),
        }
        if counts {
            return;
        }
        for label in &self.labels {
            let label = listing.bind(Bind::Text(label.clone()));
            listing.from.push_str(&match backend {
                Backend::Postgres => format!(" AND labels @> jsonb_build_array(CAST({label} AS text))"),
                Backend::Sqlite => format!(
                    " AND EXISTS (SELECT 1 FROM json_each(tasks_view.labels) WHERE json_each.value = {label})"
                ),
            });
        }
        if let Some(due) = self.due_before {
            let due = listing.bind(Bind::Date(due));
            listing.from.push_str(&format!(" AND due_date < {due}"));
        }
        for word in self.words.iter() {
            let pattern = listing.bind(Bind::Text(like_pattern(word)));
            listing
                .from
                .push_str(&format!(" AND search LIKE {pattern} ESCAPE '\\'"));
        }
    }
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

/// One page of tasks of the workspace matching `filters`.
async fn page_of_tasks(
    state: &QueryState,
    access: &Access,
    query: &ListTasks,
    filters: Filters,
) -> Result<Page<TaskView>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let sort = Sort::parse(
        query.sort.as_deref(),
        &[
            ("created_at", Field::CreatedAt),
            ("updated_at", Field::UpdatedAt),
            ("priority", Field::Priority),
            ("due_date", Field::DueDate),
            ("number", Field::Number),
        ],
        Sort {
            field: Field::CreatedAt,
            descending: false,
        },
    )?;
    let dir = sort.direction();
    let order = match sort.field {
        Field::CreatedAt => format!("created_at {dir}, id {dir}"),
        Field::UpdatedAt => format!("updated_at {dir}, id {dir}"),
        Field::Priority => format!("priority_rank {dir}, created_at {dir}, id {dir}"),
        // Undated tasks last in either direction.
        Field::DueDate => format!("due_date IS NULL, due_date {dir}, id {dir}"),
        Field::Number => format!("number {dir}, id {dir}"),
    };
    let backend = state.db.backend();
    let tenant = access.tenant();
    let mut listing = Listing::new(columns::<TaskRow>(), String::new(), order);
    let bound = listing.bind(Bind::Uuid(tenant.as_uuid()));
    listing.from =
        format!("FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = {bound}");
    filters.restrict(&mut listing, backend, false);
    let rows: Page<TaskRow> = if filters.counted() {
        let mut counted = Listing::new("", String::new(), "");
        let bound = counted.bind(Bind::Uuid(tenant.as_uuid()));
        counted.from =
            format!("FROM task_counts WHERE generation = {GENERATION} AND tenant_id = {bound}");
        filters.restrict(&mut counted, backend, true);
        let total = counted.sum(&state.db, "count").await?;
        listing.page_of(&state.db, page, total).await?
    } else {
        listing.page(&state.db, page).await?
    };
    Ok(rows.map(|row| row.to_view()))
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
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
    let mut filters = Filters::parse(&query, access.principal.user_id)?;
    filters.project = Some(path.project_id);
    state
        .caught_up(token, tenet_projections::projects::NAME)
        .await?;
    state.caught_up(token, tasks::NAME).await?;
    let exists: Option<i32> = with_pool!(state.db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM projects_view WHERE generation = {} AND tenant_id = $1 AND id = $2",
            tenet_projections::projects::GENERATION
        )))
        .bind(access.tenant())
        .bind(path.project_id)
        .fetch_optional(pool)
        .await?
    });
    if exists.is_none() {
        return Err(ApiError::not_found("No such project"));
    }
    Ok(axum::Json(
        page_of_tasks(&state, &access, &query, filters).await?,
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
    security(("bearer" = ["tasks:read"]))
)]
pub async fn list_tasks(
    State(state): State<QueryState>,
    access: Scoped<TasksRead>,
    token: ConsistencyToken,
    Query(query): Query<ListTasks>,
) -> Result<axum::Json<Page<TaskView>>, ApiError> {
    let filters = Filters::parse(&query, access.principal.user_id)?;
    state.caught_up(token, tasks::NAME).await?;
    Ok(axum::Json(
        page_of_tasks(&state, &access, &query, filters).await?,
    ))
}

/// The task's row, or 404.
async fn task_row(state: &QueryState, access: &Access, task: TaskId) -> Result<TaskRow, ApiError> {
    let row: Option<TaskRow> = with_pool!(state.db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM tasks_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<TaskRow>()
        )))
        .bind(access.tenant())
        .bind(task)
        .fetch_optional(pool)
        .await?
    });
    row.ok_or_else(|| ApiError::not_found("No such task"))
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
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
            task_row(&state, &access, path.task_id).await?.to_view()
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
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
    task_row(&state, &access, path.task_id).await?;
    let mut listing = Listing::new(
        columns::<CommentRow>(),
        String::new(),
        "created_at ASC, id ASC",
    );
    let tenant = listing.bind(Bind::Uuid(access.tenant().as_uuid()));
    let task_id = listing.bind(Bind::Uuid(path.task_id.as_uuid()));
    listing.from = format!(
        "FROM comments_view WHERE generation = {GENERATION} AND tenant_id = {tenant} AND task_id = {task_id}"
    );
    let rows: Page<CommentRow> = listing.page(&state.db, page).await?;
    Ok(axum::Json(rows.map(|row| row.to_view())))
}
