//! A runner: applies the log to one generation of one projection.

use std::sync::Arc;
use std::time::Duration;

use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::Position;
use tenet_events::leader::Leadership;
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::store::LogQuery;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::{self, CHECKPOINT_CHANNEL, Status};
use crate::source::{BATCH, Delivery, EventSource};

use super::{Runtime, pause};

/// Applies the log to one generation of one projection.
pub struct Runner {
    pub runtime: Runtime,
    pub projector: Arc<dyn Projector>,
    pub generation: i32,
}

enum ApplyError {
    /// The checkpoint is no longer where this batch starts.
    Moved,
    Transient(String),
    /// `position` cannot be applied.
    Poison {
        position: Position,
        error: String,
    },
}

impl Runner {
    pub(super) fn name(&self) -> &'static str {
        self.projector.name()
    }

    /// Runs until shutdown or until its generation is retired. On
    /// Postgres, only the elected instance applies; the others stand by.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() && !self.is_over().await {
            let leadership = match &self.runtime.db {
                Db::Postgres(pool) => {
                    let key = format!("tenet.projection.{}.{}", self.name(), self.generation);
                    match Leadership::try_acquire(pool, &key).await {
                        Ok(Some(leadership)) => Some(leadership),
                        Ok(None) => {
                            pause(&shutdown, Duration::from_secs(2)).await;
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(projection = self.name(), %error, "cannot run for leader");
                            pause(&shutdown, Duration::from_secs(2)).await;
                            continue;
                        }
                    }
                }
                Db::Sqlite(_) => None,
            };
            if let Err(error) = self.lead(&shutdown).await {
                tracing::warn!(projection = self.name(), %error, "projection runner interrupted");
                pause(&shutdown, Duration::from_secs(1)).await;
            }
            if let Some(leadership) = leadership {
                let _ = leadership.release().await;
            }
        }
    }

    /// Whether this generation was retired (or its checkpoint removed).
    async fn is_over(&self) -> bool {
        match checkpoints::load(&self.runtime.db, self.name(), self.generation).await {
            Ok(Some(row)) => row.status == Status::Retired.as_str(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    async fn checkpoint(&self) -> Result<(Position, Status), String> {
        let row = checkpoints::load(&self.runtime.db, self.name(), self.generation)
            .await
            .map_err(|e| e.to_string())?;
        // A retired generation's checkpoint is removed with its rows.
        Ok(row.map_or((Position::START, Status::Retired), |row| {
            (
                Position(row.position),
                Status::parse(&row.status).unwrap_or(Status::Failed),
            )
        }))
    }

    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let (checkpoint, status) = self.checkpoint().await?;
        if status == Status::Rebuilding && checkpoint == Position::START {
            // A rebuild starts from empty rows (a crashed earlier attempt
            // at this generation may have left some).
            self.clear().await?;
        }
        let source = self
            .runtime
            .source
            .open(&self.runtime.store, self.name(), status)
            .await
            .map_err(|e| e.to_string())?;
        self.drive(source, shutdown).await
    }

    async fn clear(&self) -> Result<(), String> {
        let mut tx = self.runtime.db.begin().await.map_err(|e| e.to_string())?;
        self.projector
            .clear(&mut tx, self.generation)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// Applies what `source` delivers until shutdown (or an error of the
    /// source, after which the caller reopens it).
    pub async fn drive(
        &self,
        mut source: Box<dyn EventSource>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let (mut checkpoint, mut status) = self.checkpoint().await?;
        let mut pending: Option<(Vec<RecordedEvent>, Delivery)> = None;
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_cancelled() {
            if status == Status::Retired {
                return Ok(());
            }
            if status == Status::Failed {
                // Parked until an operator repairs it (a replay resets the
                // status); checked now and then.
                pause(shutdown, Duration::from_secs(2)).await;
                (checkpoint, status) = self.checkpoint().await?;
                continue;
            }
            let (events, delivery) = match pending.take() {
                Some(pending) => pending,
                None => {
                    let delivery = tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        delivery = source.next(checkpoint) => delivery.map_err(|e| e.to_string())?,
                    };
                    let events = delivery.events.clone();
                    (events, delivery)
                }
            };
            let fresh: Vec<RecordedEvent> = events
                .into_iter()
                .filter(|e| e.position > checkpoint)
                .collect();
            if fresh.is_empty() {
                delivery.ack().await;
                continue;
            }
            let batch = match self.contiguous(checkpoint, fresh.clone()).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(projection = self.name(), %error, "cannot fill a gap from the log");
                    pending = Some((fresh, delivery));
                    pause(shutdown, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let started = std::time::Instant::now();
            let applied = self.apply_isolating(checkpoint, status, &batch).await;
            metrics::histogram!("tenet_projection_batch_seconds", "projection" => self.name())
                .record(started.elapsed().as_secs_f64());
            if let Some(first) = batch.first() {
                // How long the oldest event of the batch waited to be applied.
                let age = (tenet_events::envelope::now() - first.occurred_at)
                    .num_microseconds()
                    .unwrap_or(0);
                metrics::histogram!("tenet_projection_lag_seconds", "projection" => self.name())
                    .record(age as f64 / 1e6);
            }
            match applied {
                Ok(reached) => {
                    checkpoint = reached;
                    backoff = Duration::from_millis(50);
                    if status == Status::Rebuilding {
                        match self.try_swap(checkpoint).await {
                            Ok(Some(swapped)) => {
                                checkpoint = swapped;
                                status = Status::Live;
                            }
                            Ok(None) => {}
                            Err(error) => {
                                tracing::warn!(projection = self.name(), %error, "cannot swap the rebuilt generation in yet")
                            }
                        }
                    }
                    // Reads wait on the active generation only: a rebuild's
                    // progress says nothing about what queries see.
                    if status == Status::Live {
                        self.runtime.checkpoints.advance(self.name(), checkpoint);
                    }
                    metrics::counter!("tenet_projection_events_total", "projection" => self.name())
                        .increment(batch.len() as u64);
                    metrics::gauge!("tenet_projection_position", "projection" => self.name())
                        .set(checkpoint.0 as f64);
                    // Done with the delivery only when every event it
                    // brought is applied (a gap repair or a poison event
                    // can stop the batch short of them).
                    let delivered = fresh.last().map_or(reached, |e| e.position);
                    if reached >= delivered {
                        delivery.ack().await;
                    } else {
                        pending = Some((fresh, delivery));
                    }
                }
                Err(ApplyError::Moved) => {
                    (checkpoint, status) = self.checkpoint().await?;
                    pending = Some((fresh, delivery));
                }
                Err(ApplyError::Transient(error)) => {
                    tracing::warn!(projection = self.name(), %error, "retrying a batch");
                    pending = Some((fresh, delivery));
                    pause(shutdown, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(ApplyError::Poison { position, error }) => {
                    tracing::error!(projection = self.name(), %position, %error, "projection failed");
                    metrics::counter!("tenet_projection_failures_total", "projection" => self.name())
                        .increment(1);
                    checkpoints::mark_failed(
                        &self.runtime.db,
                        self.name(),
                        self.generation,
                        position,
                        &error,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    status = Status::Failed;
                }
            }
        }
        Ok(())
    }

    /// Makes `events` (all after `checkpoint`, in position order) start at
    /// `checkpoint + 1` and leave no hole, reading what is missing from the
    /// log — at most one batch's worth per call: a large hole (a projection
    /// new to an old log, a recreated stream) is closed over several
    /// transactions, never loaded at once. What it answers may therefore
    /// end before the delivered events; the caller keeps them for later.
    async fn contiguous(
        &self,
        checkpoint: Position,
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, String> {
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
                let missing = usize::try_from(event.position.0 - expected.0).unwrap_or(usize::MAX);
                let found = self
                    .runtime
                    .store
                    .read_log(LogQuery::all_after(
                        Position(expected.0 - 1),
                        missing.min(budget),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                let found: Vec<RecordedEvent> = found
                    .into_iter()
                    .take_while(|e| e.position < event.position)
                    .collect();
                if found.first().map(|e| e.position) != Some(expected) {
                    return Err(format!("position {expected} is not in the log yet"));
                }
                metrics::counter!("tenet_projection_gap_repairs_total", "projection" => self.name())
                    .increment(found.len() as u64);
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

    /// Applies a batch in one transaction; if the projector rejects it, goes
    /// event by event to apply everything before the culprit and name it.
    /// Answers the checkpoint reached.
    async fn apply_isolating(
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
                    error: error.to_string(),
                }
            } else {
                ApplyError::Transient(error.to_string())
            }
        };
        let mut tx = self.runtime.db.begin().await.map_err(database)?;
        let now = tenet_events::envelope::now();
        // Claim the checkpoint (compare-and-set) first: it serialises rival
        // instances before any read-model write, and a generation retired
        // (or failed) meanwhile claims nothing. On Postgres the same round
        // trip queues the checkpoint notification of a live generation,
        // delivered only if the transaction commits.
        let notify = if status == Status::Live {
            checkpoints::notification(self.name(), to)
        } else {
            String::new()
        };
        let claimed: u64 = match &mut tx {
            Tx::Postgres(conn) => sqlx::query_scalar::<_, i64>(
                "WITH claimed AS ( \
                   UPDATE projection_checkpoints SET position = $3, updated_at = $4 \
                   WHERE name = $1 AND generation = $2 AND position = $5 \
                     AND status IN ('live', 'rebuilding') \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM claimed) \
                   FROM (SELECT CASE WHEN $7 <> '' THEN pg_notify($6, $7) END) AS notified",
            )
            .bind(self.name())
            .bind(self.generation)
            .bind(to.0)
            .bind(now)
            .bind(from.0)
            .bind(CHECKPOINT_CHANNEL)
            .bind(notify)
            .fetch_one(&mut **conn)
            .await
            .map_err(database)? as u64,
            Tx::Sqlite(conn) => sqlx::query(
                "UPDATE projection_checkpoints SET position = $3, updated_at = $4 \
                 WHERE name = $1 AND generation = $2 AND position = $5 \
                   AND status IN ('live', 'rebuilding')",
            )
            .bind(self.name())
            .bind(self.generation)
            .bind(to.0)
            .bind(now)
            .bind(from.0)
            .execute(&mut **conn)
            .await
            .map_err(database)?
            .rows_affected(),
        };
        if claimed == 0 {
            let _ = tx.rollback().await;
            return Err(ApplyError::Moved);
        }
        if batch.iter().any(|e| self.projector.handles(&e.event_type))
            && let Err(error) = self.projector.apply(&mut tx, self.generation, batch).await
        {
            let _ = tx.rollback().await;
            return Err(match error {
                ProjectionError::Database(error) => database(error),
                ProjectionError::Event { position, reason } => ApplyError::Poison {
                    position,
                    error: reason,
                },
            });
        }
        tx.commit().await.map_err(database)
    }
}
