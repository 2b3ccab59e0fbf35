//! The state of the read routes and read-your-writes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use tenet_events::db::Db;
use tenet_events::store::EventStore;
use tenet_http::auth::Auth;
use tenet_http::{ApiError, ConsistencyToken};
use tenet_projections::checkpoints::{Checkpoints, WaitError};

#[derive(Clone)]
pub struct QueryState {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub auth: Auth,
    pub checkpoints: Checkpoints,
    /// How long a read waits for its consistency token.
    pub consistency_timeout: Duration,
}

impl FromRef<QueryState> for Auth {
    fn from_ref(state: &QueryState) -> Auth {
        state.auth.clone()
    }
}

impl QueryState {
    /// For reads of the inline access model, which every committed write has
    /// already reached: checks only that the token is one this log issued.
    pub async fn valid_token(&self, token: ConsistencyToken) -> Result<(), ApiError> {
        match token.0 {
            Some(wanted) if wanted > self.store.head().await? => Err(ahead_of_the_log()),
            _ => Ok(()),
        }
    }

    /// Waits until `projection` has applied the client's consistency token
    /// (if it sent one), so a client always reads its own writes: 503 after
    /// the timeout, 412 for a token this log never issued.
    pub async fn caught_up(
        &self,
        token: ConsistencyToken,
        projection: &str,
    ) -> Result<(), ApiError> {
        let Some(wanted) = token.0 else {
            return Ok(());
        };
        if self.checkpoints.current(projection) >= wanted {
            return Ok(());
        }
        if wanted > self.store.head().await? {
            return Err(ahead_of_the_log());
        }
        self.checkpoints
            .wait_for(&self.db, projection, wanted, self.consistency_timeout)
            .await
            .map_err(|error| match error {
                WaitError::TimedOut { .. } => ApiError::unavailable(
                    "The read model has not caught up with X-Consistency-Token yet; retry shortly",
                    error,
                ),
                WaitError::Database(error) => ApiError::from(error),
            })
    }
}

/// A well-formed token ahead of the log is a condition the state fails (no
/// schema can tell a client which positions exist), as a stale `If-Match`
/// is: 412, not 400, which is for a token that is no position at all.
fn ahead_of_the_log() -> ApiError {
    ApiError::precondition_failed("X-Consistency-Token is ahead of the log: it was not issued here")
        .with_field("X-Consistency-Token", "unknown position")
}
