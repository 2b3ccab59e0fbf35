//! The template aggregate: a versioned definition (each change records the
//! whole definition, so a version is the stream version that made it), and
//! the pure decisions that resolve an instantiation's parameters and make a
//! project and its tasks from it.
//!
//! Instantiation is two pure steps: [`resolve`] checks every parameter's
//! type and substitutes `{{parameter}}` (no state needed), then
//! [`instantiate`] checks the member parameters against the workspace the
//! decision read and decides the project's and every task's events, numbered
//! 1..N in the template's order.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use tenet_events::catalogue::project::{ProjectCreated, ProjectEvent, TaskAdded};
use tenet_events::catalogue::task::{Priority, TaskCreated, TaskEvent};
use tenet_events::catalogue::template::{
    ParameterType, TemplateCreated, TemplateDefinition, TemplateDeleted, TemplateEvent,
    TemplateParameter, TemplateRevised,
};
use tenet_events::ids::{ProjectId, TaskId, TemplateId, UserId};

use crate::project::aggregate::Project;
use crate::repository::{Aggregate, Applied};
use crate::task::aggregate::task_key;
use crate::workspace::aggregate::Workspace;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub created: bool,
    pub deleted: bool,
    pub definition: Option<TemplateDefinition>,
    pub from_project_id: Option<ProjectId>,
    pub created_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Template {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }
}

impl Aggregate for Template {
    const KIND: &'static str = "template";
    type Event = TemplateEvent;

    fn evolve(&mut self, event: &TemplateEvent, applied: &Applied) {
        match event {
            TemplateEvent::Created(created) => {
                self.created = true;
                self.definition = Some(created.definition.clone());
                self.from_project_id = created.from_project_id;
                self.created_by = applied.by;
                self.created_at = Some(applied.occurred_at);
            }
            TemplateEvent::Revised(revised) => {
                self.definition = Some(revised.definition.clone());
            }
            TemplateEvent::Deleted(_) => self.deleted = true,
        }
        self.updated_at = Some(applied.occurred_at);
    }
}

pub enum TemplateCommand {
    Create {
        definition: TemplateDefinition,
        from_project_id: Option<ProjectId>,
    },
    Revise(TemplateDefinition),
    Delete,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template already exists")]
    AlreadyExists,
    #[error("no such template")]
    NotFound,
    #[error("the template changed while this change was made; re-read it and retry")]
    ChangedMeanwhile,
}

pub fn decide(
    template: &Template,
    command: TemplateCommand,
) -> Result<Vec<TemplateEvent>, TemplateError> {
    match command {
        TemplateCommand::Create { .. } if template.created => Err(TemplateError::AlreadyExists),
        TemplateCommand::Create {
            definition,
            from_project_id,
        } => Ok(vec![TemplateEvent::Created(TemplateCreated {
            definition,
            from_project_id,
        })]),
        _ if !template.exists() => Err(TemplateError::NotFound),
        // A change that changes nothing makes no new version.
        TemplateCommand::Revise(definition)
            if template.definition.as_ref() == Some(&definition) =>
        {
            Ok(vec![])
        }
        TemplateCommand::Revise(definition) => {
            Ok(vec![TemplateEvent::Revised(TemplateRevised { definition })])
        }
        TemplateCommand::Delete => Ok(vec![TemplateEvent::Deleted(TemplateDeleted {})]),
    }
}

/// A parameter at fault: its name and what is wrong with it.
pub type ParameterError = (String, String);

/// The value of every parameter, by name (`None`: optional and not given).
pub type Values = BTreeMap<String, Option<String>>;

