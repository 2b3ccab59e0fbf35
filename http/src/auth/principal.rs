//! Who is calling, and what they may do in a workspace: the principal
//! and access extractors.
//!
//! [`Principal`] is extracted from verified credentials (a JWT or an API
//! key); a missing or bad credential is rejected by the extractor itself
//! (401). [`Access`] adds the workspace of the path: a principal that is not
//! a member gets 404, exactly as for a workspace that does not exist, so
//! another tenant's ids reveal nothing. Handlers then `require` the scope
//! they need (403 naming it).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::Authenticator;
use super::scope::{Scope, Scopes};
use crate::problem::ApiError;
use tenet_events::catalogue::workspace::Role;
use tenet_events::envelope::Actor;
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, TenantId, UserId, WorkspaceId};

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A JWT access token.
    Token { session: Option<SessionId> },
    /// An API key: bound to one workspace, limited to its scopes.
    ApiKey {
        key_id: ApiKeyId,
        workspace_id: WorkspaceId,
        scopes: Scopes,
    },
    /// An impersonation token: a platform admin acting as the user, with
    /// the user's roles (never the platform-admin tier).
    Impersonation {
        id: ImpersonationId,
        admin_id: UserId,
    },
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub platform_admin: bool,
    pub credential: Credential,
}

impl Principal {
    /// The actor recorded on events this principal causes.
    pub fn actor(&self) -> Actor {
        match &self.credential {
            Credential::Token { .. } | Credential::Impersonation { .. } => Actor::User {
                id: self.user_id.as_uuid(),
            },
            Credential::ApiKey { key_id, .. } => Actor::ApiKey {
                id: key_id.as_uuid(),
                user_id: self.user_id.as_uuid(),
            },
        }
    }

    /// The scope of its idempotency keys: keys of different principals (and
    /// of a user and their API keys) never collide.
    pub fn idempotency_scope(&self) -> String {
        match &self.credential {
            Credential::Token { .. } => format!("user:{}", self.user_id),
            Credential::ApiKey { key_id, .. } => format!("api_key:{key_id}"),
            Credential::Impersonation { id, .. } => format!("impersonation:{id}"),
        }
    }

    /// The platform admin acting as this user, if it is an impersonation.
    pub fn impersonated_by(&self) -> Option<UserId> {
        match &self.credential {
            Credential::Impersonation { admin_id, .. } => Some(*admin_id),
            _ => None,
        }
    }
}

/// A principal's standing in one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub workspace_id: WorkspaceId,
    pub principal: Principal,
    pub role: Role,
    /// What it may do here: its role's scopes, narrowed to an API key's.
    pub scopes: Scopes,
}

impl Access {
    pub fn tenant(&self) -> TenantId {
        self.workspace_id.into()
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("This needs the scope {scope}")))
        }
    }
}

/// The authenticator every route shares.
pub type Auth = Arc<Authenticator>;

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_of(&parts.headers)
}

/// The bearer token in these headers, if any.
pub fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = bearer(parts)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("This needs a bearer token (Authorization: Bearer ...)")
            })?;
        let auth = Auth::from_ref(state);
        let principal = auth.principal(token).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

impl<S> FromRequestParts<S> for Access
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(access) = parts.extensions.get::<Access>() {
            return Ok(access.clone());
        }
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::internal("route without path parameters uses Access"))?;
        let raw = params
            .iter()
            .find(|(name, _)| *name == "workspace_id")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(|| ApiError::internal("route without {workspace_id} uses Access"))?;
        let Ok(workspace) = raw.parse::<WorkspaceId>() else {
            // Who is asking is answered first: an anonymous or forged
            // caller learns nothing, even about the shape of the path.
            Principal::from_request_parts(parts, state).await?;
            return Err(ApiError::field("workspace_id", "must be a valid UUID"));
        };
        let auth = Auth::from_ref(state);
        let access = match parts.extensions.get::<Principal>() {
            Some(principal) => auth.access(principal, workspace).await?,
            None => {
                let token = bearer(parts)
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthenticated(
                            "This needs a bearer token (Authorization: Bearer ...)",
                        )
                    })?;
                let (principal, access) = auth.principal_in(token, workspace).await?;
                parts.extensions.insert(principal);
                access
            }
        }
        .ok_or_else(|| ApiError::not_found("No such workspace"))?;
        parts.extensions.insert(access.clone());
        Ok(access)
    }
}

/// A platform admin (a flag on the user, granted from the CLI).
#[derive(Clone, Debug)]
pub struct PlatformAdmin(pub Principal);

impl<S> FromRequestParts<S> for PlatformAdmin
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let is_user_token = matches!(principal.credential, Credential::Token { .. });
        if principal.platform_admin && is_user_token {
            Ok(PlatformAdmin(principal))
        } else {
            Err(ApiError::forbidden("This needs a platform admin"))
        }
    }
}

/// A scope an operation needs, as a type: `Scoped<ProjectsWrite>` in a
/// handler's signature declares and checks it.
pub trait Requirement: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// The caller's [`Access`] to the workspace of the path, checked to hold
/// `R::SCOPE` (403 naming it otherwise). Extracted before the body, so
/// authorization is answered before validation.
#[derive(Clone, Debug)]
pub struct Scoped<R: Requirement>(pub Access, std::marker::PhantomData<R>);

impl<R: Requirement> std::ops::Deref for Scoped<R> {
    type Target = Access;

    fn deref(&self) -> &Access {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Scoped<R>
where
    S: Send + Sync,
    Auth: FromRef<S>,
    R: Requirement,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let access = Access::from_request_parts(parts, state).await?;
        access.require(R::SCOPE)?;
        Ok(Scoped(access, std::marker::PhantomData))
    }
}

macro_rules! requirements {
    ($($name:ident => $resource:ident $action:ident;)*) => {$(
        #[doc = concat!("Needs `", stringify!($resource), ":", stringify!($action), "`.")]
        #[derive(Clone, Copy, Debug)]
        pub struct $name;

        impl Requirement for $name {
            const SCOPE: Scope = Scope::new(super::scope::Resource::$resource, super::scope::Action::$action);
        }
    )*};
}

requirements! {
    WorkspaceRead => Workspace Read;
    WorkspaceWrite => Workspace Write;
    WorkspaceDelete => Workspace Delete;
    MembersRead => Members Read;
    MembersWrite => Members Write;
    MembersDelete => Members Delete;
    ApiKeysRead => ApiKeys Read;
    ApiKeysWrite => ApiKeys Write;
    ApiKeysDelete => ApiKeys Delete;
    ProjectsRead => Projects Read;
    ProjectsWrite => Projects Write;
    ProjectsDelete => Projects Delete;
    TasksRead => Tasks Read;
    TasksWrite => Tasks Write;
    TasksDelete => Tasks Delete;
    CommentsRead => Comments Read;
    CommentsWrite => Comments Write;
    CommentsDelete => Comments Delete;
    AuditRead => Audit Read;
    EventsRead => Events Read;
    WebhooksRead => Webhooks Read;
    WebhooksWrite => Webhooks Write;
    WebhooksDelete => Webhooks Delete;
    TemplatesRead => Templates Read;
    TemplatesWrite => Templates Write;
    TemplatesDelete => Templates Delete;
    AutomationsRead => Automations Read;
    AutomationsWrite => Automations Write;
    AutomationsDelete => Automations Delete;
    AnalyticsRead => Analytics Read;
}
