//! Loading aggregates and committing their decisions.
//!
//! [`Repository::execute`] is the one path every command takes: load the
//! aggregate (from the in-process cache, or by folding its stream), check
//! `If-Match`, run the pure decision, append its events at the version the
//! decision saw. A version clash means another process changed the stream:
//! the repository reads only the events it missed, and decides again — or,
//! when the client pinned a version with `If-Match`, answers "stale".
//!
//! Within a process, commands on one stream take turns on a per-stream lock
//! (held across decide and append), so they never clash with each other and
//! a hot stream costs one append per command, not a retry storm. The cache
//! keeps folded state, so a stream with thousands of events is not re-read
//! per command.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_events::catalogue::{DecodeError, DomainEvent};
use tenet_events::envelope::{Metadata, RecordedEvent};
use tenet_events::ids::{Position, StreamId, TenantId, UserId};
use tenet_events::store::{
    AppendError, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord, StoreError,
};

/// What an aggregate's state learns from each event besides its payload.
#[derive(Clone, Copy, Debug)]
pub struct Applied {
    pub stream_version: i64,
    pub occurred_at: DateTime<Utc>,
    /// The user behind the actor, if any.
    pub by: Option<UserId>,
}

pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream type (`workspace`, `project`, ...).
    const KIND: &'static str;
    type Event: DomainEvent;

    /// Folds one event into the state. Pure.
    fn evolve(&mut self, event: &Self::Event, applied: &Applied);

    /// Values the events claim and release (slugs, emails), given the state
    /// before them.
    fn claims(&self, _tenant: TenantId, _events: &[Self::Event]) -> (Vec<Claim>, Vec<Claim>) {
        (Vec::new(), Vec::new())
    }
}

/// An aggregate's state at a version (0: the stream does not exist).
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub version: i64,
}

/// The outcome of a command.
#[derive(Clone, Debug)]
pub struct Committed<A> {
    pub state: A,
    pub version: i64,
    /// The log position of the last event appended (the consistency token);
    /// `None` when the decision appended nothing.
    pub position: Option<Position>,
}

/// Where a command goes and what it records.
#[derive(Clone, Debug)]
pub struct Target {
    pub tenant: TenantId,
    pub stream: StreamId,
    pub metadata: Metadata,
    /// The version the client requires (`If-Match`).
    pub if_match: Option<i64>,
    pub idempotency: Option<IdempotencyRecord>,
    /// The stream id was generated for this command, so the stream cannot
    /// exist yet: skip reading it (the append still expects version 0).
    pub new_stream: bool,
}

#[derive(Debug)]
pub enum ExecuteError<E> {
    /// The decision refused the command.
    Rejected(E),
    /// `If-Match` names another version than the current one.
    Stale {
        current: i64,
    },
    /// A value the decision claims belongs to another stream.
    ClaimTaken(Claim),
    /// The idempotency key was used meanwhile (by a concurrent duplicate).
    IdempotencyKeyUsed,
    /// Other processes kept changing the stream; the client may retry.
    Contention,
    Store(StoreError),
}

impl<E> From<StoreError> for ExecuteError<E> {
    fn from(error: StoreError) -> Self {
        ExecuteError::Store(error)
    }
}

/// How many times a decision is retried after version clashes.
const ATTEMPTS: u32 = 12;
/// Cached streams kept (least recently used beyond this are dropped).
const CACHE_CAPACITY: usize = 20_000;

pub struct Repository {
    store: Arc<dyn EventStore>,
    cache: Cache,
}

impl Repository {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Repository {
            store,
            cache: Cache::new(CACHE_CAPACITY),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The current state of an aggregate, up to date with the log.
    pub async fn load<A: Aggregate>(
        &self,
        tenant: TenantId,
        stream: StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        let slot = self.cache.slot(tenant, stream);
        let mut cached = slot.lock().await;
        let loaded = self
            .catch_up(tenant, stream, cached_state::<A>(&cached))
            .await?;
        *cached = Some(Cached::of(&loaded));
        Ok(loaded)
    }

