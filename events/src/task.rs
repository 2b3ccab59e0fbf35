//! Small helpers for background tasks.

use tokio::task::JoinHandle;

/// Aborts a background task when its owner is dropped, so a component's
/// helpers never outlive it.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
