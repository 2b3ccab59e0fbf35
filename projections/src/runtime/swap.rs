//! The blue/green swap of a rebuilt generation.

use tenet_events::db::Tx;
use tenet_events::ids::Position;
use tenet_events::store::{self, LogQuery};

use crate::checkpoints::{self, Generations, Status};
use crate::source::BATCH;

use super::{Runner, RuntimeError};

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
    pub async fn try_swap(&self, reached: Position) -> Result<Option<Position>, RuntimeError> {
        let name = self.name();
        let mut tx = self.runtime.db.begin().await?;
        let inline = checkpoints::is_inline(&mut tx, name).await?;
        if inline {
            store::hold_appends(&mut tx).await?;
        }
        let generations = checkpoints::lock_generations(&mut tx, name).await?;
        if !self.still_rebuilding_at(&generations, reached) {
            // Moved on by someone else; this runner will notice.
            let _ = tx.rollback().await;
            return Ok(None);
        }
        let head = self.runtime.store.head().await?;
        let live_at = if inline {
            // The log stands still: close the last gap inside this swap.
            self.catch_up_inline(&mut tx, reached, head).await?
        } else if caught_up(&generations, reached, head) {
            reached
        } else {
            let _ = tx.rollback().await;
            return Ok(None);
        };
        checkpoints::swap_in(&mut tx, name, self.generation, live_at).await?;
        tx.commit().await?;
        if !inline {
            self.runtime.checkpoints.advance(name, live_at);
        }
        metrics::counter!("tenet_projection_swaps_total", "projection" => name).increment(1);
        tracing::info!(projection = name, generation = self.generation, position = %live_at, "rebuilt generation swapped in");
        Ok(Some(live_at))
    }

    /// Whether this generation is still the rebuild at `reached` that this
    /// runner believes it is.
    fn still_rebuilding_at(&self, generations: &Generations, reached: Position) -> bool {
        generations
            .get(self.generation)
            .is_some_and(|mine| mine.position == reached.0 && mine.is(Status::Rebuilding))
    }

    /// Applies the log after `reached` up to `head` to this generation, in
    /// the swap's transaction (which holds the appends back). Answers the
    /// position reached.
    async fn catch_up_inline(
        &self,
        tx: &mut Tx<'_>,
        reached: Position,
        head: Position,
    ) -> Result<Position, RuntimeError> {
        let mut live_at = reached;
        while live_at < head {
            let events = self
                .runtime
                .store
                .read_log(LogQuery::all_after(live_at, BATCH))
                .await?;
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            self.projector.apply(tx, self.generation, &events).await?;
            live_at = last;
        }
        Ok(live_at)
    }
}

/// Whether a rebuild at `reached` has caught up with the active generation
/// (with the log's `head`, if the active generation failed: it is stuck).
fn caught_up(generations: &Generations, reached: Position, head: Position) -> bool {
    match generations.get(generations.active) {
        Some(old) if old.is(Status::Failed) => reached >= head,
        Some(old) => reached.0 >= old.position,
        None => true,
    }
}
