//! The tables of the access model, declared once ([`crate::table`]).
//!
//! Rows are written as the events that change them are applied: every
//! versioned row carries its stream's version and is never moved back to
//! an older one; memberships and refresh tokens belong to their workspace's
//! and session's streams.

use chrono::{DateTime, Utc};
use tenet_events::ids::{ApiKeyId, ImpersonationId, SessionId, TenantId, UserId, WorkspaceId};

use crate::table::table;

table! {
    /// One row of `access_users`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct UserRow in access_users {
        key {
            id: UserId,
        }
        fixed {
            /// Lower-cased; unique per generation.
            email: String,
            created_at: DateTime<Utc>,
        }
        set {
            /// Argon2id PHC string (replaced by a password change).
            password_hash: String,
            name: String,
            platform_admin: bool,
            deactivated_at: Option<DateTime<Utc>>,
            deactivation_reason: Option<String>,
            /// The log position of the last deactivation: sessions and API
            /// keys that started before it are dead (0: none).
            credentials_after: i64,
            /// The log position of the last password change: sessions that
            /// started before it are dead, except `kept_session` (0: none).
            sessions_after: i64,
            kept_session: Option<SessionId>,
            updated_at: DateTime<Utc>,
            version: i64,
        }
        guard "access_users.version <= EXCLUDED.version";
    }
}

table! {
    /// One row of `access_workspaces`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct WorkspaceRow in access_workspaces {
        key {
            id: WorkspaceId,
        }
        fixed {
            created_at: DateTime<Utc>,
        }
        set {
            name: String,
            slug: String,
            updated_at: DateTime<Utc>,
            deleted_at: Option<DateTime<Utc>>,
            /// Every workspace event moves it (the workspace's `ETag`).
            version: i64,
        }
        guard "access_workspaces.version <= EXCLUDED.version";
    }
}

table! {
    /// One row of `access_members`: a user's role in a workspace.
    #[derive(Clone, Debug, PartialEq)]
    pub struct MemberRow in access_members {
        key {
            workspace_id: WorkspaceId,
            user_id: UserId,
        }
        set {
            role: String,
            joined_at: DateTime<Utc>,
        }
    }
}

table! {
    /// One row of `access_api_keys`: a key's digest, never its secret.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ApiKeyRow in access_api_keys {
        key {
            id: ApiKeyId,
        }
        fixed {
            tenant_id: TenantId,
            name: String,
            prefix: String,
            key_hash: String,
            /// Space-separated.
            scopes: String,
            issued_by: UserId,
            created_at: DateTime<Utc>,
            expires_at: Option<DateTime<Utc>>,
            /// The log position of `api_key.issued`.
            issued_position: i64,
        }
        set {
            revoked_at: Option<DateTime<Utc>>,
            version: i64,
        }
        guard "access_api_keys.version <= EXCLUDED.version";
    }
}

table! {
    /// One row of `access_sessions`: a refresh-token family.
    #[derive(Clone, Debug, PartialEq)]
    pub struct SessionRow in access_sessions {
        key {
            id: SessionId,
        }
        fixed {
            user_id: UserId,
            created_at: DateTime<Utc>,
            /// The log position of `session.started`.
            started_position: i64,
            /// The login's `User-Agent`, if it sent one.
            user_agent: Option<String>,
        }
        set {
            /// The digest of the current refresh token.
            current_hash: String,
            refreshed_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
            revoked_at: Option<DateTime<Utc>>,
            revoked_reason: Option<String>,
            version: i64,
        }
        guard "access_sessions.version <= EXCLUDED.version";
    }
}

table! {
    /// One row of `access_refresh_tokens`: every refresh token a session
    /// was ever issued (by digest), to recognise a reused one. Written
    /// once, never changed.
    #[derive(Clone, Debug, PartialEq)]
    pub struct RefreshTokenRow in access_refresh_tokens {
        key {
            token_hash: String,
        }
        fixed {
            session_id: SessionId,
        }
    }
}

table! {
    /// One row of `access_impersonations`: a platform admin acting as a
    /// user; its token works while it is neither ended nor expired.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ImpersonationRow in access_impersonations {
        key {
            id: ImpersonationId,
        }
        fixed {
            user_id: UserId,
            admin_id: UserId,
            reason: String,
            created_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        }
        set {
            ended_at: Option<DateTime<Utc>>,
            version: i64,
        }
        guard "access_impersonations.version <= EXCLUDED.version";
    }
}
