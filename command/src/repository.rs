//! Loading aggregates and committing their decisions.
//!
//! [`Repository::execute`] is the path every command takes (handlers and
//! policies describe theirs with the builder of the `pipeline` module): load
//! the aggregate (from the in-process cache, or by folding its stream), check
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
//! A decision may read two more aggregates (see [`Plan`]): one it writes
//! too (a new task and its project's task counter), and one it only checks
//! is unchanged (the workspace a task's assignee was checked against, the
//! task a comment is added to), all in one atomic append.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use chrono::{DateTime, Utc};
use tenet_events::catalogue::{DecodeError, DomainEvent};
use tenet_events::envelope::{Metadata, NewEvent, RecordedEvent};
use tenet_events::ids::{Position, StreamId, TenantId, UserId};
use tenet_events::store::{
    AppendError, AppendId, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord,
    StoreError, StreamAppend,
};
use tenet_events::trace;
use tracing::Instrument;

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

    /// The state, once its append committed at `position`.
    fn at(self, position: Position) -> Self {
        Committed {
            position: Some(position),
            ..self
        }
    }

    /// The state, as a slot keeps it.
    fn loaded(&self) -> Loaded<A> {
        Loaded {
            state: self.state.clone(),
            version: self.version,
        }
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
pub struct Plan<A> {
    pub tenant: TenantId,
    /// The stream the command is on: its aggregate decides.
    pub stream: StreamId,
    pub metadata: Metadata,
    /// The version the client requires (`If-Match`).
    pub if_match: Option<i64>,
    /// The stream id was generated for this command, so the stream cannot
    /// exist yet: skip reading it (the append still expects version 0).
    pub new_stream: bool,
    pub idempotency: Option<Idempotent<A>>,
    /// A second stream the decision may write too: commands on it take
    /// turns with this one.
    pub written: Option<StreamId>,
    /// A stream the decision only reads: the append holds if it is
    /// unchanged.
    pub checked: Option<StreamId>,
}

impl<A> Plan<A> {
    pub fn new(tenant: TenantId, stream: StreamId, metadata: Metadata) -> Self {
        Plan {
            tenant,
            stream,
            metadata,
            if_match: None,
            new_stream: false,
            idempotency: None,
            written: None,
            checked: None,
        }
    }
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

/// A stream a decision creates beside the ones it writes (the tasks of a
/// project made from a template): its id was generated for the command,
/// so it is appended at version 0 in the same transaction, unread and
/// uncached.
#[derive(Clone, Debug)]
pub struct NewStream {
    pub stream_id: StreamId,
    pub stream_type: &'static str,
    pub events: Vec<NewEvent>,
}

/// What a decision answers: the events of the streams it writes, and the
/// streams it creates (none for most commands).
pub type Decision<A, B> = (
    Vec<<A as Aggregate>::Event>,
    Vec<<B as Aggregate>::Event>,
    Vec<NewStream>,
);

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

    /// Decides until the append holds, or the command is refused, stale or
    /// out of attempts. Each attempt decides on the states it reads and
    /// appends at their versions; after a clash the next one reads what it
    /// missed and decides again.
    ///
    /// `decide` sees the states of the plan's streams: a stream the plan does
    /// not name is `B::default()` (or `C::default()`).
    pub async fn execute<A, B, C, E>(
        &self,
        plan: Plan<A>,
        decide: impl Fn(&A, &B, &C) -> Result<Decision<A, B>, E>,
    ) -> Result<(Committed<A>, Committed<B>), ExecuteError<E>>
    where
        A: Aggregate,
        B: Aggregate,
        C: Aggregate,
    {
        let mut attempt = 0;
        loop {
            match self.attempt(&plan, &decide, attempt).await? {
                Attempt::Done(a, b) => return Ok((a, b)),
                Attempt::Clashed(error) => {
                    attempt = self.after_clash(&plan, error, attempt).await?;
                }
            }
        }
    }

    /// One attempt: take turns on the written streams, read the states,
    /// hold the client to `If-Match`, decide, queue the append and promise
    /// its states to the next command, then wait for it to commit.
    async fn attempt<A, B, C, E>(
        &self,
        plan: &Plan<A>,
        decide: &impl Fn(&A, &B, &C) -> Result<Decision<A, B>, E>,
        attempt: u32,
    ) -> Result<Attempt<A, B>, ExecuteError<E>>
    where
        A: Aggregate,
        B: Aggregate,
        C: Aggregate,
    {
        let mut turns = self.take_turns(plan).await;
        let decision = tracing::debug_span!(
            target: trace::TARGET,
            "command.decide",
            command.stream_type = A::KIND,
            command.attempt = attempt,
        );
        let (read, a_events, b_events, created) = async {
            let mut read: Read<A, B, C> = self.read(plan, &turns, attempt).await?;
            self.check_if_match(plan, &mut read.a, &mut turns).await?;
            let (a_events, b_events, created) = decide(&read.a.state, &read.b.state, &read.c.state)
                .map_err(ExecuteError::Rejected)?;
            Ok::<_, ExecuteError<E>>((read, a_events, b_events, created))
        }
        .instrument(decision)
        .await?;
        if a_events.is_empty() && b_events.is_empty() && created.is_empty() {
            *turns.primary = Some(Cached::of(&read.a));
            return Ok(Attempt::Done(unchanged(read.a), unchanged(read.b)));
        }
        let (mut request, committed_a, committed_b) =
            append_request(plan, &read, &a_events, &b_events, created);
        let append = tracing::debug_span!(
            target: trace::TARGET,
            "log.append",
            log.stream_type = A::KIND,
            log.events = request.events.len(),
        );
        // The events name the append as the span that made them: the
        // relay's, the projectors' and the feed's spans are its children.
        if let Some(context) = trace::context_of(&append) {
            request.metadata.traceparent = Some(trace::format(&context));
            request.metadata.tracestate = trace::state_of(&context);
        }
        let pending = match self.store.submit(request).instrument(append.clone()).await {
            Ok(pending) => pending,
            Err(error) => return Err(self.failed(error)),
        };
        turns.promise(
            &committed_a,
            (!b_events.is_empty()).then_some(&committed_b),
            pending.id(),
        );
        drop(turns);
        match pending.outcome().instrument(append).await {
            Ok(appended) => Ok(Attempt::Done(
                committed_a.at(appended.position),
                committed_b.at(appended.position),
            )),
            Err(error) => {
                // The promise is broken: forget it (the commands that
                // chained on it will fail their version check and decide
                // again).
                self.forget(plan.tenant, plan.stream).await;
                if let Some(id) = plan.written {
                    self.forget(plan.tenant, id).await;
                }
                Ok(Attempt::Clashed(error))
            }
        }
    }

    /// Takes turns on the written streams: the second one first (a shared
    /// project), then the primary (in practice new, or only ever written
    /// alone), so two commands can never wait on each other in opposite
    /// orders.
    async fn take_turns<A>(&self, plan: &Plan<A>) -> Turns {
        let written = match plan.written {
            Some(id) => Some(self.cache.slot(plan.tenant, id).lock_owned().await),
            None => None,
        };
        let primary = self.cache.slot(plan.tenant, plan.stream).lock_owned().await;
        Turns { primary, written }
    }

    /// The states the decision reads: each written stream as its slot
    /// holds it (perhaps promised by a pending append) or from the store,
    /// each checked one as [`Repository::read_checked`] reads it.
    async fn read<A, B, C>(
        &self,
        plan: &Plan<A>,
        turns: &Turns,
        attempt: u32,
    ) -> Result<Read<A, B, C>, StoreError>
    where
        A: Aggregate,
        B: Aggregate,
        C: Aggregate,
    {
        let Plan {
            tenant,
            stream,
            new_stream,
            ..
        } = *plan;
        let mut after = Vec::new();
        let a = match cached_state(&turns.primary) {
            Some((loaded, pending)) => {
                after.extend(pending);
                loaded
            }
            None if new_stream && attempt == 0 => absent(),
            None => self.catch_up(tenant, stream, None).await?,
        };
        let b = match plan.written {
            None => absent(),
            Some(id) => match turns.written.as_deref().and_then(cached_state) {
                Some((loaded, pending)) => {
                    after.extend(pending);
                    loaded
                }
                None => self.catch_up(tenant, id, None).await?,
            },
        };
        let c = match plan.checked {
            None => absent(),
            Some(id) => {
                let (loaded, pending) = self.read_checked(tenant, id, attempt).await?;
                after.extend(pending);
                loaded
            }
        };
        Ok(Read { a, b, c, after })
    }

    /// Holds the client to `If-Match`. What this process knew may be behind
    /// another process's writes: only the store can say the client is stale.
    async fn check_if_match<A: Aggregate, E>(
        &self,
        plan: &Plan<A>,
        a: &mut Loaded<A>,
        turns: &mut Turns,
    ) -> Result<(), ExecuteError<E>> {
        let Some(expected) = plan.if_match else {
            return Ok(());
        };
        if expected == a.state.revision(a.version) {
            return Ok(());
        }
        *a = self.catch_up(plan.tenant, plan.stream, None).await?;
        *turns.primary = Some(Cached::of(a));
        let current = a.state.revision(a.version);
        if expected != current {
            return Err(ExecuteError::Stale { current });
        }
        Ok(())
    }

    /// What a failed append leaves to do: the number of the next attempt,
    /// when deciding again can resolve the clash, or the command's failure.
    async fn after_clash<A: Aggregate, E>(
        &self,
        plan: &Plan<A>,
        error: AppendError,
        attempt: u32,
    ) -> Result<u32, ExecuteError<E>> {
        let AppendError::WrongExpectedVersion { .. } = error else {
            return Err(self.failed(error));
        };
        let Some(expected) = plan.if_match else {
            if attempt + 1 >= ATTEMPTS {
                return Err(ExecuteError::Contention);
            }
            metrics::counter!("tenet_command_conflicts_total", "aggregate" => A::KIND).increment(1);
            if attempt > 0 {
                // Another process is writing these streams as fast as we
                // are: step back a little, differently each time.
                let jitter = rand::random_range(0..=u64::from(attempt) * 2);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            return Ok(attempt + 1);
        };
        let current = self.catch_up::<A>(plan.tenant, plan.stream, None).await?;
        let revision = current.state.revision(current.version);
        if revision != expected {
            return Err(ExecuteError::Stale { current: revision });
        }
        // Another process wrote the stream without changing what the
        // client saw (a project's task counter): decide again.
        if attempt + 1 < ATTEMPTS {
            Ok(attempt + 1)
        } else {
            Err(ExecuteError::Contention)
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
        let mut loaded = from.unwrap_or_else(absent);
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
                return Ok(absent());
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

/// What one attempt came to.
enum Attempt<A, B> {
    /// Committed, or nothing to append.
    Done(Committed<A>, Committed<B>),
    /// The append failed after it was queued.
    Clashed(AppendError),
}

/// The states a decision reads, and the pending appends whose promised
/// states among them it read: it may commit only if they do.
struct Read<A, B, C> {
    a: Loaded<A>,
    b: Loaded<B>,
    c: Loaded<C>,
    after: Vec<AppendId>,
}

/// The turns a command holds on the streams it writes (the slots' locks),
/// and through them the states the slots keep.
struct Turns {
    primary: OwnedMutexGuard<Option<Cached>>,
    written: Option<OwnedMutexGuard<Option<Cached>>>,
}

impl Turns {
    /// Promises the decided states to the next command on these streams,
    /// which may decide on them while this append commits.
    fn promise<A: Aggregate, B: Aggregate>(
        &mut self,
        a: &Committed<A>,
        b: Option<&Committed<B>>,
        by: AppendId,
    ) {
        *self.primary = Some(Cached::promised(&a.loaded(), by));
        if let (Some(guard), Some(b)) = (self.written.as_mut(), b) {
            **guard = Some(Cached::promised(&b.loaded(), by));
        }
    }
}

/// The append of a decision's events at the versions it read, with the
/// idempotent response rendered from the state it will leave; and those
/// states.
fn append_request<A, B, C>(
    plan: &Plan<A>,
    read: &Read<A, B, C>,
    a_events: &[A::Event],
    b_events: &[B::Event],
    created: Vec<NewStream>,
) -> (AppendRequest, Committed<A>, Committed<B>)
where
    A: Aggregate,
    B: Aggregate,
    C: Aggregate,
{
    let (a, b, c) = (&read.a, &read.b, &read.c);
    let (claims, releases) = a.state.claims(plan.tenant, a_events);
    let mut request = AppendRequest::new(
        plan.tenant,
        plan.stream,
        A::KIND,
        ExpectedVersion::Exact(a.version),
        a_events.iter().map(DomainEvent::to_new_event).collect(),
        plan.metadata.clone(),
    );
    let by = plan.metadata.actor.user_id().map(UserId::from_uuid);
    let committed_a = fold_new(a, a_events, request.occurred_at, by);
    let committed_b = fold_new(b, b_events, request.occurred_at, by);
    request.claims = claims;
    request.releases = releases;
    request.new_stream = plan.new_stream && a.version == 0;
    if let Some(id) = plan.written {
        request.also.push(StreamAppend {
            stream_id: id,
            stream_type: B::KIND,
            expected: ExpectedVersion::Exact(b.version),
            events: b_events.iter().map(DomainEvent::to_new_event).collect(),
            new_stream: false,
        });
    }
    request
        .also
        .extend(created.into_iter().map(|stream| StreamAppend {
            stream_id: stream.stream_id,
            stream_type: stream.stream_type,
            expected: ExpectedVersion::NO_STREAM,
            events: stream.events,
            new_stream: true,
        }));
    if let Some(id) = plan.checked {
        request.also.push(StreamAppend {
            stream_id: id,
            stream_type: C::KIND,
            expected: ExpectedVersion::Exact(c.version),
            events: Vec::new(),
            new_stream: false,
        });
    }
    request.idempotency = plan.idempotency.as_ref().map(|i| IdempotencyRecord {
        scope: i.scope.clone(),
        key: i.key.clone(),
        fingerprint: i.fingerprint.clone(),
        response: (i.render)(&committed_a),
        expires_at: i.expires_at,
    });
    request.after = read.after.clone();
    (request, committed_a, committed_b)
}

/// A stream that does not exist (yet).
fn absent<A: Aggregate>() -> Loaded<A> {
    Loaded {
        state: A::default(),
        version: 0,
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
    let mut loaded = absent();
    for event in events.iter().take_while(|e| e.occurred_at <= until) {
        fold(&mut loaded, event)?;
    }
    Ok((loaded.version > 0).then_some(loaded))
}
