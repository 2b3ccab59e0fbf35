//! Applying one batch: closing the gaps before it from the log, then one
//! transaction that claims the checkpoint and writes the read model, and,
//! when the projector rejects the batch, finding the event it rejects.

use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::Position;
use tenet_events::projection::ProjectionError;
use tenet_events::store::LogQuery;

use crate::checkpoints::{self, Status};
use crate::source::BATCH;

use super::{Runner, RuntimeError};

/// Why a batch was not applied.
#[derive(Debug)]
pub(super) enum ApplyError {
    /// The checkpoint is no longer where this batch starts.
    Moved,
    /// The database failed in a way worth retrying (an outage, a timeout).
    Transient(sqlx::Error),
    /// `position` cannot be applied; `reason` is recorded on the checkpoint.
    Poison { position: Position, reason: String },
}

impl Runner {
    /// Makes `events` (all after `checkpoint`, in position order) start at
    /// `checkpoint + 1` and leave no hole, reading what is missing from the
    /// log — at most one batch's worth per call: a large hole (a projection
    /// new to an old log, a recreated stream) is closed over several
    /// transactions, never loaded at once. What it answers may therefore
    /// end before the delivered events; the caller keeps them for later.
    pub(super) async fn contiguous(
        &self,
        checkpoint: Position,
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, RuntimeError> {
        let mut batch = Vec::with_capacity(events.len());
        let mut expected = checkpoint.next();
        let mut budget = BATCH;
        for event in events {
            if event.position < expected {
                continue;
            }
            if event.position > expected {
                if budget == 0 {
                    break;
                }
                let found = self.missing(expected, event.position, budget).await?;
                budget = budget.saturating_sub(found.len());
                for missing in found {
                    expected = missing.position.next();
                    batch.push(missing);
                }
                if event.position > expected {
                    break;
                }
            }
            expected = event.position.next();
            batch.push(event);
        }
        Ok(batch)
    }

    /// Reads from the log the events from `expected` up to (not including)
    /// `before`, at most `budget` of them; refuses if `expected` itself is
    /// not there yet.
    async fn missing(
        &self,
        expected: Position,
        before: Position,
        budget: usize,
    ) -> Result<Vec<RecordedEvent>, RuntimeError> {
        let missing = usize::try_from(before.0 - expected.0).unwrap_or(usize::MAX);
        let found = self
            .runtime
            .store
            .read_log(LogQuery::all_after(
                Position(expected.0 - 1),
                missing.min(budget),
            ))
            .await?;
        let found: Vec<RecordedEvent> = found
            .into_iter()
            .take_while(|e| e.position < before)
            .collect();
        if found.first().map(|e| e.position) != Some(expected) {
            return Err(RuntimeError::NotInLog(expected));
        }
        metrics::counter!("tenet_projection_gap_repairs_total", "projection" => self.name())
            .increment(found.len() as u64);
        Ok(found)
    }

    /// Applies a batch in one transaction; if the projector rejects it, goes
    /// event by event to apply everything before the culprit and name it.
    /// Answers the checkpoint reached.
    pub(super) async fn apply_isolating(
        &self,
        checkpoint: Position,
        status: Status,
        batch: &[RecordedEvent],
    ) -> Result<Position, ApplyError> {
        match self.apply(checkpoint, status, batch).await {
            Err(ApplyError::Poison { .. }) if batch.len() > 1 => {
                let mut reached = checkpoint;
                for event in batch {
                    match self
                        .apply(reached, status, std::slice::from_ref(event))
                        .await
                    {
                        Ok(()) => reached = event.position,
                        // Keep what was applied; the caller retries the rest
                        // and meets the failing event again, alone.
                        Err(_) if reached > checkpoint => return Ok(reached),
                        Err(error) => return Err(error),
                    }
                }
                Ok(reached)
            }
            Err(error) => Err(error),
            Ok(()) => Ok(batch.last().map_or(checkpoint, |e| e.position)),
        }
    }

    /// Applies `batch` (starting after `from`) in one transaction with the
    /// checkpoint's advance to its last event.
    async fn apply(
        &self,
        from: Position,
        status: Status,
        batch: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        let Some(to) = batch.last().map(|e| e.position) else {
            return Ok(());
        };
        // Only a fault of the statement or its data can never succeed; an
        // outage, a timeout or a full disk is retried, never blamed on an
        // event.
        let database = |error: sqlx::Error| {
            if tenet_events::db::is_fault(&error) {
                ApplyError::Poison {
                    position: batch[0].position,
                    reason: error.to_string(),
                }
            } else {
                ApplyError::Transient(error)
            }
        };
        // Each trace among the events applied sees this projector's batch,
        // until it commits.
        let _spans = tenet_events::trace::follow(
            batch
                .iter()
                .filter(|e| self.projector.handles(&e.event_type)),
            |_| {
                tracing::debug_span!(
                    target: tenet_events::trace::TARGET,
                    "projector.apply",
                    projector = self.name(),
                    projector.generation = self.generation,
                    projector.batch = batch.len(),
                )
            },
        );
        let mut tx = self.runtime.db.begin().await.map_err(database)?;
        // Claim the checkpoint first: a generation retired (or failed)
        // meanwhile claims nothing. Only a live generation announces it.
        let announce = status == Status::Live;
        let claimed = checkpoints::claim(&mut tx, self.name(), self.generation, from, to, announce)
            .await
            .map_err(database)?;
        if !claimed {
            let _ = tx.rollback().await;
            return Err(ApplyError::Moved);
        }
        if batch.iter().any(|e| self.projector.handles(&e.event_type))
            && let Err(error) = self.projector.apply(&mut tx, self.generation, batch).await
        {
            let _ = tx.rollback().await;
            return Err(match error {
                ProjectionError::Database(error) => database(error),
                ProjectionError::Event { position, reason } => {
                    ApplyError::Poison { position, reason }
                }
            });
        }
        tx.commit().await.map_err(database)
    }
}
