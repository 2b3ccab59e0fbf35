//! The feature-flag aggregate: created, changed, overridden per workspace,
//! deleted. Every change is an event, so the audit log shows who flipped
//! what.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenet_events::catalogue::feature_flag::{
    FeatureFlagChanged, FeatureFlagCreated, FeatureFlagDeleted, FeatureFlagEvent,
    FeatureFlagOverridden,
};
use tenet_events::ids::{FeatureFlagId, WorkspaceId};

use crate::repository::{Aggregate, Applied};

/// The stream of the flag `key`: the same key is always the same stream,
/// so creating a key twice is refused by the flag's own state.
pub fn stream_of(key: &str) -> FeatureFlagId {
    let digest = Sha256::digest(format!("feature_flag:{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    FeatureFlagId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureFlag {
    /// Created and not deleted since.
    pub exists: bool,
    pub key: String,
    pub description: String,
    pub enabled: bool,
    pub rollout_percent: u8,
    pub overrides: BTreeMap<WorkspaceId, bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Aggregate for FeatureFlag {
    const KIND: &'static str = "feature_flag";
    type Event = FeatureFlagEvent;

    fn evolve(&mut self, event: &FeatureFlagEvent, applied: &Applied) {
        match event {
            FeatureFlagEvent::Created(created) => {
                *self = FeatureFlag {
                    exists: true,
                    key: created.key.clone(),
                    description: created.description.clone(),
                    enabled: created.enabled,
                    rollout_percent: created.rollout_percent,
                    overrides: BTreeMap::new(),
                    created_at: Some(applied.occurred_at),
                    updated_at: None,
                };
            }
            FeatureFlagEvent::Changed(changed) => {
                if let Some(description) = &changed.description {
                    self.description = description.clone();
                }
                if let Some(enabled) = changed.enabled {
                    self.enabled = enabled;
                }
                if let Some(percent) = changed.rollout_percent {
                    self.rollout_percent = percent;
                }
            }
            FeatureFlagEvent::Overridden(overridden) => match overridden.value {
                Some(value) => {
                    self.overrides.insert(overridden.workspace_id, value);
                }
                None => {
                    self.overrides.remove(&overridden.workspace_id);
                }
            },
            FeatureFlagEvent::Deleted(_) => self.exists = false,
        }
        self.updated_at = Some(applied.occurred_at);
    }
}

/// What a create or a change asks for.
#[derive(Clone, Debug, Default)]
pub struct FlagChange {
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub rollout_percent: Option<u8>,
    /// Per workspace: an override to set (`Some`) or remove (`None`).
    pub overrides: BTreeMap<WorkspaceId, Option<bool>>,
}

pub enum FlagCommand {
    Create { key: String, change: FlagChange },
    Change(FlagChange),
    Delete,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("a feature flag with this key exists")]
    Exists,
    #[error("no such feature flag")]
    NotFound,
}

fn overrides(
    flag: &FeatureFlag,
    wanted: BTreeMap<WorkspaceId, Option<bool>>,
) -> Vec<FeatureFlagEvent> {
    wanted
        .into_iter()
        .filter(|(workspace, value)| flag.overrides.get(workspace).copied() != *value)
        .map(|(workspace_id, value)| {
            FeatureFlagEvent::Overridden(FeatureFlagOverridden {
                workspace_id,
                value,
            })
        })
        .collect()
}

pub fn decide(
    flag: &FeatureFlag,
    command: FlagCommand,
) -> Result<Vec<FeatureFlagEvent>, FlagError> {
    match command {
        FlagCommand::Create { key, change } => {
            if flag.exists {
                return Err(FlagError::Exists);
            }
            let mut events = vec![FeatureFlagEvent::Created(FeatureFlagCreated {
                key,
                description: change.description.unwrap_or_default(),
                enabled: change.enabled.unwrap_or(false),
                rollout_percent: change.rollout_percent.unwrap_or(100),
            })];
            events.extend(overrides(&FeatureFlag::default(), change.overrides));
            Ok(events)
        }
        FlagCommand::Change(_) | FlagCommand::Delete if !flag.exists => Err(FlagError::NotFound),
        FlagCommand::Change(change) => {
            let changed = FeatureFlagChanged {
                description: change.description.filter(|d| *d != flag.description),
                enabled: change.enabled.filter(|e| *e != flag.enabled),
                rollout_percent: change
                    .rollout_percent
                    .filter(|p| *p != flag.rollout_percent),
            };
            let mut events = Vec::new();
            if changed.description.is_some()
                || changed.enabled.is_some()
                || changed.rollout_percent.is_some()
            {
                events.push(FeatureFlagEvent::Changed(changed));
            }
            events.extend(overrides(flag, change.overrides));
            Ok(events)
        }
        FlagCommand::Delete => Ok(vec![FeatureFlagEvent::Deleted(FeatureFlagDeleted {})]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn create(overrides: BTreeMap<WorkspaceId, Option<bool>>) -> FlagCommand {
        FlagCommand::Create {
            key: "new-editor".into(),
            change: FlagChange {
                enabled: Some(true),
                rollout_percent: Some(25),
                overrides,
                ..FlagChange::default()
            },
        }
    }

    #[test]
    fn a_flag_is_created_once_with_its_overrides_and_again_after_deletion() {
        let workspace = WorkspaceId::generate();
        let events = decide(
            &FeatureFlag::default(),
            create([(workspace, Some(true))].into()),
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        let flag = given::<FeatureFlag>(events.clone());
        assert_eq!(flag.overrides.get(&workspace), Some(&true));
        assert_eq!(
            decide(&flag, create(BTreeMap::new())),
            Err(FlagError::Exists)
        );
        let deleted = decide(&flag, FlagCommand::Delete).unwrap();
        let gone = given::<FeatureFlag>(events.into_iter().chain(deleted));
        assert!(!gone.exists);
        assert_eq!(decide(&gone, FlagCommand::Delete), Err(FlagError::NotFound));
        let again = decide(&gone, create(BTreeMap::new())).unwrap();
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn a_change_records_only_what_differs() {
        let workspace = WorkspaceId::generate();
        let flag =
            given::<FeatureFlag>(decide(&FeatureFlag::default(), create(BTreeMap::new())).unwrap());
        let same = FlagChange {
            enabled: Some(true),
            rollout_percent: Some(25),
            overrides: [(workspace, None)].into(),
            ..FlagChange::default()
        };
        assert_eq!(decide(&flag, FlagCommand::Change(same)), Ok(vec![]));
        let flip = FlagChange {
            rollout_percent: Some(50),
            overrides: [(workspace, Some(false))].into(),
            ..FlagChange::default()
        };
        assert_eq!(
            decide(&flag, FlagCommand::Change(flip)),
            Ok(vec![
                FeatureFlagEvent::Changed(FeatureFlagChanged {
                    description: None,
                    enabled: None,
                    rollout_percent: Some(50),
                }),
                FeatureFlagEvent::Overridden(FeatureFlagOverridden {
                    workspace_id: workspace,
                    value: Some(false),
                }),
            ])
        );
    }
}
