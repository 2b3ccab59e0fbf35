//! The workspace aggregate: a tenant, its name and slug, and its members.
//!
//! Membership lives here, in one stream, so "at least one owner remains"
//! is checked against one consistent version: two concurrent demotions of
//! the last two owners clash on the stream version, and the retried one
//! sees a single owner left and is refused.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tenet_events::catalogue::workspace::{
    MemberAdded, MemberRemoved, MemberRoleChanged, Role, SLUG_CLAIM, WorkspaceCreated,
    WorkspaceDeleted, WorkspaceEvent, WorkspaceRenamed,
};
use tenet_events::ids::{TenantId, UserId};
use tenet_events::store::Claim;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workspace {
    pub created: bool,
    pub deleted: bool,
    pub name: String,
    pub slug: String,
    pub members: BTreeMap<UserId, Role>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Workspace {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }

    pub fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|role| **role == Role::Owner)
            .count()
    }
}

impl Aggregate for Workspace {
    const KIND: &'static str = "workspace";
    type Event = WorkspaceEvent;

    fn evolve(&mut self, event: &WorkspaceEvent, applied: &Applied) {
        match event {
            WorkspaceEvent::Created(created) => {
                self.created = true;
                self.name = created.name.clone();
                self.slug = created.slug.clone();
                self.members.insert(created.owner_id, Role::Owner);
                self.created_at = Some(applied.occurred_at);
            }
            WorkspaceEvent::Renamed(renamed) => {
                self.name = renamed.name.clone();
                self.slug = renamed.slug.clone();
            }
            WorkspaceEvent::Deleted(_) => self.deleted = true,
            WorkspaceEvent::MemberAdded(added) => {
                self.members.insert(added.user_id, added.role);
            }
            WorkspaceEvent::MemberRoleChanged(changed) => {
                self.members.insert(changed.user_id, changed.to);
            }
            WorkspaceEvent::MemberRemoved(removed) => {
                self.members.remove(&removed.user_id);
            }
        }
        self.updated_at = Some(applied.occurred_at);
    }

    fn claims(&self, _tenant: TenantId, events: &[WorkspaceEvent]) -> (Vec<Claim>, Vec<Claim>) {
        let mut claims = Vec::new();
        let mut releases = Vec::new();
        let mut slug = self.slug.clone();
        for event in events {
            match event {
                WorkspaceEvent::Created(created) => {
                    claims.push(Claim::new(SLUG_CLAIM, &created.slug));
                    slug = created.slug.clone();
                }
                WorkspaceEvent::Renamed(renamed) if renamed.slug != slug => {
                    releases.push(Claim::new(SLUG_CLAIM, &slug));
                    claims.push(Claim::new(SLUG_CLAIM, &renamed.slug));
                    slug = renamed.slug.clone();
                }
                WorkspaceEvent::Deleted(_) => releases.push(Claim::new(SLUG_CLAIM, &slug)),
                _ => {}
            }
        }
        (claims, releases)
    }
}

pub enum WorkspaceCommand {
    Create {
        name: String,
        slug: String,
        owner: UserId,
    },
    /// Changes name and/or slug (absent: unchanged).
    Rename {
        name: Option<String>,
        slug: Option<String>,
    },
    Delete,
    // In the member commands, `by` is the acting user: their role is read
    // from this same version of the workspace, never from what the request
    // saw earlier.
    AddMember {
        user: UserId,
        role: Role,
        by: UserId,
    },
    ChangeRole {
        user: UserId,
        role: Role,
        by: UserId,
    },
    RemoveMember {
        user: UserId,
        by: UserId,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the workspace already exists")]
    AlreadyExists,
    #[error("no such workspace")]
    NotFound,
    #[error("the user is already a member")]
    AlreadyMember,
    #[error("the user is not a member")]
    NotMember,
    #[error("the workspace must keep at least one owner")]
    LastOwner,
    #[error("only an owner can grant, change or remove the owner role")]
    OwnersOnly,
    #[error("the acting user is no longer a member")]
    ActorNotMember,
}

pub fn decide(
    workspace: &Workspace,
    command: WorkspaceCommand,
) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
    if let WorkspaceCommand::Create { name, slug, owner } = command {
        if workspace.created {
            return Err(WorkspaceError::AlreadyExists);
        }
        return Ok(vec![WorkspaceEvent::Created(WorkspaceCreated {
            name,
            slug,
            owner_id: owner,
        })]);
    }
    if !workspace.exists() {
        return Err(WorkspaceError::NotFound);
    }
    match command {
        WorkspaceCommand::Create { .. } => Err(WorkspaceError::AlreadyExists),
        WorkspaceCommand::Rename { name, slug } => {
            let name = name.unwrap_or_else(|| workspace.name.clone());
            let slug = slug.unwrap_or_else(|| workspace.slug.clone());
            if name == workspace.name && slug == workspace.slug {
                return Ok(vec![]);
            }
            Ok(vec![WorkspaceEvent::Renamed(WorkspaceRenamed {
                name,
                slug,
            })])
        }
        WorkspaceCommand::Delete => Ok(vec![WorkspaceEvent::Deleted(WorkspaceDeleted {})]),
        WorkspaceCommand::AddMember { user, role, by } => add_member(workspace, user, role, by),
        WorkspaceCommand::ChangeRole { user, role, by } => change_role(workspace, user, role, by),
        WorkspaceCommand::RemoveMember { user, by } => remove_member(workspace, user, by),
    }
}

