//! Recording: what a projector batch writes to the outbox.

use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{Position, ProjectId, TaskId};
use tenet_events::projection::{self, ProjectionError};

use super::{FeedUpdate, Kind, Resource};

/// The updates one projector batch records, in the order it applies
/// events. `None` inside when it records nothing.
pub struct Recorder {
    updates: Option<Vec<FeedUpdate>>,
    /// Events at or below this position are not recorded: the active
    /// generation has recorded them already.
    from: Position,
}

impl Recorder {
    /// A recorder for a batch applied to `generation` of `projection`. The
    /// generation queries read records every change. A rebuild records the
    /// changes of events the active generation has not reached: a rebuild
    /// that overtakes it before the swap must not leave a hole in the feed
    /// (whichever applies an event first records it; the outbox's key
    /// makes the other's record a no-op). Asked once per batch, inside its
    /// transaction.
    pub async fn for_batch(
        tx: &mut Tx<'_>,
        projection: &str,
        generation: i32,
    ) -> Result<Recorder, ProjectionError> {
        let active = projection::active_generation(tx, projection).await?;
        if active == generation {
            return Ok(Recorder {
                updates: Some(Vec::new()),
                from: Position::START,
            });
        }
        let reached = crate::checkpoints::position_in(tx, projection, active).await?;
        Ok(Recorder {
            updates: Some(Vec::new()),
            from: reached.unwrap_or(Position(i64::MAX)),
        })
    }

    /// A recorder that records nothing.
    pub fn off() -> Recorder {
        Recorder {
            updates: None,
            from: Position::START,
        }
    }

    /// Records that `event` changed a row, which is now `view` (serialized
    /// here, at this point of the batch, because later events of the same
    /// batch may change the row again).
    pub fn update(
        &mut self,
        event: &RecordedEvent,
        resource: Resource,
        project_id: Option<ProjectId>,
        task_id: Option<TaskId>,
        view: &impl serde::Serialize,
    ) -> Result<(), ProjectionError> {
        let Some(updates) = &mut self.updates else {
            return Ok(());
        };
        if event.position <= self.from {
            return Ok(());
        }
        let data = serde_json::to_string(view).map_err(|e| ProjectionError::event(event, e))?;
        updates.push(FeedUpdate {
            position: event.position,
            tenant_id: event.tenant_id,
            kind: Kind::Update,
            resource,
            project_id,
            task_id,
            event_type: event.event_type.clone(),
            data,
        });
        Ok(())
    }

    /// Records that `event` removed a row; `ids` is what clients get to
    /// know which one.
    pub fn removed(
        &mut self,
        event: &RecordedEvent,
        resource: Resource,
        project_id: Option<ProjectId>,
        task_id: Option<TaskId>,
        ids: serde_json::Value,
    ) {
        if let Some(updates) = &mut self.updates
            && event.position > self.from
        {
            updates.push(FeedUpdate {
                position: event.position,
                tenant_id: event.tenant_id,
                kind: Kind::Removed,
                resource,
                project_id,
                task_id,
                event_type: event.event_type.clone(),
                data: ids.to_string(),
            });
        }
    }

    /// Writes what was recorded, in the batch's transaction.
    pub async fn save(self, tx: &mut Tx<'_>, projection: &str) -> Result<(), ProjectionError> {
        let Some(updates) = self.updates else {
            return Ok(());
        };
        if updates.is_empty() {
            return Ok(());
        }
        let now = tenet_events::envelope::now();
        // Order within one position: the order the projector recorded them.
        let seqs: Vec<i32> = updates
            .iter()
            .scan((Position(-1), 0), |(last, seq), update| {
                if update.position != *last {
                    *last = update.position;
                    *seq = 0;
                } else {
                    *seq += 1;
                }
                Some(*seq)
            })
            .collect();
        match tx {
            Tx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO feed_updates (projection, position, seq, tenant_id, kind, resource, \
                       resource_id, project_id, task_id, event_type, data, recorded_at) \
                     SELECT $1, u.*, $12 FROM unnest($2::int8[], $3::int4[], $4::uuid[], $5::text[], \
                       $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::text[], $11::text[]) AS u \
                     ON CONFLICT DO NOTHING",
                )
                .bind(projection)
                .bind(updates.iter().map(|u| u.position.0).collect::<Vec<_>>())
                .bind(&seqs)
                .bind(updates.iter().map(|u| u.tenant_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.kind.as_str()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.resource.name()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.resource.uuid()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.project_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.task_id).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.event_type.as_str()).collect::<Vec<_>>())
                .bind(updates.iter().map(|u| u.data.as_str()).collect::<Vec<_>>())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Sqlite(tx) => {
                for (update, seq) in updates.iter().zip(seqs) {
                    sqlx::query(
                        "INSERT INTO feed_updates (projection, position, seq, tenant_id, kind, \
                           resource, resource_id, project_id, task_id, event_type, data, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(projection)
                    .bind(update.position.0)
                    .bind(seq)
                    .bind(update.tenant_id)
                    .bind(update.kind.as_str())
                    .bind(update.resource.name())
                    .bind(update.resource.uuid())
                    .bind(update.project_id)
                    .bind(update.task_id)
                    .bind(&update.event_type)
                    .bind(&update.data)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(())
    }
}
