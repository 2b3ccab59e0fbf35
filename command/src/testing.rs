//! Given/when/then support for decision tests: fold a history into a state,
//! then check what a decision answers.

use chrono::{TimeZone, Utc};
use tenet_events::ids::UserId;

use crate::repository::{Aggregate, Applied};

/// The state after `events`, as a fresh aggregate would fold them.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> A {
    let mut state = A::default();
    for (index, event) in events.into_iter().enumerate() {
        state.evolve(
            &event,
            &Applied {
                stream_version: index as i64 + 1,
                occurred_at: Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default()
                    + chrono::Duration::seconds(index as i64),
                by: Some(UserId::from_uuid(uuid::Uuid::nil())),
            },
        );
    }
    state
}
