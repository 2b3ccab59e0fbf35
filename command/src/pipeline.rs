//! The command pipeline: how a handler says what its command is, once.
//!
//! A handler names who acts, the stream its command is on, the streams it
//! also writes or only checks, and how it is pinned (`If-Match`, a new
//! stream); then it decides and says what it replies:
//!
//! ```text
//! state.repository
//!     .by(&access.principal, &request_id)
//!     .on::<Task>(access.tenant(), id)
//!     .writing::<Project>(project_id)
//!     .checking_if::<Workspace>(assigns, workspace_id)
//!     .new_stream()
//!     .decide(|task, project, workspace| create(task, project, workspace, id, new.clone()))
//!     .reply(move |task| Reply::created(view(task), Some(task.version), location))
//!     .idempotent(&idempotency)
//!     .await
//! ```
//!
//! The builder's type grows with the streams named, so the decision takes
//! exactly their states (`|task|`, `|task, workspace|`, `|task, project,
//! workspace|`). A decision may instead create any number of new streams
//! of one aggregate beside its own (`.creating::<Task>()`: a project made
//! from a template and all its tasks), answering each new stream's id
//! with its events; they are appended at version 0 in the same
//! transaction. A reply that needs what only the commit makes visible (a
//! read model's view, a token for the new session) is made after
//! `.commit()` instead. What every command shares is written here once: the
//! events' metadata, the idempotent reply stored with the events, the
//! mapping of failures to problem+json (each aggregate's errors through
//! [`Refusal`]), and the consistency token. How a command commits (turns,
//! promised states, retries, `If-Match`) is the repository's job, not this
//! module's.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tenet_events::catalogue::DomainEvent;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{Position, StreamId, TenantId, UserId};
use tenet_events::store::Claim;
use tenet_http::auth::Principal;
use tenet_http::{ApiError, RequestId};

use crate::idempotency::{Idempotency, IdempotencyKey, TTL};
use crate::reply::{Reply, Written};
use crate::repository::{
    Aggregate, Committed, Decision, ExecuteError, Idempotent, NewStream, Pair, Plan, Repository,
    Unrelated,
};

/// How an aggregate's refusals answer: problem+json, never the error's
/// text unchecked. Implemented beside each aggregate's routes.
pub trait Refusal {
    /// The problem a refused command answers.
    fn problem(self) -> ApiError;

    /// The problem when a value the command's events claim (a slug, an
    /// email) belongs to another stream.
    fn claim_taken(claim: &Claim) -> ApiError {
        ApiError::conflict(format!("{} is already taken", claim.value))
    }
}

impl<E: Refusal> From<ExecuteError<E>> for ApiError {
    fn from(error: ExecuteError<E>) -> ApiError {
        match error {
            ExecuteError::Rejected(error) => error.problem(),
            ExecuteError::Stale { current } => ApiError::precondition_failed(format!(
                "The resource is at version {current}; re-read it and retry with If-Match: \"{current}\""
            )),
            ExecuteError::ClaimTaken(claim) => E::claim_taken(&claim),
            ExecuteError::IdempotencyKeyUsed => ApiError::conflict(
                "A request with this Idempotency-Key completed meanwhile; retry to get its response",
            ),
            ExecuteError::Contention => {
                ApiError::conflict("The resource is being changed by other requests; retry")
                    .with_code("CONFLICT")
            }
            ExecuteError::Store(error) => ApiError::from(error),
        }
    }
}

/// The metadata of the events a request appends.
pub fn metadata(principal: Option<&Principal>, request_id: &RequestId) -> Metadata {
    let actor = match principal {
        Some(principal) => principal.actor(),
        None => Actor::System {
            name: "anonymous".to_owned(),
        },
    };
    let mut metadata = Metadata {
        actor,
        request_id: Some(request_id.0.clone()),
        // The conversation a request starts: reactions to its events carry
        // the same correlation id.
        correlation_id: Some(
            uuid::Uuid::parse_str(&request_id.0).unwrap_or_else(|_| uuid::Uuid::now_v7()),
        ),
        causation_id: None,
        impersonated_by: principal
            .and_then(Principal::impersonated_by)
            .map(|admin| admin.as_uuid()),
        traceparent: None,
        tracestate: None,
    };
    tenet_events::trace::record(&mut metadata);
    metadata
}

/// The metadata of events a user causes before holding a token (login).
pub fn metadata_of_user(user: UserId, request_id: &RequestId) -> Metadata {
    Metadata {
        actor: Actor::User { id: user.as_uuid() },
        ..metadata(None, request_id)
    }
}

