//! The access-control read model: users, workspaces and memberships.
//!
//! Inline: the event store applies it inside the append transaction, so it
//! never lags the log. That is what lets a removed member, a demoted admin
//! or (later) a revoked API key be refused on the very next request, on
//! every instance, without any cache to invalidate. The same tables answer
//! "who am I", "my workspaces" and login.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::user::UserEvent;
use tenet_events::catalogue::workspace::{Role, WorkspaceEvent};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::http::auth::{Access, Authenticator, Credential, Principal};
use tenet_events::http::jwt::Jwt;
use tenet_events::http::{ApiError, Scopes};
use tenet_events::ids::{UserId, WorkspaceId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::{with_pool, with_tx};

pub const NAME: &str = "access";

/// The generation of the access model that queries read, as a subquery.
pub const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'access')";

pub struct AccessProjector;

#[async_trait]
impl Projector for AccessProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("user.") || event_type.starts_with("workspace.")
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            if event.event_type.starts_with("user.") {
                let decoded = UserEvent::from_recorded(event)
                    .map_err(|e| ProjectionError::event(event, e))?;
                apply_user(tx, generation, event, decoded).await?;
            } else if event.event_type.starts_with("workspace.") {
                let decoded = WorkspaceEvent::from_recorded(event)
                    .map_err(|e| ProjectionError::event(event, e))?;
                apply_workspace(tx, generation, event, decoded).await?;
            }
        }
        Ok(())
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        with_tx!(tx, conn => {
            for table in ["access_users", "access_workspaces", "access_members"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE generation = $1")))
                    .bind(generation)
                    .execute(&mut *conn)
                    .await?;
            }
        });
        Ok(())
    }
}

async fn apply_user(
    tx: &mut Tx<'_>,
    generation: i32,
    event: &RecordedEvent,
    decoded: UserEvent,
) -> Result<(), ProjectionError> {
    let id = event.stream_id;
    let at = event.occurred_at;
    let version = event.stream_version;
    with_tx!(tx, conn => {
        match decoded {
            UserEvent::Registered(registered) => {
                sqlx::query(
                    "INSERT INTO access_users (generation, id, email, name, password_hash, \
                       platform_admin, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, false, $6, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(generation)
                .bind(id)
                .bind(&registered.email)
                .bind(&registered.name)
                .bind(&registered.password_hash)
                .bind(at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
            UserEvent::PlatformAdminGranted(_) | UserEvent::PlatformAdminRevoked(_) => {
                let admin = matches!(decoded, UserEvent::PlatformAdminGranted(_));
                sqlx::query(
                    "UPDATE access_users SET platform_admin = $3, updated_at = $4, version = $5 \
                     WHERE generation = $1 AND id = $2 AND version < $5",
                )
                .bind(generation)
                .bind(id)
                .bind(admin)
                .bind(at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
        }
    });
    Ok(())
}

async fn apply_workspace(
    tx: &mut Tx<'_>,
    generation: i32,
    event: &RecordedEvent,
    decoded: WorkspaceEvent,
) -> Result<(), ProjectionError> {
    let id = event.stream_id;
    let at = event.occurred_at;
    let version = event.stream_version;
    with_tx!(tx, conn => {
        match &decoded {
            WorkspaceEvent::Created(created) => {
                sqlx::query(
                    "INSERT INTO access_workspaces (generation, id, name, slug, created_at, updated_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(generation)
                .bind(id)
                .bind(&created.name)
                .bind(&created.slug)
                .bind(at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO access_members (generation, workspace_id, user_id, role, joined_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(generation)
                .bind(id)
                .bind(created.owner_id)
                .bind(Role::Owner.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            WorkspaceEvent::Renamed(renamed) => {
                sqlx::query(
                    "UPDATE access_workspaces SET name = $3, slug = $4 \
                     WHERE generation = $1 AND id = $2",
                )
                .bind(generation)
                .bind(id)
                .bind(&renamed.name)
                .bind(&renamed.slug)
                .execute(&mut *conn)
                .await?;
            }
            WorkspaceEvent::Deleted(_) => {
                sqlx::query("UPDATE access_workspaces SET deleted_at = $3 WHERE generation = $1 AND id = $2")
                    .bind(generation)
                    .bind(id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
            }
            WorkspaceEvent::MemberAdded(added) => {
                sqlx::query(
                    "INSERT INTO access_members (generation, workspace_id, user_id, role, joined_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (generation, workspace_id, user_id) DO UPDATE SET role = EXCLUDED.role",
                )
                .bind(generation)
                .bind(id)
                .bind(added.user_id)
                .bind(added.role.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            WorkspaceEvent::MemberRoleChanged(changed) => {
                sqlx::query(
                    "UPDATE access_members SET role = $4 \
                     WHERE generation = $1 AND workspace_id = $2 AND user_id = $3",
                )
                .bind(generation)
                .bind(id)
                .bind(changed.user_id)
                .bind(changed.to.as_str())
                .execute(&mut *conn)
                .await?;
            }
            WorkspaceEvent::MemberRemoved(removed) => {
                sqlx::query(
                    "DELETE FROM access_members WHERE generation = $1 AND workspace_id = $2 AND user_id = $3",
                )
                .bind(generation)
                .bind(id)
                .bind(removed.user_id)
                .execute(&mut *conn)
                .await?;
            }
        }
        // Every workspace event moves the workspace's version (its ETag).
        sqlx::query(
            "UPDATE access_workspaces SET version = $3, updated_at = $4 \
             WHERE generation = $1 AND id = $2 AND version < $3",
        )
        .bind(generation)
        .bind(id)
        .bind(version)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    });
    Ok(())
}

/// A user's stored credentials, for login.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: String,
}

/// Resolves principals and their workspace access from the access model.
pub struct AccessModel {
    db: Db,
    jwt: Arc<Jwt>,
}

impl AccessModel {
    pub fn new(db: Db, jwt: Arc<Jwt>) -> Self {
        AccessModel { db, jwt }
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, password_hash FROM access_users WHERE generation = {GENERATION} AND email = $1"
            )))
            .bind(email)
            .fetch_optional(pool)
            .await
        })
    }

    async fn user_flags(&self, user: UserId) -> Result<Option<bool>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT platform_admin FROM access_users WHERE generation = {GENERATION} AND id = $1"
            )))
            .bind(user)
            .fetch_optional(pool)
            .await
        })
    }

    async fn role(
        &self,
        user: UserId,
        workspace: WorkspaceId,
    ) -> Result<Option<Role>, sqlx::Error> {
        let role: Option<String> = with_pool!(self.db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT m.role FROM access_members m \
                 JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                 WHERE m.generation = {GENERATION} AND m.workspace_id = $1 AND m.user_id = $2 \
                   AND w.deleted_at IS NULL"
            )))
            .bind(workspace)
            .bind(user)
            .fetch_optional(pool)
            .await?
        });
        Ok(role.as_deref().and_then(Role::parse))
    }
}

