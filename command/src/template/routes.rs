//! Creating, revising and deleting project templates, and instantiating
//! one: a project and all its tasks in one atomic append.

use axum::extract::State;
use chrono::{Days, Utc};
use serde::Deserialize;
use tenet_events::catalogue::project::{ProjectEvent, slug_claim};
use tenet_events::catalogue::task::{Priority, TaskEvent};
use tenet_events::catalogue::template::{
    ParameterType, ProjectBlueprint, TaskBlueprint, TemplateDefinition, TemplateParameter,
};
use tenet_events::ids::{ProjectId, StreamId, TaskId, TemplateId, UserId, WorkspaceId};
use tenet_events::store::Claim;
use tenet_http::auth::{
    Access, ProjectsRead, ProjectsWrite, Requirement, Scoped, TasksRead, TasksWrite,
    TemplatesDelete, TemplatesRead, TemplatesWrite,
};
use tenet_http::openapi::{ChangeErrors, CreateErrors};
use tenet_http::validate::slugify;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::projects::ProjectView;
use tenet_projections::templates::TemplateView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{
    InstantiateError, Planned, PlannedTask, Template, TemplateCommand, TemplateError, Values,
    check_value, decide, instantiate, placeholders, resolve, substitute,
};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::StateErrors;
use crate::pipeline::Refusal;
use crate::project::aggregate::Project;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;
use crate::task::aggregate::Task;
use crate::task::routes::{
    DESCRIPTION_MAX as TASK_DESCRIPTION_MAX, LABEL_MAX, LABELS_MAX, TITLE_MAX,
};
use crate::workspace::aggregate::Workspace;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_template))
        .routes(routes!(update_template, delete_template))
        .routes(routes!(instantiate_template))
}

/// A template's name, and its project's name before substitution.
pub const NAME_MAX: usize = 100;
/// Parameters per template.
pub const PARAMETERS_MAX: usize = 50;
/// A parameter's name: `[a-z][a-z0-9_]*`, at most this long.
pub const PARAMETER_NAME_MAX: usize = 50;
/// Values of an `enum` parameter, and the length of each (and of defaults).
pub const VALUES_MAX: usize = 100;
pub const VALUE_MAX: usize = 200;
/// Tasks per template.
pub const TASKS_MAX: usize = 200;
/// `due_in_days` at most (ten years).
pub const DUE_IN_DAYS_MAX: u32 = 3_650;
/// A project's name after substitution.
pub const PROJECT_NAME_MAX: usize = 100;
pub const PROJECT_DESCRIPTION_MAX: usize = crate::project::routes::DESCRIPTION_MAX;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterBody {
    /// `[a-z][a-z0-9_]*`, up to 50 characters, unique in the template.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// `false` when absent.
    #[serde(default)]
    pub required: bool,
    /// Used when an instantiation gives none; must be valid for the type.
    pub default: Option<String>,
    /// An `enum`'s values: 1 to 100, each up to 200 characters. Only for `enum`.
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBody {
    /// 1 to 200 characters; may say `{{parameter}}`.
    pub title: String,
    /// Up to 20,000 characters; may say `{{parameter}}`.
    pub description: Option<String>,
    /// `medium` when absent.
    pub priority: Option<Priority>,
    /// Up to 20 labels of up to 50 characters.
    pub labels: Option<Vec<String>>,
    /// Due this many days (0 to 3,650) after the day of instantiation (UTC).
    pub due_in_days: Option<u32>,
    /// The name of a `member` parameter: its value is the assignee.
    pub assignee: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    /// 1 to 100 characters; may say `{{parameter}}`.
    pub name: String,
    /// Up to 10,000 characters; may say `{{parameter}}`.
    pub description: Option<String>,
    /// Up to 200 tasks, created in this order (numbered 1..N).
    pub tasks: Option<Vec<TaskBody>>,
}

/// A template: `name` and `project` (with `parameters`), or
/// `from_project_id` to copy an existing project's tasks (then `name`
/// defaults to the project's, and `project` must be absent).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// Up to 50 parameters.
    pub parameters: Option<Vec<ParameterBody>>,
    pub project: Option<ProjectBody>,
    /// A project of this workspace whose name, description and tasks
    /// (title, description, priority, labels; up to 200) become the
    /// template's project.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub from_project_id: Option<ProjectId>,
}

