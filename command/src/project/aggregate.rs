//! The project aggregate: name, slug (unique in its workspace),
//! description, and whether it is archived.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::project::{
    ProjectArchived, ProjectCreated, ProjectEvent, ProjectRestored, ProjectUpdated, TaskAdded,
    key_claim, slug_claim,
};
use tenet_events::ids::{TaskId, TemplateId, TenantId, UserId};
use tenet_events::store::Claim;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Project {
    pub created: bool,
    pub archived: bool,
    pub name: String,
    pub slug: String,
    pub description: String,
    /// The prefix of its tasks' keys.
    pub key: String,
    pub created_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Changes to the project itself (its `ETag`), apart from tasks added.
    pub revision: i64,
    /// Tasks created in it: the last number handed out.
    pub tasks: i64,
    /// The template (and its version) it was instantiated from.
    pub template: Option<(TemplateId, i64)>,
}

impl Aggregate for Project {
    const KIND: &'static str = "project";
    type Event = ProjectEvent;

    fn evolve(&mut self, event: &ProjectEvent, applied: &Applied) {
        match event {
            ProjectEvent::Created(created) => {
                self.created = true;
                self.name = created.name.clone();
                self.slug = created.slug.clone();
                self.description = created.description.clone();
                self.key = created.key.clone();
                self.template = created.template_id.zip(created.template_version);
                self.created_by = applied.by;
                self.created_at = Some(applied.occurred_at);
            }
            ProjectEvent::Updated(updated) => {
                if let Some(name) = &updated.name {
                    self.name = name.clone();
                }
                if let Some(slug) = &updated.slug {
                    self.slug = slug.clone();
                }
                if let Some(description) = &updated.description {
                    self.description = description.clone();
                }
            }
            ProjectEvent::Archived(_) => {
                self.archived = true;
                self.archived_at = Some(applied.occurred_at);
            }
            ProjectEvent::Restored(_) => {
                self.archived = false;
                self.archived_at = None;
            }
            ProjectEvent::TaskAdded(added) => {
                self.tasks = added.number;
                return;
            }
        }
        self.revision += 1;
        self.updated_at = Some(applied.occurred_at);
    }

    fn revision(&self, _version: i64) -> i64 {
        self.revision
    }

    fn claims(&self, tenant: TenantId, events: &[ProjectEvent]) -> (Vec<Claim>, Vec<Claim>) {
        let scope = slug_claim(tenant.into());
        let mut claims = Vec::new();
        let mut releases = Vec::new();
        let mut slug = self.slug.clone();
        for event in events {
            match event {
                ProjectEvent::Created(created) => {
                    claims.push(Claim::new(&scope, &created.slug));
                    claims.push(Claim::new(key_claim(tenant.into()), &created.key));
                    slug = created.slug.clone();
                }
                ProjectEvent::Updated(ProjectUpdated {
                    slug: Some(new_slug),
                    ..
                }) if *new_slug != slug => {
                    releases.push(Claim::new(&scope, &slug));
                    claims.push(Claim::new(&scope, new_slug));
                    slug = new_slug.clone();
                }
                _ => {}
            }
        }
        (claims, releases)
    }
}

