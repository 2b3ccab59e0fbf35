//! Impersonations: a platform admin acting as a user for a short while,
//! with a reason (tenant [`TenantId::PLATFORM`]). Events written with its
//! token name the user as actor and the admin as `impersonated_by`.
//!
//! [`TenantId::PLATFORM`]: crate::ids::TenantId::PLATFORM

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpersonationStarted {
    /// Who is impersonated (never a platform admin).
    pub user_id: UserId,
    /// The platform admin who acts as them.
    pub admin_id: UserId,
    pub reason: String,
    /// When its token stops working, if it was not ended before.
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpersonationEnded {}

event_family! {
    /// What happens to an impersonation.
    pub enum ImpersonationEvent {
        Started(ImpersonationStarted) = "impersonation.started" v 1;
        Ended(ImpersonationEnded) = "impersonation.ended" v 1;
    }
}
