//! The contract every event-store backend keeps, run against SQLite and
//! Postgres alike.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use tenet_events::envelope::{Actor, Metadata, NewEvent};
use tenet_events::ids::{EventId, Position, StreamId, TenantId};
use tenet_events::store::{
    self, AppendError, AppendRequest, Claim, EventStore, ExpectedVersion, IdempotencyRecord,
    LogQuery, StoreOptions,
};
use tenet_events::testing::TestDatabase;

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: EventId::generate(),
        event_type: "test.happened".into(),
        schema_version: 1,
        data: json!({ "n": n }),
    }
}

fn metadata() -> Metadata {
    Metadata {
        actor: Actor::User {
            id: uuid::Uuid::now_v7(),
        },
        request_id: Some("req-1".into()),
        correlation_id: Some(uuid::Uuid::now_v7()),
        causation_id: None,
        impersonated_by: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: None,
    }
}

fn append_to(
    tenant: TenantId,
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest::new(tenant, stream, "test", expected, events, metadata())
}

async fn open(database: &TestDatabase) -> Arc<dyn EventStore> {
    store::open(database.db.clone(), StoreOptions::default())
        .await
        .expect("open store")
}

async fn appended_events_read_back_with_their_whole_envelope(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let stream = StreamId::generate();
    let request = append_to(
        tenant,
        stream,
        ExpectedVersion::NO_STREAM,
        vec![event(1), event(2)],
    );
    let sent = request.clone();
    let appended = store.append(request).await.unwrap();
    assert_eq!(appended.stream_version, 2);

    let read = store.read_stream(tenant, stream, 0, 100).await.unwrap();
    assert_eq!(read.len(), 2);
    for (n, (recorded, sent_event)) in read.iter().zip(&sent.events).enumerate() {
        assert_eq!(recorded.event_id, sent_event.event_id);
        assert_eq!(recorded.tenant_id, tenant);
        assert_eq!(recorded.stream_id, stream);
        assert_eq!(recorded.stream_type, "test");
        assert_eq!(recorded.stream_version, n as i64 + 1);
        assert_eq!(recorded.event_type, "test.happened");
        assert_eq!(recorded.schema_version, 1);
        assert_eq!(recorded.data, sent_event.data);
        assert_eq!(recorded.metadata, sent.metadata);
        assert_eq!(recorded.occurred_at, sent.occurred_at);
    }
    assert_eq!(read[1].position, appended.position);
    assert_eq!(read[0].position.next(), read[1].position);
    assert_eq!(store.head().await.unwrap(), appended.position);

    let from_version_one = store.read_stream(tenant, stream, 1, 100).await.unwrap();
    assert_eq!(from_version_one.len(), 1);
    assert_eq!(from_version_one[0].stream_version, 2);
}

