//! Creating, editing and deleting a project's automations.

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use tenet_events::catalogue::automation::{Action, Trigger};
use tenet_events::catalogue::task::{Priority, TaskStatus};
use tenet_events::ids::{AutomationId, ProjectId, UserId, WorkspaceId};
use tenet_http::auth::{AutomationsDelete, AutomationsWrite, Scoped};
use tenet_http::openapi::{ChangeErrors, CreateErrors, DeleteErrors};
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::automations::AutomationView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{
    Automation, AutomationChanges, AutomationCommand, AutomationError, NewAutomation, create,
    decide,
};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::pipeline::Refusal;
use crate::project::aggregate::Project;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;
use crate::task::routes::{DESCRIPTION_MAX, LABEL_MAX, LABELS_MAX, TITLE_MAX};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_automation))
        .routes(routes!(update_automation, delete_automation))
}

pub const NAME_MAX: usize = 100;
/// Most actions one automation runs.
pub const ACTIONS_MAX: usize = 20;
/// Longest comment body an action writes.
pub const BODY_MAX: usize = crate::comment::routes::BODY_MAX;

/// What starts an automation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationTriggerInput)]
pub struct TriggerBody {
    /// `task.status_changed` (with `to`), `task.created` (with an
    /// optional `label`) or `task.due_date_passed` (an open task's due
    /// date passed: the UTC day after it began).
    pub event: String,
    /// For `task.status_changed`: the status entered.
    pub to: Option<String>,
    /// For `task.created`: only tasks created with this label.
    pub label: Option<String>,
}

