//! Project templates: a named, versioned blueprint of a project and its
//! tasks, with typed parameters its strings may name as `{{parameter}}`.
//!
//! Every definition change records the whole definition, so a version of
//! a template is exactly the event that made it (its stream version).

use serde::{Deserialize, Serialize};

use crate::catalogue::task::Priority;
use crate::event_family;
use crate::ids::ProjectId;

/// What a parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParameterType {
    /// Any text.
    String,
    /// One of the parameter's `values`.
    Enum,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// The user id of a member of the workspace.
    Member,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::Enum => "enum",
            ParameterType::Date => "date",
            ParameterType::Member => "member",
        }
    }
}

/// One parameter of a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateParameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    pub required: bool,
    /// Used when the instantiation gives no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The allowed values of an `enum` parameter (empty for the others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A task the template's project starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskBlueprint {
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub labels: Vec<String>,
    /// Due this many days after the day of instantiation (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_in_days: Option<u32>,
    /// The name of a `member` parameter whose value is the assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

/// The project a template makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectBlueprint {
    pub name: String,
    pub description: String,
    pub tasks: Vec<TaskBlueprint>,
}

/// A template's whole definition, as each version records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    pub name: String,
    pub parameters: Vec<TemplateParameter>,
    pub project: ProjectBlueprint,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateCreated {
    #[serde(flatten)]
    pub definition: TemplateDefinition,
    /// The project it was made from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_project_id: Option<ProjectId>,
}

/// A new version: the whole definition after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRevised {
    #[serde(flatten)]
    pub definition: TemplateDefinition,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDeleted {}

event_family! {
    /// What happens to a project template.
    pub enum TemplateEvent {
        Created(TemplateCreated) = "template.created" v 1;
        Revised(TemplateRevised) = "template.revised" v 1;
        Deleted(TemplateDeleted) = "template.deleted" v 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::DomainEvent;

    #[test]
    fn a_creation_round_trips_through_the_log_shape() {
        let event = TemplateEvent::Created(TemplateCreated {
            definition: TemplateDefinition {
                name: "Launch".into(),
                parameters: vec![TemplateParameter {
                    name: "owner".into(),
                    kind: ParameterType::Member,
                    required: true,
                    default: None,
                    values: vec![],
                }],
                project: ProjectBlueprint {
                    name: "Launch {{product}}".into(),
                    description: String::new(),
                    tasks: vec![TaskBlueprint {
                        title: "Plan".into(),
                        description: String::new(),
                        priority: Priority::High,
                        labels: vec!["launch".into()],
                        due_in_days: Some(3),
                        assignee: Some("owner".into()),
                    }],
                },
            },
            from_project_id: None,
        });
        let new = event.to_new_event();
        assert_eq!(new.event_type, "template.created");
        assert_eq!(new.data["parameters"][0]["type"], "member");
        assert!(new.data.get("from_project_id").is_none());
        let back = TemplateEvent::decode(&new.event_type, new.schema_version, &new.data).unwrap();
        assert_eq!(back, event);
    }
}