async fn a_stale_expected_version_is_a_distinct_conflict(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let stream = StreamId::generate();
    store
        .append(append_to(
            tenant,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(1)],
        ))
        .await
        .unwrap();
    let stale = store
        .append(append_to(
            tenant,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(2)],
        ))
        .await;
    match stale {
        Err(AppendError::WrongExpectedVersion {
            stream_id,
            expected: 0,
            actual: 1,
        }) => assert_eq!(stream_id, stream),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let any = store
        .append(append_to(
            tenant,
            stream,
            ExpectedVersion::Any,
            vec![event(3)],
        ))
        .await
        .unwrap();
    assert_eq!(any.stream_version, 2);
    assert_eq!(
        store
            .read_stream(tenant, stream, 0, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn sixteen_concurrent_appends_at_one_version_let_exactly_one_win(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let stream = StreamId::generate();
    store
        .append(append_to(
            tenant,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(0)],
        ))
        .await
        .unwrap();
    let attempts = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(append_to(
                    tenant,
                    stream,
                    ExpectedVersion::Exact(1),
                    vec![event(n)],
                ))
                .await
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let wins = outcomes.iter().filter(|o| matches!(o, Ok(Ok(_)))).count();
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Err(AppendError::WrongExpectedVersion { .. }))))
        .count();
    assert_eq!((wins, conflicts), (1, 15));
    assert_eq!(
        store
            .read_stream(tenant, stream, 0, 100)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn tenants_never_see_each_others_events(store: Arc<dyn EventStore>) {
    let (mine, theirs) = (TenantId::generate(), TenantId::generate());
    let stream = StreamId::generate();
    store
        .append(append_to(
            mine,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(1)],
        ))
        .await
        .unwrap();
    // The same stream id under another tenant is another stream.
    store
        .append(append_to(
            theirs,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(2)],
        ))
        .await
        .unwrap();
    let their_view = store.read_stream(theirs, stream, 0, 10).await.unwrap();
    assert_eq!(their_view.len(), 1);
    assert_eq!(their_view[0].data, json!({ "n": 2 }));

    let mine_only = store
        .read_log(LogQuery {
            after: Position::START,
            tenant_id: Some(mine),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(mine_only.len(), 1);
    assert!(mine_only.iter().all(|e| e.tenant_id == mine));
    let everyone = store
        .read_log(LogQuery::all_after(Position::START, 100))
        .await
        .unwrap();
    assert_eq!(everyone.len(), 2);
}

async fn concurrent_writers_never_let_a_tailing_reader_skip_an_event(store: Arc<dyn EventStore>) {
    tailing_reader_sees_everything(vec![store]).await;
}

/// Writers spread over `stores` (each its own group-commit loop and writer
/// connection, as separate processes have) while a reader tails the log.
async fn tailing_reader_sees_everything(stores: Vec<Arc<dyn EventStore>>) {
    const WRITERS: usize = 16;
    const APPENDS_PER_WRITER: usize = 625;
    const EVENTS_PER_APPEND: usize = 2;
    const TOTAL: usize = WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND;

    let tenants = [
        TenantId::generate(),
        TenantId::generate(),
        TenantId::generate(),
    ];
    let reader = {
        let store = stores[0].clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(TOTAL);
            let mut after = Position::START;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
            while seen.len() < TOTAL {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the reader saw {} of {TOTAL} events: some never became visible",
                    seen.len()
                );
                let batch = store
                    .read_log(LogQuery::all_after(after, 500))
                    .await
                    .unwrap();
                for event in batch {
                    assert_eq!(
                        event.position,
                        after.next(),
                        "the tail must be dense: position {} after {}",
                        event.position,
                        after
                    );
                    after = event.position;
                    seen.push(event);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let writers = (0..WRITERS).map(|writer| {
        let store = stores[writer % stores.len()].clone();
        tokio::spawn(async move {
            // Each writer cycles over a few streams of its own, so versions
            // chain, and writers share tenants, so tenants interleave.
            let streams: Vec<StreamId> = (0..5).map(|_| StreamId::generate()).collect();
            let tenant = tenants[writer % tenants.len()];
            for n in 0..APPENDS_PER_WRITER {
                let stream = streams[n % streams.len()];
                let events = (0..EVENTS_PER_APPEND).map(|i| event(n * 10 + i)).collect();
                store
                    .append(append_to(tenant, stream, ExpectedVersion::Any, events))
                    .await
                    .unwrap();
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), TOTAL);
    let unique: HashSet<EventId> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), TOTAL, "every event exactly once");
    let mut versions: BTreeMap<(TenantId, StreamId), i64> = BTreeMap::new();
    for event in &seen {
        let last = versions
            .entry((event.tenant_id, event.stream_id))
            .or_insert(0);
        assert_eq!(
            event.stream_version,
            *last + 1,
            "each stream in version order"
        );
        *last = event.stream_version;
    }
}

async fn a_claimed_value_is_refused_to_other_streams_until_released(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let (holder, rival) = (StreamId::generate(), StreamId::generate());
    let slug = Claim::new(format!("project.slug/{tenant}"), "web");

    let mut first = append_to(tenant, holder, ExpectedVersion::NO_STREAM, vec![event(1)]);
    first.claims.push(slug.clone());
    store.append(first).await.unwrap();
    assert_eq!(
        store.find_claim(&slug).await.unwrap(),
        Some((tenant, holder))
    );

    let mut second = append_to(tenant, rival, ExpectedVersion::NO_STREAM, vec![event(2)]);
    second.claims.push(slug.clone());
    match store.append(second.clone()).await {
        Err(AppendError::ClaimTaken { claim }) => assert_eq!(claim, slug),
        other => panic!("expected the claim to be refused, got {other:?}"),
    }
    assert!(
        store
            .read_stream(tenant, rival, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut release = append_to(tenant, holder, ExpectedVersion::Exact(1), vec![event(3)]);
    release.releases.push(slug.clone());
    store.append(release).await.unwrap();
    assert_eq!(store.find_claim(&slug).await.unwrap(), None);
    store.append(second).await.unwrap();
    assert_eq!(
        store.find_claim(&slug).await.unwrap(),
        Some((tenant, rival))
    );
}

async fn sixteen_racing_claims_of_one_value_let_exactly_one_win(store: Arc<dyn EventStore>) {
    let claim = Claim::new("workspace.slug", format!("acme-{}", uuid::Uuid::new_v4()));
    let racers = (0..16).map(|n| {
        let store = store.clone();
        let claim = claim.clone();
        tokio::spawn(async move {
            let mut request = append_to(
                TenantId::generate(),
                StreamId::generate(),
                ExpectedVersion::NO_STREAM,
                vec![event(n)],
            );
            request.claims.push(claim);
            store.append(request).await
        })
    });
    let outcomes = futures::future::join_all(racers).await;
    let wins = outcomes.iter().filter(|o| matches!(o, Ok(Ok(_)))).count();
    let taken = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Err(AppendError::ClaimTaken { .. }))))
        .count();
    assert_eq!((wins, taken), (1, 15));
}

async fn an_idempotency_key_stores_its_response_with_the_events(store: Arc<dyn EventStore>) {
    let record = IdempotencyRecord {
        scope: format!("user:{}", uuid::Uuid::now_v7()),
        key: "create-1".into(),
        fingerprint: "sha256:abc".into(),
        response: json!({ "status": 201, "body": { "id": 7 } }),
        expires_at: tenet_events::envelope::now() + chrono::Duration::hours(24),
    };
    let tenant = TenantId::generate();
    let mut first = append_to(
        tenant,
        StreamId::generate(),
        ExpectedVersion::NO_STREAM,
        vec![event(1)],
    );
    first.idempotency = Some(record.clone());
    let appended = store.append(first).await.unwrap();

    let stored = store
        .find_response(&record.scope, &record.key)
        .await
        .unwrap()
        .expect("stored response");
    assert_eq!(stored.fingerprint, record.fingerprint);
    assert_eq!(stored.response, record.response);
    assert_eq!(stored.position, appended.position);

    let stream = StreamId::generate();
    let mut again = append_to(tenant, stream, ExpectedVersion::NO_STREAM, vec![event(2)]);
    again.idempotency = Some(record.clone());
    assert!(matches!(
        store.append(again).await,
        Err(AppendError::IdempotencyKeyUsed { .. })
    ));
    assert!(
        store
            .read_stream(tenant, stream, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_response("someone-else", &record.key)
            .await
            .unwrap(),
        None
    );
}

async fn an_empty_append_is_refused(store: Arc<dyn EventStore>) {
    let outcome = store
        .append(append_to(
            TenantId::generate(),
            StreamId::generate(),
            ExpectedVersion::Any,
            vec![],
        ))
        .await;
    assert!(matches!(outcome, Err(AppendError::Empty)));
}

async fn the_head_watch_follows_commits(store: Arc<dyn EventStore>) {
    let mut head = store.watch_head();
    let before = *head.borrow_and_update();
    let appended = store
        .append(append_to(
            TenantId::generate(),
            StreamId::generate(),
            ExpectedVersion::NO_STREAM,
            vec![event(1)],
        ))
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        head.wait_for(|p| *p >= appended.position),
    )
    .await
    .expect("head watch advanced")
    .unwrap();
    assert!(appended.position > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_three_processes_never_let_a_tailing_reader_skip_an_event() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(open(&database).await);
    }
    tailing_reader_sees_everything(stores).await;
}

/// Refuses events whose data says `{"poison": true}`, inside the append.
struct Strict;

#[async_trait::async_trait]
impl tenet_events::projection::Projector for Strict {
    fn name(&self) -> &'static str {
        "strict"
    }
    fn handles(&self, _event_type: &str) -> bool {
        true
    }
    async fn apply(
        &self,
        _tx: &mut tenet_events::db::Tx<'_>,
        _generation: i32,
        events: &[tenet_events::envelope::RecordedEvent],
    ) -> Result<(), tenet_events::projection::ProjectionError> {
        match events.iter().find(|e| e.data["poison"] == json!(true)) {
            Some(event) => Err(tenet_events::projection::ProjectionError::event(
                event, "poisoned",
            )),
            None => Ok(()),
        }
    }
    async fn clear(
        &self,
        _tx: &mut tenet_events::db::Tx<'_>,
        _generation: i32,
    ) -> Result<(), tenet_events::projection::ProjectionError> {
        Ok(())
    }
}

async fn an_inline_projection_failure_fails_only_its_own_append(database: TestDatabase) {
    let store = store::open(
        database.db.clone(),
        StoreOptions {
            inline: vec![Arc::new(Strict)],
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let tenant = TenantId::generate();
    let appends = (0..12).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut request = append_to(
                tenant,
                StreamId::generate(),
                ExpectedVersion::NO_STREAM,
                vec![event(n)],
            );
            request.events[0].data = json!({ "poison": n == 5 });
            store.append(request).await
        })
    });
    let outcomes = futures::future::join_all(appends).await;
    let failed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Ok(Ok(_))))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(failed, vec![5]);
    let logged = store
        .read_log(LogQuery::all_after(Position::START, 100))
        .await
        .unwrap();
    assert_eq!(logged.len(), 11);
    assert!(logged.iter().all(|e| e.data["poison"] == json!(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_inline_projection_failure_fails_only_its_own_append() {
    an_inline_projection_failure_fails_only_its_own_append(TestDatabase::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_inline_projection_failure_fails_only_its_own_append() {
    if let Some(database) = TestDatabase::postgres().await {
        an_inline_projection_failure_fails_only_its_own_append(database).await;
    }
}

async fn an_expired_idempotency_key_can_be_used_again(store: Arc<dyn EventStore>) {
    let record = IdempotencyRecord {
        scope: format!("user:{}", uuid::Uuid::now_v7()),
        key: "old".into(),
        fingerprint: "first".into(),
        response: json!({ "n": 1 }),
        expires_at: tenet_events::envelope::now() - chrono::Duration::seconds(1),
    };
    let tenant = TenantId::generate();
    let mut first = append_to(
        tenant,
        StreamId::generate(),
        ExpectedVersion::NO_STREAM,
        vec![event(1)],
    );
    first.idempotency = Some(record.clone());
    store.append(first).await.unwrap();
    assert_eq!(
        store
            .find_response(&record.scope, &record.key)
            .await
            .unwrap(),
        None
    );

    let mut again = append_to(
        tenant,
        StreamId::generate(),
        ExpectedVersion::NO_STREAM,
        vec![event(2)],
    );
    again.idempotency = Some(IdempotencyRecord {
        fingerprint: "second".into(),
        expires_at: tenet_events::envelope::now() + chrono::Duration::hours(1),
        ..record.clone()
    });
    store.append(again).await.unwrap();
    let stored = store
        .find_response(&record.scope, &record.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.fingerprint, "second");
}

async fn a_stream_believed_new_that_exists_is_a_version_conflict(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let stream = StreamId::generate();
    store
        .append(append_to(
            tenant,
            stream,
            ExpectedVersion::NO_STREAM,
            vec![event(1)],
        ))
        .await
        .unwrap();
    let mut again = append_to(tenant, stream, ExpectedVersion::NO_STREAM, vec![event(2)]);
    again.new_stream = true;
    assert!(matches!(
        store.append(again).await,
        Err(AppendError::WrongExpectedVersion { .. })
    ));
    // Beside other appends in one batch, only it fails.
    let appends = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let target = if n == 3 { stream } else { StreamId::generate() };
            let mut request = append_to(tenant, target, ExpectedVersion::NO_STREAM, vec![event(n)]);
            request.new_stream = true;
            store.append(request).await
        })
    });
    let outcomes = futures::future::join_all(appends).await;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap();
        assert_eq!(outcome.is_err(), n == 3, "append {n}: {outcome:?}");
    }
    assert_eq!(
        store
            .read_stream(tenant, stream, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn several_streams_append_atomically_or_not_at_all(store: Arc<dyn EventStore>) {
    let tenant = TenantId::generate();
    let (task, project) = (StreamId::generate(), StreamId::generate());
    store
        .append(append_to(
            tenant,
            project,
            ExpectedVersion::NO_STREAM,
            vec![event(0)],
        ))
        .await
        .unwrap();
    let mut create = append_to(tenant, task, ExpectedVersion::NO_STREAM, vec![event(1)]);
    create.also.push(tenet_events::store::StreamAppend {
        stream_id: project,
        stream_type: "project",
        expected: ExpectedVersion::Exact(1),
        events: vec![event(2)],
        new_stream: false,
    });
    let appended = store.append(create.clone()).await.unwrap();
    assert_eq!(appended.also_versions, vec![2]);
    assert_eq!(
        store.read_stream(tenant, task, 0, 10).await.unwrap().len(),
        1
    );
    let on_project = store.read_stream(tenant, project, 0, 10).await.unwrap();
    assert_eq!(on_project.len(), 2);
    assert_eq!(on_project[1].position, appended.position);
    assert_eq!(on_project[1].stream_type, "project");

    // The project moved on: a request that expected it at version 1 is
    // refused whole, its task stream included.
    let other_task = StreamId::generate();
    let mut stale = append_to(
        tenant,
        other_task,
        ExpectedVersion::NO_STREAM,
        vec![event(3)],
    );
    stale.also = create.also.clone();
    assert!(matches!(
        store.append(stale).await,
        Err(AppendError::WrongExpectedVersion { stream_id, .. }) if stream_id == project
    ));
    assert!(
        store
            .read_stream(tenant, other_task, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A stream only checked (no events) holds the request to its version.
    let mut checked = append_to(
        tenant,
        other_task,
        ExpectedVersion::NO_STREAM,
        vec![event(4)],
    );
    checked.also.push(tenet_events::store::StreamAppend {
        stream_id: project,
        stream_type: "project",
        expected: ExpectedVersion::Exact(2),
        events: vec![],
        new_stream: false,
    });
    store.append(checked).await.unwrap();
    assert_eq!(
        store
            .read_stream(tenant, project, 0, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let database = tenet_events::testing::TestDatabase::sqlite().await;
                    super::$test(super::open(&database).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(database) = tenet_events::testing::TestDatabase::postgres().await else {
                        return;
                    };
                    super::$test(super::open(&database).await).await;
                }
            )*
        }
    };
}

contract!(
    appended_events_read_back_with_their_whole_envelope,
    a_stale_expected_version_is_a_distinct_conflict,
    sixteen_concurrent_appends_at_one_version_let_exactly_one_win,
    tenants_never_see_each_others_events,
    concurrent_writers_never_let_a_tailing_reader_skip_an_event,
    a_claimed_value_is_refused_to_other_streams_until_released,
    sixteen_racing_claims_of_one_value_let_exactly_one_win,
    an_idempotency_key_stores_its_response_with_the_events,
    an_empty_append_is_refused,
    the_head_watch_follows_commits,
    an_expired_idempotency_key_can_be_used_again,
    a_stream_believed_new_that_exists_is_a_version_conflict,
    several_streams_append_atomically_or_not_at_all,
);

/// Expired idempotency records are purged; live ones stay.
async fn expired_idempotency_records_are_purged(database: &tenet_events::testing::TestDatabase) {
    let store = open(database).await;
    let scope = format!("user:{}", uuid::Uuid::now_v7());
    for (key, expires_in) in [("old", -1), ("live", 3600)] {
        let mut request = append_to(
            TenantId::generate(),
            StreamId::generate(),
            ExpectedVersion::NO_STREAM,
            vec![event(1)],
        );
        request.idempotency = Some(IdempotencyRecord {
            scope: scope.clone(),
            key: key.into(),
            fingerprint: "f".into(),
            response: json!({}),
            expires_at: tenet_events::envelope::now() + chrono::Duration::seconds(expires_in),
        });
        store.append(request).await.unwrap();
    }
    let purged = store::purge_expired_responses(&database.db).await.unwrap();
    assert_eq!(purged, 1);
    assert!(store.find_response(&scope, "live").await.unwrap().is_some());
    assert_eq!(
        store::purge_expired_responses(&database.db).await.unwrap(),
        0
    );
}

mod purge {
    #[tokio::test]
    async fn on_sqlite() {
        let database = tenet_events::testing::TestDatabase::sqlite().await;
        super::expired_idempotency_records_are_purged(&database).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let Some(database) = tenet_events::testing::TestDatabase::postgres().await else {
            return;
        };
        super::expired_idempotency_records_are_purged(&database).await;
    }
}
