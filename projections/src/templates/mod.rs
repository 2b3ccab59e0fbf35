//! The templates projector: project templates as the API shows them
//! (`templates_view`), the current version's definition of each, kept
//! from `template.*` events. It records nothing for the realtime feed.

pub mod view;

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::types::Json;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::template::TemplateEvent;
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{TemplateId, UserId};
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Rows, follows};
use crate::feed::Recorder;
use crate::table::{self, Table};

pub use view::{TemplateRow, TemplateView, get, list};

pub const NAME: &str = "templates";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'templates')";

pub struct TemplatesProjector;

type Key = <TemplateRow as Table>::Key;

#[derive(Default)]
struct Working {
    rows: Rows<TemplateRow>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = false;

    type Change = (Key, TemplateEvent);
    type Keys = HashSet<Key>;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("template.")
    }

    fn decode(event: &RecordedEvent) -> Result<Self::Change, ProjectionError> {
        let key = (
            event.tenant_id,
            TemplateId::from_uuid(event.stream_id.as_uuid()),
        );
        let decoded =
            TemplateEvent::from_recorded(event).map_err(|e| ProjectionError::event(event, e))?;
        Ok((key, decoded))
    }

    fn keys(keys: &mut Self::Keys, _event: &RecordedEvent, (key, _): &Self::Change) {
        keys.insert(*key);
    }

    async fn load(
        tx: &mut Tx<'_>,
        generation: i32,
        keys: Self::Keys,
    ) -> Result<Self, ProjectionError> {
        Ok(Working {
            rows: Rows::load(tx, generation, keys).await?,
        })
    }

    fn apply(
        &mut self,
        _feed: &mut Recorder,
        event: &RecordedEvent,
        (key, decoded): Self::Change,
    ) -> Result<(), ProjectionError> {
        // A deleted template's row is gone; its later events cannot exist.
        if self.rows.was_removed(&key) {
            return Ok(());
        }
        let current = self.rows.get(&key).map_or(0, |row| row.version);
        if !follows(current, event)? {
            return Ok(());
        }
        let at = event.occurred_at;
        match decoded {
            TemplateEvent::Created(created) => {
                self.rows.insert(TemplateRow {
                    tenant_id: key.0,
                    id: key.1,
                    created_by: event.metadata.actor.user_id().map(UserId::from_uuid),
                    created_at: at,
                    from_project_id: created.from_project_id,
                    name: created.definition.name,
                    parameters: Json(created.definition.parameters),
                    project: Json(created.definition.project),
                    updated_at: at,
                    version: event.stream_version,
                });
            }
            TemplateEvent::Revised(revised) => {
                let row = self.rows.get_mut(&key).ok_or_else(|| {
                    ProjectionError::event(event, "no template.created before it")
                })?;
                row.name = revised.definition.name;
                row.parameters = Json(revised.definition.parameters);
                row.project = Json(revised.definition.project);
                row.updated_at = at;
                row.version = event.stream_version;
                self.rows.changed(key);
            }
            TemplateEvent::Deleted(_) => {
                self.rows.remove(&key);
            }
        }
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.rows.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for TemplatesProjector {
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
        table::clear::<TemplateRow>(tx, generation).await?;
        Ok(())
    }
}
