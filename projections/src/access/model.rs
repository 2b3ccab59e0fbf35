//! The facts credentials are checked against, read from the access model
//! (the rules that judge them are the HTTP kit's `Authenticator`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenet_events::catalogue::workspace::Role;
use tenet_events::db::Db;
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, UserId, WorkspaceId};
use tenet_events::{with_pool, with_tx};
use tenet_http::auth::{CredentialStore, KeyHolder, TokenHolder};

use super::GENERATION;

/// Whether session `s` of user `u` still works, as SQL: not revoked, not
/// older than the user's last deactivation, and not older than their last
/// password change unless it is the session that change was made from.
/// Expiry is the refresh token's, checked where a refresh token is.
pub(crate) const SESSION_LIVE: &str = "(s.revoked_at IS NULL \
    AND s.started_position >= u.credentials_after \
    AND (s.started_position > u.sessions_after OR coalesce(s.id = u.kept_session, false)))";

/// A user's stored credentials, for login.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: String,
    /// A deactivated account may not log in.
    pub deactivated: bool,
}

/// A refresh-token family, for refresh and logout.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    /// The user is active and the session started after their last
    /// deactivation: only then may it be refreshed.
    pub usable: bool,
}

/// An API key as authentication sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct ApiKeyRecord {
    id: ApiKeyId,
    tenant_id: WorkspaceId,
    scopes: String,
    issued_by: UserId,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// The issuer's current role in the key's workspace.
    role: Option<String>,
    /// The issuer is deactivated now.
    issuer_deactivated: bool,
    /// Issued before the issuer's last deactivation.
    superseded: bool,
}

/// The user with this (lower-cased) email, if any.
pub async fn find_user_by_email(db: &Db, email: &str) -> Result<Option<UserId>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM access_users WHERE generation = {GENERATION} AND email = $1"
        )))
        .bind(email)
        .fetch_optional(pool)
        .await
    })
}

/// The access model's answers to authentication and identity questions.
#[derive(Clone)]
pub struct AccessModel {
    db: Db,
}

impl AccessModel {
    pub fn new(db: Db) -> Self {
        AccessModel { db }
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, password_hash, deactivated_at IS NOT NULL AS deactivated FROM access_users \
                 WHERE generation = {GENERATION} AND email = $1"
            )))
            .bind(email)
            .fetch_optional(pool)
            .await
        })
    }

    /// The stored credentials of `user`, for a password change.
    pub async fn credentials_of(&self, user: UserId) -> Result<Option<Credentials>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, password_hash, deactivated_at IS NOT NULL AS deactivated FROM access_users \
                 WHERE generation = {GENERATION} AND id = $1"
            )))
            .bind(user)
            .fetch_optional(pool)
            .await
        })
    }

    /// The user with this (lower-cased) email, if any.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserId>, sqlx::Error> {
        find_user_by_email(&self.db, email).await
    }

    /// A user's profile.
    pub async fn user(&self, user: UserId) -> Result<Option<super::UserView>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, email, name, created_at FROM access_users \
                 WHERE generation = {GENERATION} AND id = $1"
            )))
            .bind(user)
            .fetch_optional(pool)
            .await
        })
    }

    /// A member of a workspace with their profile.
    pub async fn member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<super::MemberView>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT m.user_id, u.email, u.name, m.role, m.joined_at FROM access_members m \
                 JOIN access_users u ON u.generation = m.generation AND u.id = m.user_id \
                 WHERE m.generation = {GENERATION} AND m.workspace_id = $1 AND m.user_id = $2"
            )))
            .bind(workspace)
            .bind(user)
            .fetch_optional(pool)
            .await
        })
    }

    /// The session a refresh token (by its digest) was ever issued for
    /// (current or rotated).
    pub async fn session_of_refresh_token(
        &self,
        token_digest: &str,
    ) -> Result<Option<SessionRecord>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT s.id, s.user_id, \
                   (u.deactivated_at IS NULL AND {SESSION_LIVE}) AS usable \
                 FROM access_refresh_tokens t \
                 JOIN access_sessions s ON s.generation = t.generation AND s.id = t.session_id \
                 JOIN access_users u ON u.generation = s.generation AND u.id = s.user_id \
                 WHERE t.generation = {GENERATION} AND t.token_hash = $1"
            )))
            .bind(token_digest)
            .fetch_optional(pool)
            .await
        })
    }

    async fn api_key_record(&self, digest: &str) -> Result<Option<ApiKeyRecord>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT k.id, k.tenant_id, k.scopes, k.issued_by, k.expires_at, k.revoked_at, \
                   (SELECT m.role FROM access_members m \
                      JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                    WHERE m.generation = k.generation AND m.workspace_id = k.tenant_id \
                      AND m.user_id = k.issued_by AND w.deleted_at IS NULL) AS role, \
                   coalesce(u.deactivated_at IS NOT NULL, false) AS issuer_deactivated, \
                   coalesce(k.issued_position < u.credentials_after, false) AS superseded \
                 FROM access_api_keys k \
                 LEFT JOIN access_users u ON u.generation = k.generation AND u.id = k.issued_by \
                 WHERE k.generation = {GENERATION} AND k.key_hash = $1"
            )))
            .bind(digest)
            .fetch_optional(pool)
            .await
        })
    }
}

