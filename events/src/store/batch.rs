//! What the batch writers of both backends share: what a batch must look
//! up before it is planned, inline projections, applied inside the append
//! transaction, and reading the unique key of (tenant, stream, version) as
//! a version conflict.

use std::sync::Arc;

use std::collections::HashSet;

use super::{AppendError, AppendRequest, Appended, Claim, StoreError};
use crate::db::Tx;
use crate::envelope::RecordedEvent;
use crate::ids::{StreamId, TenantId};
use crate::projection::{self, Projector};

/// The streams whose versions a batch must read: every stream it writes
/// or checks, but those its callers just created (they cannot exist).
pub(crate) fn streams_to_check(batch: &[AppendRequest]) -> HashSet<(TenantId, StreamId)> {
    batch
        .iter()
        .flat_map(|r| {
            r.segments()
                .filter(|segment| !segment.new_stream)
                .map(move |segment| (r.tenant_id, segment.stream_id))
        })
        .collect()
}

/// The values whose holders a batch must read: those it claims or releases.
pub(crate) fn claims_to_check(batch: &[AppendRequest]) -> HashSet<&Claim> {
    batch
        .iter()
        .flat_map(|r| r.claims.iter().chain(&r.releases))
        .collect()
}

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
