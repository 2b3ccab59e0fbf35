//! Scopes: what a principal may do in a workspace.
//!
//! Grammar: `{resource}:{read|write|delete}`, `{resource}:*`, or `*`.
//! Roles map to scope sets; an API key carries an explicit subset of its
//! issuer's scopes.

use std::fmt;
use std::str::FromStr;

use tenet_events::catalogue::workspace::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Workspace,
    Members,
    ApiKeys,
    Projects,
    Tasks,
    Comments,
    Audit,
    Events,
    Webhooks,
    Templates,
    Automations,
    Analytics,
}

impl Resource {
    pub const ALL: [Resource; 12] = [
        Resource::Workspace,
        Resource::Members,
        Resource::ApiKeys,
        Resource::Projects,
        Resource::Tasks,
        Resource::Comments,
        Resource::Audit,
        Resource::Events,
        Resource::Webhooks,
        Resource::Templates,
        Resource::Automations,
        Resource::Analytics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workspace => "workspace",
            Resource::Members => "members",
            Resource::ApiKeys => "api_keys",
            Resource::Projects => "projects",
            Resource::Tasks => "tasks",
            Resource::Comments => "comments",
            Resource::Audit => "audit",
            Resource::Events => "events",
            Resource::Webhooks => "webhooks",
            Resource::Templates => "templates",
            Resource::Automations => "automations",
            Resource::Analytics => "analytics",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Read,
    Write,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Read, Action::Write, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
        }
    }
}

/// One grant; `None` is the wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub resource: Option<Resource>,
    pub action: Option<Action>,
}

impl Scope {
    pub const ALL: Scope = Scope {
        resource: None,
        action: None,
    };

    pub const fn new(resource: Resource, action: Action) -> Scope {
        Scope {
            resource: Some(resource),
            action: Some(action),
        }
    }

    pub const fn any(resource: Resource) -> Scope {
        Scope {
            resource: Some(resource),
            action: None,
        }
    }

