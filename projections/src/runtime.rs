//! The projection runtime: one runner per projection generation applies the
//! log to its read model, exactly once and in order.
//!
//! - **In order, no gaps.** Positions are dense, so the runner knows the next
//!   one it needs (checkpoint + 1). Anything at or below the checkpoint is a
//!   duplicate and is dropped; a hole (an event the bus lost or delivered
//!   late) is read from the log before going on. A projector never sees an
//!   event before every earlier one.
//! - **Exactly once.** Read-model writes and the checkpoint commit in one
//!   transaction, and the checkpoint advances by compare-and-set from the
//!   position the runner started from: if another instance got there first,
//!   nothing is written and the runner catches up from the new checkpoint.
//! - **Failures stay local.** A transient error (database down) retries the
//!   same batch. An event the projector cannot apply marks this projection
//!   `failed` with the error and position; other projections go on.
//! - **Shutdown** waits for the batch in hand to commit.
//! - **Blue/green rebuilds.** A [`Supervisor`] per projection runs a runner
//!   for each generation that needs one: the active one, and a generation
//!   being rebuilt beside it (see [`crate::replay`]). A rebuilding runner
//!   reads the log from the start into its own generation's rows, which no
//!   query reads, and once it has caught up with the active generation it
//!   swaps them in one transaction ([`Runner::try_swap`]): queries answer
//!   from the old generation until that commit and from the new one after,
//!   never from a half-built model. The old generation is retired, its
//!   runner stops, and the supervisor deletes its rows.

use std::sync::Arc;
use std::time::Duration;

use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::Position;
use tenet_events::leader::Leadership;
use tenet_events::projection::{self, ProjectionError, Projector};
use tenet_events::store::{EventStore, LogQuery};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::{self, CHECKPOINT_CHANNEL, Checkpoints, Status};
use crate::source::{BATCH, Delivery, EventSource, SourceKind};

/// What the runtime needs to run projections.
#[derive(Clone)]
pub struct Runtime {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    /// Where runners read events from.
    pub source: SourceKind,
    pub checkpoints: Checkpoints,
}

impl Runtime {
    /// Starts a supervisor for each projector (running its active
    /// generation and any rebuild) and for each inline projector (running
    /// its rebuilds only: the store applies its active generation).
    pub async fn start(
        &self,
        projectors: &[Arc<dyn Projector>],
        inline: &[Arc<dyn Projector>],
        shutdown: CancellationToken,
    ) -> Result<JoinSet<()>, sqlx::Error> {
        let mut supervisors = JoinSet::new();
        for (projector, is_inline) in projectors
            .iter()
            .map(|p| (p, false))
            .chain(inline.iter().map(|p| (p, true)))
        {
            let generation = if is_inline {
                projection::register_inline(&self.db, projector.name()).await?
            } else {
                projection::register(&self.db, projector.name()).await?
            };
            if let Some(checkpoint) =
                checkpoints::load(&self.db, projector.name(), generation).await?
                && !is_inline
            {
                self.checkpoints
                    .advance(projector.name(), Position(checkpoint.position));
            }
            let supervisor = Supervisor {
                runtime: self.clone(),
                projector: projector.clone(),
                rebuilds_only: is_inline,
            };
            supervisors.spawn(supervisor.run(shutdown.clone()));
        }
        Ok(supervisors)
    }
}

/// Keeps a runner going for each generation of one projection that needs
/// one, and removes the rows of retired generations.
pub struct Supervisor {
    pub runtime: Runtime,
    pub projector: Arc<dyn Projector>,
    /// Run only rebuilds: the active generation is applied elsewhere (by
    /// the store, for an inline projection; by the deployment, for the CLI).
    pub rebuilds_only: bool,
}

/// How often a supervisor looks for generations to run or retire.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

impl Supervisor {
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.projector.name();
        let mut running: std::collections::HashMap<i32, tokio::task::JoinHandle<()>> =
            std::collections::HashMap::new();
        while !shutdown.is_cancelled() {
            running.retain(|_, runner| !runner.is_finished());
            match checkpoints::generations(&self.runtime.db, name).await {
                Ok(generations) => {
                    for (generation, status) in generations {
                        let wanted = match status {
                            Status::Rebuilding => true,
                            Status::Live | Status::Failed => !self.rebuilds_only,
                            Status::Retired => {
                                if let Err(error) = self.retire(generation).await {
                                    tracing::warn!(projection = name, generation, %error, "cannot remove a retired generation");
                                }
                                false
                            }
                        };
                        if wanted && !running.contains_key(&generation) {
                            let runner = Runner {
                                runtime: self.runtime.clone(),
                                projector: self.projector.clone(),
                                generation,
                            };
                            running.insert(generation, tokio::spawn(runner.run(shutdown.clone())));
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(projection = name, %error, "cannot read projection generations")
                }
            }
            pause(&shutdown, SUPERVISE_EVERY).await;
        }
        for (_, runner) in running {
            let _ = runner.await;
        }
    }

    /// Deletes a retired generation's rows, then its checkpoint.
    async fn retire(&self, generation: i32) -> Result<(), String> {
        let mut tx = self.runtime.db.begin().await.map_err(|e| e.to_string())?;
        self.projector
            .clear(&mut tx, generation)
            .await
            .map_err(|e| e.to_string())?;
        tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query(
                "DELETE FROM projection_checkpoints WHERE name = $1 AND generation = $2 AND status = 'retired'",
            )
            .bind(self.projector.name())
            .bind(generation)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        });
        tx.commit().await.map_err(|e| e.to_string())?;
        tracing::info!(
            projection = self.projector.name(),
            generation,
            "retired generation removed"
        );
        Ok(())
    }
}

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
    fn name(&self) -> &'static str {
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

