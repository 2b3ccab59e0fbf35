//! Loading aggregates and committing their decisions.
//!
//! [`Repository::execute`] is the path every command takes: load the
//! aggregate (from the in-process cache, or by folding its stream), check
//! `If-Match`, run the pure decision, append its events at the version the
//! decision saw. A version clash means another process changed the stream:
//! the repository reads only the events it missed and decides again, or,
//! when the client pinned a version with `If-Match`, answers "stale".
//!
//! Commands on one stream take turns on a per-stream lock, but hold it only
//! to decide and queue their append, not while it commits: the next command
//! decides on the state the queued events will leave, and its append chains
//! on theirs in the same group commit. A hot stream (a project receiving
//! many tasks at once) thus costs one batch, not one commit per command. If
//! a queued append fails, the state it promised is forgotten, and the
//! commands that chained on it fail their version check and decide again.
//!
//! [`Repository::execute_with`] decides over two aggregates: it writes the
//! primary one and either writes the other too (a new task and its
//! project's task counter) or only checks it is unchanged (the workspace a
//! task's assignee was checked against), in one atomic append.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_events::catalogue::{DecodeError, DomainEvent};
use tenet_events::envelope::{Metadata, RecordedEvent};
use tenet_events::ids::{Position, StreamId, TenantId, UserId};
use tenet_events::store::{
    AppendError, AppendId, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord,
    StoreError, StreamAppend,
};

mod cache;

use cache::{Cache, Cached, cached_state};

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

    /// The version clients see (`ETag`, `If-Match`) at stream `version`. By
    /// default the stream version; an aggregate whose stream also records
    /// facts that do not change the resource itself (a project handing out
    /// task numbers) counts its own revisions, so those facts do not make a
    /// client's `If-Match` stale.
    fn revision(&self, version: i64) -> i64 {
        version
    }

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

impl<A: Aggregate> Committed<A> {
    /// The version clients see (the `ETag`).
    pub fn revision(&self) -> i64 {
        self.state.revision(self.version)
    }
}

/// A response stored with the command's events under its idempotency key:
/// rendered from the state the command will commit, before it commits.
pub struct Idempotent<A> {
    /// Whose key it is.
    pub scope: String,
    pub key: String,
    /// A digest of the request; the same key with another request is refused.
    pub fingerprint: String,
    pub expires_at: DateTime<Utc>,
    pub render: Render<A>,
}

/// Renders the response body of a command from the state it commits.
pub type Render<A> = Box<dyn Fn(&Committed<A>) -> serde_json::Value + Send + Sync>;

/// Where a command goes and what it records.
pub struct Target<A> {
    pub tenant: TenantId,
    pub stream: StreamId,
    pub metadata: Metadata,
    /// The version the client requires (`If-Match`).
    pub if_match: Option<i64>,
    /// The stream id was generated for this command, so the stream cannot
    /// exist yet: skip reading it (the append still expects version 0).
    pub new_stream: bool,
    pub idempotency: Option<Idempotent<A>>,
}

impl<A> Target<A> {
    pub fn new(tenant: TenantId, stream: impl Into<StreamId>, metadata: Metadata) -> Self {
        Target {
            tenant,
            stream: stream.into(),
            metadata,
            if_match: None,
            new_stream: false,
            idempotency: None,
        }
    }

    pub fn if_match(mut self, version: Option<i64>) -> Self {
        self.if_match = version;
        self
    }

    pub fn new_stream(mut self) -> Self {
        self.new_stream = true;
        self
    }

    pub fn idempotent(mut self, idempotency: Option<Idempotent<A>>) -> Self {
        self.idempotency = idempotency;
        self
    }
}

/// How a command involves a second aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Related {
    /// The decision may write it too; commands on it take turns with this one.
    Write,
    /// The decision only reads it: the append holds if it is unchanged.
    Check,
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

