//! A runner: applies the log to one generation of one projection, from the
//! source it opens, until shutdown or its generation's retirement.

use std::sync::Arc;
use std::time::Duration;

use tenet_events::db::Db;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::Position;
use tenet_events::leader::Leadership;
use tenet_events::projection::Projector;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::{self, Status};
use crate::source::{Delivery, EventSource};

use super::apply::ApplyError;
use super::{Runtime, RuntimeError, pause};

/// Applies the log to one generation of one projection.
pub struct Runner {
    pub runtime: Runtime,
    pub projector: Arc<dyn Projector>,
    pub generation: i32,
}

/// The first wait after a batch that could not be applied; it doubles up
/// to [`MAX_BACKOFF`] while the failures go on.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a runner's drive stands between two batches.
struct Progress {
    checkpoint: Position,
    status: Status,
    /// Delivered events not yet (all) applied, with their delivery: taken
    /// up again before the source is asked for more, and acknowledged only
    /// once every event it brought is applied.
    pending: Option<(Vec<RecordedEvent>, Delivery)>,
    backoff: Duration,
}

impl Progress {
    fn at((checkpoint, status): (Position, Status)) -> Progress {
        Progress {
            checkpoint,
            status,
            pending: None,
            backoff: FIRST_BACKOFF,
        }
    }

    fn reload(&mut self, (checkpoint, status): (Position, Status)) {
        self.checkpoint = checkpoint;
        self.status = status;
    }

    /// Keeps `fresh` for the next round and waits, longer each time.
    async fn retry_later(
        &mut self,
        fresh: Vec<RecordedEvent>,
        delivery: Delivery,
        shutdown: &CancellationToken,
    ) {
        self.pending = Some((fresh, delivery));
        pause(shutdown, self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
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

    pub(super) async fn checkpoint(&self) -> Result<(Position, Status), RuntimeError> {
        let row = checkpoints::load(&self.runtime.db, self.name(), self.generation).await?;
        // A retired generation's checkpoint is removed with its rows.
        Ok(row.map_or((Position::START, Status::Retired), |row| {
            (
                Position(row.position),
                Status::parse(&row.status).unwrap_or(Status::Failed),
            )
        }))
    }

    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), RuntimeError> {
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
            .await?;
        self.drive(source, shutdown).await
    }

    async fn clear(&self) -> Result<(), RuntimeError> {
        let mut tx = self.runtime.db.begin().await?;
        self.projector.clear(&mut tx, self.generation).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies what `source` delivers until shutdown (or an error of the
    /// source, after which the caller reopens it).
    pub async fn drive(
        &self,
        mut source: Box<dyn EventSource>,
        shutdown: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        let mut progress = Progress::at(self.checkpoint().await?);
        while !shutdown.is_cancelled() {
            match progress.status {
                Status::Retired => return Ok(()),
                Status::Failed => {
                    // Parked until an operator repairs it (a replay resets
                    // the status); checked now and then.
                    pause(shutdown, Duration::from_secs(2)).await;
                    progress.reload(self.checkpoint().await?);
                    continue;
                }
                Status::Live | Status::Rebuilding => {}
            }
            let (events, delivery) = match progress.pending.take() {
                Some(pending) => pending,
                None => tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    delivery = source.next(progress.checkpoint) => {
                        let delivery = delivery?;
                        (delivery.events.clone(), delivery)
                    }
                },
            };
            self.step(&mut progress, events, delivery, shutdown).await?;
        }
        Ok(())
    }

    /// Applies what of one delivery is new (closing the gaps before it from
    /// the log), and settles the outcome: the checkpoint moves on, the
    /// batch waits for a retry, or the projection fails at a poison event.
    async fn step(
        &self,
        progress: &mut Progress,
        events: Vec<RecordedEvent>,
        delivery: Delivery,
        shutdown: &CancellationToken,
    ) -> Result<(), RuntimeError> {
        let fresh: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|e| e.position > progress.checkpoint)
            .collect();
        if fresh.is_empty() {
            delivery.ack().await;
            return Ok(());
        }
        let batch = match self.contiguous(progress.checkpoint, fresh.clone()).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(projection = self.name(), %error, "cannot fill a gap from the log");
                progress.retry_later(fresh, delivery, shutdown).await;
                return Ok(());
            }
        };
        let applied = self.apply_measured(progress, &batch).await;
        match applied {
            Ok(reached) => {
                self.advance(progress, reached, batch.len()).await;
                // Done with the delivery only when every event it brought
                // is applied (a gap repair or a poison event can stop the
                // batch short of them).
                let delivered = fresh.last().map_or(reached, |e| e.position);
                if reached >= delivered {
                    delivery.ack().await;
                } else {
                    progress.pending = Some((fresh, delivery));
                }
            }
            Err(ApplyError::Moved) => {
                progress.reload(self.checkpoint().await?);
                progress.pending = Some((fresh, delivery));
            }
            Err(ApplyError::Transient(error)) => {
                tracing::warn!(projection = self.name(), %error, "retrying a batch");
                progress.retry_later(fresh, delivery, shutdown).await;
            }
            Err(ApplyError::Poison { position, reason }) => {
                self.fail(position, &reason).await?;
                progress.status = Status::Failed;
            }
        }
        Ok(())
    }

    /// Applies `batch` from where `progress` stands, recording how long it
    /// took and how long its oldest event waited.
    async fn apply_measured(
        &self,
        progress: &Progress,
        batch: &[RecordedEvent],
    ) -> Result<Position, ApplyError> {
        let started = std::time::Instant::now();
        let applied = self
            .apply_isolating(progress.checkpoint, progress.status, batch)
            .await;
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
        applied
    }

    /// Moves `progress` to `reached` after `applied` events; a rebuild that
    /// has caught up is swapped in.
    async fn advance(&self, progress: &mut Progress, reached: Position, applied: usize) {
        progress.checkpoint = reached;
        progress.backoff = FIRST_BACKOFF;
        if progress.status == Status::Rebuilding {
            match self.try_swap(reached).await {
                Ok(Some(swapped)) => {
                    progress.checkpoint = swapped;
                    progress.status = Status::Live;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(projection = self.name(), %error, "cannot swap the rebuilt generation in yet")
                }
            }
        }
        // Reads wait on the active generation only: a rebuild's progress
        // says nothing about what queries see.
        if progress.status == Status::Live {
            self.runtime
                .checkpoints
                .advance(self.name(), progress.checkpoint);
        }
        metrics::counter!("tenet_projection_events_total", "projection" => self.name())
            .increment(applied as u64);
        metrics::gauge!("tenet_projection_position", "projection" => self.name())
            .set(progress.checkpoint.0 as f64);
    }

    /// Marks this generation failed at `position`, which it cannot apply.
    async fn fail(&self, position: Position, reason: &str) -> Result<(), RuntimeError> {
        tracing::error!(projection = self.name(), %position, error = %reason, "projection failed");
        metrics::counter!("tenet_projection_failures_total", "projection" => self.name())
            .increment(1);
        checkpoints::mark_failed(
            &self.runtime.db,
            self.name(),
            self.generation,
            position,
            reason,
        )
        .await?;
        Ok(())
    }
}
