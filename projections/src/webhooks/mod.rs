//! The webhooks projector: the webhooks read model (`webhooks_view`,
//! [`view`]) from `webhook.*` events. Besides what the API shows, a row
//! keeps what the dispatcher needs to deliver: the sealed secrets and the
//! position from which the webhook receives events (its creation, or the
//! event that last enabled it), so events before it are never sent. A
//! deleted webhook's row stays, marked, and no read shows it.

pub mod deliveries;
pub mod view;

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::types::Json;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::webhook::WebhookEvent;
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::WebhookId;
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Rows, follows};
use crate::feed::Recorder;
use crate::table::{self, Table};

pub use view::{WebhookRow, WebhookView, enabled, get, get_row, list};

pub const NAME: &str = "webhooks";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'webhooks')";

pub struct WebhooksProjector;

type Key = <WebhookRow as Table>::Key;

#[derive(Default)]
struct Working {
    rows: Rows<WebhookRow>,
}

#[derive(Default)]
struct Keys {
    seen: HashSet<Key>,
    existing: HashSet<Key>,
}

struct Change {
    key: Key,
    event: WebhookEvent,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = false;

    type Change = Change;
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("webhook.")
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        Ok(Change {
            key: (
                event.tenant_id,
                WebhookId::from_uuid(event.stream_id.as_uuid()),
            ),
            event: WebhookEvent::from_recorded(event)
                .map_err(|e| ProjectionError::event(event, e))?,
        })
    }

    fn keys(keys: &mut Keys, _event: &RecordedEvent, change: &Change) {
        let creates = matches!(change.event, WebhookEvent::Created(_));
        if keys.seen.insert(change.key) && !creates {
            keys.existing.insert(change.key);
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            rows: Rows::load(tx, generation, keys.existing).await?,
        })
    }

    fn apply(
        &mut self,
        _feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        let key = change.key;
        let current = self.rows.get(&key).map_or(0, |row| row.version);
        if !follows(current, event)? {
            return Ok(());
        }
        let at = event.occurred_at;
        if let WebhookEvent::Created(created) = change.event {
            self.rows.insert(WebhookRow {
                tenant_id: key.0,
                id: key.1,
                created_by: created.created_by,
                created_at: at,
                url: created.url,
                description: created.description,
                event_types: Json(created.event_types),
                enabled: created.enabled,
                active_from: event.position.0,
                disabled_reason: None,
                sealed_secret: created.sealed_secret,
                sealed_previous: None,
                previous_until: None,
                updated_at: at,
                deleted_at: None,
                version: event.stream_version,
            });
            return Ok(());
        }
        let Some(row) = self.rows.get_mut(&key) else {
            return Err(ProjectionError::event(
                event,
                "no webhook.created before it",
            ));
        };
        match change.event {
            WebhookEvent::Created(_) => {}
            // Kept (hidden from reads) so a redelivered event of its
            // stream is still recognised as applied.
            WebhookEvent::Deleted(_) => {
                row.enabled = false;
                row.deleted_at = Some(at);
            }
            WebhookEvent::Updated(updated) => {
                if let Some(url) = updated.url {
                    row.url = url;
                }
                if let Some(description) = updated.description {
                    row.description = description;
                }
                if let Some(types) = updated.event_types {
                    row.event_types = Json(types);
                }
                if let Some(enabled) = updated.enabled {
                    if enabled && !row.enabled {
                        // Events while it was off are not sent.
                        row.active_from = event.position.0;
                        row.disabled_reason = None;
                    }
                    row.enabled = enabled;
                }
            }
            WebhookEvent::SecretRotated(rotated) => {
                row.sealed_secret = rotated.sealed_secret;
                row.sealed_previous = Some(rotated.sealed_previous);
                row.previous_until = Some(rotated.previous_until);
            }
            WebhookEvent::Disabled(disabled) => {
                row.enabled = false;
                row.disabled_reason = Some(disabled.reason);
            }
            // A test delivery changes nothing the API shows.
            WebhookEvent::Test(_) => {}
        }
        row.updated_at = at;
        row.version = event.stream_version;
        self.rows.changed(key);
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.rows.save(tx, generation).await?;
        Ok(())
    }
}

#[async_trait]
impl Projector for WebhooksProjector {
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
        table::clear::<WebhookRow>(tx, generation).await?;
        Ok(())
    }
}
