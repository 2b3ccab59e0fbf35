//! The access-control read model: users, workspaces, memberships, API keys
//! and sessions.
//!
//! Inline: the event store applies it inside the append transaction, so it
//! never lags the log. That is what lets a removed member, a demoted admin,
//! a revoked API key or a logged-out session be refused on the very next
//! request, on every instance, without any cache to invalidate. The same
//! tables answer "who am I", "my workspaces", member and key lists, login
//! and refresh.
//!
//! Its batches have the shape of every projector's (`crate::batch`): the
//! rows an append's events touch are loaded at once, the events applied to
//! them in memory, and the changed rows written back, one statement per
//! table. Every change is idempotent by the row's version, as a replayed
//! event must leave the model as it was.

mod model;
mod reads;
pub mod tables;
mod views;

pub use model::{AccessModel, Credentials, SessionRecord, find_user_by_email};
pub(crate) use reads::tenant_among;
pub use reads::{
    Account, AllWorkspacesOrder, KeyStatus, MemberOrder, UserOrder, WorkspaceOrder, account,
    admin_user, all_users, all_workspaces, api_key_name, api_keys, impersonation, members,
    sessions_of, user_name, workspace, workspaces, workspaces_of,
};
pub use views::{
    AdminUser, AdminUserDetail, AdminUserWorkspace, AdminWorkspace, ApiKeyView, ImpersonationView,
    MemberView, RoleName, SessionView, UserView, WorkspaceView,
};

use std::collections::HashSet;

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::api_key::ApiKeyEvent;
use tenet_events::catalogue::impersonation::ImpersonationEvent;
use tenet_events::catalogue::session::SessionEvent;
use tenet_events::catalogue::user::UserEvent;
use tenet_events::catalogue::workspace::{Role, WorkspaceEvent};
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, UserId, WorkspaceId};
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Rows};
use crate::feed::Recorder;
use crate::table::{self, Table};
use tables::{
    ApiKeyRow, ImpersonationRow, MemberRow, RefreshTokenRow, SessionRow, UserRow, WorkspaceRow,
};

pub const NAME: &str = "access";

/// The generation of the access model that queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'access')";

pub struct AccessProjector;

/// What one batch (the events of one append) works on.
#[derive(Default)]
struct Working {
    users: Rows<UserRow>,
    workspaces: Rows<WorkspaceRow>,
    members: Rows<MemberRow>,
    api_keys: Rows<ApiKeyRow>,
    sessions: Rows<SessionRow>,
    /// Written only: a token known already stays as it is.
    refresh_tokens: Rows<RefreshTokenRow>,
    impersonations: Rows<ImpersonationRow>,
}

enum Change {
    User(UserEvent),
    Workspace(WorkspaceEvent),
    ApiKey(ApiKeyEvent),
    Session(SessionEvent),
    Impersonation(ImpersonationEvent),
}

/// The rows a batch loads: every row its events change, except those whose
/// first event in the batch creates them.
#[derive(Default)]
struct Keys {
    seen: HashSet<uuid::Uuid>,
    users: Vec<<UserRow as Table>::Key>,
    workspaces: Vec<<WorkspaceRow as Table>::Key>,
    members: HashSet<<MemberRow as Table>::Key>,
    api_keys: Vec<<ApiKeyRow as Table>::Key>,
    sessions: Vec<<SessionRow as Table>::Key>,
    impersonations: Vec<<ImpersonationRow as Table>::Key>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = false;

