//! Reading rows of the log back, on either backend: the decoding of an
//! `events` row into a [`RecordedEvent`], and the column list it decodes.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::envelope::{Actor, Metadata, RecordedEvent};
use crate::ids::{EventId, Position, StreamId, TenantId};

/// One row of the `events` table, as both backends return it (for readers
/// that select events their own way, such as time travel).
#[derive(sqlx::FromRow)]
pub struct EventRow {
    position: i64,
    event_id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    stream_id: uuid::Uuid,
    stream_type: String,
    stream_version: i64,
    event_type: String,
    schema_version: i32,
    data: serde_json::Value,
    actor_type: String,
    actor_id: Option<uuid::Uuid>,
    actor_name: Option<String>,
    actor_user_id: Option<uuid::Uuid>,
    request_id: Option<String>,
    correlation_id: Option<uuid::Uuid>,
    causation_id: Option<uuid::Uuid>,
    occurred_at: DateTime<Utc>,
    impersonated_by: Option<uuid::Uuid>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// The column list that [`EventRow`] decodes.
pub const EVENT_COLUMNS: &str = "position, event_id, tenant_id, stream_id, stream_type, \
    stream_version, event_type, schema_version, data, actor_type, actor_id, actor_name, \
    actor_user_id, request_id, correlation_id, causation_id, occurred_at, impersonated_by, \
    traceparent, tracestate";

impl EventRow {
    pub fn into_recorded(self) -> Result<RecordedEvent, StoreError> {
        let actor = Actor::from_columns(
            &self.actor_type,
            self.actor_id,
            self.actor_name,
            self.actor_user_id,
        )
        .ok_or_else(|| StoreError::Corrupt {
            position: self.position,
            reason: format!("actor of type {:?} lacks its id or name", self.actor_type),
        })?;
        Ok(RecordedEvent {
            position: Position(self.position),
            event_id: EventId::from_uuid(self.event_id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            stream_id: StreamId::from_uuid(self.stream_id),
            stream_type: self.stream_type,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            data: self.data,
            metadata: Metadata {
                actor,
                request_id: self.request_id,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                impersonated_by: self.impersonated_by,
                traceparent: self.traceparent,
                tracestate: self.tracestate,
            },
            occurred_at: self.occurred_at,
        })
    }
}

pub(crate) fn into_recorded(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.into_iter().map(EventRow::into_recorded).collect()
}

/// A read's limit as SQL takes it.
pub(crate) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
