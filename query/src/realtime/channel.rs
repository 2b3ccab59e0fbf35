//! Channels: what a client subscribes to (`workspace:<id>`, `project:<id>`,
//! `task:<id>`), and which channels a feed update belongs to. Pure: no I/O.

use std::fmt;

use tenet_events::ids::{ProjectId, TaskId, TenantId, WorkspaceId};
use tenet_http::{Action, Resource as ScopeResource, Scope, Scopes};
use tenet_projections::feed::{FeedUpdate, Resource};

/// A channel as a client names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Every update of the workspace.
    Workspace(WorkspaceId),
    /// The project, its tasks, and their comments.
    Project(ProjectId),
    /// The task and its comments.
    Task(TaskId),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("channel must be workspace:<id>, project:<id> or task:<id>, with <id> a UUID; got {0:?}")]
pub struct BadChannel(pub String);

impl Channel {
    pub fn parse(text: &str) -> Result<Channel, BadChannel> {
        let bad = || BadChannel(text.chars().take(100).collect());
        let (kind, id) = text.split_once(':').ok_or_else(bad)?;
        let id: uuid::Uuid = id.parse().map_err(|_| bad())?;
        match kind {
            "workspace" => Ok(Channel::Workspace(WorkspaceId::from_uuid(id))),
            "project" => Ok(Channel::Project(ProjectId::from_uuid(id))),
            "task" => Ok(Channel::Task(TaskId::from_uuid(id))),
            _ => Err(bad()),
        }
    }

    /// The scope subscribing needs, in the channel's workspace.
    pub fn needs(self) -> Scope {
        match self {
            Channel::Workspace(_) => Scope::new(ScopeResource::Workspace, Action::Read),
            Channel::Project(_) => Scope::new(ScopeResource::Projects, Action::Read),
            Channel::Task(_) => Scope::new(ScopeResource::Tasks, Action::Read),
        }
    }

    /// The channel's place in the routing table, once its tenant is known.
    pub fn route(self, tenant: TenantId) -> Route {
        match self {
            Channel::Workspace(_) => Route::Workspace(tenant),
            Channel::Project(project) => Route::Project(tenant, project),
            Channel::Task(task) => Route::Task(tenant, task),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Workspace(id) => write!(f, "workspace:{id}"),
            Channel::Project(id) => write!(f, "project:{id}"),
            Channel::Task(id) => write!(f, "task:{id}"),
        }
    }
}

/// A channel with its tenant: the key of the routing table. The tenant is
/// part of every key, so an update can only ever reach subscribers of its
/// own tenant, whatever ids a client guesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Workspace(TenantId),
    Project(TenantId, ProjectId),
    Task(TenantId, TaskId),
}

impl Route {
    pub fn tenant(self) -> TenantId {
        match self {
            Route::Workspace(tenant) | Route::Project(tenant, _) | Route::Task(tenant, _) => tenant,
        }
    }

    /// The channel name clients know it by.
    pub fn channel(self) -> Channel {
        match self {
            Route::Workspace(tenant) => Channel::Workspace(tenant.into()),
            Route::Project(_, project) => Channel::Project(project),
            Route::Task(_, task) => Channel::Task(task),
        }
    }

    /// Every route an update is delivered on: its workspace, its project
    /// (a project's own row, a task of it, a comment on such a task) and
    /// its task (the task's own row, a comment on it).
    pub fn of(update: &FeedUpdate) -> impl Iterator<Item = Route> {
        let tenant = update.tenant_id;
        [
            Some(Route::Workspace(tenant)),
            update
                .project_id
                .map(|project| Route::Project(tenant, project)),
            update.task_id.map(|task| Route::Task(tenant, task)),
        ]
        .into_iter()
        .flatten()
    }
}

/// Which kinds of rows a subscriber may see: the read scope of each, so a
/// channel never shows what the REST API would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    pub projects: bool,
    pub tasks: bool,
    pub comments: bool,
    /// Automations and their executions.
    pub automations: bool,
}

