//! The access-control read model: users, workspaces, memberships, API keys
//! and sessions.
//!
//! Inline: the event store applies it inside the append transaction, so it
//! never lags the log. That is what lets a removed member, a demoted admin,
//! a revoked API key or a logged-out session be refused on the very next
//! request, on every instance, without any cache to invalidate. The same
//! tables answer "who am I", "my workspaces", member and key lists, login
//! and refresh.

mod model;
mod views;

pub use model::{AccessModel, Credentials, SessionRecord, find_user_by_email};
pub use views::{ApiKeyView, MemberView, RoleName, UserView, WorkspaceView};

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::api_key::ApiKeyEvent;
use tenet_events::catalogue::session::SessionEvent;
use tenet_events::catalogue::user::UserEvent;
use tenet_events::catalogue::workspace::{Role, WorkspaceEvent};
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::with_tx;

pub const NAME: &str = "access";

/// The generation of the access model that queries read, as a subquery.
pub const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'access')";

/// The tables of one generation of the access model.
const TABLES: [&str; 6] = [
    "access_users",
    "access_workspaces",
    "access_members",
    "access_api_keys",
    "access_sessions",
    "access_refresh_tokens",
];

pub struct AccessProjector;

#[async_trait]
impl Projector for AccessProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        ["user.", "workspace.", "api_key.", "session."]
            .iter()
            .any(|prefix| event_type.starts_with(prefix))
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            let fail = |e| ProjectionError::event(event, e);
            match event.aggregate() {
                "user" => {
                    apply_user(
                        tx,
                        generation,
                        event,
                        UserEvent::from_recorded(event).map_err(fail)?,
                    )
                    .await?
                }
                "workspace" => {
                    apply_workspace(
                        tx,
                        generation,
                        event,
                        WorkspaceEvent::from_recorded(event).map_err(fail)?,
                    )
                    .await?
                }
                "api_key" => {
                    apply_api_key(
                        tx,
                        generation,
                        event,
                        ApiKeyEvent::from_recorded(event).map_err(fail)?,
                    )
                    .await?
                }
                "session" => {
                    apply_session(
                        tx,
                        generation,
                        event,
                        SessionEvent::from_recorded(event).map_err(fail)?,
                    )
                    .await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        with_tx!(tx, conn => {
            for table in TABLES {
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

async fn apply_api_key(
    tx: &mut Tx<'_>,
    generation: i32,
    event: &RecordedEvent,
    decoded: ApiKeyEvent,
) -> Result<(), ProjectionError> {
    let id = event.stream_id;
    let at = event.occurred_at;
    let version = event.stream_version;
    with_tx!(tx, conn => {
        match &decoded {
            ApiKeyEvent::Issued(issued) => {
                sqlx::query(
                    "INSERT INTO access_api_keys (generation, id, tenant_id, name, prefix, key_hash, scopes, \
                       issued_by, created_at, expires_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(generation)
                .bind(id)
                .bind(event.tenant_id)
                .bind(&issued.name)
                .bind(&issued.prefix)
                .bind(&issued.key_hash)
                .bind(issued.scopes.join(" "))
                .bind(issued.issued_by)
                .bind(at)
                .bind(issued.expires_at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
            ApiKeyEvent::Revoked(_) => {
                sqlx::query(
                    "UPDATE access_api_keys SET revoked_at = $3, version = $4 \
                     WHERE generation = $1 AND id = $2 AND version < $4",
                )
                .bind(generation)
                .bind(id)
                .bind(at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
        }
    });
    Ok(())
}

async fn apply_session(
    tx: &mut Tx<'_>,
    generation: i32,
    event: &RecordedEvent,
    decoded: SessionEvent,
) -> Result<(), ProjectionError> {
    let id = event.stream_id;
    let at = event.occurred_at;
    let version = event.stream_version;
    with_tx!(tx, conn => {
        let issued = match &decoded {
            SessionEvent::Started(started) => {
                sqlx::query(
                    "INSERT INTO access_sessions (generation, id, user_id, current_hash, created_at, \
                       refreshed_at, expires_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(generation)
                .bind(id)
                .bind(started.user_id)
                .bind(&started.refresh_hash)
                .bind(at)
                .bind(started.expires_at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
                Some(&started.refresh_hash)
            }
            SessionEvent::Refreshed(refreshed) => {
                sqlx::query(
                    "UPDATE access_sessions SET current_hash = $3, refreshed_at = $4, expires_at = $5, \
                       version = $6 WHERE generation = $1 AND id = $2 AND version < $6",
                )
                .bind(generation)
                .bind(id)
                .bind(&refreshed.refresh_hash)
                .bind(at)
                .bind(refreshed.expires_at)
                .bind(version)
                .execute(&mut *conn)
                .await?;
                Some(&refreshed.refresh_hash)
            }
            SessionEvent::Revoked(revoked) => {
                sqlx::query(
                    "UPDATE access_sessions SET revoked_at = $3, revoked_reason = $4, version = $5 \
                     WHERE generation = $1 AND id = $2 AND version < $5",
                )
                .bind(generation)
                .bind(id)
                .bind(at)
                .bind(revoked.reason.as_str())
                .bind(version)
                .execute(&mut *conn)
                .await?;
                None
            }
        };
        if let Some(hash) = issued {
            sqlx::query(
                "INSERT INTO access_refresh_tokens (generation, token_hash, session_id) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(generation)
            .bind(hash)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
    });
    Ok(())
}