impl Repository {
    /// A command a request's principal makes.
    pub fn by(&self, principal: &Principal, request_id: &RequestId) -> Author<'_> {
        self.recorded_as(metadata(Some(principal), request_id))
    }

    /// A command whose events record `metadata` (an anonymous request, a
    /// policy, the command line).
    pub fn recorded_as(&self, metadata: Metadata) -> Author<'_> {
        Author {
            repository: self,
            metadata,
        }
    }
}

/// Who makes a command; [`Author::on`] names the stream it is on.
pub struct Author<'r> {
    repository: &'r Repository,
    metadata: Metadata,
}

impl<'r> Author<'r> {
    /// A command on `stream`, whose aggregate `A` decides.
    pub fn on<A: Aggregate>(self, tenant: TenantId, stream: impl Into<StreamId>) -> Command<'r, A> {
        Command {
            repository: self.repository,
            plan: Plan::new(tenant, stream.into(), self.metadata),
            streams: PhantomData,
        }
    }
}

/// The decision writes only the command's own stream.
pub struct Alone;
/// The decision also writes a stream of aggregate `B`.
pub struct Writing<B>(PhantomData<B>);
/// The decision creates new streams of aggregate `T` (any number, ids
/// generated for the command) instead of writing a second stream.
pub struct Creating<T>(PhantomData<T>);
/// The decision checks no other stream.
pub struct Unchecked;
/// The decision reads a stream of aggregate `C` that must be unchanged
/// when its events commit.
pub struct Checking<C>(PhantomData<C>);

/// A command being described. `W` says whether it writes a second stream,
/// `C` whether it checks one; [`Command::decide`] takes the states of the
/// streams named.
pub struct Command<'r, A: Aggregate, W = Alone, C = Unchecked> {
    repository: &'r Repository,
    plan: Plan<A>,
    streams: PhantomData<fn() -> (W, C)>,
}

impl<'r, A: Aggregate, W, C> Command<'r, A, W, C> {
    /// The version the client requires (`If-Match`), if any.
    pub fn if_match(mut self, version: Option<i64>) -> Self {
        self.plan.if_match = version;
        self
    }

    /// The stream's id was generated for this command: it cannot exist yet.
    pub fn new_stream(mut self) -> Self {
        self.plan.new_stream = true;
        self
    }

    fn into_shape<W2, C2>(self) -> Command<'r, A, W2, C2> {
        Command {
            repository: self.repository,
            plan: self.plan,
            streams: PhantomData,
        }
    }
}

impl<'r, A: Aggregate, C> Command<'r, A, Alone, C> {
    /// The decision may also write `stream`, of aggregate `B`, in the same
    /// atomic append (a new task and its project's task counter).
    pub fn writing<B: Aggregate>(
        mut self,
        stream: impl Into<StreamId>,
    ) -> Command<'r, A, Writing<B>, C> {
        self.plan.written = Some(stream.into());
        self.into_shape()
    }
}

impl<'r, A: Aggregate, C> Command<'r, A, Alone, C> {
    /// The decision may also create any number of new streams of
    /// aggregate `T` in the same atomic append (the tasks of a project
    /// made from a template); it answers their ids with their events.
    pub fn creating<T: Aggregate>(self) -> Command<'r, A, Creating<T>, C> {
        self.into_shape()
    }
}

impl<'r, A: Aggregate, W> Command<'r, A, W, Unchecked> {
    /// The decision reads `stream`, of aggregate `C`, which must be
    /// unchanged when its events commit (the workspace an assignee is
    /// checked against).
    pub fn checking<C: Aggregate>(
        self,
        stream: impl Into<StreamId>,
    ) -> Command<'r, A, W, Checking<C>> {
        self.checking_if(true, stream)
    }

    /// As [`Command::checking`] when `needed`; otherwise the decision
    /// sees `C::default()` and nothing is checked.
    pub fn checking_if<C: Aggregate>(
        mut self,
        needed: bool,
        stream: impl Into<StreamId>,
    ) -> Command<'r, A, W, Checking<C>> {
        self.plan.checked = needed.then(|| stream.into());
        self.into_shape()
    }
}

/// What a decision on one written stream answers: its events, or its
/// events and none for a second stream (the shape the task's decisions
/// share with its creation, which also writes the project).
pub trait Events<A: Aggregate> {
    fn into_events(self) -> Vec<A::Event>;
}