#[async_trait]
impl CredentialStore for AccessModel {
    async fn api_key(&self, digest: &str) -> Result<Option<KeyHolder>, sqlx::Error> {
        Ok(self.api_key_record(digest).await?.map(|key| KeyHolder {
            id: key.id,
            workspace_id: key.tenant_id,
            scopes: key.scopes,
            issued_by: key.issued_by,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            role: key.role.as_deref().and_then(Role::parse),
            issuer_deactivated: key.issuer_deactivated,
            superseded: key.superseded,
        }))
    }

    async fn token_holder(
        &self,
        user: UserId,
        session: Option<SessionId>,
        impersonation: Option<ImpersonationId>,
        workspace: Option<WorkspaceId>,
    ) -> Result<Option<TokenHolder>, sqlx::Error> {
        type Row = (bool, bool, Option<bool>, Option<String>, Option<UserId>);
        let row: Option<Row> = with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT u.platform_admin, u.deactivated_at IS NOT NULL, \
                   (SELECT {SESSION_LIVE} \
                     FROM access_sessions s \
                     WHERE s.generation = u.generation AND s.id = $3 AND s.user_id = u.id), \
                   (SELECT m.role FROM access_members m \
                      JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                    WHERE m.generation = u.generation AND m.workspace_id = $2 AND m.user_id = u.id \
                      AND w.deleted_at IS NULL), \
                   (SELECT i.admin_id FROM access_impersonations i \
                     WHERE i.generation = u.generation AND i.id = $4 AND i.user_id = u.id \
                       AND i.ended_at IS NULL AND i.expires_at > $5) \
                 FROM access_users u WHERE u.generation = {GENERATION} AND u.id = $1"
            )))
            .bind(user)
            .bind(workspace)
            .bind(session)
            .bind(impersonation)
            .bind(tenet_events::envelope::now())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(platform_admin, deactivated, session_live, role, impersonated_by)| TokenHolder {
                platform_admin,
                deactivated,
                session_live,
                role: role.as_deref().and_then(Role::parse),
                impersonated_by,
            },
        ))
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

    /// Written in the background: a key's last use is a convenience for
    /// its owner, never worth delaying the request it authenticates.
    fn key_used(&self, key: ApiKeyId, at: DateTime<Utc>) {
        let db = self.db.clone();
        tokio::spawn(async move {
            let written: Result<(), sqlx::Error> = async {
                let mut tx = db.begin().await?;
                with_tx!(&mut tx, conn => {
                    sqlx::query(
                        "INSERT INTO api_key_usage (key_id, last_used_at) VALUES ($1, $2) \
                         ON CONFLICT (key_id) DO UPDATE SET last_used_at = EXCLUDED.last_used_at",
                    )
                    .bind(key)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                });
                tx.commit().await
            }
            .await;
            if let Err(error) = written {
                tracing::debug!(%error, "could not record an API key's use");
            }
        });
    }
}
