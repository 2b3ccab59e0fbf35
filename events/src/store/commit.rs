//! Group commit: the one loop through which every append of this process
//! reaches the database.
//!
//! Appends queue on a bounded channel. The loop takes whatever has queued
//! while the previous transaction was committing, up to a bound, and commits
//! it as one transaction: under load many commands share one fsync; with a
//! single client the batch is one command and nothing waits for a timer.
//! One batch is in flight at a time (measured: a second batch opening its
//! transaction during the first's commit closes early with one request and
//! loses more to small batches than it hides in round trips).
//!
//! Deciding which requests of a batch succeed is pure ([`plan`]): given the
//! stream versions, claims and idempotency keys the database holds (read
//! under the log lock), requests are accepted in arrival order, each seeing
//! the effects of those before it, so two appends to one stream in one batch
//! chain (version v, then v+1) and a stale one is refused alone without
//! failing its neighbours.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use super::{AppendError, AppendId, AppendRequest, Appended, ExpectedVersion, StoreError};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::ids::{Position, StreamId, TenantId};

/// A backend's way of committing one batch.
#[async_trait]
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// Commits the accepted part of `batch` in one transaction and returns
    /// one outcome per request, in order.
    async fn write(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError>;
}

struct Pending {
    request: AppendRequest,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// Handle to the group-commit loop.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Appends remembered as refused, so those chained on them are refused
/// too. A chained append is submitted right behind its predecessor, so a
/// short memory suffices.
const FAILED_REMEMBERED: usize = 65_536;

#[derive(Default)]
struct Refused {
    ids: HashSet<AppendId>,
    order: std::collections::VecDeque<AppendId>,
}

impl Refused {
    fn insert(&mut self, id: AppendId) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > FAILED_REMEMBERED
                && let Some(oldest) = self.order.pop_front()
            {
                self.ids.remove(&oldest);
            }
        }
    }

    fn any(&self, ids: &[AppendId]) -> bool {
        ids.iter().any(|id| self.ids.contains(id))
    }
}

/// The refusal of an append whose predecessor failed.
fn predecessor_failed(request: &AppendRequest) -> AppendError {
    let expected = match request.expected {
        ExpectedVersion::Exact(version) => version,
        ExpectedVersion::Any => 0,
    };
    AppendError::WrongExpectedVersion {
        stream_id: request.stream_id,
        expected,
        actual: -1,
    }
}

/// Appends waiting beyond this make callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 8_192;

