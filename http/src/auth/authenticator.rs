//! Resolving a bearer token to a [`Principal`], and a principal to its
//! [`Access`] in a workspace.
//!
//! Every check reads the access-control read model, which the event store
//! writes in the same transaction as the events that change it: a revoked
//! key, a logged-out session or a removed member is refused on the very
//! next request, on every instance, with no cache to invalidate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenet_events::catalogue::workspace::Role;
use tenet_events::envelope::now;
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, UserId, WorkspaceId};

use super::api_key;
use super::external::{ExternalAccounts, ExternalProvider, unknown_account};
use super::jwt::Jwt;
use super::principal::{Access, Credential, Principal};
use super::scope::{Scope, Scopes};
use crate::problem::ApiError;

/// An API key as authentication sees it.
#[derive(Clone, Debug)]
pub struct KeyHolder {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    /// Space-separated scopes, as issued.
    pub scopes: String,
    pub issued_by: UserId,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The issuer's current role in the key's workspace (none once they
    /// left it, or the workspace is gone).
    pub role: Option<Role>,
    /// The issuer's account is deactivated.
    pub issuer_deactivated: bool,
    /// Issued before the issuer's last deactivation: dead for good.
    pub superseded: bool,
}

/// The user an access token names, as authentication sees them.
#[derive(Clone, Debug)]
pub struct TokenHolder {
    pub platform_admin: bool,
    /// The account is deactivated: none of its credentials work.
    pub deactivated: bool,
    /// Whether the token's session is live (not revoked, and started after
    /// the user's last deactivation); `None` when the token names no
    /// session, or a session that is not the user's.
    pub session_live: Option<bool>,
    /// The user's role in the workspace asked about, if any.
    pub role: Option<Role>,
    /// The admin behind the impersonation asked about, while it is live
    /// (neither ended nor expired) and of this user.
    pub impersonated_by: Option<UserId>,
}

/// The facts credentials are checked against, kept by the access-control
/// read model.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The API key whose secret has this digest ([`api_key::digest`]).
    async fn api_key(&self, digest: &str) -> Result<Option<KeyHolder>, sqlx::Error>;

    /// The user of an access token, with their session's (or
    /// impersonation's) state and their role in `workspace`, in one read;
    /// `None` when there is no such user.
    async fn token_holder(
        &self,
        user: UserId,
        session: Option<SessionId>,
        impersonation: Option<ImpersonationId>,
        workspace: Option<WorkspaceId>,
    ) -> Result<Option<TokenHolder>, sqlx::Error>;

    /// A user's role in a (not deleted) workspace.
    async fn role(&self, user: UserId, workspace: WorkspaceId)
    -> Result<Option<Role>, sqlx::Error>;

    /// Records that a key was used at `at` (best effort, off the request's
    /// path: the store may write it in the background).
    fn key_used(&self, key: ApiKeyId, at: DateTime<Utc>);
}

/// A key's last use is recorded at most this often.
const USAGE_EVERY: Duration = Duration::from_secs(60);

/// Resolves bearer tokens (JWTs and API keys) and workspace access.
pub struct Authenticator {
    jwt: Arc<Jwt>,
    store: Arc<dyn CredentialStore>,
    /// When this process last recorded each key's use (held only to read
    /// or update the map, never across an await).
    used: Mutex<HashMap<ApiKeyId, Instant>>,
    /// The external identity provider whose tokens are accepted too, if
    /// one is configured, with what maps its identities to users.
    external: Option<(Arc<ExternalProvider>, Arc<dyn ExternalAccounts>)>,
}

fn unauthenticated_token() -> ApiError {
    ApiError::unauthenticated("Invalid or expired access token")
}

fn unauthenticated_key() -> ApiError {
    ApiError::unauthenticated("Invalid, expired or revoked API key")
}

/// The code of every refusal of a deactivated account's credentials (and
/// of its login, as 403).
pub const ACCOUNT_DEACTIVATED: &str = "ACCOUNT_DEACTIVATED";

/// The code of a refused impersonation token (ended or expired).
pub const IMPERSONATION_ENDED: &str = "IMPERSONATION_ENDED";

/// A valid credential of a deactivated account: 401, named as such so a
/// client (and a WebSocket closing) can say why.
pub fn deactivated() -> ApiError {
    ApiError::unauthenticated("This account is deactivated").with_code(ACCOUNT_DEACTIVATED)
}

impl Authenticator {
    pub fn new(jwt: Arc<Jwt>, store: Arc<dyn CredentialStore>) -> Self {
        Authenticator {
            jwt,
            store,
            used: Mutex::new(HashMap::new()),
            external: None,
        }
    }

    /// Accepts the tokens of an external identity provider too (RS256 or
    /// ES256), acting as the user `accounts` maps each identity to.
    pub fn with_external(
        mut self,
        provider: Arc<ExternalProvider>,
        accounts: Arc<dyn ExternalAccounts>,
    ) -> Self {
        self.external = Some((provider, accounts));
        self
    }

