//! Distributed delivery: the relay publishes the committed log to JetStream
//! and projectors consume it through durable consumers (Postgres + NATS).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::{Actor, Metadata, NewEvent, RecordedEvent};
use tenet_events::ids::{EventId, Position, StreamId, TenantId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::relay::Relay;
use tenet_events::store::{self, AppendRequest, EventStore, ExpectedVersion, StoreOptions};
use tenet_events::testing::{TestBus, TestDatabase};
use tenet_events::{with_pool, with_tx};
use tenet_projections::checkpoints::Checkpoints;
use tenet_projections::runtime::Runtime;
use tenet_projections::source::SourceKind;
use tokio_util::sync::CancellationToken;

struct Positions;

#[async_trait]
impl Projector for Positions {
    fn name(&self) -> &'static str {
        "positions"
    }

    fn handles(&self, _event_type: &str) -> bool {
        true
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        _generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            with_tx!(&mut *tx, conn => {
                sqlx::query("INSERT INTO test_positions (position) VALUES ($1)")
                    .bind(event.position.0)
                    .execute(&mut *conn)
                    .await?;
            });
        }
        Ok(())
    }

    async fn clear(&self, _tx: &mut Tx<'_>, _generation: i32) -> Result<(), ProjectionError> {
        Ok(())
    }
}

async fn setup() -> Option<(TestDatabase, TestBus, Arc<dyn EventStore>)> {
    let database = TestDatabase::postgres().await?;
    let bus = TestBus::connect().await?;
    if let Db::Postgres(pool) = &database.db {
        // `applied` numbers rows in the order they were inserted.
        sqlx::query("CREATE TABLE test_positions (applied bigserial, position bigint PRIMARY KEY)")
            .execute(pool)
            .await
            .unwrap();
    }
    let store = store::open(database.db.clone(), StoreOptions::default())
        .await
        .unwrap();
    Some((database, bus, store))
}

fn pool(database: &TestDatabase) -> sqlx::PgPool {
    match &database.db {
        Db::Postgres(pool) => pool.clone(),
        Db::Sqlite(_) => unreachable!("these tests run on Postgres"),
    }
}

async fn append(store: &Arc<dyn EventStore>, count: usize) -> Position {
    let tenant = TenantId::generate();
    let tasks = (0..count).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(AppendRequest::new(
                    tenant,
                    StreamId::generate(),
                    "widget",
                    ExpectedVersion::NO_STREAM,
                    vec![NewEvent {
                        event_id: EventId::generate(),
                        event_type: "widget.made".into(),
                        schema_version: 1,
                        data: json!({ "n": n }),
                    }],
                    Metadata::new(Actor::System {
                        name: "test".into(),
                    }),
                ))
                .await
                .unwrap()
        })
    });
    futures::future::join_all(tasks).await;
    store.head().await.unwrap()
}

async fn stream_messages(bus: &TestBus) -> u64 {
    let mut stream = bus
        .bus
        .jetstream
        .get_stream(bus.bus.events_stream())
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relayed_events_reach_a_durable_consumer_in_order_exactly_once() {
    let Some((database, bus, store)) = setup().await else {
        return;
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(Relay::new(pool(&database), store.clone(), bus.bus.clone()).run(shutdown.clone()));
    let runtime = Runtime {
        db: database.db.clone(),
        store: store.clone(),
        source: SourceKind::JetStream(Box::new(bus.bus.clone())),
        checkpoints: Checkpoints::default(),
    };
    let projector: Arc<dyn Projector> = Arc::new(Positions);
    let _runners = runtime
        .start(&[projector], &[], shutdown.clone())
        .await
        .unwrap();

    let head = append(&store, 1_500).await;
    runtime
        .checkpoints
        .wait_for(&database.db, "positions", head, Duration::from_secs(60))
        .await
        .unwrap();
    let positions: Vec<i64> = with_pool!(database.db, pool => {
        sqlx::query_scalar("SELECT position FROM test_positions ORDER BY applied")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(positions, (1..=head.0).collect::<Vec<_>>());
    assert_eq!(stream_messages(&bus).await, head.0 as u64);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_between_publish_and_checkpoint_loses_nothing_and_duplicates_nothing() {
    let Some((database, bus, store)) = setup().await else {
        return;
    };
    let head = append(&store, 700).await;
    bus.bus.ensure_events_stream().await.unwrap();

    // The first relay publishes a batch and "dies" before its checkpoint.
    let crashed = Relay::new(pool(&database), store.clone(), bus.bus.clone());
    let published = crashed.publish_after(Position::START).await.unwrap();
    assert_eq!(published, Some(head));
    drop(crashed);
    assert_eq!(stream_messages(&bus).await, head.0 as u64);

    // Its successor starts from the old checkpoint and republishes.
    let shutdown = CancellationToken::new();
    tokio::spawn(Relay::new(pool(&database), store.clone(), bus.bus.clone()).run(shutdown.clone()));
    let more = append(&store, 300).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let checkpoint: Option<i64> = sqlx::query_scalar("SELECT position FROM relay_checkpoints")
            .fetch_optional(&pool(&database))
            .await
            .unwrap();
        if checkpoint == Some(more.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    // Every event once: the republished batch was dropped by message id.
    assert_eq!(stream_messages(&bus).await, more.0 as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_elect_one_leader_and_publish_each_event_once() {
    let Some((database, bus, store)) = setup().await else {
        return;
    };
    let shutdown = CancellationToken::new();
    for _ in 0..2 {
        tokio::spawn(
            Relay::new(pool(&database), store.clone(), bus.bus.clone()).run(shutdown.clone()),
        );
    }
    let head = append(&store, 500).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream_messages_or_zero(&bus).await < head.0 as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relays did not publish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leaders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool(&database))
    .await
    .unwrap();
    assert_eq!(leaders, 1);
    shutdown.cancel();
}

async fn stream_messages_or_zero(bus: &TestBus) -> u64 {
    match bus.bus.jetstream.get_stream(bus.bus.events_stream()).await {
        Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
        Err(_) => 0,
    }
}
