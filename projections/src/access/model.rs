//! Resolving credentials against the access model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenet_events::catalogue::workspace::Role;
use tenet_events::db::Db;
use tenet_events::envelope::now;
use tenet_events::http::auth::{Access, Authenticator, Credential, Principal};
use tenet_events::http::jwt::Jwt;
use tenet_events::http::{ApiError, Scope, Scopes};
use tenet_events::ids::{ApiKeyId, SessionId, UserId, WorkspaceId};
use tenet_events::{with_pool, with_tx};

use super::GENERATION;

/// Hex SHA-256 of a secret (API key, refresh token): what is stored.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The prefix of API keys, which tells them apart from JWTs.
pub const API_KEY_PREFIX: &str = "tnt_";

/// A key's last use is written at most this often.
const USAGE_EVERY: Duration = Duration::from_secs(60);

/// A user's stored credentials, for login.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: String,
}

/// A refresh-token family, for refresh and logout.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
}

/// An API key as authentication sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant_id: WorkspaceId,
    pub scopes: String,
    pub issued_by: UserId,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The issuer's current role in the key's workspace.
    pub role: Option<String>,
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

/// Resolves principals and their workspace access from the access model.
pub struct AccessModel {
    db: Db,
    jwt: Arc<Jwt>,
    /// When this process last recorded each key's use (held only to read
    /// or update the map, never across an await).
    used: Mutex<HashMap<ApiKeyId, Instant>>,
}

fn unauthenticated_token() -> ApiError {
    ApiError::unauthenticated("Invalid or expired access token")
}

fn unauthenticated_key() -> ApiError {
    ApiError::unauthenticated("Invalid, expired or revoked API key")
}

impl AccessModel {
    pub fn new(db: Db, jwt: Arc<Jwt>) -> Self {
        AccessModel {
            db,
            jwt,
            used: Mutex::new(HashMap::new()),
        }
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

    /// The session a refresh token was ever issued for (current or rotated).
    pub async fn session_of_refresh_token(
        &self,
        token: &str,
    ) -> Result<Option<SessionRecord>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT s.id, s.user_id FROM access_refresh_tokens t \
                 JOIN access_sessions s ON s.generation = t.generation AND s.id = t.session_id \
                 WHERE t.generation = {GENERATION} AND t.token_hash = $1"
            )))
            .bind(digest(token))
            .fetch_optional(pool)
            .await
        })
    }

    async fn api_key(&self, secret: &str) -> Result<Option<ApiKeyRecord>, sqlx::Error> {
        with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT k.id, k.tenant_id, k.scopes, k.issued_by, k.expires_at, k.revoked_at, \
                   (SELECT m.role FROM access_members m \
                      JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                    WHERE m.generation = k.generation AND m.workspace_id = k.tenant_id \
                      AND m.user_id = k.issued_by AND w.deleted_at IS NULL) AS role \
                 FROM access_api_keys k WHERE k.generation = {GENERATION} AND k.key_hash = $1"
            )))
            .bind(digest(secret))
            .fetch_optional(pool)
            .await
        })
    }

    /// Resolves a bearer token and, if a workspace is named, the principal's
    /// role there: one query for either kind of credential.
    async fn resolve(
        &self,
        bearer: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(Principal, Option<Role>), ApiError> {
        if bearer.starts_with(API_KEY_PREFIX) {
            let key = self
                .api_key(bearer)
                .await?
                .ok_or_else(unauthenticated_key)?;
            let live =
                key.revoked_at.is_none() && key.expires_at.is_none_or(|expires| expires > now());
            // A key is only as good as its issuer's membership.
            let role = key
                .role
                .as_deref()
                .and_then(Role::parse)
                .filter(|_| live)
                .ok_or_else(unauthenticated_key)?;
            let scopes = Scopes::new(
                key.scopes
                    .split_whitespace()
                    .filter_map(|s| s.parse::<Scope>().ok()),
            );
            self.record_use(key.id);
            let principal = Principal {
                user_id: key.issued_by,
                platform_admin: false,
                credential: Credential::ApiKey {
                    key_id: key.id,
                    workspace_id: key.tenant_id,
                    scopes,
                },
            };
            let role = (workspace == Some(key.tenant_id)).then_some(role);
            return Ok((principal, role));
        }
        let claims = self
            .jwt
            .verify(bearer)
            .map_err(|_| unauthenticated_token())?;
        let row: Option<(bool, Option<bool>, Option<String>)> = with_pool!(self.db, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT u.platform_admin, \
                   (SELECT s.revoked_at IS NULL FROM access_sessions s \
                     WHERE s.generation = u.generation AND s.id = $3 AND s.user_id = u.id), \
                   (SELECT m.role FROM access_members m \
                      JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                    WHERE m.generation = u.generation AND m.workspace_id = $2 AND m.user_id = u.id \
                      AND w.deleted_at IS NULL) \
                 FROM access_users u WHERE u.generation = {GENERATION} AND u.id = $1"
            )))
            .bind(claims.sub)
            .bind(workspace)
            .bind(claims.sid)
            .fetch_optional(pool)
            .await?
        });
        let (platform_admin, session_live, role) = row.ok_or_else(unauthenticated_token)?;
        // A token from a logged-out (or reuse-revoked) session is dead too.
        if claims.sid.is_some() && session_live != Some(true) {
            return Err(unauthenticated_token());
        }
        let principal = Principal {
            user_id: claims.sub,
            platform_admin,
            credential: Credential::Token {
                session: claims.sid,
            },
        };
        Ok((principal, role.as_deref().and_then(Role::parse)))
    }

    fn access_of(principal: Principal, workspace: WorkspaceId, role: Role) -> Access {
        let mut scopes = Scopes::of_role(role);
        if let Credential::ApiKey {
            scopes: granted, ..
        } = &principal.credential
        {
            // Never more than its issuer may do today.
            scopes = granted.intersect(&scopes);
        }
        Access {
            workspace_id: workspace,
            principal,
            role,
            scopes,
        }
    }

    /// Notes that a key was used (at most once a minute per key, off the
    /// request's path).
    fn record_use(&self, key: ApiKeyId) {
        {
            let mut used = self
                .used
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if used.get(&key).is_some_and(|at| at.elapsed() < USAGE_EVERY) {
                return;
            }
            if used.len() > 100_000 {
                used.retain(|_, at| at.elapsed() < USAGE_EVERY);
            }
            used.insert(key, Instant::now());
        }
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
                    .bind(now())
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

#[async_trait]
impl Authenticator for AccessModel {
    async fn principal(&self, bearer: &str) -> Result<Principal, ApiError> {
        self.resolve(bearer, None)
            .await
            .map(|(principal, _)| principal)
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
        let role: Option<String> = with_pool!(self.db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT m.role FROM access_members m \
                 JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
                 WHERE m.generation = {GENERATION} AND m.workspace_id = $1 AND m.user_id = $2 \
                   AND w.deleted_at IS NULL"
            )))
            .bind(workspace)
            .bind(principal.user_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(role
            .as_deref()
            .and_then(Role::parse)
            .map(|role| Self::access_of(principal.clone(), workspace, role)))
    }

    async fn principal_in(
        &self,
        bearer: &str,
        workspace: WorkspaceId,
    ) -> Result<(Principal, Option<Access>), ApiError> {
        let (principal, role) = self.resolve(bearer, Some(workspace)).await?;
        let access = role.map(|role| Self::access_of(principal.clone(), workspace, role));
        Ok((principal, access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_hex_sha256() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