    type Change = Change;
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        [
            "user.",
            "workspace.",
            "api_key.",
            "session.",
            "impersonation.",
        ]
        .iter()
        .any(|prefix| event_type.starts_with(prefix))
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        Ok(match event.aggregate() {
            "user" => Change::User(UserEvent::from_recorded(event).map_err(fail)?),
            "workspace" => Change::Workspace(WorkspaceEvent::from_recorded(event).map_err(fail)?),
            "api_key" => Change::ApiKey(ApiKeyEvent::from_recorded(event).map_err(fail)?),
            "impersonation" => {
                Change::Impersonation(ImpersonationEvent::from_recorded(event).map_err(fail)?)
            }
            _ => Change::Session(SessionEvent::from_recorded(event).map_err(fail)?),
        })
    }

    fn keys(keys: &mut Keys, event: &RecordedEvent, change: &Change) {
        let id = event.stream_id.as_uuid();
        let first = keys.seen.insert(id);
        match change {
            Change::User(decoded) => {
                if !(first && matches!(decoded, UserEvent::Registered(_))) {
                    keys.users.push((UserId::from_uuid(id),));
                }
            }
            Change::Workspace(decoded) => {
                let workspace = WorkspaceId::from_uuid(id);
                if !(first && matches!(decoded, WorkspaceEvent::Created(_))) {
                    keys.workspaces.push((workspace,));
                }
                if let Some(user) = member_of(decoded) {
                    keys.members.insert((workspace, user));
                }
            }
            Change::ApiKey(decoded) => {
                if !(first && matches!(decoded, ApiKeyEvent::Issued(_))) {
                    keys.api_keys.push((ApiKeyId::from_uuid(id),));
                }
            }
            Change::Session(decoded) => {
                if !(first && matches!(decoded, SessionEvent::Started(_))) {
                    keys.sessions.push((SessionId::from_uuid(id),));
                }
            }
            Change::Impersonation(decoded) => {
                if !(first && matches!(decoded, ImpersonationEvent::Started(_))) {
                    keys.impersonations.push((ImpersonationId::from_uuid(id),));
                }
            }
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            users: Rows::load(tx, generation, dedup(keys.users)).await?,
            workspaces: Rows::load(tx, generation, dedup(keys.workspaces)).await?,
            members: Rows::load(tx, generation, keys.members).await?,
            api_keys: Rows::load(tx, generation, dedup(keys.api_keys)).await?,
            sessions: Rows::load(tx, generation, dedup(keys.sessions)).await?,
            refresh_tokens: Rows::default(),
            impersonations: Rows::load(tx, generation, dedup(keys.impersonations)).await?,
        })
    }

    fn apply(
        &mut self,
        _feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        match change {
            Change::User(decoded) => apply_user(self, event, decoded),
            Change::Workspace(decoded) => apply_workspace(self, event, decoded),
            Change::ApiKey(decoded) => apply_api_key(self, event, decoded),
            Change::Session(decoded) => apply_session(self, event, decoded),
            Change::Impersonation(decoded) => apply_impersonation(self, event, decoded),
        }
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.users.save(tx, generation).await?;
        self.workspaces.save(tx, generation).await?;
        self.members.save(tx, generation).await?;
        self.api_keys.save(tx, generation).await?;
        self.sessions.save(tx, generation).await?;
        self.refresh_tokens.save(tx, generation).await?;
        self.impersonations.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for AccessProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<UserRow>(tx, generation).await?;
        table::clear::<WorkspaceRow>(tx, generation).await?;
        table::clear::<MemberRow>(tx, generation).await?;
        table::clear::<ApiKeyRow>(tx, generation).await?;
        table::clear::<SessionRow>(tx, generation).await?;
        table::clear::<RefreshTokenRow>(tx, generation).await?;
        table::clear::<ImpersonationRow>(tx, generation).await?;
        Ok(())
    }
}

fn dedup<K: Eq + std::hash::Hash>(keys: Vec<K>) -> HashSet<K> {
    keys.into_iter().collect()
}

/// The member a workspace event is about.
fn member_of(event: &WorkspaceEvent) -> Option<UserId> {
    match event {
        WorkspaceEvent::Created(created) => Some(created.owner_id),
        WorkspaceEvent::MemberAdded(added) => Some(added.user_id),
        WorkspaceEvent::MemberRoleChanged(changed) => Some(changed.user_id),
        WorkspaceEvent::MemberRemoved(removed) => Some(removed.user_id),
        WorkspaceEvent::Renamed(_) | WorkspaceEvent::Deleted(_) => None,
    }
}

