//! The per-stream slots of the repository: the lock commands on a stream
//! take turns on, and the state last seen there (read from the store, or
//! promised by an append still pending). Bounded: least recently used
//! slots nobody holds are dropped.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tenet_events::ids::{StreamId, TenantId};
use tenet_events::store::AppendId;

use super::{Aggregate, Loaded};

pub(super) struct Cached {
    pub(super) version: i64,
    state: Arc<dyn Any + Send + Sync>,
    /// The append that promised this state, if it was still pending when
    /// cached: decisions on the state depend on it committing.
    pending: Option<AppendId>,
}

impl Cached {
    /// A state read from the store.
    pub(super) fn of<A: Aggregate>(loaded: &Loaded<A>) -> Cached {
        Cached {
            version: loaded.version,
            state: Arc::new(loaded.state.clone()),
            pending: None,
        }
    }

    /// The state a queued append will leave, if it commits.
    pub(super) fn promised<A: Aggregate>(loaded: &Loaded<A>, by: AppendId) -> Cached {
        Cached {
            pending: Some(by),
            ..Cached::of(loaded)
        }
    }
}

pub(super) fn cached_state<A: Aggregate>(
    cached: &Option<Cached>,
) -> Option<(Loaded<A>, Option<AppendId>)> {
    let cached = cached.as_ref()?;
    cached.state.downcast_ref::<A>().map(|state| {
        (
            Loaded {
                state: state.clone(),
                version: cached.version,
            },
            cached.pending,
        )
    })
}

pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Per-stream slots: the lock commands on a stream take turns on, and the
/// state last seen. Bounded: beyond capacity the least recently used
/// unlocked slots are dropped.
pub(super) struct Cache {
    capacity: usize,
    /// Held only to look up or insert a slot, never across an await.
    slots: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<(TenantId, StreamId), (Slot, u64)>,
    clock: u64,
}

impl Cache {
    pub(super) fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            slots: Mutex::new(CacheInner::default()),
        }
    }

    pub(super) fn slot(&self, tenant: TenantId, stream: StreamId) -> Slot {
        let mut inner = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.clock += 1;
        let clock = inner.clock;
        let slot = {
            let entry = inner
                .entries
                .entry((tenant, stream))
                .or_insert_with(|| (Arc::new(tokio::sync::Mutex::new(None)), clock));
            entry.1 = clock;
            entry.0.clone()
        };
        if inner.entries.len() > self.capacity {
            evict(&mut inner, self.capacity);
        }
        slot
    }
}

/// Drops the oldest quarter of slots nobody holds.
fn evict(inner: &mut CacheInner, capacity: usize) {
    let mut idle: Vec<((TenantId, StreamId), u64)> = inner
        .entries
        .iter()
        .filter(|(_, (slot, _))| Arc::strong_count(slot) == 1)
        .map(|(key, (_, used))| (*key, *used))
        .collect();
    idle.sort_by_key(|(_, used)| *used);
    for (key, _) in idle.into_iter().take(capacity / 4 + 1) {
        inner.entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_least_recently_used_idle_slots() {
        let cache = Cache::new(8);
        let tenant = TenantId::generate();
        let held = cache.slot(tenant, StreamId::generate());
        for _ in 0..20 {
            cache.slot(tenant, StreamId::generate());
        }
        let inner = cache.slots.lock().unwrap();
        assert!(inner.entries.len() <= 9);
        assert!(
            inner
                .entries
                .values()
                .any(|(slot, _)| Arc::ptr_eq(slot, &held))
        );
    }
}