    /// Whether this grant covers `needed` (a concrete scope or a wildcard).
    pub fn covers(&self, needed: &Scope) -> bool {
        let resource = match (self.resource, needed.resource) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine == theirs,
        };
        let action = match (self.action, needed.action) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine == theirs,
        };
        resource && action
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.resource, self.action) {
            (None, _) => f.write_str("*"),
            (Some(resource), None) => write!(f, "{}:*", resource.as_str()),
            (Some(resource), Some(action)) => {
                write!(f, "{}:{}", resource.as_str(), action.as_str())
            }
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "*" {
            return Ok(Scope::ALL);
        }
        let invalid = || format!("{value:?} is not a scope (resource:read|write|delete|*, or *)");
        let (resource, action) = value.split_once(':').ok_or_else(invalid)?;
        let resource = Resource::ALL
            .into_iter()
            .find(|r| r.as_str() == resource)
            .ok_or_else(invalid)?;
        let action = match action {
            "*" => None,
            action => Some(
                Action::ALL
                    .into_iter()
                    .find(|a| a.as_str() == action)
                    .ok_or_else(invalid)?,
            ),
        };
        Ok(Scope {
            resource: Some(resource),
            action,
        })
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        Scopes(scopes)
    }

    /// The scopes of a workspace role (API.md): owner `*`; admin `*` but
    /// deleting the workspace (changing owners is refused by the members
    /// rules); member reads everything but the audit log and webhooks, and
    /// writes and deletes projects, tasks, comments, templates and
    /// automations; viewer reads what a member reads.
    pub fn of_role(role: Role) -> Scopes {
        use Action::*;
        use Resource::*;
        let reads = [
            Workspace,
            Members,
            ApiKeys,
            Projects,
            Tasks,
            Comments,
            Events,
            Templates,
            Automations,
            Analytics,
        ]
        .map(|r| Scope::new(r, Read));
        match role {
            Role::Owner => Scopes::new([Scope::ALL]),
            Role::Admin => Scopes::new(
                [Scope::new(Workspace, Read), Scope::new(Workspace, Write)]
                    .into_iter()
                    .chain(
                        Resource::ALL
                            .into_iter()
                            .filter(|r| *r != Workspace)
                            .map(Scope::any),
                    ),
            ),
            Role::Member => Scopes::new(
                reads.into_iter().chain(
                    [Projects, Tasks, Comments, Templates, Automations]
                        .into_iter()
                        .flat_map(|r| [Scope::new(r, Write), Scope::new(r, Delete)]),
                ),
            ),
            Role::Viewer => Scopes::new(reads),
        }
    }

    pub fn allows(&self, needed: Scope) -> bool {
        self.0.iter().any(|grant| grant.covers(&needed))
    }

    /// Whether every grant of `other` is covered by this set (an API key's
    /// scopes must be a subset of its issuer's).
    pub fn contains_all(&self, other: &Scopes) -> bool {
        other.0.iter().all(|wanted| {
            // A wildcard is covered only if each concrete scope it stands
            // for is.
            concrete(wanted).into_iter().all(|scope| self.allows(scope))
        })
    }

    /// The concrete scopes both sets allow (an API key's effective scopes
    /// when its issuer's role has changed since).
    pub fn intersect(&self, other: &Scopes) -> Scopes {
        Scopes::new(
            Resource::ALL
                .into_iter()
                .flat_map(|r| Action::ALL.map(|a| Scope::new(r, a)))
                .filter(|scope| self.allows(*scope) && other.allows(*scope)),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

fn concrete(scope: &Scope) -> Vec<Scope> {
    let resources: Vec<Resource> = scope.resource.map_or(Resource::ALL.to_vec(), |r| vec![r]);
    let actions: Vec<Action> = scope.action.map_or(Action::ALL.to_vec(), |a| vec![a]);
    resources
        .into_iter()
        .flat_map(|r| actions.iter().map(move |a| Scope::new(r, *a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    #[test]
    fn scopes_parse_and_print_their_grammar() {
        for text in ["*", "tasks:*", "tasks:read", "api_keys:delete"] {
            assert_eq!(scope(text).to_string(), text);
        }
        for bad in ["", "tasks", "tasks:list", "widgets:read", "*:read"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_cover_what_they_name() {
        assert!(Scope::ALL.covers(&scope("tasks:write")));
        assert!(scope("tasks:*").covers(&scope("tasks:delete")));
        assert!(!scope("tasks:*").covers(&scope("comments:read")));
        assert!(!scope("tasks:read").covers(&scope("tasks:*")));
    }

    #[test]
    fn roles_map_to_the_contract() {
        let owner = Scopes::of_role(Role::Owner);
        let admin = Scopes::of_role(Role::Admin);
        let member = Scopes::of_role(Role::Member);
        let viewer = Scopes::of_role(Role::Viewer);
        assert!(owner.allows(scope("workspace:delete")));
        assert!(!admin.allows(scope("workspace:delete")));
        assert!(admin.allows(scope("members:write")) && admin.allows(scope("audit:read")));
        assert!(member.allows(scope("tasks:delete")) && member.allows(scope("members:read")));
        assert!(!member.allows(scope("members:write")) && !member.allows(scope("audit:read")));
        assert!(viewer.allows(scope("projects:read")) && !viewer.allows(scope("projects:write")));
        for role in [&member, &viewer] {
            assert!(role.allows(scope("events:read")) && role.allows(scope("analytics:read")));
            assert!(!role.allows(scope("webhooks:read")) && !role.allows(scope("audit:read")));
        }
        assert!(
            member.allows(scope("templates:write")) && member.allows(scope("automations:delete"))
        );
        assert!(!viewer.allows(scope("templates:write")));
        assert!(admin.allows(scope("webhooks:write")) && !member.allows(scope("webhooks:write")));
    }

    #[test]
    fn subsets_and_intersections_respect_wildcards() {
        let member = Scopes::of_role(Role::Member);
        assert!(member.contains_all(&Scopes::new([scope("tasks:*")])));
        assert!(!member.contains_all(&Scopes::new([scope("members:*")])));
        assert!(!member.contains_all(&Scopes::new([Scope::ALL])));
        let key = Scopes::new([scope("tasks:*"), scope("members:write")]);
        let effective = key.intersect(&member);
        assert!(effective.allows(scope("tasks:write")));
        assert!(!effective.allows(scope("members:write")));
    }
}