fn apply_user(batch: &mut Working, event: &RecordedEvent, decoded: UserEvent) {
    let id = UserId::from_uuid(event.stream_id.as_uuid());
    let (at, version) = (event.occurred_at, event.stream_version);
    match decoded {
        UserEvent::Registered(registered) => {
            if !batch.users.contains(&(id,)) {
                batch.users.insert(UserRow {
                    id,
                    email: registered.email,
                    name: registered.name,
                    password_hash: registered.password_hash,
                    created_at: at,
                    platform_admin: false,
                    deactivated_at: None,
                    deactivation_reason: None,
                    credentials_after: 0,
                    sessions_after: 0,
                    kept_session: None,
                    updated_at: at,
                    version,
                });
            }
        }
        changed => {
            if let Some(row) = batch.users.get_mut(&(id,))
                && row.version < version
            {
                match changed {
                    UserEvent::Registered(_) => {}
                    UserEvent::PlatformAdminGranted(_) => row.platform_admin = true,
                    UserEvent::PlatformAdminRevoked(_) => row.platform_admin = false,
                    UserEvent::Renamed(renamed) => row.name = renamed.name,
                    UserEvent::Deactivated(deactivated) => {
                        row.deactivated_at = Some(at);
                        row.deactivation_reason = Some(deactivated.reason);
                        row.credentials_after = event.position.0;
                    }
                    UserEvent::Reactivated(_) => {
                        row.deactivated_at = None;
                        row.deactivation_reason = None;
                    }
                    UserEvent::PasswordChanged(changed) => {
                        row.password_hash = changed.password_hash;
                        row.sessions_after = event.position.0;
                        row.kept_session = changed.kept_session;
                    }
                }
                row.updated_at = at;
                row.version = version;
                batch.users.changed((id,));
            }
        }
    }
}

fn apply_workspace(batch: &mut Working, event: &RecordedEvent, decoded: WorkspaceEvent) {
    let id = WorkspaceId::from_uuid(event.stream_id.as_uuid());
    let (at, version) = (event.occurred_at, event.stream_version);
    if batch
        .workspaces
        .get(&(id,))
        .is_some_and(|row| row.version >= version)
    {
        // Applied already.
        return;
    }
    match decoded {
        WorkspaceEvent::Created(created) => {
            batch.workspaces.insert(WorkspaceRow {
                id,
                created_at: at,
                name: created.name,
                slug: created.slug,
                updated_at: at,
                deleted_at: None,
                version,
            });
            if !batch.members.contains(&(id, created.owner_id)) {
                batch.members.insert(MemberRow {
                    workspace_id: id,
                    user_id: created.owner_id,
                    role: Role::Owner.as_str().to_owned(),
                    joined_at: at,
                });
            }
        }
        WorkspaceEvent::Renamed(renamed) => {
            if let Some(row) = batch.workspaces.get_mut(&(id,)) {
                row.name = renamed.name;
                row.slug = renamed.slug;
            }
        }
        WorkspaceEvent::Deleted(_) => {
            if let Some(row) = batch.workspaces.get_mut(&(id,)) {
                row.deleted_at = Some(at);
            }
        }
        WorkspaceEvent::MemberAdded(added) => {
            let key = (id, added.user_id);
            match batch.members.get_mut(&key) {
                Some(member) => {
                    member.role = added.role.as_str().to_owned();
                    batch.members.changed(key);
                }
                None => batch.members.insert(MemberRow {
                    workspace_id: id,
                    user_id: added.user_id,
                    role: added.role.as_str().to_owned(),
                    joined_at: at,
                }),
            }
        }
        WorkspaceEvent::MemberRoleChanged(changed) => {
            let key = (id, changed.user_id);
            if let Some(member) = batch.members.get_mut(&key) {
                member.role = changed.to.as_str().to_owned();
                batch.members.changed(key);
            }
        }
        WorkspaceEvent::MemberRemoved(removed) => {
            batch.members.remove(&(id, removed.user_id));
        }
    }
    // Every workspace event moves the workspace's version (its ETag).
    if let Some(row) = batch.workspaces.get_mut(&(id,)) {
        row.version = version;
        row.updated_at = at;
        batch.workspaces.changed((id,));
    }
}