pub enum ProjectCommand {
    Create {
        name: String,
        slug: String,
        description: String,
        /// The prefix of its tasks' keys: one no project of the workspace
        /// has used (claimed, never released).
        key: String,
    },
    Update {
        name: Option<String>,
        slug: Option<String>,
        description: Option<String>,
    },
    Archive,
    Restore,
    /// Hands out the next task number to a new task.
    AddTask {
        task: TaskId,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    #[error("the project already exists")]
    AlreadyExists,
    #[error("no such project")]
    NotFound,
    #[error("the project is archived; restore it first")]
    Archived,
    #[error("the project is already archived")]
    AlreadyArchived,
    #[error("the project is not archived")]
    NotArchived,
}

pub fn decide(
    project: &Project,
    command: ProjectCommand,
) -> Result<Vec<ProjectEvent>, ProjectError> {
    if let ProjectCommand::Create {
        name,
        slug,
        description,
        key,
    } = command
    {
        if project.created {
            return Err(ProjectError::AlreadyExists);
        }
        return Ok(vec![ProjectEvent::Created(ProjectCreated {
            name,
            slug,
            description,
            key,
            template_id: None,
            template_version: None,
        })]);
    }
    if !project.created {
        return Err(ProjectError::NotFound);
    }
    match command {
        ProjectCommand::Create { .. } => Err(ProjectError::AlreadyExists),
        ProjectCommand::Update {
            name,
            slug,
            description,
        } => {
            if project.archived {
                return Err(ProjectError::Archived);
            }
            // Only what actually changes is recorded.
            let changed = ProjectUpdated {
                name: name.filter(|name| *name != project.name),
                slug: slug.filter(|slug| *slug != project.slug),
                description: description.filter(|description| *description != project.description),
            };
            if changed == ProjectUpdated::default() {
                return Ok(vec![]);
            }
            Ok(vec![ProjectEvent::Updated(changed)])
        }
        ProjectCommand::Archive if project.archived => Err(ProjectError::AlreadyArchived),
        ProjectCommand::Archive => Ok(vec![ProjectEvent::Archived(ProjectArchived {})]),
        ProjectCommand::Restore if !project.archived => Err(ProjectError::NotArchived),
        ProjectCommand::Restore => Ok(vec![ProjectEvent::Restored(ProjectRestored {})]),
        ProjectCommand::AddTask { .. } if project.archived => Err(ProjectError::Archived),
        ProjectCommand::AddTask { task } => Ok(vec![ProjectEvent::TaskAdded(TaskAdded {
            task_id: task,
            number: project.tasks + 1,
        })]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use tenet_events::ids::WorkspaceId;

    fn created() -> ProjectEvent {
        ProjectEvent::Created(ProjectCreated {
            name: "Web".into(),
            slug: "web".into(),
            description: String::new(),
            key: "WEB".into(),
            template_id: None,
            template_version: None,
        })
    }

    fn archived() -> ProjectEvent {
        ProjectEvent::Archived(ProjectArchived {})
    }

    #[test]
    fn creating_claims_the_slug_within_the_workspace() {
        let create = ProjectCommand::Create {
            name: "Web".into(),
            slug: "web".into(),
            description: String::new(),
            key: "WEB".into(),
        };
        let events = decide(&given([]), create).unwrap();
        assert_eq!(events, vec![created()]);
        let workspace = WorkspaceId::generate();
        let (claims, _) = Project::default().claims(workspace.into(), &events);
        assert_eq!(
            claims,
            vec![
                Claim::new(slug_claim(workspace), "web"),
                Claim::new(key_claim(workspace), "WEB")
            ]
        );
    }

    #[test]
    fn an_update_records_only_what_changes() {
        let update = ProjectCommand::Update {
            name: Some("Web".into()),
            slug: Some("site".into()),
            description: None,
        };
        assert_eq!(
            decide(&given([created()]), update),
            Ok(vec![ProjectEvent::Updated(ProjectUpdated {
                slug: Some("site".into()),
                ..ProjectUpdated::default()
            })])
        );
        let nothing = ProjectCommand::Update {
            name: Some("Web".into()),
            slug: None,
            description: None,
        };
        assert_eq!(decide(&given([created()]), nothing), Ok(vec![]));
    }

    #[test]
    fn changing_the_slug_moves_its_claim() {
        let workspace = WorkspaceId::generate();
        let state = given::<Project>([created()]);
        let events = vec![ProjectEvent::Updated(ProjectUpdated {
            slug: Some("site".into()),
            ..ProjectUpdated::default()
        })];
        let (claims, releases) = state.claims(workspace.into(), &events);
        assert_eq!(claims, vec![Claim::new(slug_claim(workspace), "site")]);
        assert_eq!(releases, vec![Claim::new(slug_claim(workspace), "web")]);
    }

    #[test]
    fn archive_and_restore_alternate() {
        assert_eq!(
            decide(&given([created()]), ProjectCommand::Archive),
            Ok(vec![archived()])
        );
        assert_eq!(
            decide(&given([created(), archived()]), ProjectCommand::Archive),
            Err(ProjectError::AlreadyArchived)
        );
        assert_eq!(
            decide(&given([created()]), ProjectCommand::Restore),
            Err(ProjectError::NotArchived)
        );
        assert_eq!(
            decide(&given([created(), archived()]), ProjectCommand::Restore),
            Ok(vec![ProjectEvent::Restored(ProjectRestored {})])
        );
    }

    #[test]
    fn tasks_get_consecutive_numbers_without_touching_the_revision() {
        let first = TaskId::generate();
        let events = decide(&given([created()]), ProjectCommand::AddTask { task: first }).unwrap();
        assert_eq!(
            events,
            vec![ProjectEvent::TaskAdded(TaskAdded {
                task_id: first,
                number: 1
            })]
        );
        let after = given::<Project>([created(), events[0].clone()]);
        assert_eq!((after.tasks, after.revision), (1, 1));
        let second = decide(
            &after,
            ProjectCommand::AddTask {
                task: TaskId::generate(),
            },
        )
        .unwrap();
        assert!(matches!(&second[0], ProjectEvent::TaskAdded(added) if added.number == 2));
        assert_eq!(
            decide(
                &given([created(), archived()]),
                ProjectCommand::AddTask { task: first }
            ),
            Err(ProjectError::Archived)
        );
    }

    #[test]
    fn an_archived_project_refuses_updates() {
        let update = ProjectCommand::Update {
            name: Some("New".into()),
            slug: None,
            description: None,
        };
        assert_eq!(
            decide(&given([created(), archived()]), update),
            Err(ProjectError::Archived)
        );
    }

    #[test]
    fn a_missing_project_refuses_everything_but_creation() {
        assert_eq!(
            decide(&given([]), ProjectCommand::Archive),
            Err(ProjectError::NotFound)
        );
        assert_eq!(
            decide(&given([]), ProjectCommand::Restore),
            Err(ProjectError::NotFound)
        );
    }
}
