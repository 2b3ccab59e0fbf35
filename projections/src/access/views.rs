//! How the API represents users, workspaces, members and API keys (and
//! how platform admins see users and workspaces).

use chrono::{DateTime, Utc};
use tenet_events::catalogue::workspace::Role;
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, UserId, WorkspaceId};

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

/// A member of a workspace.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberView {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: RoleName,
    pub joined_at: DateTime<Utc>,
}

/// An API key, without its secret.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    pub id: ApiKeyId,
    pub name: String,
    /// The first characters of the secret (`tnt_abcd1234`), to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// The user whose scopes bound the key's.
    pub issued_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A user, as platform admins see them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AdminUser {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
    /// Set while the account is deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// How many workspaces they belong to.
    pub workspaces: i64,
}

/// A workspace, as platform admins see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AdminWorkspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// How many members it has.
    pub members: i64,
}

/// One of a user's workspaces, as platform admins see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AdminUserWorkspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub role: RoleName,
}

/// A user in full, as platform admins see them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AdminUserDetail {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the account is deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Why, as the admin who deactivated it said.
    pub deactivation_reason: Option<String>,
    /// The (not deleted) workspaces they belong to, with their role, by
    /// name.
    pub workspaces: Vec<AdminUserWorkspace>,
    /// Sessions that can still be used (not revoked, not expired, started
    /// after the last deactivation).
    pub sessions: i64,
    /// The user stream's version; also the `ETag`.
    pub version: i64,
}

/// An impersonation, as platform admins see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImpersonationView {
    pub id: ImpersonationId,
    /// Who is impersonated.
    pub user_id: UserId,
    /// The platform admin acting as them.
    pub admin_id: UserId,
    pub reason: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One of the caller's sessions (a login and its refreshes).
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub id: SessionId,
    /// When it was logged in.
    pub created_at: DateTime<Utc>,
    /// Its last login or refresh: when it last obtained an access token.
    pub last_refreshed_at: DateTime<Utc>,
    /// When its refresh token expires (each refresh moves it).
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` its login came with, if any.
    pub user_agent: Option<String>,
    /// Whether it is the session of the token this request carries.
    #[sqlx(default)]
    pub current: bool,
}