impl GroupCommit {
    pub fn start(
        writer: Arc<dyn BatchWriter>,
        max_batch_events: usize,
        head: watch::Sender<Position>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(writer, receiver, max_batch_events.max(1), head));
        GroupCommit {
            queue,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub async fn submit(
        &self,
        mut request: AppendRequest,
    ) -> Result<super::PendingAppend, AppendError> {
        if request.event_count() == 0 {
            return Err(AppendError::Empty);
        }
        let id = AppendId(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        request.id = id;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(super::PendingAppend(answer, id))
    }
}

async fn run(
    writer: Arc<dyn BatchWriter>,
    mut receiver: mpsc::Receiver<Pending>,
    max_batch_events: usize,
    head: watch::Sender<Position>,
) {
    let mut carried: Option<Pending> = None;
    let mut refused = Refused::default();
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        // Callers just woken by the previous batch's replies are runnable
        // but may not have enqueued their next append yet: yield once so
        // they can, instead of closing a batch of one.
        tokio::task::yield_now().await;
        let mut events = first.request.event_count();
        let mut batch = vec![first];
        while events < max_batch_events {
            match receiver.try_recv() {
                Ok(next) if events + next.request.event_count() > max_batch_events => {
                    carried = Some(next);
                    break;
                }
                Ok(next) => {
                    events += next.request.event_count();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // Appends chained on one refused in an earlier batch are refused
        // without a round trip; the rest go to the database.
        let (doomed, batch): (Vec<Pending>, Vec<Pending>) = batch
            .into_iter()
            .partition(|pending| refused.any(&pending.request.after));
        for pending in doomed {
            refused.insert(pending.request.id);
            let _ = pending
                .reply
                .send(Err(predecessor_failed(&pending.request)));
        }
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!("tenet_append_batch_size").record(batch.len() as f64);
        let (requests, replies): (Vec<AppendRequest>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        let started = std::time::Instant::now();
        let outcomes = commit_isolating_failures(writer.as_ref(), &requests).await;
        for (request, outcome) in requests.iter().zip(&outcomes) {
            if outcome.is_err() {
                refused.insert(request.id);
            }
        }
        metrics::histogram!("tenet_append_batch_seconds").record(started.elapsed().as_secs_f64());
        let committed = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok().map(|appended| appended.position))
            .max();
        if let Some(position) = committed {
            head.send_if_modified(|current| {
                let advanced = position > *current;
                if advanced {
                    *current = position;
                }
                advanced
            });
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // The caller may have gone away (request cancelled); its append
            // stands either way.
            let _ = reply.send(outcome);
        }
    }
}

/// Commits a batch; if the whole transaction fails for a reason that is not
/// the database being down, commits each request on its own so that one
/// faulty request (say, one an inline projection rejects) fails alone.
async fn commit_isolating_failures(
    writer: &dyn BatchWriter,
    requests: &[AppendRequest],
) -> Vec<Result<Appended, AppendError>> {
    match guarded_write(writer, requests).await {
        Ok(outcomes) => outcomes,
        Err(error)
            if requests.len() > 1
                && !matches!(error, StoreError::Unavailable(_) | StoreError::TimedOut(_)) =>
        {
            tracing::warn!(%error, size = requests.len(), "batch append failed; retrying its requests one by one");
            let mut outcomes = Vec::with_capacity(requests.len());
            let mut down: Option<StoreError> = None;
            let mut refused = Refused::default();
            for request in requests {
                // Once the database proves unreachable, the rest would only
                // queue up behind connection attempts: fail them at once.
                let outcome = match &down {
                    Some(error) => Err(AppendError::Store(error.clone())),
                    None if refused.any(&request.after) => Err(predecessor_failed(request)),
                    None => match guarded_write(writer, std::slice::from_ref(request)).await {
                        Ok(mut single) => single.pop().unwrap_or(Err(AppendError::Empty)),
                        Err(error) => {
                            if matches!(error, StoreError::Unavailable(_) | StoreError::TimedOut(_))
                            {
                                down = Some(error.clone());
                            }
                            Err(AppendError::Store(error))
                        }
                    },
                };
                if outcome.is_err() {
                    refused.insert(request.id);
                }
                outcomes.push(outcome);
            }
            outcomes
        }
        Err(error) => requests
            .iter()
            .map(|_| Err(AppendError::Store(error.clone())))
            .collect(),
    }
}

/// Runs one write; a panic inside it (an inline projector's bug) fails that
/// batch instead of killing the loop every append of the process goes
/// through.
async fn guarded_write(
    writer: &dyn BatchWriter,
    requests: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(writer.write(requests))
        .catch_unwind()
        .await
    {
        Ok(outcome) => outcome,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(%reason, "an append batch panicked");
            Err(StoreError::Panicked(reason))
        }
    }
}

/// What the database holds, read under the log lock, about the streams,
/// claims and keys a batch touches.
#[derive(Debug, Default)]
pub(crate) struct BatchState {
    pub head: Position,
    /// Current version of each stream in the batch (absent: version 0).
    pub versions: HashMap<(TenantId, StreamId), i64>,
    /// Current holder of each claim in the batch.
    pub claims: HashMap<(String, String), (TenantId, StreamId)>,
    /// Idempotency keys already used (and not expired).
    pub used_keys: HashSet<(String, String)>,
}

/// One event row to insert.
#[derive(Debug)]
pub(crate) struct PlannedEvent {
    pub request: usize,
    /// Which stream of the request (0: the primary, k: `also[k - 1]`).
    pub segment: usize,
    pub index: usize,
    pub stream_id: StreamId,
    pub stream_type: &'static str,
    pub position: Position,
    pub stream_version: i64,
}

impl PlannedEvent {
    /// The event this row holds.
    pub fn event<'a>(&self, batch: &'a [AppendRequest]) -> &'a NewEvent {
        let request = &batch[self.request];
        match self.segment {
            0 => &request.events[self.index],
            k => &request.also[k - 1].events[self.index],
        }
    }
}

/// What a batch's transaction writes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub outcomes: Vec<Result<Appended, AppendError>>,
    pub events: Vec<PlannedEvent>,
    /// Claims to delete, then claims to insert (with their holder).
    pub released: Vec<(String, String)>,
    pub claimed: Vec<(String, String, TenantId, StreamId)>,
    /// Requests whose idempotency record to store, with their last position.
    pub idempotent: Vec<(usize, Position)>,
    /// The head the batch started from, and where it leaves it.
    pub first_head: Position,
    pub head: Position,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The envelopes of every accepted event, for inline projections.
    pub fn recorded(&self, batch: &[AppendRequest]) -> Vec<RecordedEvent> {
        self.events
            .iter()
            .map(|planned| {
                let request = &batch[planned.request];
                let event = planned.event(batch);
                RecordedEvent {
                    position: planned.position,
                    event_id: event.event_id,
                    tenant_id: request.tenant_id,
                    stream_id: planned.stream_id,
                    stream_type: planned.stream_type.to_owned(),
                    stream_version: planned.stream_version,
                    event_type: event.event_type.to_string(),
                    schema_version: event.schema_version,
                    data: event.data.clone(),
                    metadata: request.metadata.clone(),
                    occurred_at: request.occurred_at,
                }
            })
            .collect()
    }
}

