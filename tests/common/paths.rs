//! The API's paths that more than one test file builds.

pub fn workspace_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}")
}

pub fn projects_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/projects")
}

pub fn project_url(workspace: &str, project: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/projects/{project}")
}

/// The tasks of one project (where they are created).
pub fn project_tasks_url(workspace: &str, project: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/projects/{project}/tasks")
}

/// The tasks of every project of a workspace.
pub fn tasks_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/tasks")
}

pub fn task_url(workspace: &str, task: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/tasks/{task}")
}

pub fn members_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/members")
}

pub fn keys_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/api-keys")
}