impl<A: Aggregate> Events<A> for Vec<A::Event> {
    fn into_events(self) -> Vec<A::Event> {
        self
    }
}

impl<A: Aggregate> Events<A> for Pair<A, Unrelated> {
    fn into_events(self) -> Vec<A::Event> {
        self.0
    }
}

impl<'r, A: Aggregate> Command<'r, A, Alone, Unchecked> {
    /// Decides on the command's own stream.
    pub fn decide<E, R: Events<A>>(
        self,
        decide: impl Fn(&A) -> Result<R, E> + Send + Sync + 'r,
    ) -> Decided<'r, A, Unrelated, Unrelated, E> {
        Decided::new(
            self.repository,
            self.plan,
            Box::new(move |a, _, _| {
                decide(a).map(|events| (events.into_events(), Vec::new(), Vec::new()))
            }),
        )
    }
}

impl<'r, A: Aggregate, C: Aggregate> Command<'r, A, Alone, Checking<C>> {
    /// Decides on the command's own stream and the checked one.
    pub fn decide<E, R: Events<A>>(
        self,
        decide: impl Fn(&A, &C) -> Result<R, E> + Send + Sync + 'r,
    ) -> Decided<'r, A, Unrelated, C, E> {
        Decided::new(
            self.repository,
            self.plan,
            Box::new(move |a, _, c| {
                decide(a, c).map(|events| (events.into_events(), Vec::new(), Vec::new()))
            }),
        )
    }
}

impl<'r, A: Aggregate, B: Aggregate> Command<'r, A, Writing<B>, Unchecked> {
    /// Decides on the two written streams.
    pub fn decide<E>(
        self,
        decide: impl Fn(&A, &B) -> Result<Pair<A, B>, E> + Send + Sync + 'r,
    ) -> Decided<'r, A, B, Unrelated, E> {
        Decided::new(
            self.repository,
            self.plan,
            Box::new(move |a, b, _| decide(a, b).map(|(a, b)| (a, b, Vec::new()))),
        )
    }
}

impl<'r, A: Aggregate, B: Aggregate, C: Aggregate> Command<'r, A, Writing<B>, Checking<C>> {
    /// Decides on the two written streams and the checked one.
    pub fn decide<E>(
        self,
        decide: impl Fn(&A, &B, &C) -> Result<Pair<A, B>, E> + Send + Sync + 'r,
    ) -> Decided<'r, A, B, C, E> {
        Decided::new(
            self.repository,
            self.plan,
            Box::new(move |a, b, c| decide(a, b, c).map(|(a, b)| (a, b, Vec::new()))),
        )
    }
}

/// What a decision that creates streams of `T` answers: the events of its
/// own stream, and each new stream's id with its events.
pub type Creations<A, T> = (
    Vec<<A as Aggregate>::Event>,
    Vec<(StreamId, Vec<<T as Aggregate>::Event>)>,
);

impl<'r, A: Aggregate, T: Aggregate, C: Aggregate> Command<'r, A, Creating<T>, Checking<C>> {
    /// Decides on the command's own stream and the checked one, and the
    /// new streams it creates.
    pub fn decide<E>(
        self,
        decide: impl Fn(&A, &C) -> Result<Creations<A, T>, E> + Send + Sync + 'r,
    ) -> Decided<'r, A, Unrelated, C, E> {
        Decided::new(
            self.repository,
            self.plan,
            Box::new(move |a, _, c| {
                decide(a, c).map(|(events, created)| {
                    let created = created
                        .into_iter()
                        .map(|(stream_id, events)| NewStream {
                            stream_id,
                            stream_type: T::KIND,
                            events: events.iter().map(DomainEvent::to_new_event).collect(),
                        })
                        .collect();
                    (events, Vec::new(), created)
                })
            }),
        )
    }
}

/// A command with its decision, ready to run: [`Decided::reply`] for a
/// handler's response, [`Decided::commit`] when the response needs what
/// only the commit makes visible, [`Decided::outcome`] outside HTTP.
#[must_use = "a decided command does nothing until it runs"]
pub struct Decided<'r, A: Aggregate, B: Aggregate, C, E> {
    repository: &'r Repository,
    plan: Plan<A>,
    decide: Decider<'r, A, B, C, E>,
}

/// A decision as the repository runs it, over the states of all three
/// streams, whichever of them the command names.
type Decider<'r, A, B, C, E> =
    Box<dyn Fn(&A, &B, &C) -> Result<Decision<A, B>, E> + Send + Sync + 'r>;

