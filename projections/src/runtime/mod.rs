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

use tenet_events::db::Db;
use tenet_events::ids::Position;
use tenet_events::projection::{self, ProjectionError, Projector};
use tenet_events::store::{EventStore, StoreError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::{self, Checkpoints};
use crate::source::{SourceError, SourceKind};

mod apply;
mod runner;
mod supervisor;
mod swap;

pub use runner::Runner;
pub use supervisor::Supervisor;

/// Why a runner, a supervisor or a swap could not go on. None is final:
/// the runner reopens its source and starts again from its checkpoint, the
/// supervisor looks again, the swap is tried after the next batch.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// A hole in what the source delivered is not in the log yet either.
    #[error("position {0} is not in the log yet")]
    NotInLog(Position),
}

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

/// Waits `duration`, or less if shutdown comes first.
pub(crate) async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