/// Checks every given parameter against its declaration, applying
/// defaults: all errors at once, each naming its parameter. Member
/// parameters are checked here to be user ids; that they are members is
/// for [`instantiate`], which reads the workspace.
pub fn resolve(
    parameters: &[TemplateParameter],
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<Values, Vec<ParameterError>> {
    let mut errors = Vec::new();
    for name in given.keys() {
        if !parameters.iter().any(|p| p.name == *name) {
            errors.push((
                name.clone(),
                "is not a parameter of this template".to_owned(),
            ));
        }
    }
    let mut values = Values::new();
    for parameter in parameters {
        let value = match given.get(&parameter.name) {
            None | Some(serde_json::Value::Null) => parameter.default.clone(),
            Some(serde_json::Value::String(value)) => Some(value.clone()),
            Some(_) => {
                errors.push((parameter.name.clone(), "must be a string".to_owned()));
                continue;
            }
        };
        let Some(value) = value else {
            if parameter.required {
                errors.push((parameter.name.clone(), "is required".to_owned()));
            }
            values.insert(parameter.name.clone(), None);
            continue;
        };
        if let Err(problem) = check_value(parameter, &value) {
            errors.push((parameter.name.clone(), problem));
            continue;
        }
        values.insert(parameter.name.clone(), Some(value));
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// Whether `value` is one `parameter` may hold (also used for defaults).
pub fn check_value(parameter: &TemplateParameter, value: &str) -> Result<(), String> {
    match parameter.kind {
        ParameterType::String => Ok(()),
        ParameterType::Enum if parameter.values.iter().any(|v| v == value) => Ok(()),
        ParameterType::Enum => Err(format!("must be one of {}", parameter.values.join(", "))),
        ParameterType::Date => NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|_| ())
            .map_err(|_| "must be a date, YYYY-MM-DD".to_owned()),
        ParameterType::Member => value
            .parse::<UserId>()
            .map(|_| ())
            .map_err(|_| "must be the user id of a member".to_owned()),
    }
}

/// `text` with every `{{name}}` replaced by its value (an optional
/// parameter not given is the empty string).
pub fn substitute(text: &str, values: &Values) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if values.contains_key(after[..end].trim()) => {
                let name = after[..end].trim();
                out.push_str(values[name].as_deref().unwrap_or_default());
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `{{name}}` placeholders of `text`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        names.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    names
}

/// A task of the new project, its strings substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTask {
    pub id: TaskId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
    /// The member parameter that names its assignee, and that member.
    pub assignee: Option<(String, UserId)>,
}

/// The project an instantiation makes, resolved from the template and its
/// parameters: everything but the checks that need the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub project_id: ProjectId,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub key: String,
    pub template_id: TemplateId,
    pub template_version: i64,
    /// Every member parameter given, to check against the workspace.
    pub members: Vec<(String, UserId)>,
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstantiateError {
    #[error("the project already exists")]
    AlreadyExists,
    #[error("parameters name users who are not members of this workspace")]
    NotMembers(Vec<String>),
}

/// Decides the new project (recording its template and version) and its
/// tasks, numbered 1..N in the template's order, on the project's stream;
/// each member parameter must be a member of `workspace` at the version
/// the decision read.
#[allow(clippy::type_complexity)]
pub fn instantiate(
    project: &Project,
    workspace: &Workspace,
    planned: &Planned,
) -> Result<(Vec<ProjectEvent>, Vec<(TaskId, Vec<TaskEvent>)>), InstantiateError> {
    if project.created {
        return Err(InstantiateError::AlreadyExists);
    }
    let strangers: Vec<String> = planned
        .members
        .iter()
        .filter(|(_, user)| !(workspace.exists() && workspace.members.contains_key(user)))
        .map(|(name, _)| name.clone())
        .collect();
    if !strangers.is_empty() {
        return Err(InstantiateError::NotMembers(strangers));
    }
    let mut project_events = vec![ProjectEvent::Created(ProjectCreated {
        name: planned.name.clone(),
        slug: planned.slug.clone(),
        description: planned.description.clone(),
        key: planned.key.clone(),
        template_id: Some(planned.template_id),
        template_version: Some(planned.template_version),
    })];
    let mut tasks = Vec::with_capacity(planned.tasks.len());
    for (index, task) in planned.tasks.iter().enumerate() {
        let number = index as i64 + 1;
        project_events.push(ProjectEvent::TaskAdded(TaskAdded {
            task_id: task.id,
            number,
        }));
        tasks.push((
            task.id,
            vec![TaskEvent::Created(TaskCreated {
                project_id: planned.project_id,
                number,
                key: task_key(&planned.key, number),
                title: task.title.clone(),
                description: task.description.clone(),
                priority: task.priority,
                assignee_id: task.assignee.as_ref().map(|(_, user)| *user),
                labels: task.labels.clone(),
                due_date: task.due_date,
            })],
        ));
    }
    Ok((project_events, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use serde_json::json;
    use tenet_events::catalogue::workspace::{MemberAdded, WorkspaceCreated, WorkspaceEvent};

    fn parameter(name: &str, kind: ParameterType, required: bool) -> TemplateParameter {
        TemplateParameter {
            name: name.into(),
            kind,
            required,
            default: None,
            values: if kind == ParameterType::Enum {
                vec!["web".into(), "mobile".into()]
            } else {
                vec![]
            },
        }
    }

    fn parameters() -> Vec<TemplateParameter> {
        vec![
            parameter("product", ParameterType::String, true),
            parameter("platform", ParameterType::Enum, true),
            parameter("launch", ParameterType::Date, false),
            parameter("owner", ParameterType::Member, false),
        ]
    }

    fn given_params(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_parameter_error_is_named_at_once() {
        let errors = resolve(
            &parameters(),
            &given_params(json!({
                "platform": "desktop",
                "launch": "next week",
                "owner": 7,
                "colour": "red",
            })),
        )
        .unwrap_err();
        let named: BTreeMap<String, String> = errors.into_iter().collect();
        assert_eq!(named["product"], "is required");
        assert_eq!(named["platform"], "must be one of web, mobile");
        assert_eq!(named["launch"], "must be a date, YYYY-MM-DD");
        assert_eq!(named["owner"], "must be a string");
        assert_eq!(named["colour"], "is not a parameter of this template");
    }

    #[test]
    fn defaults_fill_what_is_not_given_and_strings_are_substituted() {
        let mut declared = parameters();
        declared[1].default = Some("web".into());
        let values = resolve(&declared, &given_params(json!({ "product": "Tenet" }))).unwrap();
        assert_eq!(values["platform"].as_deref(), Some("web"));
        assert_eq!(values["owner"], None);
        assert_eq!(
            substitute(
                "Launch {{product}} on {{ platform }}{{owner}} {{unknown}}",
                &values
            ),
            "Launch Tenet on web {{unknown}}"
        );
        assert_eq!(placeholders("a {{x}} b {{ y }} {{z"), vec!["x", "y"]);
    }

    fn workspace_with(member: UserId) -> Workspace {
        given([
            WorkspaceEvent::Created(WorkspaceCreated {
                name: "Acme".into(),
                slug: "acme".into(),
                owner_id: UserId::from_uuid(uuid::Uuid::from_u128(1)),
            }),
            WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: member,
                role: tenet_events::catalogue::workspace::Role::Member,
            }),
        ])
    }

    fn planned(owner: UserId, tasks: usize) -> Planned {
        Planned {
            project_id: ProjectId::from_uuid(uuid::Uuid::from_u128(1)),
            name: "Launch".into(),
            slug: "launch".into(),
            description: String::new(),
            key: "LAUNCH".into(),
            template_id: TemplateId::from_uuid(uuid::Uuid::from_u128(2)),
            template_version: 3,
            members: vec![("owner".into(), owner)],
            tasks: (0..tasks)
                .map(|n| PlannedTask {
                    id: TaskId::from_uuid(uuid::Uuid::from_u128(100 + n as u128)),
                    title: format!("Task {n}"),
                    description: String::new(),
                    priority: Priority::High,
                    labels: vec![],
                    due_date: None,
                    assignee: Some(("owner".into(), owner)),
                })
                .collect(),
        }
    }

    #[test]
    fn instantiation_numbers_the_tasks_in_order_and_records_the_version() {
        let owner = UserId::from_uuid(uuid::Uuid::from_u128(9));
        let (project, tasks) = instantiate(
            &Project::default(),
            &workspace_with(owner),
            &planned(owner, 3),
        )
        .unwrap();
        assert!(matches!(
            &project[0],
            ProjectEvent::Created(ProjectCreated {
                template_version: Some(3),
                ..
            })
        ));
        let numbers: Vec<i64> = project[1..]
            .iter()
            .map(|event| match event {
                ProjectEvent::TaskAdded(added) => added.number,
                _ => 0,
            })
            .collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        let keys: Vec<String> = tasks
            .iter()
            .map(|(_, events)| match &events[0] {
                TaskEvent::Created(created) => created.key.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(keys, vec!["LAUNCH-1", "LAUNCH-2", "LAUNCH-3"]);
    }

    #[test]
    fn a_member_parameter_naming_a_stranger_is_refused_by_name() {
        let owner = UserId::from_uuid(uuid::Uuid::from_u128(9));
        let stranger = UserId::from_uuid(uuid::Uuid::from_u128(10));
        assert_eq!(
            instantiate(
                &Project::default(),
                &workspace_with(owner),
                &planned(stranger, 1)
            ),
            Err(InstantiateError::NotMembers(vec!["owner".into()]))
        );
    }

    #[test]
    fn versions_are_recorded_only_for_real_changes() {
        let definition = TemplateDefinition {
            name: "T".into(),
            parameters: vec![],
            project: tenet_events::catalogue::template::ProjectBlueprint {
                name: "P".into(),
                description: String::new(),
                tasks: vec![],
            },
        };
        let template = given([TemplateEvent::Created(TemplateCreated {
            definition: definition.clone(),
            from_project_id: None,
        })]);
        assert_eq!(
            decide(&template, TemplateCommand::Revise(definition.clone())),
            Ok(vec![])
        );
        let renamed = TemplateDefinition {
            name: "T2".into(),
            ..definition
        };
        assert_eq!(
            decide(&template, TemplateCommand::Revise(renamed.clone()))
                .unwrap()
                .len(),
            1
        );
        let deleted = given([
            TemplateEvent::Created(TemplateCreated {
                definition: renamed.clone(),
                from_project_id: None,
            }),
            TemplateEvent::Deleted(TemplateDeleted {}),
        ]);
        assert_eq!(
            decide(&deleted, TemplateCommand::Revise(renamed)),
            Err(TemplateError::NotFound)
        );
    }
}
