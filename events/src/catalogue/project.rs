//! Projects: containers of tasks inside a workspace.

use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::{TaskId, TemplateId, WorkspaceId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectCreated {
    pub name: String,
    /// Unique within the workspace (claimed under [`slug_claim`]).
    pub slug: String,
    pub description: String,
    /// The prefix of its tasks' keys (`WEB` in `WEB-42`), fixed at
    /// creation so keys stay stable when the slug changes. Since v2; a v1
    /// event (which has none) is read with its slug in capitals, the keys
    /// its tasks were given.
    pub key: String,
    /// The template it was instantiated from, if any (optional: projects
    /// created before templates, or without one, have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<TemplateId>,
    /// The version of that template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<i64>,
}

/// Reads `project.created` v1 (no `key`) as v2.
fn upcast_created(
    mut data: serde_json::Value,
    version: i32,
) -> Result<serde_json::Value, crate::catalogue::DecodeError> {
    if version == 1
        && let Some(fields) = data.as_object_mut()
        && !fields.contains_key("key")
    {
        let key = fields
            .get("slug")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_uppercase();
        fields.insert("key".to_owned(), serde_json::Value::String(key));
    }
    Ok(data)
}

/// The fields a PATCH changed, with their new values (absent: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectArchived {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRestored {}

/// A task was created in the project, with the next number of its
/// counter (the project stream is where numbers are handed out, so two
/// tasks can never get one number, and none is skipped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAdded {
    pub task_id: TaskId,
    pub number: i64,
}

event_family! {
    /// What happens to a project.
    pub enum ProjectEvent {
        Created(ProjectCreated) = "project.created" v 2, upcast upcast_created;
        Updated(ProjectUpdated) = "project.updated" v 1;
        Archived(ProjectArchived) = "project.archived" v 1;
        Restored(ProjectRestored) = "project.restored" v 1;
        TaskAdded(TaskAdded) = "project.task_added" v 1;
    }
}

/// The claim scope of project slugs: slugs are unique per workspace.
pub fn slug_claim(workspace: WorkspaceId) -> String {
    format!("project.slug/{workspace}")
}

/// The claim scope of project keys: unique per workspace, and never given
/// up (a slug can be renamed and reused; task keys must never repeat).
pub fn key_claim(workspace: WorkspaceId) -> String {
    format!("project.key/{workspace}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{DecodeError, DomainEvent};

    #[test]
    fn events_round_trip_through_the_log_shape() {
        let event = ProjectEvent::Updated(ProjectUpdated {
            name: Some("Web".into()),
            ..ProjectUpdated::default()
        });
        let new = event.to_new_event();
        assert_eq!(new.event_type, "project.updated");
        assert_eq!(new.data, serde_json::json!({ "name": "Web" }));
        let back = ProjectEvent::decode(&new.event_type, new.schema_version, &new.data).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn a_v1_creation_is_read_with_its_slug_in_capitals_as_key() {
        let v1 = serde_json::json!({ "name": "Web app", "slug": "web-app", "description": "" });
        let ProjectEvent::Created(created) =
            ProjectEvent::decode("project.created", 1, &v1).unwrap()
        else {
            panic!("not a creation");
        };
        assert_eq!(created.key, "WEB-APP");
        let v2 = serde_json::json!({ "name": "Web", "slug": "web-app", "description": "", "key": "WEB" });
        assert!(matches!(
            ProjectEvent::decode("project.created", 2, &v2).unwrap(),
            ProjectEvent::Created(ProjectCreated { key, .. }) if key == "WEB"
        ));
    }

    #[test]
    fn unknown_types_and_future_versions_are_refused() {
        let data = serde_json::json!({});
        assert!(matches!(
            ProjectEvent::decode("project.exploded", 1, &data),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            ProjectEvent::decode("project.archived", 9, &data),
            Err(DecodeError::UnknownVersion { .. })
        ));
    }
}