    /// Resolves a bearer token (JWT or API key); 401 when it is not valid.
    pub async fn principal(&self, bearer: &str) -> Result<Principal, ApiError> {
        self.resolve(bearer, None)
            .await
            .map(|(principal, _)| principal)
    }

    /// The principal's access to a workspace; `None` when the workspace
    /// does not exist or the principal is not a member (or the key is
    /// bound to another workspace).
    pub async fn access(
        &self,
        principal: &Principal,
        workspace: WorkspaceId,
    ) -> Result<Option<Access>, ApiError> {
        if let Credential::ApiKey { workspace_id, .. } = &principal.credential
            && *workspace_id != workspace
        {
            return Ok(None);
        }
        let role = self.store.role(principal.user_id, workspace).await?;
        Ok(role.map(|role| access_of(principal.clone(), workspace, role)))
    }

    /// Both at once, for requests that name a workspace: one read.
    pub async fn principal_in(
        &self,
        bearer: &str,
        workspace: WorkspaceId,
    ) -> Result<(Principal, Option<Access>), ApiError> {
        let (principal, role) = self.resolve(bearer, Some(workspace)).await?;
        let access = role.map(|role| access_of(principal.clone(), workspace, role));
        Ok((principal, access))
    }

    /// Resolves a bearer token and, if a workspace is named, the principal's
    /// role there: one read for either kind of credential.
    async fn resolve(
        &self,
        bearer: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(Principal, Option<Role>), ApiError> {
        if api_key::is_api_key(bearer) {
            return self.resolve_key(bearer, workspace).await;
        }
        if let Some((provider, accounts)) = &self.external
            && jsonwebtoken::decode_header(bearer)
                .is_ok_and(|header| ExternalProvider::handles(header.alg))
        {
            return self
                .resolve_external(provider, accounts.as_ref(), bearer, workspace)
                .await;
        }
        let claims = self
            .jwt
            .verify(bearer)
            .map_err(|_| unauthenticated_token())?;
        let holder = self
            .store
            .token_holder(claims.sub, claims.sid, claims.imp, workspace)
            .await?
            .ok_or_else(unauthenticated_token)?;
        if holder.deactivated {
            return Err(deactivated());
        }
        // A token from a logged-out (or reuse-revoked) session is dead too.
        if claims.sid.is_some() && holder.session_live != Some(true) {
            return Err(unauthenticated_token());
        }
        let principal = match claims.imp {
            Some(id) => {
                // Ended or expired: refused at once.
                let admin_id = holder.impersonated_by.ok_or_else(|| {
                    ApiError::unauthenticated("This impersonation has ended")
                        .with_code(IMPERSONATION_ENDED)
                })?;
                Principal {
                    user_id: claims.sub,
                    platform_admin: false,
                    credential: Credential::Impersonation { id, admin_id },
                }
            }
            None => Principal {
                user_id: claims.sub,
                platform_admin: holder.platform_admin,
                credential: Credential::Token {
                    session: claims.sid,
                },
            },
        };
        Ok((principal, holder.role))
    }

    /// A token of the external provider: verified, mapped to its user,
    /// whose account must be active. It has no session: it is refused once
    /// it expires, and the provider, not Tenet, ends it.
    async fn resolve_external(
        &self,
        provider: &ExternalProvider,
        accounts: &dyn ExternalAccounts,
        bearer: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(Principal, Option<Role>), ApiError> {
        let identity = provider.verify(bearer)?;
        let user = accounts
            .user_for(&identity)
            .await?
            .ok_or_else(unknown_account)?;
        let holder = self
            .store
            .token_holder(user, None, None, workspace)
            .await?
            .ok_or_else(unknown_account)?;
        if holder.deactivated {
            return Err(deactivated());
        }
        let principal = Principal {
            user_id: user,
            platform_admin: holder.platform_admin,
            credential: Credential::Token { session: None },
        };
        Ok((principal, holder.role))
    }

    async fn resolve_key(
        &self,
        secret: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(Principal, Option<Role>), ApiError> {
        let key = self
            .store
            .api_key(&api_key::digest(secret))
            .await?
            .ok_or_else(unauthenticated_key)?;
        if key.issuer_deactivated {
            return Err(deactivated());
        }
        let live = !key.superseded
            && key.revoked_at.is_none()
            && key.expires_at.is_none_or(|expires| expires > now());
        // A key is only as good as its issuer's membership.
        let role = key.role.filter(|_| live).ok_or_else(unauthenticated_key)?;
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
                workspace_id: key.workspace_id,
                scopes,
            },
        };
        let role = (workspace == Some(key.workspace_id)).then_some(role);
        Ok((principal, role))
    }

    /// Notes that a key was used (at most once a minute per key per
    /// process).
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
        self.store.key_used(key, now());
    }
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
