//! What wakes a policy on the log for its next round.

use tenet_events::ids::Position;
use tenet_events::store::EventStore;
use tenet_projections::checkpoints::Checkpoints;
use tokio::sync::watch;

/// New commits, and the progress of the projector that records the
/// policy's work: a round woken by a commit can run before that projector
/// has recorded it, and the commit may be the last for a while.
pub(crate) struct Wake {
    head: watch::Receiver<Position>,
    recorded: watch::Receiver<Position>,
}

impl Wake {
    pub(crate) fn new(store: &dyn EventStore, checkpoints: &Checkpoints, recorder: &str) -> Wake {
        Wake {
            head: store.watch_head(),
            recorded: checkpoints.subscribe(recorder),
        }
    }

    pub(crate) async fn changed(&mut self) {
        // A closed channel never wakes it; the caller's timer still does.
        tokio::select! {
            Ok(()) = self.head.changed() => {}
            Ok(()) = self.recorded.changed() => {}
            else => std::future::pending().await,
        }
    }
}