/// What to change; the parts given replace the current ones, and any
/// change makes a new version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplate {
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub parameters: Option<Vec<ParameterBody>>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub project: Option<ProjectBody>,
}

/// The values of the template's parameters, by name: each a string
/// (`date`: `YYYY-MM-DD`; `member`: a member's user id).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Instantiate {
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct WorkspacePath {
    pub workspace_id: WorkspaceId,
}

#[derive(Debug, Deserialize)]
pub struct TemplatePath {
    pub workspace_id: WorkspaceId,
    pub template_id: TemplateId,
}

impl Refusal for TemplateError {
    fn problem(self) -> ApiError {
        match self {
            TemplateError::NotFound => ApiError::not_found("No such template"),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

impl Refusal for InstantiateError {
    fn problem(self) -> ApiError {
        match self {
            InstantiateError::NotMembers(names) => {
                let mut checks = Checks::new();
                for name in names {
                    checks.add(
                        format!("parameters.{name}"),
                        "must be a member of this workspace",
                    );
                }
                checks.finish().err().unwrap_or_else(|| {
                    ApiError::field("parameters", "must name members of this workspace")
                })
            }
            other => ApiError::conflict(other.to_string()),
        }
    }

    fn claim_taken(claim: &Claim) -> ApiError {
        ApiError::conflict(format!(
            "Another project took {:?} meanwhile; retry",
            claim.value
        ))
    }
}

/// Checks a definition's parts, each field named as the body names it.
fn definition(
    checks: &mut Checks,
    name: &str,
    parameters: &[ParameterBody],
    project: &ProjectBody,
) -> TemplateDefinition {
    let name = checks.line("name", name, NAME_MAX);
    if parameters.len() > PARAMETERS_MAX {
        checks.add(
            "parameters",
            format!("must have at most {PARAMETERS_MAX} parameters"),
        );
    }
    let mut declared: Vec<TemplateParameter> = Vec::with_capacity(parameters.len());
    for (index, body) in parameters.iter().enumerate() {
        let field = format!("parameters[{index}]");
        let valid_name = !body.name.is_empty()
            && body.name.len() <= PARAMETER_NAME_MAX
            && body.name.starts_with(|c: char| c.is_ascii_lowercase())
            && body
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            checks.add(
                format!("{field}.name"),
                format!("must be [a-z][a-z0-9_]*, at most {PARAMETER_NAME_MAX} characters"),
            );
        } else if declared.iter().any(|p| p.name == body.name) {
            checks.add(format!("{field}.name"), "is declared twice");
        }
        let values = body.values.clone().unwrap_or_default();
        match body.kind {
            ParameterType::Enum if values.is_empty() || values.len() > VALUES_MAX => checks.add(
                format!("{field}.values"),
                format!("an enum needs 1 to {VALUES_MAX} values"),
            ),
            ParameterType::Enum => {
                for (n, value) in values.iter().enumerate() {
                    if value.is_empty() || value.chars().count() > VALUE_MAX {
                        checks.add(
                            format!("{field}.values[{n}]"),
                            format!("must be 1 to {VALUE_MAX} characters"),
                        );
                    }
                }
            }
            _ if body.values.is_some() => {
                checks.add(format!("{field}.values"), "only an enum has values")
            }
            _ => {}
        }
        let parameter = TemplateParameter {
            name: body.name.clone(),
            kind: body.kind,
            required: body.required,
            default: body.default.clone(),
            values,
        };
        if let Some(default) = &body.default {
            if default.chars().count() > VALUE_MAX {
                checks.add(
                    format!("{field}.default"),
                    format!("must be at most {VALUE_MAX} characters"),
                );
            } else if let Err(message) = check_value(&parameter, default) {
                checks.add(format!("{field}.default"), message);
            }
        }
        declared.push(parameter);
    }
    let known = |checks: &mut Checks, field: &str, text: &str| {
        for placeholder in placeholders(text) {
            if !declared.iter().any(|p| p.name == placeholder) {
                checks.add(field, format!("names no parameter {placeholder:?}"));
            }
        }
    };
    let project_name = checks.line("project.name", &project.name, NAME_MAX);
    known(checks, "project.name", &project_name);
    let description = checks.text(
        "project.description",
        project.description.as_deref().unwrap_or_default(),
        PROJECT_DESCRIPTION_MAX,
    );
    known(checks, "project.description", &description);
    let bodies = project.tasks.as_deref().unwrap_or_default();
    if bodies.len() > TASKS_MAX {
        checks.add(
            "project.tasks",
            format!("must have at most {TASKS_MAX} tasks"),
        );
    }
    let mut tasks = Vec::with_capacity(bodies.len());
    for (index, task) in bodies.iter().enumerate() {
        let field = format!("project.tasks[{index}]");
        let title = checks.line(&format!("{field}.title"), &task.title, TITLE_MAX);
        known(checks, &format!("{field}.title"), &title);
        let description = checks.text(
            &format!("{field}.description"),
            task.description.as_deref().unwrap_or_default(),
            TASK_DESCRIPTION_MAX,
        );
        known(checks, &format!("{field}.description"), &description);
        let given = task.labels.as_deref().unwrap_or_default();
        if given.len() > LABELS_MAX {
            checks.add(
                format!("{field}.labels"),
                format!("must have at most {LABELS_MAX} labels"),
            );
        }
        let mut labels: Vec<String> = Vec::with_capacity(given.len());
        for (n, label) in given.iter().enumerate() {
            let label = checks.line(&format!("{field}.labels[{n}]"), label, LABEL_MAX);
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        if task.due_in_days.is_some_and(|days| days > DUE_IN_DAYS_MAX) {
            checks.add(
                format!("{field}.due_in_days"),
                format!("must be at most {DUE_IN_DAYS_MAX}"),
            );
        }
        if let Some(assignee) = &task.assignee
            && !declared
                .iter()
                .any(|p| p.name == *assignee && p.kind == ParameterType::Member)
        {
            checks.add(
                format!("{field}.assignee"),
                "must name a member parameter of this template",
            );
        }
        tasks.push(TaskBlueprint {
            title,
            description,
            priority: task.priority.unwrap_or_default(),
            labels,
            due_in_days: task.due_in_days,
            assignee: task.assignee.clone(),
        });
    }
    TemplateDefinition {
        name,
        parameters: declared,
        project: ProjectBlueprint {
            name: project_name,
            description,
            tasks,
        },
    }
}

/// The definition as a body would give it (for PATCH's partial changes).
fn bodies(definition: &TemplateDefinition) -> (Vec<ParameterBody>, ProjectBody) {
    let parameters = definition
        .parameters
        .iter()
        .map(|p| ParameterBody {
            name: p.name.clone(),
            kind: p.kind,
            required: p.required,
            default: p.default.clone(),
            values: (p.kind == ParameterType::Enum).then(|| p.values.clone()),
        })
        .collect();
    let project = ProjectBody {
        name: definition.project.name.clone(),
        description: Some(definition.project.description.clone()),
        tasks: Some(
            definition
                .project
                .tasks
                .iter()
                .map(|t| TaskBody {
                    title: t.title.clone(),
                    description: Some(t.description.clone()),
                    priority: Some(t.priority),
                    labels: Some(t.labels.clone()),
                    due_in_days: t.due_in_days,
                    assignee: t.assignee.clone(),
                })
                .collect(),
        ),
    };
    (parameters, project)
}

/// The API's template, from the state a command commits.
fn view(workspace: WorkspaceId, id: TemplateId, committed: &Committed<Template>) -> TemplateView {
    let state = &committed.state;
    let definition = state.definition.clone().unwrap_or(TemplateDefinition {
        name: String::new(),
        parameters: Vec::new(),
        project: ProjectBlueprint {
            name: String::new(),
            description: String::new(),
            tasks: Vec::new(),
        },
    });
    TemplateView {
        id,
        workspace_id: workspace,
        name: definition.name,
        parameters: definition.parameters,
        project: definition.project,
        from_project_id: state.from_project_id,
        created_by: state.created_by,
        created_at: state.created_at.unwrap_or_default(),
        updated_at: state.updated_at.unwrap_or_default(),
        version: committed.version,
    }
}

/// The project `from` and its live tasks in number order, read from their
/// streams (the project's stream lists every task it numbered); `None` if
/// this workspace has no such project.
async fn project_blueprint(
    state: &CommandState,
    access: &Access,
    from: ProjectId,
) -> Result<Option<ProjectBlueprint>, ApiError> {
    let tenant = access.tenant();
    let repository = &state.repository;
    let project = repository.load::<Project>(tenant, from.into()).await?;
    if !project.state.created {
        return Ok(None);
    }
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let events = repository
            .store()
            .read_stream(tenant, from.into(), after, 1_000)
            .await?;
        for event in &events {
            after = event.stream_version;
            if event.event_type == "project.task_added"
                && let Ok(ProjectEvent::TaskAdded(added)) =
                    tenet_events::catalogue::DomainEvent::from_recorded(event)
            {
                ids.push(added.task_id);
            }
        }
        if events.len() < 1_000 {
            break;
        }
    }
    let created = project.state.created_at.unwrap_or_default().date_naive();
    let mut tasks = Vec::new();
    for id in ids {
        let task = repository.load::<Task>(tenant, id.into()).await?.state;
        if !task.exists() {
            continue;
        }
        if tasks.len() == TASKS_MAX {
            return Err(ApiError::field(
                "from_project_id",
                format!("has more than {TASKS_MAX} tasks; a template holds at most {TASKS_MAX}"),
            ));
        }
        tasks.push(TaskBlueprint {
            // Braces in the project's text are not placeholders.
            title: task.title.replace("{{", "{ {"),
            description: task.description.replace("{{", "{ {"),
            priority: task.priority,
            labels: task.labels,
            // A due date keeps its distance from the project's creation.
            due_in_days: task
                .due_date
                .and_then(|due| u32::try_from((due - created).num_days()).ok())
                .map(|days| days.min(DUE_IN_DAYS_MAX)),
            assignee: None,
        });
    }
    Ok(Some(ProjectBlueprint {
        name: project.state.name.replace("{{", "{ {"),
        description: project.state.description.replace("{{", "{ {"),
        tasks,
    }))
}

/// `POST /api/v1/workspaces/{workspace_id}/templates`: creates a template
/// (version 1), from a definition or from an existing project.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/templates",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "Created", body = TemplateView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        CreateErrors,
    ),
    security(("bearer" = ["templates:write"]))
)]
pub async fn create_template(
    State(state): State<CommandState>,
    access: Scoped<TemplatesWrite>,
    Path(_path): Path<WorkspacePath>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateTemplate>,
) -> Result<Written<TemplateView>, ApiError> {
    let (name, project) = match (body.from_project_id, body.project) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "project",
                "must be absent when from_project_id is given",
            ));
        }
        (Some(from), None) => {
            access.require(ProjectsRead::SCOPE)?;
            access.require(TasksRead::SCOPE)?;
            let blueprint = project_blueprint(&state, &access, from)
                .await?
                .ok_or_else(|| {
                    ApiError::field("from_project_id", "names no project of this workspace")
                })?;
            let name = body.name.unwrap_or_else(|| blueprint.name.clone());
            let (_, project) = bodies(&TemplateDefinition {
                name: String::new(),
                parameters: Vec::new(),
                project: blueprint,
            });
            (name, project)
        }
        (None, Some(project)) => {
            let name = body
                .name
                .ok_or_else(|| ApiError::field("name", "is required"))?;
            (name, project)
        }
        (None, None) => {
            return Err(ApiError::field(
                "project",
                "is required (or from_project_id)",
            ));
        }
    };
    let mut checks = Checks::new();
    let definition = definition(
        &mut checks,
        &name,
        body.parameters.as_deref().unwrap_or_default(),
        &project,
    );
    checks.finish()?;
    let (id, workspace, from_project_id) = (
        TemplateId::generate(),
        access.workspace_id,
        body.from_project_id,
    );
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Template>(access.tenant(), id)
        .new_stream()
        .decide(|template| {
            decide(
                template,
                TemplateCommand::Create {
                    definition: definition.clone(),
                    from_project_id,
                },
            )
        })
        .reply(move |template| {
            Reply::created(
                view(workspace, id, template),
                Some(template.version),
                format!("/api/v1/workspaces/{workspace}/templates/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}/templates/{template_id}`:
/// replaces the parts given; any change is a new version.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/templates/{template_id}",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("template_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body(content((UpdateTemplate = "application/json"), (UpdateTemplate = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = TemplateView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["templates:write"]))
)]
pub async fn update_template(
    State(state): State<CommandState>,
    access: Scoped<TemplatesWrite>,
    Path(path): Path<TemplatePath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateTemplate>,
) -> Result<Written<TemplateView>, ApiError> {
    let (workspace, id) = (access.workspace_id, path.template_id);
    // The parts not given are the current definition's.
    let current = state
        .repository
        .load::<Template>(access.tenant(), id.into())
        .await?;
    let Some(existing) = current
        .state
        .definition
        .as_ref()
        .filter(|_| current.state.exists())
    else {
        return Err(ApiError::not_found("No such template"));
    };
    let (parameters, project) = bodies(existing);
    let mut checks = Checks::new();
    let definition = definition(
        &mut checks,
        body.name.as_deref().unwrap_or(&existing.name),
        body.parameters.as_deref().unwrap_or(&parameters),
        body.project.as_ref().unwrap_or(&project),
    );
    checks.finish()?;
    let base = existing.clone();
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Template>(access.tenant(), id)
        .if_match(if_match)
        .decide(|template| {
            // The parts not given were taken from `base`: a change that
            // committed since would be silently undone.
            if template.exists() && template.definition.as_ref() != Some(&base) {
                return Err(TemplateError::ChangedMeanwhile);
            }
            decide(template, TemplateCommand::Revise(definition.clone()))
        })
        .reply(move |template| Reply::ok(view(workspace, id, template), Some(template.version)))
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}/templates/{template_id}`:
/// deletes a template (projects made from it keep their record of it).
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/templates/{template_id}",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("template_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        StateErrors,
    ),
    security(("bearer" = ["templates:delete"]))
)]
pub async fn delete_template(
    State(state): State<CommandState>,
    access: Scoped<TemplatesDelete>,
    Path(path): Path<TemplatePath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Template>(access.tenant(), path.template_id)
        .if_match(if_match)
        .decide(|template| decide(template, TemplateCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}

/// The slug for a project named `name`: derived from it, or, if a project
/// of the workspace holds that, the first of `slug-2`, `slug-3`, ... that
/// none holds. Claimed with the project, so a race is refused at commit.
async fn free_slug(
    state: &CommandState,
    workspace: WorkspaceId,
    name: &str,
    id: ProjectId,
) -> Result<String, ApiError> {
    let base = slugify(name, "project", id.as_uuid());
    let scope = slug_claim(workspace);
    for n in 1..=100 {
        let slug = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if state
            .repository
            .store()
            .find_claim(&Claim::new(&scope, &slug))
            .await?
            .is_none()
        {
            return Ok(slug);
        }
    }
    Err(ApiError::conflict(format!(
        "Every slug from {base} to {base}-100 is taken in this workspace; instantiate with another name"
    )))
}

/// What substitution makes of a template: the project's name and
/// description, its tasks, and the member parameters given.
type Substituted = (String, String, Vec<PlannedTask>, Vec<(String, UserId)>);

/// The project and tasks an instantiation makes: every string
/// substituted, and what the substitution makes checked again.
fn plan(
    definition: &TemplateDefinition,
    values: &Values,
    today: chrono::NaiveDate,
) -> Result<Substituted, ApiError> {
    let mut checks = Checks::new();
    // What substitution makes is the parameters' doing: named as theirs.
    let name = substitute(&definition.project.name, values);
    let name = checks.line("parameters", &name, PROJECT_NAME_MAX);
    let description = substitute(&definition.project.description, values);
    let description = checks.text("parameters", &description, PROJECT_DESCRIPTION_MAX);
    let member = |name: &str| -> Option<UserId> {
        values
            .get(name)
            .and_then(|value| value.as_deref())
            .and_then(|value| value.parse().ok())
    };
    let members = definition
        .parameters
        .iter()
        .filter(|p| p.kind == ParameterType::Member)
        .filter_map(|p| member(&p.name).map(|user| (p.name.clone(), user)))
        .collect();
    let mut tasks = Vec::with_capacity(definition.project.tasks.len());
    for blueprint in &definition.project.tasks {
        let title = checks.line(
            "parameters",
            &substitute(&blueprint.title, values),
            TITLE_MAX,
        );
        let description = checks.text(
            "parameters",
            &substitute(&blueprint.description, values),
            TASK_DESCRIPTION_MAX,
        );
        tasks.push(PlannedTask {
            id: TaskId::generate(),
            title,
            description,
            priority: blueprint.priority,
            labels: blueprint.labels.clone(),
            due_date: blueprint
                .due_in_days
                .and_then(|days| today.checked_add_days(Days::new(u64::from(days)))),
            assignee: blueprint
                .assignee
                .as_ref()
                .and_then(|name| member(name).map(|user| (name.clone(), user))),
        });
    }
    checks.finish()?;
    Ok((name, description, tasks, members))
}

/// `POST /api/v1/workspaces/{workspace_id}/templates/{template_id}/instantiate`:
/// creates a project from the template's current version, with all its
/// tasks, numbered 1..N in the template's order, in one atomic append.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/templates/{template_id}/instantiate",
    tag = "templates",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("template_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = Instantiate,
    responses(
        (status = 201, description = "The new project, with the template's id and version", body = ProjectView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        CreateErrors,
    ),
    security(("bearer" = ["templates:read", "projects:write", "tasks:write"]))
)]
pub async fn instantiate_template(
    State(state): State<CommandState>,
    access: Scoped<TemplatesRead>,
    Path(path): Path<TemplatePath>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<Instantiate>,
) -> Result<Written<ProjectView>, ApiError> {
    access.require(ProjectsWrite::SCOPE)?;
    access.require(TasksWrite::SCOPE)?;
    let tenant = access.tenant();
    let template = state
        .repository
        .load::<Template>(tenant, path.template_id.into())
        .await?;
    let Some(definition) = template
        .state
        .definition
        .as_ref()
        .filter(|_| template.state.exists())
    else {
        return Err(ApiError::not_found("No such template"));
    };
    let given = body.parameters.unwrap_or_default();
    let values = resolve(&definition.parameters, &given).map_err(|errors| {
        let mut checks = Checks::new();
        for (name, message) in errors {
            checks.add(format!("parameters.{name}"), message);
        }
        checks
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::field("parameters", "are invalid"))
    })?;
    let (name, description, tasks, members) = plan(definition, &values, Utc::now().date_naive())?;
    let (id, workspace) = (ProjectId::generate(), access.workspace_id);
    let slug = free_slug(&state, workspace, &name, id).await?;
    let key = crate::project::routes::free_key(&state, workspace, &slug).await?;
    let planned = Planned {
        project_id: id,
        name,
        slug,
        description,
        key,
        template_id: path.template_id,
        template_version: template.version,
        members,
        tasks,
    };
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Project>(tenant, id)
        .creating::<Task>()
        .checking::<Workspace>(workspace)
        .new_stream()
        .decide(|project, workspace| {
            let (events, tasks) = instantiate(project, workspace, &planned)?;
            let tasks: Vec<(StreamId, Vec<TaskEvent>)> = tasks
                .into_iter()
                .map(|(task, events)| (task.into(), events))
                .collect();
            Ok::<_, InstantiateError>((events, tasks))
        })
        .reply(move |project| {
            let open = project.state.tasks;
            Reply::created(
                crate::project::routes::view(workspace, id, (open, 0), project),
                Some(project.revision()),
                format!("/api/v1/workspaces/{workspace}/projects/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}
