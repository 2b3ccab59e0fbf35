//! The feature-flags read model (`feature_flags`) and how a workspace's
//! flags are evaluated: an override for the workspace wins; otherwise a
//! flag is on when enabled and the workspace falls inside its rollout,
//! decided by a stable hash (SHA-256) of the flag's key and the
//! workspace's id, so a workspace keeps its answer as the percentage only
//! grows.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::feature_flag::FeatureFlagEvent;
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{FeatureFlagId, WorkspaceId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::with_pool;
use utoipa::ToSchema;

use crate::batch::{self, Rows};
use crate::feed::{Recorder, Resource};
use crate::table::{self, Table, columns, table};

pub const NAME: &str = "feature_flags";

const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'feature_flags')";

table! {
    /// One row of `feature_flags`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct FlagRow in feature_flags {
        key {
            id: FeatureFlagId,
        }
        fixed {
            created_at: DateTime<Utc>,
        }
        set {
            key: String,
            description: String,
            enabled: bool,
            rollout_percent: i32,
            /// A JSON object: workspace id to `true` or `false`.
            overrides: String,
            updated_at: DateTime<Utc>,
            version: i64,
        }
        guard "feature_flags.version <= EXCLUDED.version";
    }
}

/// A feature flag, as platform admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[schema(as = FeatureFlag)]
pub struct FlagView {
    pub key: String,
    pub description: String,
    /// Off for every workspace (but those overridden on) when false.
    pub enabled: bool,
    /// 0 to 100: the share of workspaces it is on for, when enabled.
    pub rollout_percent: i32,
    /// Per workspace id: on or off, whatever the rollout says.
    pub overrides: BTreeMap<WorkspaceId, bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The flag stream's version; also the `ETag`.
    pub version: i64,
}