fn apply_api_key(batch: &mut Working, event: &RecordedEvent, decoded: ApiKeyEvent) {
    let id = ApiKeyId::from_uuid(event.stream_id.as_uuid());
    let (at, version) = (event.occurred_at, event.stream_version);
    match decoded {
        ApiKeyEvent::Issued(issued) => {
            if !batch.api_keys.contains(&(id,)) {
                batch.api_keys.insert(ApiKeyRow {
                    id,
                    tenant_id: event.tenant_id,
                    name: issued.name,
                    prefix: issued.prefix,
                    key_hash: issued.key_hash,
                    scopes: issued.scopes.join(" "),
                    issued_by: issued.issued_by,
                    created_at: at,
                    expires_at: issued.expires_at,
                    issued_position: event.position.0,
                    revoked_at: None,
                    version,
                });
            }
        }
        ApiKeyEvent::Revoked(_) => {
            if let Some(row) = batch.api_keys.get_mut(&(id,))
                && row.version < version
            {
                row.revoked_at = Some(at);
                row.version = version;
                batch.api_keys.changed((id,));
            }
        }
    }
}

fn apply_session(batch: &mut Working, event: &RecordedEvent, decoded: SessionEvent) {
    let id = SessionId::from_uuid(event.stream_id.as_uuid());
    let (at, version) = (event.occurred_at, event.stream_version);
    let issued = match decoded {
        SessionEvent::Started(started) => {
            if !batch.sessions.contains(&(id,)) {
                batch.sessions.insert(SessionRow {
                    id,
                    user_id: started.user_id,
                    created_at: at,
                    started_position: event.position.0,
                    user_agent: started.user_agent.clone(),
                    current_hash: started.refresh_hash.clone(),
                    refreshed_at: at,
                    expires_at: started.expires_at,
                    revoked_at: None,
                    revoked_reason: None,
                    version,
                });
            }
            Some(started.refresh_hash)
        }
        SessionEvent::Refreshed(refreshed) => {
            if let Some(row) = batch.sessions.get_mut(&(id,))
                && row.version < version
            {
                row.current_hash = refreshed.refresh_hash.clone();
                row.refreshed_at = at;
                row.expires_at = refreshed.expires_at;
                row.version = version;
                batch.sessions.changed((id,));
            }
            Some(refreshed.refresh_hash)
        }
        SessionEvent::Revoked(revoked) => {
            if let Some(row) = batch.sessions.get_mut(&(id,))
                && row.version < version
            {
                row.revoked_at = Some(at);
                row.revoked_reason = Some(revoked.reason.as_str().to_owned());
                row.version = version;
                batch.sessions.changed((id,));
            }
            None
        }
    };
    if let Some(token_hash) = issued {
        batch.refresh_tokens.insert(RefreshTokenRow {
            token_hash,
            session_id: id,
        });
    }
}

fn apply_impersonation(batch: &mut Working, event: &RecordedEvent, decoded: ImpersonationEvent) {
    let id = ImpersonationId::from_uuid(event.stream_id.as_uuid());
    let (at, version) = (event.occurred_at, event.stream_version);
    match decoded {
        ImpersonationEvent::Started(started) => {
            if !batch.impersonations.contains(&(id,)) {
                batch.impersonations.insert(ImpersonationRow {
                    id,
                    user_id: started.user_id,
                    admin_id: started.admin_id,
                    reason: started.reason,
                    created_at: at,
                    expires_at: started.expires_at,
                    ended_at: None,
                    version,
                });
            }
        }
        ImpersonationEvent::Ended(_) => {
            if let Some(row) = batch.impersonations.get_mut(&(id,))
                && row.version < version
            {
                row.ended_at = Some(at);
                row.version = version;
                batch.impersonations.changed((id,));
            }
        }
    }
}