/// What a decision over two aggregates answers.
pub type Pair<A, B> = (Vec<<A as Aggregate>::Event>, Vec<<B as Aggregate>::Event>);

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

    /// The current, committed state of an aggregate (never a state that
    /// queued appends only promise).
    pub async fn load<A: Aggregate>(
        &self,
        tenant: TenantId,
        stream: StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        self.catch_up(tenant, stream, None).await
    }

    /// Runs `decide` on the current state and appends what it decides.
    pub async fn execute<A, E>(
        &self,
        target: Target<A>,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<Committed<A>, ExecuteError<E>>
    where
        A: Aggregate,
    {
        self.run::<A, Unrelated, Unrelated, E>(target, None, None, |a, _, _| {
            decide(a).map(|events| (events, Vec::new()))
        })
        .await
        .map(|(committed, _)| committed)
    }

    /// Runs `decide` on the states of two aggregates of the tenant and
    /// appends what it decides to either, atomically (see [`Related`]).
    pub async fn execute_with<A, B, E>(
        &self,
        target: Target<A>,
        related: (StreamId, Related),
        decide: impl Fn(&A, &B) -> Result<Pair<A, B>, E>,
    ) -> Result<(Committed<A>, Committed<B>), ExecuteError<E>>
    where
        A: Aggregate,
        B: Aggregate,
    {
        self.run::<A, B, Unrelated, E>(target, Some(related), None, |a, b, _| decide(a, b))
            .await
    }

    /// As [`Repository::execute_with`] (the second aggregate optional), and
    /// also reads a third one, if named, that must be unchanged at commit
    /// (a new task writes its project and checks its assignee against the
    /// workspace). Without it, the decision sees `C::default()`.
    pub async fn execute_checked<A, B, C, E>(
        &self,
        target: Target<A>,
        related: Option<(StreamId, Related)>,
        checked: Option<StreamId>,
        decide: impl Fn(&A, &B, &C) -> Result<Pair<A, B>, E>,
    ) -> Result<(Committed<A>, Committed<B>), ExecuteError<E>>
    where
        A: Aggregate,
        B: Aggregate,
        C: Aggregate,
    {
        self.run(target, related, checked, decide).await
    }

    async fn run<A, B, C, E>(
        &self,
        target: Target<A>,
        related: Option<(StreamId, Related)>,
        checked: Option<StreamId>,
        decide: impl Fn(&A, &B, &C) -> Result<Pair<A, B>, E>,
    ) -> Result<(Committed<A>, Committed<B>), ExecuteError<E>>
    where
        A: Aggregate,
        B: Aggregate,
        C: Aggregate,
    {
        let Target {
            tenant,
            stream,
            metadata,
            if_match,
            new_stream,
            idempotency,
        } = target;
        let mut attempt = 0;
        loop {
            // Take turns on the written streams: the related one first (a
            // shared project), then the primary (in practice new, or only
            // ever written alone), so two commands can never wait on each
            // other in opposite orders.
            let related_slot = match related {
                Some((id, Related::Write)) => Some(self.cache.slot(tenant, id)),
                _ => None,
            };
            let mut related_guard = match &related_slot {
                Some(slot) => Some(slot.lock().await),
                None => None,
            };
            let primary_slot = self.cache.slot(tenant, stream);
            let mut primary = primary_slot.lock().await;

            // The appends still pending whose promised state this decision
            // reads: it may commit only if they do.
            let mut after: Vec<AppendId> = Vec::new();
            let a: Loaded<A> = match cached_state(&primary) {
                Some((loaded, pending)) => {
                    after.extend(pending);
                    loaded
                }
                None if new_stream && attempt == 0 => Loaded {
                    state: A::default(),
                    version: 0,
                },
                None => self.catch_up(tenant, stream, None).await?,
            };
            let b: Loaded<B> = match related {
                None => Loaded {
                    state: B::default(),
                    version: 0,
                },
                Some((id, Related::Write)) => {
                    match related_guard.as_deref().and_then(cached_state) {
                        Some((loaded, pending)) => {
                            after.extend(pending);
                            loaded
                        }
                        None => self.catch_up(tenant, id, None).await?,
                    }
                }
                Some((id, Related::Check)) => {
                    let (loaded, pending) = self.read_checked(tenant, id, attempt).await?;
                    after.extend(pending);
                    loaded
                }
            };
            let c: Loaded<C> = match checked {
                None => Loaded {
                    state: C::default(),
                    version: 0,
                },
                Some(id) => {
                    let (loaded, pending) = self.read_checked(tenant, id, attempt).await?;
                    after.extend(pending);
                    loaded
                }
            };
            let mut a = a;
            if let Some(expected) = if_match
                && expected != a.state.revision(a.version)
            {
                // What this process knew may be behind another process's
                // writes: only the store can say the client is stale.
                a = self.catch_up(tenant, stream, None).await?;
                *primary = Some(Cached::of(&a));
                let current = a.state.revision(a.version);
                if expected != current {
                    return Err(ExecuteError::Stale { current });
                }
            }
            let (a_events, b_events) =
                decide(&a.state, &b.state, &c.state).map_err(ExecuteError::Rejected)?;
            if a_events.is_empty() && b_events.is_empty() {
                *primary = Some(Cached::of(&a));
                return Ok((unchanged(a), unchanged(b)));
            }
            let (claims, releases) = a.state.claims(tenant, &a_events);
            let mut request = AppendRequest::new(
                tenant,
                stream,
                A::KIND,
                ExpectedVersion::Exact(a.version),
                a_events.iter().map(DomainEvent::to_new_event).collect(),
                metadata.clone(),
            );
            let by = metadata.actor.user_id().map(UserId::from_uuid);
            let committed_a = fold_new(&a, &a_events, request.occurred_at, by);
            let committed_b = fold_new(&b, &b_events, request.occurred_at, by);
            request.claims = claims;
            request.releases = releases;
            request.new_stream = new_stream && a.version == 0;
            if let Some((id, _)) = related {
                request.also.push(StreamAppend {
                    stream_id: id,
                    stream_type: B::KIND,
                    expected: ExpectedVersion::Exact(b.version),
                    events: b_events.iter().map(DomainEvent::to_new_event).collect(),
                    new_stream: false,
                });
            }
            if let Some(id) = checked {
                request.also.push(StreamAppend {
                    stream_id: id,
                    stream_type: C::KIND,
                    expected: ExpectedVersion::Exact(c.version),
                    events: Vec::new(),
                    new_stream: false,
                });
            }
            request.idempotency = idempotency.as_ref().map(|i| IdempotencyRecord {
                scope: i.scope.clone(),
                key: i.key.clone(),
                fingerprint: i.fingerprint.clone(),
                response: (i.render)(&committed_a),
                expires_at: i.expires_at,
            });
            request.after = after;
            let pending = match self.store.submit(request).await {
                Ok(pending) => pending,
                Err(error) => return Err(self.failed(error)),
            };
            // Promise the decided state to the next command on these
            // streams, and let it decide while this append commits.
            *primary = Some(Cached::promised(
                &Loaded {
                    state: committed_a.state.clone(),
                    version: committed_a.version,
                },
                pending.id(),
            ));
            if let Some(guard) = related_guard.as_mut()
                && !b_events.is_empty()
            {
                **guard = Some(Cached::promised(
                    &Loaded {
                        state: committed_b.state.clone(),
                        version: committed_b.version,
                    },
                    pending.id(),
                ));
            }
            drop(primary);
            drop(related_guard);

            let outcome = pending.outcome().await;
            let error = match outcome {
                Ok(appended) => {
                    let position = Some(appended.position);
                    return Ok((
                        Committed {
                            position,
                            ..committed_a
                        },
                        Committed {
                            position,
                            ..committed_b
                        },
                    ));
                }
                Err(error) => error,
            };
            // The promise is broken: forget it (the commands that chained
            // on it will fail their version check and decide again).
            self.forget(tenant, stream).await;
            if let Some((id, Related::Write)) = related {
                self.forget(tenant, id).await;
            }
            match error {
                AppendError::WrongExpectedVersion { .. }
                    if if_match.is_none() && attempt + 1 < ATTEMPTS =>
                {
                    metrics::counter!("tenet_command_conflicts_total", "aggregate" => A::KIND)
                        .increment(1);
                    if attempt > 0 {
                        // Another process is writing these streams as fast
                        // as we are: step back a little, differently each time.
                        let jitter = rand::random_range(0..=u64::from(attempt) * 2);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                    attempt += 1;
                }
                AppendError::WrongExpectedVersion { .. } if if_match.is_some() => {
                    let current = self.catch_up::<A>(tenant, stream, None).await?;
                    let revision = current.state.revision(current.version);
                    if Some(revision) == if_match {
                        // Another process wrote the stream without changing
                        // what the client saw (a project's task counter):
                        // decide again.
                        attempt += 1;
                        if attempt < ATTEMPTS {
                            continue;
                        }
                        return Err(ExecuteError::Contention);
                    }
                    return Err(ExecuteError::Stale { current: revision });
                }
                AppendError::WrongExpectedVersion { .. } => return Err(ExecuteError::Contention),
                other => return Err(self.failed(other)),
            }
        }
    }

    /// Reads a stream a decision only checks: on the first attempt as this
    /// process last knew it (a stale read fails the version check of the
    /// append), after a clash from the store.
    async fn read_checked<X: Aggregate>(
        &self,
        tenant: TenantId,
        stream: StreamId,
        attempt: u32,
    ) -> Result<(Loaded<X>, Option<AppendId>), StoreError> {
        let slot = self.cache.slot(tenant, stream);
        if attempt == 0
            && let Some(cached) = cached_state(&*slot.lock().await)
        {
            return Ok(cached);
        }
        let loaded = self.catch_up(tenant, stream, None).await?;
        let mut cached = slot.lock().await;
        // Never replace a newer state (one a queued append promises).
        if cached.as_ref().is_none_or(|c| c.version < loaded.version) {
            *cached = Some(Cached::of(&loaded));
        }
        Ok((loaded, None))
    }

    fn failed<E>(&self, error: AppendError) -> ExecuteError<E> {
        match error {
            AppendError::ClaimTaken { claim } => ExecuteError::ClaimTaken(claim),
            AppendError::IdempotencyKeyUsed { .. } => ExecuteError::IdempotencyKeyUsed,
            AppendError::WrongExpectedVersion { .. } => ExecuteError::Contention,
            AppendError::Empty => {
                ExecuteError::Store(StoreError::Projection("an empty append".to_owned()))
            }
            AppendError::Store(error) => ExecuteError::Store(error),
        }
    }

    async fn forget(&self, tenant: TenantId, stream: StreamId) {
        *self.cache.slot(tenant, stream).lock().await = None;
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
            // An id of another kind of resource (a task id where a project
            // is expected) names no such aggregate: absent, so the decision
            // answers "not found" rather than failing to read the stream.
            if events
                .first()
                .is_some_and(|event| event.stream_type != A::KIND)
            {
                return Ok(Loaded {
                    state: A::default(),
                    version: 0,
                });
            }
            for event in &events {
                fold(&mut loaded, event)?;
            }
            if done {
                return Ok(loaded);
            }
        }
    }
}