fn add_member(
    workspace: &Workspace,
    user: UserId,
    role: Role,
    by: UserId,
) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
    let by = acting_role(workspace, by)?;
    if workspace.members.contains_key(&user) {
        return Err(WorkspaceError::AlreadyMember);
    }
    if role == Role::Owner && by != Role::Owner {
        return Err(WorkspaceError::OwnersOnly);
    }
    Ok(vec![WorkspaceEvent::MemberAdded(MemberAdded {
        user_id: user,
        role,
    })])
}

fn change_role(
    workspace: &Workspace,
    user: UserId,
    role: Role,
    by: UserId,
) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
    let by = acting_role(workspace, by)?;
    let current = *workspace
        .members
        .get(&user)
        .ok_or(WorkspaceError::NotMember)?;
    if current == role {
        return Ok(vec![]);
    }
    if (current == Role::Owner || role == Role::Owner) && by != Role::Owner {
        return Err(WorkspaceError::OwnersOnly);
    }
    if current == Role::Owner && workspace.owners() == 1 {
        return Err(WorkspaceError::LastOwner);
    }
    Ok(vec![WorkspaceEvent::MemberRoleChanged(MemberRoleChanged {
        user_id: user,
        from: current,
        to: role,
    })])
}

fn remove_member(
    workspace: &Workspace,
    user: UserId,
    by: UserId,
) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
    let by = acting_role(workspace, by)?;
    let current = *workspace
        .members
        .get(&user)
        .ok_or(WorkspaceError::NotMember)?;
    if current == Role::Owner && by != Role::Owner {
        return Err(WorkspaceError::OwnersOnly);
    }
    if current == Role::Owner && workspace.owners() == 1 {
        return Err(WorkspaceError::LastOwner);
    }
    Ok(vec![WorkspaceEvent::MemberRemoved(MemberRemoved {
        user_id: user,
        role: current,
    })])
}

