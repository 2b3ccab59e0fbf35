//! What the batch writers of both backends share: inline projections,
//! applied inside the append transaction, and reading the unique key of
//! (tenant, stream, version) as a version conflict.

use std::sync::Arc;

use super::{AppendError, AppendRequest, Appended, StoreError};
use crate::db::Tx;
use crate::envelope::RecordedEvent;
use crate::projection::{self, Projector};

/// Whether an append failed on the unique key of (tenant, stream, version)
/// (Postgres names the constraint; SQLite names the columns).
pub(crate) fn is_stream_version_conflict(error: &StoreError) -> bool {
    let StoreError::Database(error) = error else {
        return false;
    };
    let sqlx::Error::Database(db) = error.as_ref() else {
        return false;
    };
    db.is_unique_violation()
        && (db
            .constraint()
            .is_some_and(|name| name.contains("stream_version"))
            || db.message().contains("stream_version"))
}

/// The outcome of a single append that hit the (tenant, stream, version)
/// key: a stream its caller believed new exists after all.
pub(crate) fn as_conflict(
    batch: &[AppendRequest],
    outcome: Result<Vec<Result<Appended, AppendError>>, StoreError>,
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    match outcome {
        // For a batch, the requests are retried one by one to find it.
        Err(error) if batch.len() == 1 && is_stream_version_conflict(&error) => {
            Ok(vec![Err(AppendError::WrongExpectedVersion {
                stream_id: batch[0].stream_id,
                expected: 0,
                actual: 1,
            })])
        }
        other => other,
    }
}

/// Applies the batch's events to every inline projection, inside the append
/// transaction, each to its active generation.
pub(crate) async fn run_inline(
    tx: &mut Tx<'_>,
    inline: &[Arc<dyn Projector>],
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    for projector in inline {
        if !events.iter().any(|e| projector.handles(&e.event_type)) {
            continue;
        }
        let generation = projection::active_generation(tx, projector.name()).await?;
        projector
            .apply(tx, generation, events)
            .await
            .map_err(|error| match error {
                crate::projection::ProjectionError::Database(error) => StoreError::from(error),
                other => StoreError::Projection(format!("{}: {other}", projector.name())),
            })?;
    }
    Ok(())
}