impl<'r, A, B, C, E> Decided<'r, A, B, C, E>
where
    A: Aggregate,
    B: Aggregate,
    C: Aggregate,
{
    fn new(repository: &'r Repository, plan: Plan<A>, decide: Decider<'r, A, B, C, E>) -> Self {
        Decided {
            repository,
            plan,
            decide,
        }
    }

    /// Runs the command; what the repository answers, as it answers it.
    pub async fn outcome(self) -> Result<Committed<A>, ExecuteError<E>> {
        let (committed, _) = self.repository.execute(self.plan, self.decide).await?;
        Ok(committed)
    }

    /// Runs the command, for a reply made after it commits and never
    /// stored: one that reads a read model the commit updated, or holds a
    /// secret minted for what it recorded (see [`Done::reply`]).
    pub async fn commit(self) -> Result<Done<A>, ApiError>
    where
        E: Refusal,
    {
        let repository = self.repository;
        let committed = self.outcome().await?;
        let position = position_of(repository, committed.position).await?;
        Ok(Done {
            committed,
            position,
        })
    }

    /// Runs the command and answers what `render` makes of the state it
    /// commits. Awaited as it is, or after [`Replying::idempotent`].
    pub fn reply<T, R>(self, render: R) -> Replying<'r, A, B, C, E, R>
    where
        R: Fn(&Committed<A>) -> Reply<T> + Send + Sync + 'static,
    {
        Replying {
            decided: self,
            render,
            key: None,
        }
    }
}

/// A committed command, whose reply the handler makes afterwards.
pub struct Done<A> {
    pub committed: Committed<A>,
    /// The consistency token.
    pub position: Position,
}

impl<A> Done<A> {
    /// The response: what `render` makes of the committed state.
    pub fn reply<T: Serialize>(self, render: impl FnOnce(&Committed<A>) -> Reply<T>) -> Written<T> {
        render(&self.committed).written(self.position)
    }
}

/// A command and its reply; awaiting it runs the command.
#[must_use = "a reply does nothing until it is awaited"]
pub struct Replying<'r, A: Aggregate, B: Aggregate, C, E, R> {
    decided: Decided<'r, A, B, C, E>,
    render: R,
    key: Option<IdempotencyKey>,
}

impl<A: Aggregate, B: Aggregate, C, E, R> Replying<'_, A, B, C, E, R> {
    /// Stores the reply under the request's `Idempotency-Key`, if it sent
    /// one, in the same append as the command's events: a retry gets this
    /// reply, never a second effect.
    pub fn idempotent(mut self, idempotency: &Idempotency) -> Self {
        self.key = idempotency.0.clone();
        self
    }
}

impl<'r, A, B, C, E, R, T> IntoFuture for Replying<'r, A, B, C, E, R>
where
    A: Aggregate,
    B: Aggregate,
    C: Aggregate,
    E: Refusal + Send + 'r,
    R: Fn(&Committed<A>) -> Reply<T> + Send + Sync + 'static,
    T: Serialize + Send + 'r,
{
    type Output = Result<Written<T>, ApiError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'r>>;

    fn into_future(self) -> Self::IntoFuture {
        let Replying {
            mut decided,
            render,
            key,
        } = self;
        let render = Arc::new(render);
        decided.plan.idempotency = key.map(|key| stored_with(key, render.clone()));
        Box::pin(async move {
            let repository = decided.repository;
            let committed = decided.outcome().await?;
            let position = position_of(repository, committed.position).await?;
            Ok(render(&committed).written(position))
        })
    }
}

/// The record of `key`: the reply `render` makes of the state the command
/// will commit, rendered before it commits.
fn stored_with<A, T, R>(key: IdempotencyKey, render: Arc<R>) -> Idempotent<A>
where
    A: Aggregate,
    R: Fn(&Committed<A>) -> Reply<T> + Send + Sync + 'static,
    T: Serialize,
{
    Idempotent {
        scope: key.scope,
        key: key.key,
        fingerprint: key.fingerprint,
        expires_at: tenet_events::envelope::now() + TTL,
        render: Box::new(move |committed| render(committed).stored().to_value()),
    }
}

/// The position a command's response carries: the last event it appended,
/// or (when it changed nothing) the head of the log, which covers whatever
/// the client wrote before.
async fn position_of(
    repository: &Repository,
    appended: Option<Position>,
) -> Result<Position, ApiError> {
    match appended {
        Some(position) => Ok(position),
        None => Ok(repository.store().head().await?),
    }
}