/// Decides, in arrival order, which requests of a batch commit.
pub(crate) fn plan(batch: &[AppendRequest], mut state: BatchState) -> Plan {
    let initial_claims = state.claims.clone();
    let mut plan = Plan {
        first_head: state.head,
        head: state.head,
        ..Plan::default()
    };
    let mut refused = Refused::default();
    for (request_index, request) in batch.iter().enumerate() {
        let outcome = if refused.any(&request.after) {
            Err(predecessor_failed(request))
        } else {
            accept(request, &state)
        };
        if outcome.is_err() {
            refused.insert(request.id);
        }
        let outcome = outcome.map(|currents| {
            let mut versions = Vec::with_capacity(currents.len());
            for (segment_index, (segment, current)) in request.segments().zip(currents).enumerate()
            {
                let mut version = current;
                for index in 0..segment.events.len() {
                    version += 1;
                    plan.head = plan.head.next();
                    plan.events.push(PlannedEvent {
                        request: request_index,
                        segment: segment_index,
                        index,
                        stream_id: segment.stream_id,
                        stream_type: segment.stream_type,
                        position: plan.head,
                        stream_version: version,
                    });
                }
                state
                    .versions
                    .insert((request.tenant_id, segment.stream_id), version);
                versions.push(version);
            }
            let version = versions[0];
            let holder = (request.tenant_id, request.stream_id);
            for claim in &request.releases {
                let key = (claim.scope.clone(), claim.value.clone());
                if state.claims.get(&key) == Some(&holder) {
                    state.claims.remove(&key);
                }
            }
            for claim in &request.claims {
                state
                    .claims
                    .insert((claim.scope.clone(), claim.value.clone()), holder);
            }
            if let Some(record) = &request.idempotency {
                state
                    .used_keys
                    .insert((record.scope.clone(), record.key.clone()));
                plan.idempotent.push((request_index, plan.head));
            }
            Appended {
                stream_version: version,
                position: plan.head,
                also_versions: versions[1..].to_vec(),
            }
        });
        plan.outcomes.push(outcome);
    }
    for (key, holder) in &initial_claims {
        if state.claims.get(key) != Some(holder) {
            plan.released.push(key.clone());
        }
    }
    for (key, holder) in &state.claims {
        if initial_claims.get(key) != Some(holder) {
            plan.claimed
                .push((key.0.clone(), key.1.clone(), holder.0, holder.1));
        }
    }
    plan
}