impl FlagRow {
    fn into_view(self) -> FlagView {
        FlagView {
            overrides: serde_json::from_str(&self.overrides).unwrap_or_default(),
            key: self.key,
            description: self.description,
            enabled: self.enabled,
            rollout_percent: self.rollout_percent,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

/// Where `workspace` falls for the flag `key`, from 0 to 99: the same for
/// the same pair on every machine and in every release.
pub fn bucket(key: &str, workspace: WorkspaceId) -> u8 {
    let digest = Sha256::digest(format!("{key}:{workspace}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// Whether the flag is on for `workspace`.
pub fn evaluate(flag: &FlagView, workspace: WorkspaceId) -> bool {
    if let Some(value) = flag.overrides.get(&workspace) {
        return *value;
    }
    flag.enabled && i32::from(bucket(&flag.key, workspace)) < flag.rollout_percent
}

pub struct FeatureFlagsProjector;

#[derive(Default)]
struct Working {
    flags: Rows<FlagRow>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    /// Each change goes to every workspace's subscribers, evaluated for
    /// their workspace by the query side.
    const FEED: bool = true;

    type Change = FeatureFlagEvent;
    type Keys = Vec<<FlagRow as Table>::Key>;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("feature_flag.")
    }

    fn decode(event: &RecordedEvent) -> Result<FeatureFlagEvent, ProjectionError> {
        FeatureFlagEvent::from_recorded(event).map_err(|e| ProjectionError::event(event, e))
    }

    fn keys(keys: &mut Self::Keys, event: &RecordedEvent, _change: &FeatureFlagEvent) {
        keys.push((FeatureFlagId::from_uuid(event.stream_id.as_uuid()),));
    }

    async fn load(
        tx: &mut Tx<'_>,
        generation: i32,
        keys: Self::Keys,
    ) -> Result<Self, ProjectionError> {
        let keys: std::collections::HashSet<_> = keys.into_iter().collect();
        Ok(Working {
            flags: Rows::load(tx, generation, keys).await?,
        })
    }

    fn apply(
        &mut self,
        feed: &mut Recorder,
        event: &RecordedEvent,
        change: FeatureFlagEvent,
    ) -> Result<(), ProjectionError> {
        let id = (FeatureFlagId::from_uuid(event.stream_id.as_uuid()),);
        let (at, version) = (event.occurred_at, event.stream_version);
        if self
            .flags
            .get(&id)
            .is_some_and(|row| row.version >= version)
        {
            return Ok(());
        }
        match change {
            FeatureFlagEvent::Created(created) => {
                let row = FlagRow {
                    id: id.0,
                    created_at: at,
                    key: created.key,
                    description: created.description,
                    enabled: created.enabled,
                    rollout_percent: i32::from(created.rollout_percent),
                    overrides: "{}".to_owned(),
                    updated_at: at,
                    version,
                };
                feed.update(
                    event,
                    Resource::FeatureFlag(id.0),
                    None,
                    None,
                    &row.clone().into_view(),
                )?;
                self.flags.insert(row);
                return Ok(());
            }
            FeatureFlagEvent::Deleted(_) => {
                if let Some(row) = self.flags.remove(&id) {
                    feed.removed(
                        event,
                        Resource::FeatureFlag(id.0),
                        None,
                        None,
                        serde_json::json!({ "key": row.key }),
                    );
                }
                return Ok(());
            }
            FeatureFlagEvent::Changed(changed) => {
                if let Some(row) = self.flags.get_mut(&id) {
                    if let Some(description) = changed.description {
                        row.description = description;
                    }
                    if let Some(enabled) = changed.enabled {
                        row.enabled = enabled;
                    }
                    if let Some(percent) = changed.rollout_percent {
                        row.rollout_percent = i32::from(percent);
                    }
                }
            }
            FeatureFlagEvent::Overridden(overridden) => {
                if let Some(row) = self.flags.get_mut(&id) {
                    let mut overrides: BTreeMap<WorkspaceId, bool> =
                        serde_json::from_str(&row.overrides).unwrap_or_default();
                    match overridden.value {
                        Some(value) => overrides.insert(overridden.workspace_id, value),
                        None => overrides.remove(&overridden.workspace_id),
                    };
                    row.overrides = serde_json::to_string(&overrides).unwrap_or_default();
                }
            }
        }
        if let Some(row) = self.flags.get_mut(&id) {
            row.updated_at = at;
            row.version = version;
            let view = row.clone().into_view();
            self.flags.changed(id);
            feed.update(event, Resource::FeatureFlag(id.0), None, None, &view)?;
        }
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.flags.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for FeatureFlagsProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<FlagRow>(tx, generation).await?;
        Ok(())
    }
}

/// Every flag, by key.
pub async fn list(db: &Db) -> Result<Vec<FlagView>, sqlx::Error> {
    let rows: Vec<FlagRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM feature_flags WHERE generation = {GENERATION} ORDER BY key",
            columns::<FlagRow>()
        )))
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(FlagRow::into_view).collect())
}

/// The flag `key`, if it exists.
pub async fn get(db: &Db, key: &str) -> Result<Option<FlagView>, sqlx::Error> {
    let row: Option<FlagRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM feature_flags WHERE generation = {GENERATION} AND key = $1",
            columns::<FlagRow>()
        )))
        .bind(key)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(FlagRow::into_view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(enabled: bool, rollout_percent: i32) -> FlagView {
        FlagView {
            key: "new-editor".into(),
            description: String::new(),
            enabled,
            rollout_percent,
            overrides: BTreeMap::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        let workspace = WorkspaceId::from_uuid(uuid::Uuid::from_u128(42));
        assert_eq!(
            bucket("new-editor", workspace),
            bucket("new-editor", workspace)
        );
        let buckets: std::collections::HashSet<u8> = (0..1_000u128)
            .map(|n| {
                bucket(
                    "new-editor",
                    WorkspaceId::from_uuid(uuid::Uuid::from_u128(n)),
                )
            })
            .collect();
        assert!(buckets.len() > 90, "{}", buckets.len());
    }

    #[test]
    fn the_rollout_decides_unless_an_override_does() {
        let workspaces: Vec<WorkspaceId> = (0..200u128)
            .map(|n| WorkspaceId::from_uuid(uuid::Uuid::from_u128(n)))
            .collect();
        let on = |flag: &FlagView| workspaces.iter().filter(|w| evaluate(flag, **w)).count();
        assert_eq!(on(&flag(true, 100)), 200);
        assert_eq!(on(&flag(true, 0)), 0);
        assert_eq!(on(&flag(false, 100)), 0);
        let half = on(&flag(true, 50));
        assert!((60..140).contains(&half), "{half}");
        // Growing the rollout keeps every workspace that was in.
        let (small, large) = (flag(true, 20), flag(true, 60));
        assert!(
            workspaces
                .iter()
                .all(|w| !evaluate(&small, *w) || evaluate(&large, *w))
        );
        let mut overridden = flag(false, 0);
        overridden.overrides.insert(workspaces[0], true);
        assert!(evaluate(&overridden, workspaces[0]));
        let mut off = flag(true, 100);
        off.overrides.insert(workspaces[1], false);
        assert!(!evaluate(&off, workspaces[1]));
    }
}