/// The state `events` will leave, as the append will commit them.
fn fold_new<A: Aggregate>(
    loaded: &Loaded<A>,
    events: &[A::Event],
    at: DateTime<Utc>,
    by: Option<UserId>,
) -> Committed<A> {
    let mut state = loaded.state.clone();
    for (offset, event) in events.iter().enumerate() {
        state.evolve(
            event,
            &Applied {
                stream_version: loaded.version + offset as i64 + 1,
                occurred_at: at,
                by,
            },
        );
    }
    Committed {
        state,
        version: loaded.version + events.len() as i64,
        position: None,
    }
}

fn unchanged<A>(loaded: Loaded<A>) -> Committed<A> {
    Committed {
        state: loaded.state,
        version: loaded.version,
        position: None,
    }
}

/// The aggregate of commands that involve no second (or third) one.
#[derive(Clone, Debug, Default)]
pub struct Unrelated;

impl Aggregate for Unrelated {
    const KIND: &'static str = "none";
    type Event = NoEvent;

    fn evolve(&mut self, _event: &NoEvent, _applied: &Applied) {}
}

/// An event family with no events.
#[derive(Clone, Debug, PartialEq)]
pub enum NoEvent {}

impl DomainEvent for NoEvent {
    fn event_type(&self) -> &'static str {
        match *self {}
    }
    fn schema_version(&self) -> i32 {
        match *self {}
    }
    fn to_data(&self) -> serde_json::Value {
        match *self {}
    }
    fn decode(
        event_type: &str,
        _version: i32,
        _data: &serde_json::Value,
    ) -> Result<Self, DecodeError> {
        Err(DecodeError::UnknownType(event_type.to_owned()))
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