/// Checks one request against the state so far; answers the current
/// version of each of its streams when it may commit.
fn accept(request: &AppendRequest, state: &BatchState) -> Result<Vec<i64>, AppendError> {
    if request.event_count() == 0 {
        return Err(AppendError::Empty);
    }
    // The key first: a duplicate of a request that committed must learn
    // that (and replay its response), not that its version is stale.
    if let Some(record) = &request.idempotency
        && state
            .used_keys
            .contains(&(record.scope.clone(), record.key.clone()))
    {
        return Err(AppendError::IdempotencyKeyUsed {
            key: record.key.clone(),
        });
    }
    let mut currents = Vec::with_capacity(1 + request.also.len());
    for segment in request.segments() {
        let current = state
            .versions
            .get(&(request.tenant_id, segment.stream_id))
            .copied()
            .unwrap_or(0);
        if let ExpectedVersion::Exact(expected) = segment.expected
            && expected != current
        {
            return Err(AppendError::WrongExpectedVersion {
                stream_id: segment.stream_id,
                expected,
                actual: current,
            });
        }
        currents.push(current);
    }
    let holder = (request.tenant_id, request.stream_id);
    for claim in &request.claims {
        let key = (claim.scope.clone(), claim.value.clone());
        // A request can release only what its own stream holds, so it can
        // never free (and take) another stream's value.
        if state.claims.get(&key).is_some_and(|owner| *owner != holder) {
            return Err(AppendError::ClaimTaken {
                claim: claim.clone(),
            });
        }
    }
    Ok(currents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Actor, Metadata, NewEvent};
    use crate::ids::EventId;
    use crate::store::{Claim, IdempotencyRecord};

    fn request(stream: StreamId, expected: ExpectedVersion, events: usize) -> AppendRequest {
        AppendRequest::new(
            TenantId::generate(),
            stream,
            "test",
            expected,
            (0..events)
                .map(|_| NewEvent {
                    event_id: EventId::generate(),
                    event_type: "test.happened".into(),
                    schema_version: 1,
                    data: serde_json::json!({}),
                })
                .collect(),
            Metadata::new(Actor::System {
                name: "test".into(),
            }),
        )
    }

    fn same_stream(first: &AppendRequest, expected: ExpectedVersion) -> AppendRequest {
        let mut next = request(first.stream_id, expected, 1);
        next.tenant_id = first.tenant_id;
        next
    }

    #[test]
    fn positions_continue_from_the_head_without_gaps() {
        let batch = vec![
            request(StreamId::generate(), ExpectedVersion::NO_STREAM, 2),
            request(StreamId::generate(), ExpectedVersion::Any, 3),
        ];
        let plan = plan(
            &batch,
            BatchState {
                head: Position(41),
                ..BatchState::default()
            },
        );
        let positions: Vec<i64> = plan.events.iter().map(|e| e.position.0).collect();
        assert_eq!(positions, vec![42, 43, 44, 45, 46]);
        assert_eq!(plan.head, Position(46));
        assert_eq!(plan.outcomes[1].as_ref().unwrap().position, Position(46));
    }

    #[test]
    fn appends_to_one_stream_in_one_batch_chain_their_versions() {
        let first = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        let second = same_stream(&first, ExpectedVersion::Exact(1));
        let plan = plan(&[first, second], BatchState::default());
        assert_eq!(plan.outcomes[0].as_ref().unwrap().stream_version, 1);
        assert_eq!(plan.outcomes[1].as_ref().unwrap().stream_version, 2);
    }

    #[test]
    fn an_append_chained_on_a_refused_one_is_refused_even_if_its_version_matches() {
        // This process promised version 5 (C1 expecting 4); another process
        // wrote version 5 meanwhile, so C1 is stale, and C2, decided on
        // C1's promise and expecting 5, must not slip in behind it.
        let mut first = request(StreamId::generate(), ExpectedVersion::Exact(4), 1);
        first.id = AppendId(1);
        let mut second = same_stream(&first, ExpectedVersion::Exact(5));
        second.id = AppendId(2);
        second.after = vec![AppendId(1)];
        let mut unrelated = same_stream(&first, ExpectedVersion::Exact(5));
        unrelated.id = AppendId(3);
        let state = BatchState {
            versions: HashMap::from([((first.tenant_id, first.stream_id), 5)]),
            ..BatchState::default()
        };
        let plan = plan(&[first, second, unrelated], state);
        assert!(matches!(
            plan.outcomes[0],
            Err(AppendError::WrongExpectedVersion { .. })
        ));
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::WrongExpectedVersion { .. })
        ));
        assert_eq!(plan.outcomes[2].as_ref().unwrap().stream_version, 6);
    }

    fn also(
        stream: StreamId,
        expected: ExpectedVersion,
        events: usize,
    ) -> crate::store::StreamAppend {
        let events = request(stream, expected, events).events;
        crate::store::StreamAppend {
            stream_id: stream,
            stream_type: "test",
            expected,
            events,
            new_stream: false,
        }
    }

    #[test]
    fn several_streams_of_one_request_commit_together_in_order() {
        let counter = StreamId::generate();
        let mut first = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        first
            .also
            .push(also(counter, ExpectedVersion::NO_STREAM, 1));
        let mut second = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        second.tenant_id = first.tenant_id;
        second
            .also
            .push(also(counter, ExpectedVersion::Exact(1), 1));
        let plan = plan(&[first, second], BatchState::default());
        let first = plan.outcomes[0].as_ref().unwrap();
        assert_eq!(
            (first.stream_version, first.also_versions.clone()),
            (1, vec![1])
        );
        let second = plan.outcomes[1].as_ref().unwrap();
        assert_eq!(second.also_versions, vec![2]);
        let streams: Vec<(usize, i64)> = plan
            .events
            .iter()
            .map(|e| (e.segment, e.position.0))
            .collect();
        assert_eq!(streams, vec![(0, 1), (1, 2), (0, 3), (1, 4)]);
    }

    #[test]
    fn a_stale_checked_stream_refuses_the_whole_request() {
        let workspace = StreamId::generate();
        let mut assign = request(StreamId::generate(), ExpectedVersion::Any, 1);
        assign
            .also
            .push(also(workspace, ExpectedVersion::Exact(3), 0));
        let state = BatchState {
            versions: HashMap::from([((assign.tenant_id, workspace), 4)]),
            ..BatchState::default()
        };
        let plan = plan(&[assign], state);
        match &plan.outcomes[0] {
            Err(AppendError::WrongExpectedVersion {
                stream_id,
                expected: 3,
                actual: 4,
            }) => assert_eq!(*stream_id, workspace),
            other => panic!("{other:?}"),
        }
        assert!(plan.events.is_empty());
    }

    #[test]
    fn a_stale_append_is_refused_alone() {
        let first = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        let stale = same_stream(&first, ExpectedVersion::NO_STREAM);
        let other = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        let plan = plan(&[first, stale, other], BatchState::default());
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::WrongExpectedVersion {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        assert!(plan.outcomes[2].is_ok());
        assert_eq!(plan.events.len(), 2);
    }

    #[test]
    fn the_second_claim_of_a_value_in_one_batch_is_refused() {
        let mut first = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        first.claims.push(Claim::new("workspace.slug", "acme"));
        let mut second = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        second.claims.push(Claim::new("workspace.slug", "acme"));
        let plan = plan(&[first, second], BatchState::default());
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::ClaimTaken { .. })
        ));
        assert_eq!(plan.claimed.len(), 1);
    }

    #[test]
    fn a_released_value_can_be_claimed_by_a_later_request() {
        let holder = request(StreamId::generate(), ExpectedVersion::Any, 1);
        let mut release = same_stream(&holder, ExpectedVersion::Any);
        release.releases.push(Claim::new("project.slug", "web"));
        let mut claim = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        claim.claims.push(Claim::new("project.slug", "web"));
        let state = BatchState {
            claims: HashMap::from([(
                ("project.slug".into(), "web".into()),
                (holder.tenant_id, holder.stream_id),
            )]),
            ..BatchState::default()
        };
        let plan = plan(&[release, claim.clone()], state);
        assert!(plan.outcomes.iter().all(Result::is_ok));
        assert_eq!(plan.released, vec![("project.slug".into(), "web".into())]);
        assert_eq!(
            plan.claimed,
            vec![(
                "project.slug".into(),
                "web".into(),
                claim.tenant_id,
                claim.stream_id
            )]
        );
    }

    #[test]
    fn releasing_another_streams_claim_cannot_take_it() {
        let owner = (TenantId::generate(), StreamId::generate());
        let mut thief = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        thief.claims.push(Claim::new("workspace.slug", "acme"));
        thief.releases.push(Claim::new("workspace.slug", "acme"));
        let state = BatchState {
            claims: HashMap::from([(("workspace.slug".into(), "acme".into()), owner)]),
            ..BatchState::default()
        };
        let plan = plan(&[thief], state);
        assert!(matches!(
            plan.outcomes[0],
            Err(AppendError::ClaimTaken { .. })
        ));
        assert!(plan.released.is_empty() && plan.claimed.is_empty());
    }

    #[test]
    fn a_used_key_is_reported_before_a_stale_version() {
        let record = IdempotencyRecord {
            scope: "user:1".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: serde_json::json!({}),
            expires_at: crate::envelope::now(),
        };
        let mut duplicate = request(StreamId::generate(), ExpectedVersion::Exact(0), 1);
        duplicate.idempotency = Some(record.clone());
        let state = BatchState {
            versions: HashMap::from([((duplicate.tenant_id, duplicate.stream_id), 1)]),
            used_keys: HashSet::from([(record.scope, record.key)]),
            ..BatchState::default()
        };
        assert!(matches!(
            plan(&[duplicate], state).outcomes[0],
            Err(AppendError::IdempotencyKeyUsed { .. })
        ));
    }

    #[test]
    fn reclaiming_a_value_the_stream_holds_changes_nothing() {
        let mut renamed = request(StreamId::generate(), ExpectedVersion::Any, 1);
        renamed.claims.push(Claim::new("workspace.slug", "acme"));
        let state = BatchState {
            claims: HashMap::from([(
                ("workspace.slug".into(), "acme".into()),
                (renamed.tenant_id, renamed.stream_id),
            )]),
            ..BatchState::default()
        };
        let plan = plan(&[renamed], state);
        assert!(plan.outcomes[0].is_ok());
        assert!(plan.claimed.is_empty() && plan.released.is_empty());
    }

    #[test]
    fn an_idempotency_key_is_used_once() {
        let record = IdempotencyRecord {
            scope: "user:1".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: serde_json::json!({}),
            expires_at: crate::envelope::now(),
        };
        let mut first = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        first.idempotency = Some(record.clone());
        let mut second = request(StreamId::generate(), ExpectedVersion::NO_STREAM, 1);
        second.idempotency = Some(record);
        let plan = plan(&[first, second], BatchState::default());
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::IdempotencyKeyUsed { .. })
        ));
        assert_eq!(plan.idempotent, vec![(0, Position(1))]);
    }
}
