//! Users: platform-wide identities (tenant [`TenantId::PLATFORM`]).
//!
//! [`TenantId::PLATFORM`]: crate::ids::TenantId::PLATFORM

use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::SessionId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// Lower-cased; unique (claimed under `user.email`).
    pub email: String,
    pub name: String,
    /// Argon2id PHC string. A secret: redacted from the audit log.
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAdminGranted {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAdminRevoked {}

/// The user's name changed (by the user, or by a platform admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRenamed {
    pub name: String,
}

/// A platform admin shut the account: login is refused, and every
/// credential issued before this event stays dead, even after a
/// reactivation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeactivated {
    pub reason: String,
}

/// The account may log in again (its old sessions and keys stay dead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReactivated {}

/// The user changed their password: every session of theirs that started
/// before this event, except `kept_session` (the one the change was made
/// from), is dead from then on. API keys are untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    /// Argon2id PHC string. A secret: redacted from the audit log.
    pub password_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_session: Option<SessionId>,
}

event_family! {
    /// What happens to a user.
    pub enum UserEvent {
        Registered(UserRegistered) = "user.registered" v 1;
        PlatformAdminGranted(PlatformAdminGranted) = "user.platform_admin_granted" v 1;
        PlatformAdminRevoked(PlatformAdminRevoked) = "user.platform_admin_revoked" v 1;
        Renamed(UserRenamed) = "user.renamed" v 1;
        Deactivated(UserDeactivated) = "user.deactivated" v 1;
        Reactivated(UserReactivated) = "user.reactivated" v 1;
        PasswordChanged(UserPasswordChanged) = "user.password_changed" v 1;
    }
}

/// The claim scope of user emails.
pub const EMAIL_CLAIM: &str = "user.email";