fn unavailable(error: sqlx::Error) -> ApiError {
    ApiError::from(error)
}

#[async_trait]
impl Authenticator for AccessModel {
    async fn principal(&self, bearer: &str) -> Result<Principal, ApiError> {
        if bearer.starts_with("tnt_") {
            return Err(ApiError::unauthenticated(
                "Invalid, expired or revoked API key",
            ));
        }
        let claims = self
            .jwt
            .verify(bearer)
            .map_err(|_| ApiError::unauthenticated("Invalid or expired access token"))?;
        // The token is only as good as the user it names.
        let platform_admin = self
            .user_flags(claims.sub)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| ApiError::unauthenticated("Invalid or expired access token"))?;
        Ok(Principal {
            user_id: claims.sub,
            platform_admin,
            credential: Credential::Token {
                session: claims.sid,
            },
        })
    }

    async fn principal_in(
        &self,
        bearer: &str,
        workspace: WorkspaceId,
    ) -> Result<(Principal, Option<Access>), ApiError> {
        if bearer.starts_with("tnt_") {
            let principal = self.principal(bearer).await?;
            let access = self.access(&principal, workspace).await?;
            return Ok((principal, access));
        }
        let claims = self
            .jwt
            .verify(bearer)
            .map_err(|_| ApiError::unauthenticated("Invalid or expired access token"))?;
        // The user and their role here, in one round trip: this runs on
        // every workspace request.
        let row: Option<(bool, Option<String>)> = with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT u.platform_admin, \
                   (SELECT m.role FROM access_members m \
                      JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                    WHERE m.generation = u.generation AND m.workspace_id = $2 AND m.user_id = u.id \
                      AND w.deleted_at IS NULL) \
                 FROM access_users u WHERE u.generation = {GENERATION} AND u.id = $1"
            )))
            .bind(claims.sub)
            .bind(workspace)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?
        });
        let (platform_admin, role) =
            row.ok_or_else(|| ApiError::unauthenticated("Invalid or expired access token"))?;
        let principal = Principal {
            user_id: claims.sub,
            platform_admin,
            credential: Credential::Token {
                session: claims.sid,
            },
        };
        let access = role.as_deref().and_then(Role::parse).map(|role| Access {
            workspace_id: workspace,
            principal: principal.clone(),
            role,
            scopes: Scopes::of_role(role),
        });
        Ok((principal, access))
    }

    async fn access(
        &self,
        principal: &Principal,
        workspace: WorkspaceId,
    ) -> Result<Option<Access>, ApiError> {
        if let Credential::ApiKey { workspace_id, .. } = &principal.credential
            && *workspace_id != workspace
        {
            return Ok(None);
        }
        let Some(role) = self
            .role(principal.user_id, workspace)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let mut scopes = Scopes::of_role(role);
        if let Credential::ApiKey {
            scopes: granted, ..
        } = &principal.credential
        {
            scopes = granted.intersect(&scopes);
        }
        Ok(Some(Access {
            workspace_id: workspace,
            principal: principal.clone(),
            role,
            scopes,
        }))
    }
}

/// A workspace, as the API represents it to one of its members.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Workspace)]
pub struct WorkspaceView {
    pub id: WorkspaceId,
    pub name: String,
    /// Unique across workspaces.
    pub slug: String,
    /// The caller's role in it.
    #[sqlx(try_from = "String")]
    pub role: RoleName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

/// A role as stored (text) and as served (the `Role` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Role)]
pub struct RoleName(pub Role);

impl TryFrom<String> for RoleName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Role::parse(&value)
            .map(RoleName)
            .ok_or_else(|| format!("unknown role {value:?}"))
    }
}

/// A user, as the API represents them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}
