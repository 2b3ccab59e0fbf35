//! Projection checkpoints: how far each generation of each projection has
//! applied the log, and a local registry that lets a query wait until the
//! read model it reads has passed a consistency token.
//!
//! Every statement on the checkpoints the runtime needs lives here, typed:
//! loading them, claiming a batch's advance, marking a failure, locking the
//! generations for a swap and swapping one in, removing a retired one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_events::db::{Db, Tx};
use tenet_events::ids::Position;
use tenet_events::with_pool;
use tokio::sync::watch;

/// The channel projectors notify when they commit (`name:generation:position`).
pub const CHECKPOINT_CHANNEL: &str = "tenet_checkpoints";

/// The state a projection generation is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Applying the log as it grows; queries may read it if active.
    Live,
    /// Being rebuilt beside the active generation.
    Rebuilding,
    /// Stopped at an event it could not apply.
    Failed,
    /// Replaced by a newer generation; its rows are being removed.
    Retired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Rebuilding => "rebuilding",
            Status::Failed => "failed",
            Status::Retired => "retired",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        Some(match value {
            "live" => Status::Live,
            "rebuilding" => Status::Rebuilding,
            "failed" => Status::Failed,
            "retired" => Status::Retired,
            _ => return None,
        })
    }
}

/// One row of `projection_checkpoints`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Checkpoint {
    pub name: String,
    pub generation: i32,
    pub position: i64,
    pub status: String,
    pub last_error: Option<String>,
    pub error_position: Option<i64>,
    pub error_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Reads one generation's checkpoint.
pub async fn load(db: &Db, name: &str, generation: i32) -> Result<Option<Checkpoint>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT name, generation, position, status, last_error, error_position, error_at, \
                    started_at, updated_at \
             FROM projection_checkpoints WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .fetch_optional(pool)
        .await
    })
}

/// Where one generation's checkpoint stands, as transaction `tx` sees it.
pub async fn position_in(
    tx: &mut Tx<'_>,
    name: &str,
    generation: i32,
) -> Result<Option<Position>, sqlx::Error> {
    let position: Option<i64> = tenet_events::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT position FROM projection_checkpoints WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .fetch_optional(&mut *conn)
        .await?
    });
    Ok(position.map(Position))
}

/// The generations of one projection and their states.
pub async fn generations(db: &Db, name: &str) -> Result<Vec<(i32, Status)>, sqlx::Error> {
    let rows: Vec<(i32, String)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT generation, status FROM projection_checkpoints WHERE name = $1 ORDER BY generation",
        )
        .bind(name)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .filter_map(|(generation, status)| Some((generation, Status::parse(&status)?)))
        .collect())
}