    /// Runs `decide` on the current state and appends what it decides.
    pub async fn execute<A, E>(
        &self,
        target: Target,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<Committed<A>, ExecuteError<E>>
    where
        A: Aggregate,
    {
        let Target {
            tenant,
            stream,
            metadata,
            if_match,
            idempotency,
            new_stream,
        } = target;
        let slot = self.cache.slot(tenant, stream);
        let mut cached = slot.lock().await;
        // The cached state is trusted first; a clash proves it stale.
        let mut loaded = match cached_state::<A>(&cached) {
            Some(loaded) => loaded,
            None if new_stream => Loaded {
                state: A::default(),
                version: 0,
            },
            None => self.catch_up(tenant, stream, None).await?,
        };
        for attempt in 0..ATTEMPTS {
            if let Some(expected) = if_match
                && expected != loaded.version
            {
                *cached = Some(Cached::of(&loaded));
                return Err(ExecuteError::Stale {
                    current: loaded.version,
                });
            }
            let events = decide(&loaded.state).map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                *cached = Some(Cached::of(&loaded));
                return Ok(Committed {
                    state: loaded.state,
                    version: loaded.version,
                    position: None,
                });
            }
            let (claims, releases) = loaded.state.claims(tenant, &events);
            let mut request = AppendRequest::new(
                tenant,
                stream,
                A::KIND,
                ExpectedVersion::Exact(loaded.version),
                events.iter().map(DomainEvent::to_new_event).collect(),
                metadata.clone(),
            );
            request.claims = claims;
            request.releases = releases;
            request.idempotency = idempotency.clone();
            request.new_stream = new_stream && loaded.version == 0;
            let occurred_at = request.occurred_at;
            match self.store.append(request).await {
                Ok(appended) => {
                    let mut state = loaded.state;
                    let by = metadata.actor.user_id().map(UserId::from_uuid);
                    let first = appended.stream_version - events.len() as i64;
                    for (offset, event) in events.iter().enumerate() {
                        state.evolve(
                            event,
                            &Applied {
                                stream_version: first + offset as i64 + 1,
                                occurred_at,
                                by,
                            },
                        );
                    }
                    let committed = Committed {
                        state,
                        version: appended.stream_version,
                        position: Some(appended.position),
                    };
                    *cached = Some(Cached::of(&Loaded {
                        state: committed.state.clone(),
                        version: committed.version,
                    }));
                    return Ok(committed);
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    metrics::counter!("tenet_command_conflicts_total", "aggregate" => A::KIND)
                        .increment(1);
                    loaded = self.catch_up(tenant, stream, Some(loaded)).await?;
                    if attempt > 0 {
                        // Another process is writing this stream as fast as
                        // we are: step back a little, differently each time.
                        let jitter = rand::random_range(0..=u64::from(attempt) * 2);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                }
                Err(AppendError::ClaimTaken { claim }) => {
                    *cached = Some(Cached::of(&loaded));
                    return Err(ExecuteError::ClaimTaken(claim));
                }
                Err(AppendError::IdempotencyKeyUsed { .. }) => {
                    *cached = Some(Cached::of(&loaded));
                    return Err(ExecuteError::IdempotencyKeyUsed);
                }
                // Empty decisions return before appending; should the store
                // still see one, nothing was written.
                Err(AppendError::Empty) => {
                    *cached = Some(Cached::of(&loaded));
                    return Ok(Committed {
                        state: loaded.state,
                        version: loaded.version,
                        position: None,
                    });
                }
                Err(AppendError::Store(error)) => {
                    // The append may or may not have committed: forget the
                    // state rather than guess.
                    *cached = None;
                    return Err(ExecuteError::Store(error));
                }
            }
        }
        *cached = Some(Cached::of(&loaded));
        Err(ExecuteError::Contention)
    }

    /// Brings `from` (or nothing) up to the stream's current version.
    async fn catch_up<A: Aggregate>(
        &self,
        tenant: TenantId,
        stream: StreamId,
        from: Option<Loaded<A>>,
    ) -> Result<Loaded<A>, StoreError> {
        let mut loaded = from.unwrap_or(Loaded {
            state: A::default(),
            version: 0,
        });
        loop {
            let events = self
                .store
                .read_stream(tenant, stream, loaded.version, 1_000)
                .await?;
            let done = events.len() < 1_000;
            for event in &events {
                fold(&mut loaded, event)?;
            }
            if done {
                return Ok(loaded);
            }
        }
    }
}

fn fold<A: Aggregate>(loaded: &mut Loaded<A>, event: &RecordedEvent) -> Result<(), StoreError> {
    let decoded =
        A::Event::from_recorded(event).map_err(|error: DecodeError| StoreError::Corrupt {
            position: event.position.0,
            reason: error.to_string(),
        })?;
    loaded.state.evolve(
        &decoded,
        &Applied {
            stream_version: event.stream_version,
            occurred_at: event.occurred_at,
            by: event.metadata.actor.user_id().map(UserId::from_uuid),
        },
    );
    loaded.version = event.stream_version;
    Ok(())
}

/// Folds a stream's events as they were up to `until` (time travel).
pub fn fold_until<A: Aggregate>(
    events: &[RecordedEvent],
    until: DateTime<Utc>,
) -> Result<Option<Loaded<A>>, StoreError> {
    let mut loaded = Loaded {
        state: A::default(),
        version: 0,
    };
    for event in events.iter().take_while(|e| e.occurred_at <= until) {
        fold(&mut loaded, event)?;
    }
    Ok((loaded.version > 0).then_some(loaded))
}

struct Cached {
    version: i64,
    state: Arc<dyn Any + Send + Sync>,
}

impl Cached {
    fn of<A: Aggregate>(loaded: &Loaded<A>) -> Cached {
        Cached {
            version: loaded.version,
            state: Arc::new(loaded.state.clone()),
        }
    }
}

fn cached_state<A: Aggregate>(cached: &Option<Cached>) -> Option<Loaded<A>> {
    let cached = cached.as_ref()?;
    cached.state.downcast_ref::<A>().map(|state| Loaded {
        state: state.clone(),
        version: cached.version,
    })
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Per-stream slots: the lock commands on a stream take turns on, and the
/// state last seen. Bounded: beyond capacity the least recently used
/// unlocked slots are dropped.
struct Cache {
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
    fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            slots: Mutex::new(CacheInner::default()),
        }
    }

    fn slot(&self, tenant: TenantId, stream: StreamId) -> Slot {
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