impl Runner {
    /// Swaps this rebuilt generation in for the active one if it has caught
    /// up with it, in one transaction: the active generation's checkpoint
    /// row is locked first, so its runner cannot commit a batch meanwhile
    /// (and finds its generation retired when it tries). Answers the
    /// position the swapped-in generation is live at, or `None` if it is
    /// still behind.
    ///
    /// An inline projection has no runner of its own to catch up with: the
    /// store applies each append to it. Its swap takes the log lock, so no
    /// append commits in between, applies what the rebuild has not yet
    /// read, and flips; the appends that follow apply to the new generation.
    pub async fn try_swap(&self, reached: Position) -> Result<Option<Position>, String> {
        let name = self.name();
        let fail = |e: sqlx::Error| e.to_string();
        let mut tx = self.runtime.db.begin().await.map_err(fail)?;
        let inline: bool = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT inline FROM projections WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .map_err(fail)?
        });
        if inline && let Tx::Postgres(conn) = &mut tx {
            sqlx::query(tenet_events::store::postgres::LOG_LOCK)
                .execute(&mut **conn)
                .await
                .map_err(fail)?;
        }
        let lock = match &tx {
            Tx::Postgres(_) => " FOR UPDATE",
            // One writer at a time: the transaction holds the database.
            Tx::Sqlite(_) => "",
        };
        let rows: Vec<(i32, i64, String)> = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT generation, position, status FROM projection_checkpoints \
                 WHERE name = $1 ORDER BY generation{lock}"
            )))
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?
        });
        let active: i32 = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT active_generation FROM projections WHERE name = $1{lock}"
            )))
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?
        });
        let mine = rows
            .iter()
            .find(|(generation, ..)| *generation == self.generation);
        if mine.is_none_or(|(_, position, status)| {
            *position != reached.0 || status != Status::Rebuilding.as_str()
        }) {
            // Moved on by someone else; this runner will notice.
            let _ = tx.rollback().await;
            return Ok(None);
        }
        let head = self.runtime.store.head().await.map_err(|e| e.to_string())?;
        let mut live_at = reached;
        if inline {
            // The log stands still: close the last gap inside this swap.
            while live_at < head {
                let events = self
                    .runtime
                    .store
                    .read_log(LogQuery::all_after(live_at, crate::source::BATCH))
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(last) = events.last().map(|e| e.position) else {
                    break;
                };
                self.projector
                    .apply(&mut tx, self.generation, &events)
                    .await
                    .map_err(|e| e.to_string())?;
                live_at = last;
            }
        } else {
            let old = rows.iter().find(|(generation, ..)| *generation == active);
            let caught_up = match old {
                // A failed generation is stuck: catch up with the log.
                Some((_, _, status)) if status == Status::Failed.as_str() => live_at >= head,
                Some((_, position, _)) => live_at.0 >= *position,
                None => true,
            };
            if !caught_up {
                let _ = tx.rollback().await;
                return Ok(None);
            }
        }
        let now = tenet_events::envelope::now();
        tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE projections SET active_generation = $2 WHERE name = $1")
                .bind(name)
                .bind(self.generation)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_checkpoints SET status = 'retired', updated_at = $3 \
                 WHERE name = $1 AND generation <> $2 AND status <> 'retired'",
            )
            .bind(name)
            .bind(self.generation)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_checkpoints SET status = 'live', position = $3, updated_at = $4 \
                 WHERE name = $1 AND generation = $2",
            )
            .bind(name)
            .bind(self.generation)
            .bind(live_at.0)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_jobs SET state = 'completed', finished_at = $3 \
                 WHERE name = $1 AND generation = $2 AND state = 'running'",
            )
            .bind(name)
            .bind(self.generation)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        });
        if let Tx::Postgres(conn) = &mut tx {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHECKPOINT_CHANNEL)
                .bind(checkpoints::notification(name, live_at))
                .execute(&mut **conn)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        if !inline {
            self.runtime.checkpoints.advance(name, live_at);
        }
        metrics::counter!("tenet_projection_swaps_total", "projection" => name).increment(1);
        tracing::info!(projection = name, generation = self.generation, position = %live_at, "rebuilt generation swapped in");
        Ok(Some(live_at))
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