/// One action. `type` is `assign` (`user_id`), `set_priority`
/// (`priority`), `add_label` (`label`), `comment` (`body`), `create_task`
/// (`title`, and optionally `description`, `priority`, `labels`,
/// `assignee_id`, `due_date`) or `transition` (`to`). A comment is written
/// as the automation: its `author_id` is the automation's id. Strings may say
/// `{{task.title}}`, `{{task.key}}` and `{{task.id}}` of the triggering
/// task.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationActionInput)]
pub struct ActionBody {
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    pub priority: Option<String>,
    pub label: Option<String>,
    pub body: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub labels: Option<Vec<String>>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub assignee_id: Option<UserId>,
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAutomation {
    /// 1 to 100 characters.
    pub name: String,
    pub trigger: TriggerBody,
    /// 1 to 20 actions, run in this order.
    pub actions: Vec<ActionBody>,
    /// `true` when absent.
    pub enabled: Option<bool>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAutomation {
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub trigger: Option<TriggerBody>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub actions: Option<Vec<ActionBody>>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
}

#[derive(Debug, Deserialize)]
pub struct AutomationPath {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub automation_id: AutomationId,
}

impl Refusal for AutomationError {
    fn problem(self) -> ApiError {
        match self {
            AutomationError::NotFound => ApiError::not_found("No such automation"),
            AutomationError::ProjectNotFound => ApiError::not_found("No such project"),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

fn status(checks: &mut Checks, field: &str, value: Option<&str>) -> TaskStatus {
    match value.map(TaskStatus::parse) {
        Some(Some(status)) => status,
        Some(None) => {
            checks.add(
                field,
                "must be todo, in_progress, in_review, done or cancelled",
            );
            TaskStatus::default()
        }
        None => {
            checks.add(field, "is required");
            TaskStatus::default()
        }
    }
}

fn priority(checks: &mut Checks, field: &str, value: Option<&str>) -> Priority {
    match value.map(Priority::parse) {
        Some(Some(priority)) => priority,
        Some(None) => {
            checks.add(field, "must be low, medium, high or urgent");
            Priority::default()
        }
        None => {
            checks.add(field, "is required");
            Priority::default()
        }
    }
}

fn required<'a>(checks: &mut Checks, field: &str, value: Option<&'a str>) -> &'a str {
    if value.is_none() {
        checks.add(field, "is required");
    }
    value.unwrap_or_default()
}

/// Fields an action of this type does not take are refused, so a typo
/// (`label` on `create_task`) is not silently ignored.
fn only(checks: &mut Checks, at: &str, body: &ActionBody, allowed: &[&str]) {
    let given = [
        ("user_id", body.user_id.is_some()),
        ("priority", body.priority.is_some()),
        ("label", body.label.is_some()),
        ("body", body.body.is_some()),
        ("title", body.title.is_some()),
        ("description", body.description.is_some()),
        ("labels", body.labels.is_some()),
        ("assignee_id", body.assignee_id.is_some()),
        ("due_date", body.due_date.is_some()),
        ("to", body.to.is_some()),
    ];
    for (field, present) in given {
        if present && !allowed.contains(&field) {
            checks.add(
                format!("{at}.{field}"),
                format!("is not a field of a {} action", body.kind),
            );
        }
    }
}

fn trigger(checks: &mut Checks, body: &TriggerBody) -> Trigger {
    match body.event.as_str() {
        "task.status_changed" => {
            if body.label.is_some() {
                checks.add("trigger.label", "is not a field of task.status_changed");
            }
            Trigger::StatusChanged {
                to: status(checks, "trigger.to", body.to.as_deref()),
            }
        }
        "task.created" => {
            if body.to.is_some() {
                checks.add("trigger.to", "is not a field of task.created");
            }
            Trigger::Created {
                label: body
                    .label
                    .as_deref()
                    .map(|label| checks.line("trigger.label", label, LABEL_MAX)),
            }
        }
        "task.due_date_passed" => {
            for (field, given) in [("to", body.to.is_some()), ("label", body.label.is_some())] {
                if given {
                    checks.add(
                        format!("trigger.{field}"),
                        "is not a field of task.due_date_passed",
                    );
                }
            }
            Trigger::DueDatePassed {}
        }
        _ => {
            checks.add(
                "trigger.event",
                "must be task.status_changed, task.created or task.due_date_passed",
            );
            Trigger::Created { label: None }
        }
    }
}

fn action(checks: &mut Checks, index: usize, body: &ActionBody) -> Option<Action> {
    let at = format!("actions[{index}]");
    let field = |name: &str| format!("{at}.{name}");
    let action = match body.kind.as_str() {
        "assign" => {
            only(checks, &at, body, &["user_id"]);
            match body.user_id {
                Some(user_id) => Action::Assign { user_id },
                None => {
                    checks.add(field("user_id"), "is required");
                    return None;
                }
            }
        }
        "set_priority" => {
            only(checks, &at, body, &["priority"]);
            Action::SetPriority {
                priority: priority(checks, &field("priority"), body.priority.as_deref()),
            }
        }
        "add_label" => {
            only(checks, &at, body, &["label"]);
            let label = required(checks, &field("label"), body.label.as_deref());
            Action::AddLabel {
                label: checks.line(&field("label"), label, LABEL_MAX),
            }
        }
        "comment" => {
            only(checks, &at, body, &["body"]);
            let text = required(checks, &field("body"), body.body.as_deref());
            let text = checks.text(&field("body"), text, BODY_MAX);
            if body.body.is_some() && text.trim().is_empty() {
                checks.add(field("body"), "must not be empty");
            }
            Action::Comment { body: text }
        }
        "create_task" => {
            only(
                checks,
                &at,
                body,
                &[
                    "title",
                    "description",
                    "priority",
                    "labels",
                    "assignee_id",
                    "due_date",
                ],
            );
            let title = required(checks, &field("title"), body.title.as_deref());
            let labels = body.labels.clone().unwrap_or_default();
            if labels.len() > LABELS_MAX {
                checks.add(
                    field("labels"),
                    format!("must have at most {LABELS_MAX} labels"),
                );
            }
            let mut kept: Vec<String> = Vec::new();
            for (n, label) in labels.iter().enumerate() {
                let label = checks.line(&format!("{at}.labels[{n}]"), label, LABEL_MAX);
                if !kept.contains(&label) {
                    kept.push(label);
                }
            }
            Action::CreateTask {
                title: checks.line(&field("title"), title, TITLE_MAX),
                description: checks.text(
                    &field("description"),
                    body.description.as_deref().unwrap_or_default(),
                    DESCRIPTION_MAX,
                ),
                priority: match &body.priority {
                    Some(value) => priority(checks, &field("priority"), Some(value)),
                    None => Priority::default(),
                },
                labels: kept,
                assignee_id: body.assignee_id,
                due_date: body.due_date,
            }
        }
        "transition" => {
            only(checks, &at, body, &["to"]);
            Action::Transition {
                to: status(checks, &field("to"), body.to.as_deref()),
            }
        }
        _ => {
            checks.add(
                field("type"),
                "must be assign, set_priority, add_label, comment, create_task or transition",
            );
            return None;
        }
    };
    Some(action)
}

fn actions(checks: &mut Checks, bodies: &[ActionBody]) -> Vec<Action> {
    if bodies.is_empty() {
        checks.add("actions", "must have at least one action");
    }
    if bodies.len() > ACTIONS_MAX {
        checks.add(
            "actions",
            format!("must have at most {ACTIONS_MAX} actions"),
        );
    }
    bodies
        .iter()
        .enumerate()
        .filter_map(|(index, body)| action(checks, index, body))
        .collect()
}

/// The API's automation, from the state a command commits.
fn view(
    workspace: WorkspaceId,
    id: AutomationId,
    committed: &Committed<Automation>,
) -> AutomationView {
    let automation = &committed.state;
    AutomationView {
        id,
        workspace_id: workspace,
        project_id: automation
            .project_id
            .unwrap_or(ProjectId::from_uuid(uuid::Uuid::nil())),
        name: automation.name.clone(),
        trigger: automation
            .trigger
            .clone()
            .unwrap_or(Trigger::Created { label: None }),
        actions: automation.actions.clone(),
        enabled: automation.enabled,
        created_by: automation.created_by,
        created_at: automation.created_at.unwrap_or_default(),
        updated_at: automation.updated_at.unwrap_or_default(),
        version: committed.version,
    }
}

/// `POST /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations`:
/// creates an automation of the project.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = CreateAutomation,
    responses(
        (status = 201, description = "Created", body = AutomationView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        CreateErrors,
    ),
    security(("bearer" = ["automations:write"]))
)]
pub async fn create_automation(
    State(state): State<CommandState>,
    access: Scoped<AutomationsWrite>,
    Path(path): Path<ProjectPath>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateAutomation>,
) -> Result<Written<AutomationView>, ApiError> {
    let mut checks = Checks::new();
    let name = checks.line("name", &body.name, NAME_MAX);
    let trigger = trigger(&mut checks, &body.trigger);
    let actions = actions(&mut checks, &body.actions);
    checks.finish()?;
    let id = AutomationId::generate();
    let (workspace, project) = (access.workspace_id, path.project_id);
    let new = NewAutomation {
        project_id: project,
        name,
        trigger,
        actions,
        enabled: body.enabled.unwrap_or(true),
    };
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Automation>(access.tenant(), id)
        .checking::<Project>(project)
        .new_stream()
        .decide(|automation, project| create(automation, project, new.clone()))
        .reply(move |automation| {
            Reply::created(
                view(workspace, id, automation),
                Some(automation.version),
                format!("/api/v1/workspaces/{workspace}/projects/{project}/automations/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}`:
/// renames, re-triggers, changes the actions of, enables or disables an
/// automation. New actions apply to executions that start afterwards.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("automation_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body(content((UpdateAutomation = "application/json"), (UpdateAutomation = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = AutomationView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["automations:write"]))
)]
pub async fn update_automation(
    State(state): State<CommandState>,
    access: Scoped<AutomationsWrite>,
    Path(path): Path<AutomationPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateAutomation>,
) -> Result<Written<AutomationView>, ApiError> {
    let mut checks = Checks::new();
    let changes = AutomationChanges {
        name: body
            .name
            .as_deref()
            .map(|name| checks.line("name", name, NAME_MAX)),
        trigger: body.trigger.as_ref().map(|t| trigger(&mut checks, t)),
        actions: body.actions.as_deref().map(|a| actions(&mut checks, a)),
        enabled: body.enabled,
    };
    checks.finish()?;
    let (workspace, project, id) = (access.workspace_id, path.project_id, path.automation_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Automation>(access.tenant(), id)
        .if_match(if_match)
        .decide(|automation| {
            decide(
                automation,
                project,
                AutomationCommand::Update(changes.clone()),
            )
        })
        .reply(move |automation| {
            Reply::ok(view(workspace, id, automation), Some(automation.version))
        })
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}`:
/// deletes an automation; its executions stay readable.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/projects/{project_id}/automations/{automation_id}",
    tag = "automations",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("project_id" = uuid::Uuid, Path),
        ("automation_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("ETag" = String), ("X-Consistency-Token" = String))),
        DeleteErrors,
    ),
    security(("bearer" = ["automations:delete"]))
)]
pub async fn delete_automation(
    State(state): State<CommandState>,
    access: Scoped<AutomationsDelete>,
    Path(path): Path<AutomationPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let project = path.project_id;
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Automation>(access.tenant(), path.automation_id)
        .if_match(if_match)
        .decide(|automation| decide(automation, project, AutomationCommand::Delete))
        .reply(|automation| Reply::ok(Deleted::ok(), Some(automation.version)))
        .await
}