/// The acting user's role in this version of the workspace.
fn acting_role(workspace: &Workspace, by: UserId) -> Result<Role, WorkspaceError> {
    workspace
        .members
        .get(&by)
        .copied()
        .ok_or(WorkspaceError::ActorNotMember)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn owner() -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(1))
    }

    fn user(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn created() -> WorkspaceEvent {
        WorkspaceEvent::Created(WorkspaceCreated {
            name: "Acme".into(),
            slug: "acme".into(),
            owner_id: owner(),
        })
    }

    fn added(who: UserId, role: Role) -> WorkspaceEvent {
        WorkspaceEvent::MemberAdded(MemberAdded { user_id: who, role })
    }

    #[test]
    fn creating_makes_the_creator_owner_and_claims_the_slug() {
        let events = decide(
            &given([]),
            WorkspaceCommand::Create {
                name: "Acme".into(),
                slug: "acme".into(),
                owner: owner(),
            },
        )
        .unwrap();
        assert_eq!(events, vec![created()]);
        let state = given::<Workspace>(events.clone());
        assert_eq!(state.members.get(&owner()), Some(&Role::Owner));
        let (claims, releases) = Workspace::default().claims(TenantId::PLATFORM, &events);
        assert_eq!(claims, vec![Claim::new(SLUG_CLAIM, "acme")]);
        assert!(releases.is_empty());
    }

    #[test]
    fn creating_twice_is_refused() {
        let create = WorkspaceCommand::Create {
            name: "Acme".into(),
            slug: "acme".into(),
            owner: owner(),
        };
        assert_eq!(
            decide(&given([created()]), create),
            Err(WorkspaceError::AlreadyExists)
        );
    }

    #[test]
    fn renaming_the_slug_moves_the_claim() {
        let state = given([created()]);
        let events = decide(
            &state,
            WorkspaceCommand::Rename {
                name: None,
                slug: Some("acme-2".into()),
            },
        )
        .unwrap();
        assert_eq!(
            events,
            vec![WorkspaceEvent::Renamed(WorkspaceRenamed {
                name: "Acme".into(),
                slug: "acme-2".into()
            })]
        );
        let (claims, releases) = state.claims(TenantId::PLATFORM, &events);
        assert_eq!(claims, vec![Claim::new(SLUG_CLAIM, "acme-2")]);
        assert_eq!(releases, vec![Claim::new(SLUG_CLAIM, "acme")]);
    }

    #[test]
    fn renaming_to_the_same_values_records_nothing() {
        let rename = WorkspaceCommand::Rename {
            name: Some("Acme".into()),
            slug: None,
        };
        assert_eq!(decide(&given([created()]), rename), Ok(vec![]));
    }

    #[test]
    fn a_deleted_workspace_refuses_everything_and_frees_its_slug() {
        let deleted = given([created(), WorkspaceEvent::Deleted(WorkspaceDeleted {})]);
        assert_eq!(
            decide(&deleted, WorkspaceCommand::Delete),
            Err(WorkspaceError::NotFound)
        );
        let (_, releases) = given::<Workspace>([created()]).claims(
            TenantId::PLATFORM,
            &[WorkspaceEvent::Deleted(WorkspaceDeleted {})],
        );
        assert_eq!(releases, vec![Claim::new(SLUG_CLAIM, "acme")]);
    }

    #[test]
    fn the_last_owner_can_be_neither_demoted_nor_removed() {
        let state = given([created(), added(user(2), Role::Admin)]);
        let demote = WorkspaceCommand::ChangeRole {
            user: owner(),
            role: Role::Admin,
            by: owner(),
        };
        assert_eq!(decide(&state, demote), Err(WorkspaceError::LastOwner));
        let remove = WorkspaceCommand::RemoveMember {
            user: owner(),
            by: owner(),
        };
        assert_eq!(decide(&state, remove), Err(WorkspaceError::LastOwner));
    }

    #[test]
    fn one_of_two_owners_can_step_down() {
        let state = given([created(), added(user(2), Role::Owner)]);
        let demote = WorkspaceCommand::ChangeRole {
            user: owner(),
            role: Role::Member,
            by: owner(),
        };
        let events = decide(&state, demote).unwrap();
        let after = given::<Workspace>([created(), added(user(2), Role::Owner), events[0].clone()]);
        assert_eq!(after.owners(), 1);
        // Decided on the new version, the demoted owner may no longer
        // demote anyone, and the last owner cannot step down.
        let by_demoted = WorkspaceCommand::ChangeRole {
            user: user(2),
            role: Role::Member,
            by: owner(),
        };
        assert_eq!(decide(&after, by_demoted), Err(WorkspaceError::OwnersOnly));
        let by_self = WorkspaceCommand::ChangeRole {
            user: user(2),
            role: Role::Member,
            by: user(2),
        };
        assert_eq!(decide(&after, by_self), Err(WorkspaceError::LastOwner));
    }

    #[test]
    fn someone_who_left_can_no_longer_act() {
        let state = given::<Workspace>([created(), added(user(2), Role::Admin)]);
        let add = WorkspaceCommand::AddMember {
            user: user(3),
            role: Role::Member,
            by: user(9),
        };
        assert_eq!(decide(&state, add), Err(WorkspaceError::ActorNotMember));
    }

    #[test]
    fn only_owners_touch_the_owner_role() {
        let state = given([
            created(),
            added(user(2), Role::Admin),
            added(user(3), Role::Member),
        ]);
        let promote = WorkspaceCommand::ChangeRole {
            user: user(3),
            role: Role::Owner,
            by: user(2),
        };
        assert_eq!(decide(&state, promote), Err(WorkspaceError::OwnersOnly));
        let add_owner = WorkspaceCommand::AddMember {
            user: user(4),
            role: Role::Owner,
            by: user(2),
        };
        assert_eq!(decide(&state, add_owner), Err(WorkspaceError::OwnersOnly));
        let remove_owner = WorkspaceCommand::RemoveMember {
            user: owner(),
            by: user(2),
        };
        assert_eq!(
            decide(&state, remove_owner),
            Err(WorkspaceError::OwnersOnly)
        );
        let demote_member = WorkspaceCommand::ChangeRole {
            user: user(3),
            role: Role::Viewer,
            by: user(2),
        };
        assert_eq!(decide(&state, demote_member).unwrap().len(), 1);
    }

    #[test]
    fn members_are_added_once_and_removed_if_present() {
        let state = given([created(), added(user(2), Role::Member)]);
        let again = WorkspaceCommand::AddMember {
            user: user(2),
            role: Role::Viewer,
            by: owner(),
        };
        assert_eq!(decide(&state, again), Err(WorkspaceError::AlreadyMember));
        let stranger = WorkspaceCommand::RemoveMember {
            user: user(9),
            by: owner(),
        };
        assert_eq!(decide(&state, stranger), Err(WorkspaceError::NotMember));
        let remove = WorkspaceCommand::RemoveMember {
            user: user(2),
            by: user(2),
        };
        assert_eq!(
            decide(&state, remove),
            Ok(vec![WorkspaceEvent::MemberRemoved(MemberRemoved {
                user_id: user(2),
                role: Role::Member
            })])
        );
    }
}
