//! Sessions: refresh-token families (tenant [`TenantId::PLATFORM`]). A login
//! starts one; each refresh rotates its token; presenting a rotated token
//! again revokes the whole family (someone else has a copy).
//!
//! [`TenantId::PLATFORM`]: crate::ids::TenantId::PLATFORM

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStarted {
    pub user_id: UserId,
    /// SHA-256 of the refresh token, hex. A secret: redacted from the audit log.
    pub refresh_hash: String,
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` the login came with (at most 256 characters), to
    /// tell one's sessions apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRefreshed {
    /// SHA-256 of the new refresh token. A secret: redacted from the audit log.
    pub refresh_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A rotated refresh token was presented again.
    ReuseDetected,
    /// The user revoked it from their list of sessions.
    RevokedByUser,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::RevokedByUser => "revoked_by_user",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevoked {
    pub reason: RevokeReason,
}

event_family! {
    /// What happens to a session.
    pub enum SessionEvent {
        Started(SessionStarted) = "session.started" v 1;
        Refreshed(SessionRefreshed) = "session.refreshed" v 1;
        Revoked(SessionRevoked) = "session.revoked" v 1;
    }
}
