//! The interface between the log and a read model.
//!
//! A projector turns events into rows. It runs either inside the append
//! transaction (inline: read models that must never lag the log) or in the
//! projection runtime of the `tenet-projections` crate, which feeds it
//! batches in log order and advances its checkpoint in the same transaction
//! as its writes. Either way a projector holds no business logic: events
//! carry every derived value it needs.

use async_trait::async_trait;

use crate::db::Tx;
use crate::envelope::RecordedEvent;
use crate::ids::Position;

#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the name admins replay by.
    fn name(&self) -> &'static str;

    /// Whether events of this type change this projector's read model. The
    /// others only advance its checkpoint.
    fn handles(&self, event_type: &str) -> bool;

    /// Applies events, in log order, to one generation of the read model.
    /// The slice holds every event of the batch: those this projector does
    /// not handle are there too and must be ignored.
    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// Removes every row of one generation (before a rebuild fills it, after
    /// a swap retires it).
    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event cannot be applied: a payload that does not decode, or a
    /// stream version that skips ahead of the row. Retrying will not help.
    #[error("cannot apply event at position {position}: {reason}")]
    Event { position: Position, reason: String },
}

impl ProjectionError {
    pub fn event(event: &RecordedEvent, reason: impl std::fmt::Display) -> Self {
        ProjectionError::Event {
            position: event.position,
            reason: format!("{} ({}): {reason}", event.event_type, event.event_id),
        }
    }

    /// Whether retrying the same batch later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectionError::Database(error) => crate::db::is_transient(error),
            ProjectionError::Event { .. } => false,
        }
    }
}

/// Makes a projection known (generation 1, at the start of the log, on
/// first sight) and answers its active generation.
pub async fn register(db: &crate::db::Db, name: &str) -> Result<i32, sqlx::Error> {
    register_as(db, name, false).await
}

/// As [`register`], for a projection the store applies inside the append
/// transaction: it is always as far as the log, whatever its checkpoint.
pub async fn register_inline(db: &crate::db::Db, name: &str) -> Result<i32, sqlx::Error> {
    register_as(db, name, true).await
}

async fn register_as(db: &crate::db::Db, name: &str, inline: bool) -> Result<i32, sqlx::Error> {
    let mut tx = db.begin().await?;
    let now = crate::envelope::now();
    let generation = crate::with_tx!(&mut tx, conn => {
        sqlx::query(
            "INSERT INTO projections (name, active_generation, inline) VALUES ($1, 1, $2) \
             ON CONFLICT (name) DO UPDATE SET inline = EXCLUDED.inline",
        )
        .bind(name)
        .bind(inline)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO projection_checkpoints \
               (name, generation, position, status, started_at, updated_at) \
             VALUES ($1, 1, 0, 'live', $2, $2) ON CONFLICT (name, generation) DO NOTHING",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query_scalar::<_, i32>("SELECT active_generation FROM projections WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?
    });
    tx.commit().await?;
    Ok(generation)
}

/// The generation of a projection that queries read, as this transaction
/// sees it.
pub async fn active_generation(tx: &mut crate::db::Tx<'_>, name: &str) -> Result<i32, sqlx::Error> {
    crate::with_tx!(tx, conn => {
        sqlx::query_scalar("SELECT active_generation FROM projections WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
    })
}
