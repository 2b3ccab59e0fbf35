//! Time travel and history: a task or project as it was at an instant, and
//! a task's versions with who changed what.
//!
//! Both fold the log with the projectors' own rules
//! ([`TaskFold`], [`ProjectFold`]), so a past version has exactly the shape
//! and values the read model showed then: a task's comment count, a
//! project's task counts. Nothing is read from the read models.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ProjectId, TaskId, TenantId, WorkspaceId};
use tenet_events::store::{EVENT_COLUMNS, EventRow};
use tenet_events::with_pool;
use tenet_http::auth::{PlatformAdmin, Scoped, TasksRead};
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, PageRequest, Path, Query};
use tenet_projections::projects::{ProjectFold, ProjectView};
use tenet_projections::tasks::{TaskFold, TaskView};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::AuditActor;
use crate::responses::ScopedErrors;
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(task_history))
        .routes(routes!(stream_state))
}

/// The events of one stream of `tenant` (of `stream_type`: an id of
/// another kind of resource finds nothing) and, optionally, those of
/// another aggregate type whose payload names it (`field`), up to `until`,
/// in log order.
async fn events_of(
    state: &QueryState,
    tenant: TenantId,
    stream: uuid::Uuid,
    stream_type: &str,
    related: Option<(&str, &str)>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<RecordedEvent>, ApiError> {
    let own = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND stream_id = $2 \
         AND stream_type = $3 AND ($4 IS NULL OR occurred_at <= $4)"
    );
    // `->>` reads a JSON field as text on both backends (SQLite 3.38+), as
    // the partial indexes on it do; the field name is the caller's
    // constant, never input.
    let (related_type, field) = related.unwrap_or(("", "id"));
    let sql = if related.is_some() {
        format!(
            "{own} UNION ALL SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 \
             AND stream_type = $5 AND data->>'{field}' = $6 AND ($4 IS NULL OR occurred_at <= $4) \
             ORDER BY position"
        )
    } else {
        format!("{own} ORDER BY position")
    };
    let rows: Vec<EventRow> = with_pool!(state.db, pool => {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(stream)
            .bind(stream_type)
            .bind(until);
        let query = if related.is_some() {
            query.bind(related_type).bind(stream.hyphenated().to_string())
        } else {
            query
        };
        query.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|row| row.into_recorded().map_err(ApiError::from))
        .collect()
}

/// A task as it was at `at` (none if it did not exist then).
pub async fn task_as_of(
    state: &QueryState,
    tenant: TenantId,
    task: TaskId,
    at: DateTime<Utc>,
) -> Result<Option<TaskView>, ApiError> {
    let events = events_of(
        state,
        tenant,
        task.as_uuid(),
        "task",
        Some(("comment", "task_id")),
        Some(at),
    )
    .await?;
    let mut fold = TaskFold::default();
    for event in &events {
        fold.apply(event).map_err(ApiError::internal)?;
    }
    Ok(fold.row(tenant, task).map(|row| row.to_view()))
}

/// A project as it was at `at` (none if it did not exist then).
pub async fn project_as_of(
    state: &QueryState,
    tenant: TenantId,
    project: ProjectId,
    at: DateTime<Utc>,
) -> Result<Option<ProjectView>, ApiError> {
    let events = events_of(
        state,
        tenant,
        project.as_uuid(),
        "project",
        Some(("task", "project_id")),
        Some(at),
    )
    .await?;
    let mut fold = ProjectFold::default();
    for event in &events {
        fold.apply(event).map_err(ApiError::internal)?;
    }
    Ok(fold.row(tenant, project).map(|row| row.to_view()))
}

/// One field a version changed.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    /// The value before (`null` when it had none, or at creation).
    pub from: Value,
    pub to: Value,
}

/// One version of a task: the event that made it, who caused it, and the
/// fields it changed.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TaskVersion {
    pub version: i64,
    pub position: i64,
    pub event_type: String,
    pub actor: AuditActor,
    pub occurred_at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub changes: Vec<FieldChange>,
    /// The task as this version left it (absent after its deletion).
    pub task: Option<TaskView>,
}

/// Fields a history compares; bookkeeping (version, timestamps, comment
/// count) is left out.
const TRACKED: [&str; 10] = [
    "project_id",
    "number",
    "key",
    "title",
    "description",
    "status",
    "priority",
    "assignee_id",
    "labels",
    "due_date",
];

fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    TRACKED
        .iter()
        .filter_map(|field| {
            let from = before.get(*field).cloned().unwrap_or(Value::Null);
            let to = after.get(*field).cloned().unwrap_or(Value::Null);
            (from != to).then(|| FieldChange {
                field: (*field).to_owned(),
                from,
                to,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct TaskPath {
    pub workspace_id: WorkspaceId,
    pub task_id: TaskId,
}

/// `GET /api/v1/workspaces/{workspace_id}/tasks/{task_id}/history`: every
/// version of a task, oldest first, each with its actor and the fields it
/// changed. Also answers for a deleted task: its history stays.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/history",
    tag = "tasks",
    params(("workspace_id" = uuid::Uuid, Path), ("task_id" = uuid::Uuid, Path), HistoryPage),
    responses(
        (status = 200, description = "A page of versions", body = Page<TaskVersion>),
        ReadErrors,
    ),
    security(("bearer" = ["tasks:read"]))
)]
pub async fn task_history(
    State(state): State<QueryState>,
    access: Scoped<TasksRead>,
    Path(path): Path<TaskPath>,
    Query(query): Query<HistoryPage>,
) -> Result<axum::Json<Page<TaskVersion>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let tenant = access.tenant();
    let events = events_of(&state, tenant, path.task_id.as_uuid(), "task", None, None).await?;
    if events.is_empty() {
        return Err(ApiError::not_found("No such task"));
    }
    let mut fold = TaskFold::default();
    let mut before = Value::Null;
    let mut versions = Vec::with_capacity(events.len());
    for event in &events {
        fold.apply(event).map_err(ApiError::internal)?;
        let task = fold.row(tenant, path.task_id).map(|row| row.to_view());
        let after = task
            .as_ref()
            .and_then(|task| serde_json::to_value(task).ok())
            .unwrap_or(Value::Null);
        versions.push(TaskVersion {
            version: event.stream_version,
            position: event.position.0,
            event_type: event.event_type.clone(),
            actor: shown_actor(event, &HashMap::new()),
            occurred_at: event.occurred_at,
            request_id: event.metadata.request_id.clone(),
            changes: diff(&before, &after),
            task,
        });
        before = after;
    }
    let total = versions.len() as u64;
    let items: Vec<TaskVersion> = versions
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    // Actors are named as the audit log names them, once per page.
    let ids = |kind: &str| -> Vec<uuid::Uuid> {
        items
            .iter()
            .filter(|item| item.actor.kind == kind)
            .filter_map(|item| item.actor.id)
            .collect()
    };
    let names = crate::audit::display_names(&state.db, ids("user"), ids("api_key")).await?;
    let items = items
        .into_iter()
        .map(|mut item| {
            let actor = &item.actor;
            item.actor = crate::audit::shown_actor(
                &actor.kind,
                actor.id,
                Some(actor.display.as_str()),
                actor.user_id,
                &names,
            );
            item
        })
        .collect();
    Ok(axum::Json(page.page(items, total)))
}

/// An event's actor before its user or key is named (`names` empty): the
/// kind, or a policy's or the system's own name.
fn shown_actor(event: &RecordedEvent, names: &HashMap<uuid::Uuid, String>) -> AuditActor {
    let actor = &event.metadata.actor;
    crate::audit::shown_actor(
        actor.kind(),
        actor.id(),
        actor.name(),
        actor.user_id(),
        names,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_changed_tracked_field() {
        let before = json!({ "title": "a", "status": "todo", "version": 1, "labels": ["x"] });
        let after = json!({ "title": "b", "status": "todo", "version": 2, "labels": ["x", "y"] });
        assert_eq!(
            diff(&before, &after),
            vec![
                FieldChange {
                    field: "title".into(),
                    from: json!("a"),
                    to: json!("b")
                },
                FieldChange {
                    field: "labels".into(),
                    from: json!(["x"]),
                    to: json!(["x", "y"])
                },
            ]
        );
        // Creation: everything from null.
        assert_eq!(diff(&Value::Null, &json!({ "title": "a" })).len(), 1);
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamStatePath {
    pub workspace_id: WorkspaceId,
    pub stream_id: tenet_events::ids::StreamId,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateAt {
    /// The instant (RFC 3339) to fold the stream up to, inclusive.
    pub as_of: DateTime<Utc>,
}

/// A task or project as one of the states its stream went through.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "stream_type", content = "state", rename_all = "snake_case")]
pub enum StreamState {
    Task(TaskView),
    Project(ProjectView),
}

/// `GET /api/v1/admin/workspaces/{workspace_id}/streams/{stream_id}/state`:
/// a task or project of any workspace as it was at `as_of`, for platform
/// admins (who need not be members): the console's time travel from an
/// event of the audit log. 404 for a stream that did not exist then, and
/// 422 for a stream of another kind (only tasks and projects have states
/// to show).
#[utoipa::path(
    get,
    path = "/api/v1/admin/workspaces/{workspace_id}/streams/{stream_id}/state",
    tag = "admin",
    params(("workspace_id" = uuid::Uuid, Path), ("stream_id" = uuid::Uuid, Path), StateAt),
    responses(
        (status = 200, description = "The resource as it was", body = StreamState),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn stream_state(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<StreamStatePath>,
    Query(at): Query<StateAt>,
) -> Result<axum::Json<StreamState>, ApiError> {
    let tenant = TenantId::from_uuid(path.workspace_id.as_uuid());
    let stream = path.stream_id.as_uuid();
    let stream_type: Option<String> = with_pool!(state.db, pool => {
        sqlx::query_scalar(
            "SELECT stream_type FROM events WHERE tenant_id = $1 AND stream_id = $2 AND stream_version = 1",
        )
        .bind(tenant)
        .bind(stream)
        .fetch_optional(pool)
        .await?
    });
    let missing = || ApiError::not_found("No such task or project at that time");
    let found = match stream_type.as_deref() {
        None => return Err(ApiError::not_found("No such stream in this workspace")),
        Some("task") => task_as_of(&state, tenant, TaskId::from_uuid(stream), at.as_of)
            .await?
            .map(StreamState::Task),
        Some("project") => project_as_of(&state, tenant, ProjectId::from_uuid(stream), at.as_of)
            .await?
            .map(StreamState::Project),
        Some(other) => {
            return Err(ApiError::field(
                "stream_id",
                format!("a {other} stream has no state to show: only tasks and projects do"),
            ));
        }
    };
    found.map(axum::Json).ok_or_else(missing)
}