/// Every generation of every projection, with which one is active.
pub async fn list(db: &Db) -> Result<Vec<(Checkpoint, bool)>, sqlx::Error> {
    let rows: Vec<(Checkpoint, i32)> = with_pool!(db, pool => {
        let rows: Vec<CheckpointWithActive> = sqlx::query_as(
            "SELECT c.name, c.generation, c.position, c.status, c.last_error, c.error_position, \
                    c.error_at, c.started_at, c.updated_at, p.active_generation \
             FROM projection_checkpoints c JOIN projections p ON p.name = c.name \
             ORDER BY c.name, c.generation",
        )
        .fetch_all(pool)
        .await?;
        rows.into_iter().map(|r| (r.checkpoint, r.active_generation)).collect()
    });
    Ok(rows
        .into_iter()
        .map(|(checkpoint, active)| {
            let is_active = checkpoint.generation == active;
            (checkpoint, is_active)
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct CheckpointWithActive {
    #[sqlx(flatten)]
    checkpoint: Checkpoint,
    active_generation: i32,
}

/// Records that a generation stopped at an event it cannot apply.
pub async fn mark_failed(
    db: &Db,
    name: &str,
    generation: i32,
    position: Position,
    error: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let now = tenet_events::envelope::now();
    tenet_events::with_tx!(&mut tx, conn => {
        sqlx::query(
            "UPDATE projection_checkpoints SET status = 'failed', last_error = $3, \
               error_position = $4, error_at = $5, updated_at = $5 \
             WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .bind(error)
        .bind(position.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // A rebuild that stops at such an event has failed too.
        sqlx::query(
            "UPDATE projection_jobs SET state = 'failed', error = $3, finished_at = $4 \
             WHERE name = $1 AND generation = $2 AND state = 'running'",
        )
        .bind(name)
        .bind(generation)
        .bind(format!("position {position}: {error}"))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    });
    tx.commit().await
}

/// Claims a batch's advance of a generation's checkpoint from `from` to
/// `to`, by compare-and-set, in the batch's transaction. Answers whether
/// it was claimed: not if the checkpoint moved meanwhile (a rival instance)
/// or the generation is neither live nor rebuilding (retired or failed).
///
/// It comes first in the transaction: it serialises rival instances before
/// any read-model write. On Postgres, with `announce`, the same round trip
/// queues the checkpoint notification, delivered only if the transaction
/// commits.
pub async fn claim(
    tx: &mut Tx<'_>,
    name: &str,
    generation: i32,
    from: Position,
    to: Position,
    announce: bool,
) -> Result<bool, sqlx::Error> {
    let now = tenet_events::envelope::now();
    let claimed: u64 = match tx {
        Tx::Postgres(conn) => {
            let notify = if announce {
                notification(name, to)
            } else {
                String::new()
            };
            sqlx::query_scalar::<_, i64>(
                "WITH claimed AS ( \
                   UPDATE projection_checkpoints SET position = $3, updated_at = $4 \
                   WHERE name = $1 AND generation = $2 AND position = $5 \
                     AND status IN ('live', 'rebuilding') \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM claimed) \
                   FROM (SELECT CASE WHEN $7 <> '' THEN pg_notify($6, $7) END) AS notified",
            )
            .bind(name)
            .bind(generation)
            .bind(to.0)
            .bind(now)
            .bind(from.0)
            .bind(CHECKPOINT_CHANNEL)
            .bind(notify)
            .fetch_one(&mut **conn)
            .await? as u64
        }
        Tx::Sqlite(conn) => sqlx::query(
            "UPDATE projection_checkpoints SET position = $3, updated_at = $4 \
             WHERE name = $1 AND generation = $2 AND position = $5 \
               AND status IN ('live', 'rebuilding')",
        )
        .bind(name)
        .bind(generation)
        .bind(to.0)
        .bind(now)
        .bind(from.0)
        .execute(&mut **conn)
        .await?
        .rows_affected(),
    };
    Ok(claimed > 0)
}

/// Removes a retired generation's checkpoint (after its rows).
pub async fn remove_retired(
    tx: &mut Tx<'_>,
    name: &str,
    generation: i32,
) -> Result<(), sqlx::Error> {
    tenet_events::with_tx!(tx, conn => {
        sqlx::query(
            "DELETE FROM projection_checkpoints WHERE name = $1 AND generation = $2 AND status = 'retired'",
        )
        .bind(name)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    });
    Ok(())
}

/// Whether the store applies projection `name` inside the append
/// transaction.
pub async fn is_inline(tx: &mut Tx<'_>, name: &str) -> Result<bool, sqlx::Error> {
    tenet_events::with_tx!(tx, conn => {
        sqlx::query_scalar("SELECT inline FROM projections WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
    })
}

/// One generation's checkpoint, as a swap sees it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct GenerationRow {
    pub generation: i32,
    pub position: i64,
    pub status: String,
}

impl GenerationRow {
    pub fn is(&self, status: Status) -> bool {
        self.status == status.as_str()
    }
}

/// Every generation of a projection, and which one is active, locked for a
/// swap.
#[derive(Clone, Debug)]
pub struct Generations {
    pub rows: Vec<GenerationRow>,
    pub active: i32,
}

impl Generations {
    pub fn get(&self, generation: i32) -> Option<&GenerationRow> {
        self.rows.iter().find(|row| row.generation == generation)
    }
}

/// Reads the generations of projection `name` and locks them (and the
/// projection's row) until `tx` ends: the active generation's runner cannot
/// commit a batch meanwhile. On SQLite the transaction holds the database:
/// one writer at a time.
pub async fn lock_generations(tx: &mut Tx<'_>, name: &str) -> Result<Generations, sqlx::Error> {
    let lock = match tx {
        Tx::Postgres(_) => " FOR UPDATE",
        Tx::Sqlite(_) => "",
    };
    tenet_events::with_tx!(tx, conn => {
        let rows: Vec<GenerationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT generation, position, status FROM projection_checkpoints \
             WHERE name = $1 ORDER BY generation{lock}"
        )))
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        let active: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT active_generation FROM projections WHERE name = $1{lock}"
        )))
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
        Ok(Generations { rows, active })
    })
}

