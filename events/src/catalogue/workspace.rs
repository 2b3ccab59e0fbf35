//! Workspaces: the tenants, with their members.

use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::UserId;

/// A member's role in a workspace; it maps to a set of scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        Some(match value {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "member" => Role::Member,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreated {
    pub name: String,
    /// Unique across workspaces (claimed under `workspace.slug`).
    pub slug: String,
    /// The creator, who becomes its first owner.
    pub owner_id: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRenamed {
    pub name: String,
    pub slug: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceDeleted {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub user_id: UserId,
    pub from: Role,
    pub to: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoved {
    pub user_id: UserId,
    pub role: Role,
}

event_family! {
    /// What happens to a workspace and its membership.
    pub enum WorkspaceEvent {
        Created(WorkspaceCreated) = "workspace.created" v 1;
        Renamed(WorkspaceRenamed) = "workspace.renamed" v 1;
        Deleted(WorkspaceDeleted) = "workspace.deleted" v 1;
        MemberAdded(MemberAdded) = "workspace.member_added" v 1;
        MemberRoleChanged(MemberRoleChanged) = "workspace.member_role_changed" v 1;
        MemberRemoved(MemberRemoved) = "workspace.member_removed" v 1;
    }
}

/// The claim scope of workspace slugs.
pub const SLUG_CLAIM: &str = "workspace.slug";