impl Reads {
    pub fn of(scopes: &Scopes) -> Reads {
        let reads = |resource| scopes.allows(Scope::new(resource, Action::Read));
        Reads {
            projects: reads(ScopeResource::Projects),
            tasks: reads(ScopeResource::Tasks),
            comments: reads(ScopeResource::Comments),
            automations: reads(ScopeResource::Automations),
        }
    }

    pub fn allows(self, resource: Resource) -> bool {
        match resource {
            Resource::Project(_) => self.projects,
            Resource::Task(_) => self.tasks,
            Resource::Comment(_) => self.comments,
            Resource::Automation(_) | Resource::Execution(_) => self.automations,
            // Every member may read their workspace's flags.
            Resource::FeatureFlag(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use tenet_events::ids::{CommentId, Position};
    use tenet_projections::feed::Kind;

    use super::*;

    fn update(resource: Resource, project: Option<ProjectId>, task: Option<TaskId>) -> FeedUpdate {
        FeedUpdate {
            position: Position(7),
            tenant_id: TenantId::generate(),
            kind: Kind::Update,
            resource,
            project_id: project,
            task_id: task,
            event_type: "task.updated".to_owned(),
            data: "{}".to_owned(),
        }
    }

    #[test]
    fn channels_parse_and_print_the_same() {
        let id = uuid::Uuid::now_v7();
        for text in [
            format!("workspace:{id}"),
            format!("project:{id}"),
            format!("task:{id}"),
        ] {
            let channel = Channel::parse(&text).expect("valid channel");
            assert_eq!(channel.to_string(), text);
        }
    }

    #[test]
    fn malformed_channels_are_refused() {
        for text in [
            "",
            "workspace",
            "workspace:",
            "workspace:not-a-uuid",
            "comment:0190b8f4-8c3e-7000-8000-000000000000",
            "Task:0190b8f4-8c3e-7000-8000-000000000000",
        ] {
            assert!(Channel::parse(text).is_err(), "{text}");
        }
        let long = "x".repeat(10_000);
        let error = Channel::parse(&long).expect_err("refused");
        assert!(error.0.len() <= 100, "the echo is bounded");
    }

    #[test]
    fn a_comment_reaches_its_workspace_project_and_task() {
        let (project, task) = (ProjectId::generate(), TaskId::generate());
        let comment = update(
            Resource::Comment(CommentId::generate()),
            Some(project),
            Some(task),
        );
        let tenant = comment.tenant_id;
        let routes: Vec<Route> = Route::of(&comment).collect();
        assert_eq!(
            routes,
            vec![
                Route::Workspace(tenant),
                Route::Project(tenant, project),
                Route::Task(tenant, task)
            ]
        );
    }

    #[test]
    fn a_project_reaches_its_workspace_and_itself_only() {
        let project = ProjectId::generate();
        let row = update(Resource::Project(project), Some(project), None);
        let tenant = row.tenant_id;
        let routes: Vec<Route> = Route::of(&row).collect();
        assert_eq!(
            routes,
            vec![Route::Workspace(tenant), Route::Project(tenant, project)]
        );
    }

    #[test]
    fn routes_carry_the_tenant_so_guessed_ids_never_match_another_tenant() {
        let task = TaskId::generate();
        let mine = Channel::Task(task).route(TenantId::generate());
        let theirs = Channel::Task(task).route(TenantId::generate());
        assert_ne!(mine, theirs);
        assert_eq!(mine.channel(), Channel::Task(task));
    }

    #[test]
    fn reads_follow_the_scopes() {
        let viewer = Scopes::new([
            Scope::new(ScopeResource::Projects, Action::Read),
            Scope::new(ScopeResource::Tasks, Action::Read),
        ]);
        let reads = Reads::of(&viewer);
        assert!(reads.allows(Resource::Project(ProjectId::generate())));
        assert!(reads.allows(Resource::Task(TaskId::generate())));
        assert!(!reads.allows(Resource::Comment(CommentId::generate())));
    }
}