/// Makes `generation` the active generation of `name`, live at `live_at`:
/// every other generation is retired, the rebuild's job completes, and
/// (on Postgres) the checkpoint is announced on commit. Runs inside the
/// swap's transaction, after [`lock_generations`].
pub async fn swap_in(
    tx: &mut Tx<'_>,
    name: &str,
    generation: i32,
    live_at: Position,
) -> Result<(), sqlx::Error> {
    let now = tenet_events::envelope::now();
    tenet_events::with_tx!(&mut *tx, conn => {
        sqlx::query("UPDATE projections SET active_generation = $2 WHERE name = $1")
            .bind(name)
            .bind(generation)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET status = 'retired', updated_at = $3 \
             WHERE name = $1 AND generation <> $2 AND status <> 'retired'",
        )
        .bind(name)
        .bind(generation)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET status = 'live', position = $3, updated_at = $4 \
             WHERE name = $1 AND generation = $2",
        )
        .bind(name)
        .bind(generation)
        .bind(live_at.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE projection_jobs SET state = 'completed', finished_at = $3 \
             WHERE name = $1 AND generation = $2 AND state = 'running'",
        )
        .bind(name)
        .bind(generation)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    });
    if let Tx::Postgres(conn) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHECKPOINT_CHANNEL)
            .bind(notification(name, live_at))
            .execute(&mut **conn)
            .await?;
    }
    Ok(())
}

