//! Feature flags: platform-wide switches (tenant [`TenantId::PLATFORM`]),
//! on for a stable share of workspaces and overridable per workspace. Each
//! flag's stream is named by its key, so a key is one stream for good: a
//! deleted flag created again continues it.
//!
//! [`TenantId::PLATFORM`]: crate::ids::TenantId::PLATFORM

use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::WorkspaceId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlagCreated {
    pub key: String,
    pub description: String,
    pub enabled: bool,
    /// 0 to 100: the share of workspaces it is on for, when enabled.
    pub rollout_percent: u8,
}

/// The fields a change set (absent: unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlagChanged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_percent: Option<u8>,
}

/// A workspace's override set (`Some`) or removed (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlagOverridden {
    pub workspace_id: WorkspaceId,
    pub value: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlagDeleted {}

event_family! {
    /// What happens to a feature flag.
    pub enum FeatureFlagEvent {
        Created(FeatureFlagCreated) = "feature_flag.created" v 1;
        Changed(FeatureFlagChanged) = "feature_flag.changed" v 1;
        Overridden(FeatureFlagOverridden) = "feature_flag.overridden" v 1;
        Deleted(FeatureFlagDeleted) = "feature_flag.deleted" v 1;
    }
}