/// How far each projection's active generation has applied the log, as this
/// process knows it, and a way to wait for it.
///
/// Runners in this process advance it directly. A query process without
/// runners learns of progress from the database: a listener on
/// [`CHECKPOINT_CHANNEL`] (Postgres) and, as the fallback, polling while a
/// request waits.
#[derive(Clone, Default)]
pub struct Checkpoints {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

#[derive(Clone)]
struct Entry {
    progress: watch::Sender<Position>,
    /// When the database was last asked. Waiters take turns asking, at most
    /// once per [`POLL_EVERY`] for all of them together: hundreds of
    /// waiting reads must not become hundreds of queries.
    polled: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

/// How often waiting reads ask the database, together.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// How often a background follower (the feed worker, the checkpoint
/// announcer) asks the database. They wait all the time, and local
/// runners, Postgres notifications and NATS announcements wake them; the
/// poll only bounds the delay a lost wake-up costs, and at the readers'
/// pace an idle process would ask about 50 times a second for nothing.
const FOLLOW_POLL_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("projection {name} has not reached position {wanted} (at {reached})")]
    TimedOut {
        name: String,
        wanted: Position,
        reached: Position,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Checkpoints {
    fn entry(&self, name: &str) -> Entry {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is always consistent.
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| Entry {
                progress: watch::channel(Position::START).0,
                polled: Arc::new(tokio::sync::Mutex::new(None)),
            })
            .clone()
    }

    /// Records progress of a projection's active generation.
    pub fn advance(&self, name: &str, position: Position) {
        self.entry(name).progress.send_if_modified(|current| {
            let advanced = position > *current;
            if advanced {
                *current = position;
            }
            advanced
        });
    }

    /// Forgets progress (after a swap to a generation that may be behind).
    pub fn reset(&self, name: &str, position: Position) {
        self.entry(name).progress.send_replace(position);
    }

    /// Progress of `name`'s active generation as it advances here.
    pub fn subscribe(&self, name: &str) -> watch::Receiver<Position> {
        self.entry(name).progress.subscribe()
    }

    pub fn current(&self, name: &str) -> Position {
        *self.entry(name).progress.borrow()
    }

    /// Waits until the active generation of `name` has applied `wanted`, up
    /// to `timeout`. Woken by local runners and checkpoint notifications;
    /// the database is asked as a fallback, rate-limited across waiters.
    pub async fn wait_for(
        &self,
        db: &Db,
        name: &str,
        wanted: Position,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait_polling(db, name, wanted, timeout, POLL_EVERY, POLL_EVERY * 4)
            .await
    }

    /// [`Checkpoints::wait_for`] for a process that follows a projection
    /// all the time rather than for one read: it asks the database about
    /// once a second when no wake-up comes.
    pub async fn follow_to(
        &self,
        db: &Db,
        name: &str,
        wanted: Position,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait_polling(
            db,
            name,
            wanted,
            timeout,
            FOLLOW_POLL_EVERY,
            FOLLOW_POLL_EVERY,
        )
        .await
    }

    /// Waits as [`Checkpoints::wait_for`] describes, asking the database
    /// when no waiter did for `poll_every`, and looking again every
    /// `recheck` between wake-ups.
    async fn wait_polling(
        &self,
        db: &Db,
        name: &str,
        wanted: Position,
        timeout: Duration,
        poll_every: Duration,
        recheck: Duration,
    ) -> Result<(), WaitError> {
        let entry = self.entry(name);
        let mut receiver = entry.progress.subscribe();
        if *receiver.borrow_and_update() >= wanted {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(mut polled) = entry.polled.try_lock()
                && polled.is_none_or(|at| at.elapsed() >= poll_every)
            {
                *polled = Some(tokio::time::Instant::now());
                if let Some(position) = active_position(db, name).await? {
                    self.advance(name, position);
                }
            }
            if *receiver.borrow_and_update() >= wanted {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut {
                    name: name.to_owned(),
                    wanted,
                    reached: self.current(name),
                });
            }
            tokio::select! {
                changed = receiver.wait_for(|position| *position >= wanted) => {
                    if changed.is_ok() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until((now + recheck).min(deadline)) => {}
            }
        }
    }

    /// Follows checkpoint notifications of other processes (Postgres only)
    /// until the task is dropped.
    pub async fn follow(self, pool: sqlx::PgPool) {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for checkpoints; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHECKPOINT_CHANNEL).await {
                tracing::warn!(%error, "cannot listen for checkpoints; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            while let Ok(notification) = listener.recv().await {
                if let Some((name, position)) = parse_notification(notification.payload()) {
                    self.advance(name, position);
                }
            }
        }
    }
}

/// Payload of a checkpoint notification: `name:position` of an active
/// generation.
pub fn notification(name: &str, position: Position) -> String {
    format!("{name}:{position}")
}

fn parse_notification(payload: &str) -> Option<(&str, Position)> {
    let (name, position) = payload.rsplit_once(':')?;
    Some((name, Position(position.parse().ok()?)))
}

/// The position of a projection's active generation.
pub async fn active_position(db: &Db, name: &str) -> Result<Option<Position>, sqlx::Error> {
    let position: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT c.position FROM projection_checkpoints c \
             JOIN projections p ON p.name = c.name AND p.active_generation = c.generation \
             WHERE c.name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?
    });
    Ok(position.map(Position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_round_trip() {
        let payload = notification("task_views", Position(42));
        assert_eq!(
            parse_notification(&payload),
            Some(("task_views", Position(42)))
        );
        assert_eq!(parse_notification("garbage"), None);
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            Status::Live,
            Status::Rebuilding,
            Status::Failed,
            Status::Retired,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }
}
